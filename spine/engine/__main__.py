"""`python -m spine.engine --seed S --events N --out URL [--scenario-run-id ID] [--part-rows R]`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from spine import log
from spine.engine import PART_ROWS, generate, render, write
from spine.errors import SpineError


def _scenario_from(out: str, seed: int, events: int) -> str:
    """The last folder of ``--out`` (the contract's `<oracle_root><scenario_run_id>/`), else `scn-seedS-nN`."""
    path = out.removeprefix("s3://").removeprefix("file://").rstrip("/")
    head, _, last = path.rpartition("/")
    return last if head and last else f"scn-seed{seed}-n{events}"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be >= 0")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spine.engine", description=__doc__)
    parser.add_argument("--seed", type=_non_negative, required=True)
    parser.add_argument("--events", type=_positive, required=True)
    parser.add_argument("--out", required=True, help="s3://bucket/prefix/ or a local folder")
    parser.add_argument("--scenario-run-id", help="default: the last folder of --out")
    parser.add_argument("--part-rows", type=_positive, default=PART_ROWS)
    args = parser.parse_args(argv)  # bad usage exits 2
    scenario = args.scenario_run_id or _scenario_from(args.out, args.seed, args.events)
    log.bind(component="engine", scenario_run_id=scenario)
    try:
        rendered = render(generate(args.seed, args.events), seed=args.seed, events=args.events,
                          scenario_run_id=scenario, part_rows=args.part_rows)
        write(rendered, args.out)
    except SpineError as exc:
        print(f"engine: {exc}", file=sys.stderr)
        return exc.exit_code
    outputs = rendered.manifest["outputs"]
    log.info("done", out=args.out, **{f"{name}_rows": o["row_count"] for name, o in outputs.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
