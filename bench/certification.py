"""Where the wall time of a whole certification goes: per rung, per drill, per gate, per scenario.

    .venv/bin/python bench/certification.py                      # run `pytest features/` once, then analyse it
    .venv/bin/python bench/certification.py --bundle reports/certifications/<cert_id>   # analyse a finished one

Reads the bundle's gates.json (each gate's start/end and each scenario's duration, as the
ledger recorded them) and prints: the whole certification's wall time against the 180 s
target, the time per section (certification-wide phases, each rung, the reproducibility
check, the drills, teardown), the slowest gates and scenarios, and the time between gates
(substrate start, session close, the report).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 180.0


def certify(reports: Path) -> tuple[Path, float]:
    began = time.monotonic()
    subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "features"), "-q", "-p", "no:cacheprovider",
                    "--reports-dir", str(reports)], cwd=ROOT, check=False)
    wall = time.monotonic() - began
    bundles = sorted((reports / "certifications").iterdir(), key=lambda p: p.stat().st_mtime)
    return bundles[-1], wall


def section(phase: dict[str, Any]) -> str:
    if phase.get("rung"):
        return f"rung {phase['rung']}"
    if phase.get("kind") == "drill":
        return "drills"
    if phase.get("kind") == "ladder":
        return "reproducibility"
    return "teardown (P12)" if phase["phase_id"] == "P12" else "certification-wide (P(-1), P0)"


def analyse(gates: dict[str, Any], wall_s: float | None) -> list[str]:
    started = datetime.fromisoformat(gates["started_at"]).timestamp()
    ended = datetime.fromisoformat(gates["ended_at"]).timestamp()
    total = ended - started
    phases = [p for p in gates["phases"] if p.get("duration_s") is not None]
    judged = sum(p["duration_s"] for p in phases)
    lines = [f"certification {gates['cert_id']}: verdict {gates['verdict']}",
             f"session (substrate up → bundle sealed): {total:7.1f} s"
             + (f"; process wall incl. collection and report: {wall_s:.1f} s" if wall_s else ""),
             f"target {TARGET_S:.0f} s: {'met' if total <= TARGET_S else f'missed by {total - TARGET_S:.1f} s'}",
             f"in gates: {judged:7.1f} s; substrate start, scope changes and close: {total - judged:7.1f} s", ""]
    sections: dict[str, float] = {}
    for p in phases:
        sections[section(p)] = sections.get(section(p), 0.0) + p["duration_s"]
    lines.append(f"{'section':34} {'seconds':>8} {'share':>6}")
    lines += [f"{name:34} {secs:8.1f} {secs / total:6.0%}" for name, secs in sections.items()]
    lines += ["", f"{'slowest gates':34} {'seconds':>8}"]
    lines += [f"{p['gate']:34} {p['duration_s']:8.1f}"
              for p in sorted(phases, key=lambda p: -p["duration_s"])[:12]]
    by_phase: dict[str, float] = {}
    for p in phases:
        by_phase[p["phase_id"]] = by_phase.get(p["phase_id"], 0.0) + p["duration_s"]
    lines += ["", f"{'per phase, summed over rungs':34} {'seconds':>8}"]
    lines += [f"{name:34} {secs:8.1f}" for name, secs in sorted(by_phase.items(), key=lambda kv: -kv[1])[:12]]
    scenarios = [(p["gate"], s["name"], s["duration_s"]) for p in gates["phases"] for s in p["scenarios"]]
    lines += ["", "slowest scenarios (seconds, gate, scenario)"]
    lines += [f"{d:8.1f}  {g:22} {n[:90]}" for g, n, d in sorted(scenarios, key=lambda t: -t[2])[:15]]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, help="a finished certification's bundle (default: run one now)")
    parser.add_argument("--reports-dir", type=Path, default=ROOT / "reports" / "bench",
                        help="where a new certification's bundle goes")
    args = parser.parse_args()
    wall = None
    bundle = args.bundle
    if bundle is None:
        bundle, wall = certify(args.reports_dir)
    gates = json.loads((bundle / "gates.json").read_text(encoding="utf-8"))
    print("\n".join(analyse(gates, wall)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
