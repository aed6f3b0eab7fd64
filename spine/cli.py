"""`python -m spine <mode> [--contract]`: one artifact, ten modes, the exit codes of the contract."""

from __future__ import annotations

import importlib
import json
import sys
import traceback
from collections.abc import Sequence

from spine import log
from spine.contract import MODES
from spine.errors import SpineError

# Imported only when the mode runs: `--contract` answers without loading boto3 or pyarrow.
RUNNERS = {
    "oracle-seed": "spine.oracle.seed",
    "oracle-sort": "spine.oracle.sort",
    "oracle-check": "spine.oracle.check",
    "sr": "spine.sr",
    "wsp": "spine.wsp",
    "ig": "spine.ig.server",
    "rtdl": "spine.rtdl",
    "decision-lane": "spine.decision_lane",
    "case-labels": "spine.case_labels",
    "reporter": "spine.reporter",
}
USAGE = f"usage: python -m spine <mode> [--contract]; modes: {', '.join(MODES)}"


def _say(line: str) -> None:
    """The one stderr line of a refusal."""
    print(" ".join(line.split()), file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in MODES:
        _say(f"{'unknown mode ' + repr(args[0]) if args else 'no mode given'}; {USAGE}")
        return 2
    mode, options = args[0], args[1:]
    contract = MODES[mode]
    if options == ["--contract"]:
        print(json.dumps(contract.to_json(), sort_keys=True))
        return 0
    if options:
        _say(f"{mode}: unexpected arguments {options}; {USAGE}")
        return 2
    if not contract.implemented or mode not in RUNNERS:
        _say(f"{mode}: not implemented")
        return 3
    log.bind(mode=mode)
    try:
        from spine import runscope

        scope = runscope.enter(contract.required_env)
        log.bind(platform_run_id=scope.platform_run_id, scenario_run_id=scope.scenario_run_id)
        log.info("start")
        importlib.import_module(RUNNERS[mode]).run(scope)
    except SpineError as exc:
        log.info("refused", reason=str(exc), exit_code=exc.exit_code)
        _say(f"{mode}: {exc}")
        return exc.exit_code
    except Exception as exc:  # a bug, not a refusal: keep the traceback on stdout, the reason on stderr
        log.info("error", traceback=traceback.format_exc())
        _say(f"{mode}: internal error: {type(exc).__name__}: {exc}")
        return 1
    log.info("done", exit_code=0)
    return 0
