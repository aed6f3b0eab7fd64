"""A platform double (loaded with ``-p reporter_double``): the artifact's `reporter` mode is declared but
not built — `--contract` says ``implemented: false`` and a run answers exit 3 "not implemented", as the
contract's CLI does for such a mode. Every other mode is the reference platform's, from the artifact."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from harness.compute import embedded

DOUBLE = r"""
import json, sys
from spine.contract import MODES
if sys.argv[1:] == ["--contract"]:
    answer = MODES["reporter"].to_json()
    answer["implemented"] = False
    print(json.dumps(answer, sort_keys=True))
    sys.exit(0)
print("reporter: not implemented", file=sys.stderr)
sys.exit(3)
"""
_launch = embedded.EmbeddedCompute._launch


def _double(self: Any, mode: str, env: dict[str, str], args: list[str] | None) -> tuple[list[str], dict[str, str],
                                                                                     Path]:
    argv, child_env, cwd = _launch(self, mode, env, args)
    if mode == "reporter":
        argv = [sys.executable, "-S", "-P", "-c", DOUBLE, *(args or [])]
    return argv, child_env, cwd


embedded.EmbeddedCompute._launch = _double  # type: ignore[method-assign]
