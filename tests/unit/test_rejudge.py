"""`spine-certify verify` judges a bundle's recorded observations again, offline, and recomputes the verdict."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from check_records import RUN as CHECK_RUN
from check_records import Mutation, mutated
from test_closure_checks import two_reporters
from test_drills_ingress import VIEW, _ledger, frozen_record, killed_record, poison_record, rotation_record
from test_drills_pipeline import db_recovery, kill_record, outage, recovery, redelivery
from test_drills_substrate import DENIED, HELD, STREAMED

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
               "drills/*/journal.json": "harness/drills/__init__.py",
               "drills/*/observed_after.json": "harness/drills/ingress.py",
               "drills/two-reporters/reporters.json": "harness/drills/closure.py"}
    if pattern.startswith("drills/") and pattern not in written:
        # drills/<journal name>/<file>: the module that names that journal writes that file into its directory
        name, file = pattern.split("/")[1:]
        assert any(f'"{name}"' in src and file in _written_observations(src) for src in _drill_sources().values()), \
            pattern
        return
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


def _after() -> dict[str, Any]:
    receipts, topic = _ledger()
    return {"platform_run_id": CHECK_RUN, "view_event_ids": VIEW, "receipts": receipts, "topic": topic}


def _wrapped(record: dict[str, Any]) -> dict[str, Any]:
    """As the drill writes it: the observation beside the problems it concluded. The recorded problems are the
    drill's conclusion, not evidence: re-judgement must neither trust nor need them (here they disagree with the
    observation both ways: a compliant one carries a problem, a changed one would carry the same)."""
    return {"observed": record, "problems": ["a problem the drill recorded: not read back"]}


# each drill observation the bundle holds: a compliant record, and one change its drill's judge must name
DRILL_OBSERVATIONS: list[tuple[str, Any, Mutation]] = [
    ("drills/ig-key-rotation/observed_fault.json", rotation_record,
     lambda r: r["probe"]["answer"].update(status=200)),
    ("drills/broker-unavailable/observed_fault.json", frozen_record,
     lambda r: r["reporter"].update(run_completed=True)),
    ("drills/ig-killed/observed_fault.json", killed_record,
     lambda r: r["after"]["topic"].append({**r["after"]["topic"][0], "offset": 99})),
    ("drills/poison-event/observed_fault.json", poison_record,
     lambda r: r["answer"]["body"]["receipts"][2].update(status="ADMITTED")),
    ("drills/ig-key-rotation/observed_after.json", _after, lambda r: r["topic"].pop(0)),
    ("drills/rtdl-killed/kill_observed.json", lambda: _wrapped(kill_record()),
     lambda r: r["observed"]["committed_after_kill"].update({"1": 9})),
    ("drills/rtdl-killed/recovery_observed.json", lambda: _wrapped(recovery()),
     lambda r: r["observed"]["decided"]["dla"].pop(0)),
    ("drills/lane-redelivery/redelivery.json", lambda: _wrapped(redelivery()),
     lambda r: r["observed"]["after"]["committed"].update({"1": 5})),
    ("drills/stale-ready/held_observed.json", lambda: _wrapped(copy.deepcopy(HELD)),
     lambda r: r["observed"]["wsp_objects"].append("wsp/attempts/wsp-1.json")),
    ("drills/stale-ready/streamed_observed.json", lambda: _wrapped(copy.deepcopy(STREAMED)),
     lambda r: r["observed"].update(wsp_claim=None)),
    ("drills/database-unavailable/outage_observed.json", lambda: _wrapped(outage()),
     lambda r: r["observed"].update(run_completed=True)),
    ("drills/database-unavailable/recovery_observed.json", lambda: _wrapped(db_recovery()),
     lambda r: r["observed"]["daemons"]["case-labels"].update(alive=False)),
    ("drills/two-reporters/reporters.json", two_reporters,
     lambda r: [o.update(exit_code=0) for o in r["reporters"]]),
    ("drills/evidence-bucket-refuses/denied_observed.json", lambda: _wrapped(copy.deepcopy(DENIED)),
     lambda r: r["observed"].update(run_completed=True)),
]


@pytest.mark.parametrize(("path", "record", "mutate"), DRILL_OBSERVATIONS, ids=[p for p, _, _ in DRILL_OBSERVATIONS])
def test_each_drill_observation_is_judged_again_by_its_drills_own_judge(path: str, record: Any,
                                                                        mutate: Mutation) -> None:
    """Read back as JSON, as verify reads it: a compliant observation passes, a changed one is named, whatever the
    problems the drill recorded beside it say."""
    judge = rejudge.judge_for(path)
    assert judge is not None, path
    compliant = json.loads(json.dumps(record()))
    assert judge(compliant) == []
    assert judge(mutated(compliant, mutate)), path


def _drill_sources() -> dict[str, str]:
    root = Path(__file__).resolve().parents[2] / "harness/drills"
    return {module.stem: module.read_text() for module in root.glob("*.py")}


def _written_observations(source: str) -> set[str]:
    """The observation files a drill module writes into its drill's directory: each ``drills.recorded`` file, and
    every file named ``*observed*`` written there directly."""
    return (set(re.findall(r'drills\.recorded\(cert, j, "([a-z_]+\.json)"', source))
            | set(re.findall(r'j\.directory}/([a-z_]*observed[a-z_]*\.json)"', source)))


def test_every_drill_observation_the_drills_write_has_a_judge() -> None:
    """Each observation a drill writes into its directory is re-judged by verify for a drill of the module that
    writes it (none forgotten, none judged only under another module's drill)."""
    missing, found = [], set()
    for module, source in _drill_sources().items():
        names = re.findall(r'drills\.Journal\(\s*"D\d+", "([a-z-]+)"', source)
        for file in _written_observations(source):
            found.add(file)
            if not any(rejudge.judge_for(f"drills/{n}/{file}") is not None for n in names):
                missing.append(f"{module}: {file}")
    assert not missing, missing
    # the regexes found the files at all (a change in how drills write them would otherwise pass vacuously)
    assert {"observed_fault.json", "observed_after.json", "kill_observed.json", "redelivery.json",
            "held_observed.json", "denied_observed.json"} <= found, found


def test_a_drill_observation_of_the_wrong_shape_is_named_not_a_crash(tmp_path: Path) -> None:
    gates = [{"gate": "D4", "phase_id": "D4", "rung": None, "status": "DONE", "blocked_by": None,
              "evidence": ["drills/rtdl-killed/kill_observed.json"]}]
    (tmp_path / "drills/rtdl-killed").mkdir(parents=True)
    (tmp_path / "drills/rtdl-killed/kill_observed.json").write_text(json.dumps({"observed": {
        **kill_record(), "committed": None}, "problems": []}))
    (tmp_path / "gates.json").write_text(json.dumps({"phases": gates, "verdict": "CERTIFIED"}))
    assert "the observation cannot be read or judged: AttributeError" in rejudge.check(tmp_path)[0]


def test_a_drill_recorded_done_over_an_observation_its_judge_rejects_is_a_contradiction(tmp_path: Path) -> None:
    gates = [{"gate": "D4", "phase_id": "D4", "rung": None, "status": "DONE", "blocked_by": None,
              "evidence": ["drills/rtdl-killed/kill_observed.json"]}]
    kill = kill_record()
    kill["committed_after_kill"]["1"] = 9  # RTDL's offsets moved after its death
    (tmp_path / "drills/rtdl-killed").mkdir(parents=True)
    (tmp_path / "drills/rtdl-killed/kill_observed.json").write_text(json.dumps({"observed": kill, "problems": []}))
    (tmp_path / "gates.json").write_text(json.dumps({"phases": gates, "verdict": "CERTIFIED"}))
    problems = rejudge.check(tmp_path)
    assert problems[0].startswith("D4 is DONE in gates.json, but drills/rtdl-killed/kill_observed.json judged "
                                  "offline finds 1 problem(s): RTDL's group offsets moved after RTDL was killed")
    assert problems[-1].endswith("is FAILED; gates.json says CERTIFIED")
