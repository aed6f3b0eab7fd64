from __future__ import annotations

import contextlib
import re
import traceback

import pytest
from allure_pytest.utils import get_status

from harness import report
from harness.errors import (
    ConfigError,
    EvidenceError,
    Finding,
    HarnessError,
    ModeNotImplemented,
    NotFound,
    PhaseBlocked,
    PortInUse,
    PreconditionFailed,
    SubstrateError,
    Timeout,
    ToolMissing,
)
from harness.ledger import DRILL_IDS, PHASE_IDS, UNIT_IDS, Ledger, ScenarioRecord, outcome_of


def _run(ledger: Ledger, phase: str, outcome: str = "passed") -> None:
    ledger.enter(phase)
    ledger.record(phase, ScenarioRecord(name=f"{phase} scenario", outcome=outcome, duration_s=0.1))


def test_canonical_order_and_initial_statuses() -> None:
    ledger = Ledger({"P0", "P12"})
    phases = ledger.to_json()["phases"]
    assert [p["phase_id"] for p in phases] == list(UNIT_IDS)
    # P(-1), P0, P1..P11, the reproducibility check, the drills, and teardown last
    assert list(UNIT_IDS) == [*PHASE_IDS[:-1], "Reproducibility", *(f"D{n}" for n in range(1, 12)), "P12"]
    assert list(DRILL_IDS) == [f"D{n}" for n in range(1, 12)]
    assert PHASE_IDS[0] == "P(-1)" and PHASE_IDS[-1] == "P12"
    # without rungs a gate is its unit: plain ids, no rung
    assert [p["gate"] for p in phases] == list(UNIT_IDS) == ledger.gates()
    assert {p["rung"] for p in phases} == {None}
    assert ledger["P0"].status == "NOT_STARTED"
    assert ledger["P1"].status == "NOT_IMPLEMENTED"
    assert ledger["Reproducibility"].status == ledger["D1"].status == "NOT_IMPLEMENTED"


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
    assert verdict["not_implemented"] == [u for u in UNIT_IDS if u not in ("P0", "P12")]


def test_teardown_runs_after_failures_and_says_so() -> None:
    ledger = Ledger({"P0", "P12"})
    _run(ledger, "P0", "failed")
    _run(ledger, "P12")
    ledger.close_all()
    assert ledger["P12"].status == "DONE"
    assert ledger["P12"].notes == ["ran after earlier gates did not pass: P0 FAILED"]
    assert ledger.verdict()["verdict"] == "FAILED"


def test_only_all_done_certifies() -> None:
    ledger = Ledger(set(UNIT_IDS))  # every unit: the phases, the reproducibility check and the drills
    for unit in UNIT_IDS:
        _run(ledger, unit)
    ledger.close_all()
    assert {p.status for p in ledger.phases.values()} == {"DONE"}
    assert ledger.verdict()["verdict"] == "CERTIFIED"


@pytest.mark.parametrize("missing", ["P5", "Reproducibility", "D11"])
def test_one_unit_not_implemented_keeps_everything_else_done_from_certifying(missing: str) -> None:
    ledger = Ledger(set(UNIT_IDS) - {missing})
    for unit in UNIT_IDS:
        if unit != missing:
            _run(ledger, unit)
    ledger.close_all()
    verdict = ledger.verdict()
    assert verdict["verdict"] == "INCOMPLETE"
    assert verdict["not_implemented"] == [missing]
    assert verdict["blocked"] == verdict["not_run"] == []


def test_a_phase_without_scenarios_or_interrupted_is_not_done() -> None:
    ledger = Ledger({"P0"})
    ledger.enter("P0")
    ledger.close_all()
    assert ledger["P0"].status == "FAILED"
    ledger = Ledger({"P0"})
    _run(ledger, "P0")
    ledger.close_all(interrupted=True)
    # Interrupted with its scenarios passed so far: it could not be judged, which is not a platform failure.
    assert ledger["P0"].status == "ERROR"
    assert "interrupted" in ledger["P0"].notes[0] and ledger.verdict()["verdict"] == "ERROR"


def test_an_interrupted_gate_whose_platform_answered_not_implemented_is_error_too() -> None:
    ledger = Ledger({"P0"})
    _run(ledger, "P0", "not_implemented")
    ledger.close_all(interrupted=True)
    assert ledger["P0"].status == "ERROR" and ledger["P0"].notes[-1].startswith("the certification was interrupted")


def test_an_interrupted_gate_that_already_found_a_fault_stays_failed() -> None:
    ledger = Ledger({"P0"})
    _run(ledger, "P0", "failed")
    ledger.close_all(interrupted=True)
    assert ledger["P0"].status == "FAILED" and "interrupted" in ledger["P0"].notes[-1]


def test_unknown_phase_is_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown phase or drill 'P13'"):
        Ledger({"P13"})
    with pytest.raises(ConfigError, match="unknown phase or drill 'D12'"):
        Ledger({"D12"})
    with pytest.raises(ConfigError, match=r"unknown gate 'P7 @ run-20'"):
        Ledger({"P7"})["P7 @ run-20"]  # without rungs there is no rung gate


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


# -- could not judge is not the platform failed ---------------------------------------------------

COULD_NOT_JUDGE = [
    Timeout("no READY on the control topic", operation="wait for READY"),
    NotFound("NoSuchBucket", "bucket b", operation="s3.get"),
    PreconditionFailed("ConditionalCheckFailed", "key exists", operation="dynamodb.put_new"),
    PortInUse(5432, operation="start postgres"),
    SubstrateError("AccessDenied", "no", operation="ssm.get"),
    EvidenceError("runs/x/run.json would be overwritten"),
    ConfigError("timeout_s=0 must be > 0"),
    ToolMissing("terraform", "install Terraform >= 1.9"),
    HarnessError("closing the certification: stop moto"),
    KeyError("ig"),  # a harness bug: the harness could not judge
    TypeError("unsupported operand"),
    AssertionError("cert.artifact is not None"),  # a bare assert in harness code is a harness bug too
]


@pytest.mark.parametrize("exc", COULD_NOT_JUDGE, ids=lambda e: type(e).__name__)
def test_anything_but_a_finding_is_an_error_not_a_failure(exc: BaseException) -> None:
    assert outcome_of(exc) == "error"


def test_outcomes_of_findings_blocks_and_missing_modes() -> None:
    assert outcome_of(None) == "passed"
    assert outcome_of(Finding("P0.no_nat", ["NAT gateway nat-1"])) == "failed"
    assert outcome_of(PhaseBlocked("P1", "P0", "ERROR")) == "blocked"
    assert outcome_of(ModeNotImplemented("reporter")) == "not_implemented"


def _error(ledger: Ledger, phase: str, message: str = "wait for READY: Timeout: no READY after 30s") -> None:
    ledger.enter(phase)
    ledger.record(phase, ScenarioRecord(name=f"{phase} error", outcome="error", duration_s=0.1, message=message))


def test_a_phase_that_could_not_be_judged_is_error_and_names_the_error() -> None:
    ledger = Ledger({"P0"})
    _run(ledger, "P0")
    _error(ledger, "P0", "s3.get: NoSuchBucket: bucket b\nmore detail")
    ledger.close_all()
    assert ledger["P0"].status == "ERROR"
    assert ledger["P0"].notes == ["could not judge 'P0 error': s3.get: NoSuchBucket: bucket b"]


def test_a_finding_beside_an_error_fails_the_phase_and_notes_the_error() -> None:
    ledger = Ledger({"P0"})
    _error(ledger, "P0")
    _run(ledger, "P0", "failed")
    ledger.close_all()
    assert ledger["P0"].status == "FAILED"
    assert ledger["P0"].notes == ["also could not judge 'P0 error': wait for READY: Timeout: no READY after 30s"]
    assert ledger.verdict()["verdict"] == "FAILED" and ledger.verdict()["errored"] == []


def test_a_missing_mode_beside_an_error_is_error() -> None:
    ledger = Ledger({"P2"})
    ledger.enter("P2")
    ledger.record("P2", ScenarioRecord(name="a", outcome="not_implemented", duration_s=0.1))
    ledger.record("P2", ScenarioRecord(name="b", outcome="error", duration_s=0.1, message="KeyError: 'ig'"))
    ledger.close_all()
    assert ledger["P2"].status == "ERROR"


def test_an_error_phase_blocks_its_successors_and_is_named() -> None:
    ledger = Ledger({"P0", "P1", "P3"})
    _error(ledger, "P0")
    with pytest.raises(PhaseBlocked, match=r"P1 is BLOCKED: predecessor P0 is ERROR"):
        ledger.enter("P1")
    with pytest.raises(PhaseBlocked, match=r"P3 is BLOCKED: predecessor P0 is ERROR"):
        ledger.enter("P3")
    assert ledger["P0"].status == "ERROR"
    assert ledger["P1"].status == ledger["P3"].status == "BLOCKED"
    assert ledger["P1"].blocked_by == ledger["P3"].blocked_by == "P0"
    verdict = ledger.verdict()
    assert verdict["verdict"] == "ERROR"
    assert (verdict["errored"], verdict["blocked"], verdict["failed"]) == (["P0"], ["P1", "P3"], [])


def test_teardown_runs_after_an_error_and_says_so() -> None:
    ledger = Ledger({"P0", "P1", "P12"})
    _error(ledger, "P0")
    with pytest.raises(PhaseBlocked):
        ledger.enter("P1")
    _run(ledger, "P12")
    ledger.close_all()
    assert ledger["P12"].status == "DONE"
    assert ledger["P12"].notes == ["ran after earlier gates did not pass: P0 ERROR, P1 BLOCKED"]


def _ledger_with(statuses: dict[str, str]) -> Ledger:
    """Every unit implemented and passing except those given ("error", "failed" or "not_implemented")."""
    ledger = Ledger({unit for unit in UNIT_IDS if statuses.get(unit) != "not_implemented"})
    for unit in UNIT_IDS:
        if statuses.get(unit) != "not_implemented":
            with contextlib.suppress(PhaseBlocked):  # successors of a FAILED or ERROR phase
                _run(ledger, unit, statuses.get(unit, "passed"))
    ledger.close_all()
    return ledger


@pytest.mark.parametrize(("statuses", "verdict"), [
    ({}, "CERTIFIED"),
    ({"P5": "not_implemented"}, "INCOMPLETE"),
    ({"P5": "not_implemented", "P7": "error"}, "ERROR"),  # ERROR over INCOMPLETE
    ({"P7": "error"}, "ERROR"),
    ({"P7": "error", "P12": "failed"}, "FAILED"),  # a finding in teardown after an ERROR: FAILED over ERROR
    ({"P12": "error", "P3": "failed"}, "FAILED"),
    ({"P12": "error"}, "ERROR"),
    ({"P3": "failed"}, "FAILED"),
    ({"Reproducibility": "error"}, "ERROR"),
    ({"D4": "failed"}, "FAILED"),
    ({"D4": "failed", "D5": "error"}, "FAILED"),  # a drill blocks nothing: D5 ran and could not judge
    ({"D7": "not_implemented"}, "INCOMPLETE"),
])  # fmt: skip
def test_verdict_precedence_failed_error_incomplete_certified(statuses: dict[str, str], verdict: str) -> None:
    ledger = _ledger_with(statuses)
    for phase, outcome in statuses.items():  # the ledger really took the statuses the case names
        assert ledger[phase].status == {"error": "ERROR", "failed": "FAILED", "not_implemented": "NOT_IMPLEMENTED"}[
            outcome]
    assert ledger.verdict()["verdict"] == verdict


def test_gates_list_errored_phases_beside_failed_and_blocked() -> None:
    ledger = Ledger({"P0", "P1", "P12"})
    _error(ledger, "P0")
    with pytest.raises(PhaseBlocked):
        ledger.enter("P1")
    _run(ledger, "P12", "failed")
    ledger.close_all()
    gates = ledger.to_json()
    assert gates["verdict"] == "FAILED"
    assert (gates["failed"], gates["errored"], gates["blocked"]) == (["P12"], ["P0"], ["P1"])
    p0 = next(p for p in gates["phases"] if p["phase_id"] == "P0")
    assert p0["status"] == "ERROR" and p0["scenarios"][0]["outcome"] == "error"


# -- the same split in Allure --------------------------------------------------------------------


def _allure_categories(exc: BaseException) -> tuple[str, list[str], list[str]]:
    """Allure's status for ``exc`` and the categories matching it in full (Allure 2) and anywhere (Allure 3).

    Allure 2 gives a result every category that matches; Allure 3's allure2 plugin the first one:
    the categories must exclude each other either way.
    """
    status = str(get_status(exc))
    message = "".join(traceback.format_exception_only(type(exc), exc))  # what allure-pytest records
    candidates = [c for c in report.CATEGORIES if status in c["matchedStatuses"]]
    in_full = [c["name"] for c in candidates if re.fullmatch(c["messageRegex"], message, re.DOTALL)]
    anywhere = [c["name"] for c in candidates if re.search(c["messageRegex"], message, re.DOTALL)]
    return status, in_full, anywhere


@pytest.mark.parametrize("exc", [*COULD_NOT_JUDGE, PhaseBlocked("P1", "P0", "ERROR")], ids=lambda e: type(e).__name__)
def test_allure_puts_errors_in_the_could_not_judge_category(exc: BaseException) -> None:
    status, in_full, anywhere = _allure_categories(exc)
    assert report.category_of(exc) == report.COULD_NOT_JUDGE == "Substrate or harness error (could not judge)"
    assert in_full == anywhere == [report.COULD_NOT_JUDGE]
    if not isinstance(exc, AssertionError):
        assert status == "broken"


@pytest.mark.parametrize(("exc", "category", "status"), [
    (Finding("P0.no_nat", ["NAT gateway nat-1 (Timeout, KeyError)"]), report.FINDING, "failed"),
    (PhaseBlocked("P1", "P0", "FAILED"), report.FINDING, "failed"),
    (ModeNotImplemented("reporter"), report.NOT_IMPLEMENTED, "broken"),
])  # fmt: skip
def test_allure_keeps_findings_failed_and_in_their_own_category(exc: BaseException, category: str,
                                                                status: str) -> None:
    assert report.category_of(exc) == category
    assert _allure_categories(exc) == (status, [category], [category])
