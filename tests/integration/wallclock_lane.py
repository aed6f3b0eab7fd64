"""A decision-lane double whose decisions depend on the wall clock: `python tests/integration/wallclock_lane.py`.

The reference lane (``spine.decision_lane``) in every respect but one: each decision carries one more feature,
``seen_at_ms_mod``, the millisecond of the wall-clock second at which the lane decided. Outcomes, reasons and the
contract's seven features are the reference policy's, so P9's per-run check (which recomputes only the contract's
features and the policy on them) passes it; only a rerun of the same scenario shows that it does not reproduce.
Started as its own process with the environment of the real lane.
"""

from __future__ import annotations

import time
from typing import Any

from spine import cli, decision_lane

_reference = decision_lane.decision


def decision(enriched: dict[str, Any]) -> dict[str, Any]:
    made = _reference(enriched)
    made["features"] = {**made["features"], "seen_at_ms_mod": time.time_ns() // 1_000_000 % 1000}
    return made


decision_lane.decision = decision  # Lane.handle looks the function up in the module when it decides

if __name__ == "__main__":
    raise SystemExit(cli.main(["decision-lane"]))
