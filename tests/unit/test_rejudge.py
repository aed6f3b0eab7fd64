"""`spine-certify verify` judges a bundle's recorded observations again, offline, and recomputes the verdict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness import cli, ledger, rejudge
from harness.evidence import Bundle
from tests.unit.test_pipeline_checks import decisions_observed, lag_observed

RUN = "run-20260101t000000z-abc123-n20"
LAG = f"runs/{RUN}/rtdl_core/lag_observed.json"
DECISIONS = f"runs/{RUN}/decision_lane/decisions_observed.json"


def bundle(tmp_path: Path, *, lag: dict[str, Any], status: str = "DONE") -> Path:
    """A bundle whose P8 and P9 gates of run-20 recorded these observations, every other gate DONE."""
    gates = [{"gate": ledger.gate_id(unit, rung), "phase_id": unit, "rung": rung, "status": "DONE",
              "blocked_by": None, "evidence": []} for unit, _, rung in ledger.catalog(ledger.ladder([20], rerun=False))]
    for gate in gates:
        if gate["gate"] == "P8 @ run-20":
            gate.update(status=status, evidence=[LAG])
        if gate["gate"] == "P9 @ run-20":
            gate["evidence"] = [DECISIONS]
    for rel, record in ((LAG, lag), (DECISIONS, decisions_observed())):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(json.dumps(record))
    verdict = ledger.decide([(g["gate"], g["status"], g["blocked_by"]) for g in gates])
    (tmp_path / "gates.json").write_text(json.dumps({"phases": gates, **verdict}))
    return tmp_path


def test_a_bundle_whose_observations_support_its_gates_keeps_its_verdict(tmp_path: Path) -> None:
    result = rejudge.rejudge(bundle(tmp_path, lag=lag_observed()))
    assert (result["rejudged"], result["contradictions"], result["verdict"]) == (2, [], "CERTIFIED")
    assert rejudge.check(tmp_path) == []


def test_a_gate_recorded_done_over_observations_that_fail_its_judge_is_named(tmp_path: Path) -> None:
    lag = lag_observed()
    lag["committed"] = {p: 0 for p in lag["committed"]}  # the group never moved: P8 cannot be DONE
    problems = rejudge.check(bundle(tmp_path, lag=lag))
    assert problems[0].startswith(f"P8 @ run-20 is DONE in gates.json, but {LAG} judged offline finds")
    assert problems[-1] == ("the verdict recomputed offline from the evidence is FAILED; gates.json says CERTIFIED")


def test_observations_that_cannot_be_read_are_a_contradiction_not_a_pass(tmp_path: Path) -> None:
    root = bundle(tmp_path, lag=lag_observed())
    (root / LAG).write_text("{not json")
    assert "the observation cannot be read or judged" in rejudge.check(root)[0]


def test_a_gate_that_did_not_pass_is_not_rejudged(tmp_path: Path) -> None:
    lag = lag_observed()
    lag["committed"] = {p: 0 for p in lag["committed"]}
    result = rejudge.rejudge(bundle(tmp_path, lag=lag, status="FAILED"))
    assert (result["rejudged"], result["contradictions"], result["verdict"]) == (1, [], "FAILED")


@pytest.mark.parametrize("pattern", sorted(rejudge.JUDGES))
def test_every_judged_pattern_names_evidence_the_harness_writes(pattern: str) -> None:
    """Each pattern is a path some phase or drill writes (a typo would silently judge nothing)."""
    written = {"runs/*/oracle/recomputed.json": "harness/phases/p03.py",
               "runs/*/ingest/reconciliation.json": "harness/phases/p07.py",
               "runs/*/rtdl_core/lag_observed.json": "harness/phases/p08.py",
               "runs/*/rtdl_core/archive_observed.json": "harness/phases/p08.py",
               "runs/*/decision_lane/decisions_observed.json": "harness/phases/p09.py",
               "runs/*/case_labels/cases_observed.json": "harness/phases/p10.py",
               "runs/*/obs/p11_recomputed.json": "harness/phases/p11.py",
               "certification/reproducibility.json": "harness/phases/rerun.py",
               "drills/*/journal.json": "harness/drills/__init__.py"}
    source = (Path(__file__).resolve().parents[2] / written[pattern]).read_text()
    tail = pattern.rsplit("/", 1)[-1].removesuffix(".json")
    assert tail in source or pattern.split("/")[-2] in source


def test_verify_fails_a_sealed_bundle_whose_observations_contradict_its_verdict(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The digests all match (the bundle was sealed as it is), yet the verdict does not stand."""
    lag = lag_observed()
    lag["committed"] = {p: 0 for p in lag["committed"]}
    staged = bundle(tmp_path / "staged", lag=lag)
    sealed = Bundle(tmp_path / "sealed", cert_id="cert-test")
    for path in sorted(p for p in staged.rglob("*") if p.is_file()):
        sealed.write_bytes(path.relative_to(staged).as_posix(), path.read_bytes())
    sealed.seal(mirror=None)
    assert cli.main(["verify", str(sealed.root), "--local-only"]) == 1
    out = capsys.readouterr()
    assert "rejudged P8 @ run-20 is DONE in gates.json, but" in out.out
    assert "holds observations that contradict its verdict" in out.err


def journal(**changes: Any) -> dict[str, Any]:
    """A drill's journal as drills.run writes it: every judged stage completed, nothing that did not hold."""
    entries = [{"stage": stage, "label": stage, "status": "ok"} for stage in
               ("steady-state-before", "method", "observe", "rollback", "steady-state-after")]
    return {"drill": "D9", "name": "two-reporters", "entries": entries, "outcome": "passed",
            "problems": {stage: [] for stage in ("steady-state-before", "method", "observe", "rollback",
                                                 "steady-state-after")}, **changes}


def test_a_passed_drill_journal_is_rejudged_clean() -> None:
    judge = rejudge.judge_for("drills/two-reporters/journal.json")
    assert judge is not None and judge(journal()) == []


@pytest.mark.parametrize(("changes", "named"), [
    ({"problems": {"observe": ["two reporters closed the run"]}}, "two reporters closed the run"),
    ({"outcome": "failed"}, "the journal's outcome is 'failed'"),
    ({"entries": [{"stage": "steady-state-before", "label": "x", "status": "ok"},
                  {"stage": "observe", "label": "x", "status": "raised"}]}, "the journal has no observe entry"),
])
def test_a_drill_journal_recorded_done_that_does_not_hold_is_named(changes: dict[str, Any], named: str) -> None:
    judge = rejudge.judge_for("drills/two-reporters/journal.json")
    assert judge is not None
    assert any(named in problem for problem in judge(journal(**changes)))


def test_a_ledger_with_no_gate_certifies_nothing() -> None:
    assert ledger.decide([])["verdict"] == "INCOMPLETE"
