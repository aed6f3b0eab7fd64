"""What each entrypoint mode promises (docs/platform-contract.md §4): kind, environment, evidence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The Oracle outputs (spine.dataset pins their schemas); named here so --contract needs no pyarrow.
ORACLE_OUTPUTS = ("card_transactions", "merchant_profiles", "card_profiles")

# Read by every mode before any work (the run-scope guard); AWS_ENDPOINT_URL only on an emulator.
COMMON_ENV = (
    "REQUIRED_PLATFORM_RUN_ID",
    "SPINE_RUN_MANIFEST",
    "SPINE_RUN_CONFIG_DIGEST",
    "SPINE_IMAGE_DIGEST",
    "SPINE_EVIDENCE_ROOT",
    "AWS_REGION",
)


@dataclass(frozen=True)
class Contract:
    mode: str
    kind: str  # "job" | "daemon"
    implemented: bool
    env: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()

    @property
    def required_env(self) -> list[str]:
        return [*COMMON_ENV, *self.env]

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "implemented": self.implemented,
            "kind": self.kind,
            "required_env": self.required_env,
            "evidence": list(self.evidence),
        }


MODES: dict[str, Contract] = {
    c.mode: c
    for c in (
        Contract("oracle-seed", "job", True, ("SPINE_ORACLE_SOURCE", "SPINE_ORACLE_ROOT"),
                 ("oracle/landing_manifest.json",)),
        Contract("oracle-sort", "job", True, ("SPINE_ORACLE_ROOT",),
                 tuple(f"oracle/stream_view/{name}.json" for name in ORACLE_OUTPUTS)
                 + tuple(f"oracle/sort_receipts/{name}.json" for name in ORACLE_OUTPUTS)),
        Contract("oracle-check", "job", True, ("SPINE_ORACLE_ROOT",),
                 ("oracle/checker_receipt.json", "oracle/_PASS")),
        Contract("sr", "job", False),
        Contract("wsp", "job", False),
        Contract("ig", "daemon", False),
        Contract("rtdl", "daemon", False),
        Contract("decision-lane", "daemon", False),
        Contract("case-labels", "daemon", False),
        Contract("reporter", "job", False),
    )
}
