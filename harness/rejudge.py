"""Offline re-judgement of a bundle: history first, verdict second, from the evidence alone.

The harness records what it observed beside what it concluded. ``spine-certify verify`` reads each
recorded observation again and runs the same pure judge over it, with no substrate: a gate recorded
DONE whose observations the judge now finds faults in is named, and the verdict is recomputed from
the gate statuses that survive. A bundle whose gates.json was edited to say DONE, or whose
observations were swapped for others, no longer verifies.
"""

from __future__ import annotations

import fnmatch
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import drills, ledger, oracle_views, reproducibility
from harness.drills import control, database, ingress, pipeline, substrate
from harness.errors import Finding, HarnessError
from harness.phases import p07, p08, p09, p10, p11


def _p07(record: dict[str, Any]) -> list[str]:
    judged = p07.judge(record["observed"])
    return drills.flat(judged["problems"], skip=judged["waived"])


def _p09(record: dict[str, Any]) -> list[str]:
    return drills.flat(p09.judge(record)["problems"])


def _raises(check: Callable[[Any], None]) -> Callable[[Any], list[str]]:
    def judge(record: Any) -> list[str]:
        try:
            check(record)
        except Finding as exc:
            return list(exc.details)
        return []
    return judge


def _stage(stage: str, record: dict[str, Any]) -> None:
    drills.check(record, stage)


def _drill(record: dict[str, Any]) -> list[str]:
    """A drill's journal: each judged stage completed with nothing that did not hold, and the outcome passed."""
    problems = [p for stage in drills.STAGE_CLAIMS for p in _raises(functools.partial(_stage, stage))(record)]
    return problems + ([f"the journal's outcome is {record.get('outcome')!r}"] if record.get("outcome") != "passed"
                       else [])


def _reproducibility(record: dict[str, Any]) -> list[str]:
    return _raises(reproducibility.check)(reproducibility.compare(*record["snapshots"]))


def _observed(judge: Callable[[Any], list[str] | dict[str, list[str]]]) -> Callable[[dict[str, Any]], list[str]]:
    """A drill's ``{"observed": ..., "problems": ...}`` record: the drill's own judge over the observation alone
    (the problems it recorded are the drill's conclusion, not evidence)."""
    def judge_observed(record: dict[str, Any]) -> list[str]:
        found = judge(record["observed"])
        return drills.flat(found) if isinstance(found, dict) else found
    return judge_observed


def _after(record: dict[str, Any]) -> list[str]:
    """An ingress drill's steady state after: every stream-view event exactly once, from receipts and the topic."""
    return ingress.exactly_once(record["platform_run_id"], record["view_event_ids"], record["receipts"],
                                record["topic"])


# bundle path pattern -> the judge of the observations it records (empty list: nothing wrong)
JUDGES: dict[str, Callable[[Any], list[str]]] = {
    "runs/*/oracle/recomputed.json": _raises(oracle_views.check),
    "runs/*/ingest/reconciliation.json": _p07,
    "runs/*/rtdl_core/lag_observed.json": p08.judge_lag,
    "runs/*/rtdl_core/archive_observed.json": lambda r: p08.judge_archive(r["observed"]),
    "runs/*/decision_lane/decisions_observed.json": _p09,
    "runs/*/case_labels/cases_observed.json": lambda r: drills.flat(p10.judge(r["observed"])),
    "runs/*/obs/p11_recomputed.json": lambda r: drills.flat(p11.judge(r["observed"])["problems"]),
    "certification/reproducibility.json": _reproducibility,
    "drills/*/journal.json": _drill,
    # each drill's raw observations, judged again by the drill's own judge
    "drills/ig-key-rotation/observed_fault.json": ingress.judge_rotation,
    "drills/broker-unavailable/observed_fault.json": ingress.judge_frozen,
    "drills/ig-killed/observed_fault.json": ingress.judge_killed,
    "drills/poison-event/observed_fault.json": ingress.judge_poison,
    "drills/*/observed_after.json": _after,
    "drills/rtdl-killed/kill_observed.json": _observed(pipeline.judge_kill),
    "drills/rtdl-killed/recovery_observed.json": _observed(pipeline.judge_recovery),
    "drills/lane-redelivery/redelivery.json": _observed(pipeline.judge_redelivery),
    "drills/stale-ready/held_observed.json": _observed(control.judge_held),
    "drills/stale-ready/streamed_observed.json": _observed(control.judge_streamed),
    "drills/database-unavailable/outage_observed.json": _observed(database.judge_outage),
    "drills/database-unavailable/recovery_observed.json": _observed(database.judge_recovery),
    "drills/two-reporters/reporters.json": lambda r: drills.findings(p11.check_one_closes, r),
    "drills/evidence-bucket-refuses/denied_observed.json": _observed(substrate.judge_denied),
}


def judge_for(relpath: str) -> Callable[[Any], list[str]] | None:
    return next((fn for pattern, fn in JUDGES.items() if fnmatch.fnmatchcase(relpath, pattern)), None)


def rejudge(root: Path) -> dict[str, Any]:
    """Every DONE gate's recorded observations judged again; the verdict from the statuses that hold.

    Returns {"rejudged": files judged, "contradictions": [...], "verdict": recomputed, "recorded": gates.json's}.
    """
    gates = json.loads((root / "gates.json").read_text(encoding="utf-8"))
    contradictions: list[str] = []
    statuses: list[tuple[str, str, str | None]] = []
    judged = 0
    for phase in gates["phases"]:
        gate, status = str(phase.get("gate") or phase["phase_id"]), phase["status"]
        for rel in phase.get("evidence", []):
            judge = judge_for(rel)
            if judge is None or status != ledger.DONE:
                continue
            judged += 1
            try:
                found = judge(json.loads((root / rel).read_text(encoding="utf-8")))
            except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError, HarnessError) as exc:
                found = [f"the observation cannot be read or judged: {type(exc).__name__}: {exc}"]
            if found:
                status = ledger.FAILED
                contradictions.append(f"{gate} is DONE in gates.json, but {rel} judged offline finds "
                                      f"{len(found)} problem(s): {'; '.join(found[:3])}")
        statuses.append((gate, status, phase.get("blocked_by")))
    return {"rejudged": judged, "contradictions": contradictions, "verdict": ledger.decide(statuses)["verdict"],
            "recorded": gates.get("verdict")}


def check(root: Path) -> list[str]:
    """What the offline re-judgement contradicts in the bundle (empty: the verdict stands)."""
    if not (root / "gates.json").is_file():
        return []
    result = rejudge(root)
    problems = list(result["contradictions"])
    if result["verdict"] != result["recorded"]:
        problems.append(f"the verdict recomputed offline from the evidence is {result['verdict']}; gates.json says "
                        f"{result['recorded']}")
    return problems
