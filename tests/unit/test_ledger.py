from __future__ import annotations

import pytest

from harness.errors import ConfigError, PhaseBlocked
from harness.ledger import PHASE_IDS, Ledger, ScenarioRecord


def _run(ledger: Ledger, phase: str, outcome: str = "passed") -> None:
    ledger.enter(phase)
    ledger.record(phase, ScenarioRecord(name=f"{phase} scenario", outcome=outcome, duration_s=0.1))


def test_canonical_order_and_initial_statuses() -> None:
    ledger = Ledger({"P0", "P12"})
    assert [p["phase_id"] for p in ledger.to_json()["phases"]] == list(PHASE_IDS)
    assert PHASE_IDS[0] == "P(-1)" and PHASE_IDS[-1] == "P12"
    assert ledger["P0"].status == "NOT_STARTED"
    assert ledger["P1"].status == "NOT_IMPLEMENTED"


def test_only_one_phase_is_active() -> None:
    ledger = Ledger({"P0", "P1"})
    _run(ledger, "P0")
    assert ledger["P0"].status == "ACTIVE"
    _run(ledger, "P1")
    assert ledger["P0"].status == "DONE"
    assert [p.phase_id for p in ledger.phases.values() if p.status == "ACTIVE"] == ["P1"]


def test_failed_predecessor_blocks_and_is_named() -> None:
    ledger = Ledger({"P0", "P1", "P3"})
    _run(ledger, "P0", "failed")
    with pytest.raises(PhaseBlocked, match=r"P1 is BLOCKED: predecessor P0 is FAILED"):
        ledger.enter("P1")
    assert ledger["P0"].status == "FAILED"
    assert ledger["P1"].status == "BLOCKED" and ledger["P1"].blocked_by == "P0"
    with pytest.raises(PhaseBlocked, match="predecessor P0 is FAILED"):
        ledger.enter("P3")  # blocked by the first non-passing predecessor


def test_not_implemented_does_not_block_but_keeps_verdict_incomplete() -> None:
    ledger = Ledger({"P0", "P12"})
    _run(ledger, "P0")
    _run(ledger, "P12")
    ledger.close_all()
    verdict = ledger.verdict()
    assert ledger["P0"].status == ledger["P12"].status == "DONE"
    assert verdict["verdict"] == "INCOMPLETE"
    assert verdict["not_implemented"] == [p for p in PHASE_IDS if p not in ("P0", "P12")]


def test_teardown_runs_after_failures_and_says_so() -> None:
    ledger = Ledger({"P0", "P12"})
    _run(ledger, "P0", "failed")
    _run(ledger, "P12")
    ledger.close_all()
    assert ledger["P12"].status == "DONE"
    assert ledger["P12"].notes == ["ran after earlier phases did not pass: P0 FAILED"]
    assert ledger.verdict()["verdict"] == "FAILED"


def test_only_all_done_certifies() -> None:
    ledger = Ledger(set(PHASE_IDS))
    for phase in PHASE_IDS:
        _run(ledger, phase)
    ledger.close_all()
    assert ledger.verdict()["verdict"] == "CERTIFIED"


def test_a_phase_without_scenarios_or_interrupted_is_not_done() -> None:
    ledger = Ledger({"P0"})
    ledger.enter("P0")
    ledger.close_all()
    assert ledger["P0"].status == "FAILED"
    ledger = Ledger({"P0"})
    _run(ledger, "P0")
    ledger.close_all(interrupted=True)
    assert ledger["P0"].status == "FAILED"
    assert "interrupted" in ledger["P0"].notes[0]


def test_unknown_phase_is_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown phase 'P13'"):
        Ledger({"P13"})


def test_every_scenario_of_a_blocked_phase_is_blocked() -> None:
    ledger = Ledger({"P0", "P1"})
    _run(ledger, "P0", "failed")
    for _ in range(2):
        with pytest.raises(PhaseBlocked, match="P1 is BLOCKED: predecessor P0 is FAILED"):
            ledger.enter("P1")
    assert ledger.verdict()["blocked"] == ["P1"]


def test_a_mode_the_platform_has_not_built_makes_the_phase_not_implemented() -> None:
    ledger = Ledger({"P2", "P3"})
    ledger.enter("P2")
    ledger.record("P2", ScenarioRecord(name="daemons", outcome="not_implemented", duration_s=0.1))
    _run(ledger, "P3")  # successors still run
    ledger.close_all()
    assert ledger["P2"].status == "NOT_IMPLEMENTED"
    assert ledger["P3"].status == "DONE"
    assert ledger.verdict()["verdict"] == "INCOMPLETE"
    assert ledger.verdict()["not_implemented"][:1] == ["P(-1)"] and "P2" in ledger.verdict()["not_implemented"]


def test_a_failure_beside_a_missing_mode_still_fails_the_phase() -> None:
    ledger = Ledger({"P2"})
    ledger.enter("P2")
    ledger.record("P2", ScenarioRecord(name="a", outcome="not_implemented", duration_s=0.1))
    ledger.record("P2", ScenarioRecord(name="b", outcome="failed", duration_s=0.1))
    ledger.close_all()
    assert ledger["P2"].status == "FAILED"
