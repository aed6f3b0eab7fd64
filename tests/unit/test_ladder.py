"""The certification ladder: rungs, gate order, blocking across rungs, the verdict, gates.json, scopes."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import progress
from harness.errors import ConfigError, PhaseBlocked
from harness.ledger import (
    DRILL_IDS,
    RUN_PHASES,
    UNIT_IDS,
    Ledger,
    Rung,
    ScenarioRecord,
    catalog,
    gate_id,
    ladder,
)
from harness.session import Certification, Options

ROOT = Path(__file__).resolve().parents[2]
RUNGS = ladder([20, 200])
RUNG_IDS = ("run-20", "run-200", "rerun-200")
LADDER_GATES = [
    "P(-1)", "P0",
    *(f"{unit} @ {rung}" for rung in RUNG_IDS for unit in RUN_PHASES),
    "Reproducibility", *DRILL_IDS, "P12",
]  # fmt: skip


def _run(ledger: Ledger, gate: str, outcome: str = "passed") -> None:
    ledger.enter(gate)
    ledger.record(gate, ScenarioRecord(name=f"{gate} scenario", outcome=outcome, duration_s=0.1,
                                       message="" if outcome == "passed" else f"{gate} {outcome}"))


def _certify(outcomes: dict[str, str] | None = None, *, implemented: Iterable[str] = UNIT_IDS,
             rungs: tuple[Rung, ...] = RUNGS, skip: Iterable[str] = ()) -> Ledger:
    """Run every implemented gate in canonical order (``skip``: not run), passing unless ``outcomes`` says."""
    outcomes, skip = outcomes or {}, set(skip)
    ledger = Ledger(implemented, rungs=rungs)
    for gate in ledger.gates():
        if gate in skip or ledger[gate].status == "NOT_IMPLEMENTED":
            continue
        with contextlib.suppress(PhaseBlocked):
            _run(ledger, gate, outcomes.get(gate, "passed"))
    ledger.close_all()
    return ledger


def _statuses(ledger: Ledger, gates: Iterable[str]) -> set[str]:
    return {ledger[g].status for g in gates}


def _root(ledger: Ledger, gate: str) -> str:
    """The gate at the end of the chain of BLOCKED gates that ``blocked_by`` names."""
    seen: set[str] = set()
    while ledger[gate].status == "BLOCKED" and gate not in seen:
        seen.add(gate)
        gate = str(ledger[gate].blocked_by)
    return gate


def _rung_gates(rung: str) -> list[str]:
    return [gate_id(unit, rung) for unit in RUN_PHASES]


# -- rungs ---------------------------------------------------------------------------------------


def test_a_ladder_runs_each_size_then_reruns_the_last() -> None:
    expected = (Rung("run-20", 20), Rung("run-200", 200), Rung("rerun-200", 200, rerun_of="run-200"))
    assert ladder([20, 200]) == expected
    assert [r.slug for r in RUNGS] == ["n20", "n200", "n200-rerun"]
    assert ladder([20, 200], rerun=False) == RUNGS[:2]
    assert [r.id for r in ladder([5])] == ["run-5", "rerun-5"]


@pytest.mark.parametrize(("sizes", "message"), [
    ([], "needs at least one run size"),
    ([20, 20], "sizes must be distinct and >= 1"),
    ([20, 200, 20], "sizes must be distinct and >= 1"),
    ([0, 200], "sizes must be distinct and >= 1"),
    ([20, -1], "sizes must be distinct and >= 1"),
])  # fmt: skip
def test_a_ladder_refuses_empty_duplicate_or_non_positive_sizes(sizes: list[int], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ladder(sizes)


def test_catalog_orders_the_rungs_between_p0_and_the_certification_wide_gates() -> None:
    gates = catalog(RUNGS)
    assert [gate_id(unit, rung) for unit, _, rung in gates] == LADDER_GATES
    assert len(gates) == 2 + 3 * len(RUN_PHASES) + 1 + len(DRILL_IDS) + 1
    assert gates[2] == ("P1", "Run pinning", "run-20")
    assert gates[-1] == ("P12", "Teardown", None)
    assert [unit for unit, _, _ in catalog()] == list(UNIT_IDS)  # without rungs P1..P11 are one plain gate each
    assert {rung for _, _, rung in catalog()} == {None}
    assert Ledger(UNIT_IDS, rungs=RUNGS).gates() == LADDER_GATES


def test_a_rung_gate_is_named_by_its_unit_and_rung() -> None:
    ledger = Ledger({"P7"}, rungs=RUNGS)
    record = ledger["P7 @ run-200"]
    assert (record.phase_id, record.rung, record.gate, record.kind) == ("P7", "run-200", "P7 @ run-200", "phase")
    assert {ledger[g].status for g in ("P7 @ run-20", "P7 @ run-200", "P7 @ rerun-200")} == {"NOT_STARTED"}
    with pytest.raises(ConfigError, match="unknown gate 'P7'"):
        ledger["P7"]  # with rungs there is no plain P7 gate


# -- blocking across rungs -----------------------------------------------------------------------


def test_a_failure_in_a_rung_blocks_the_rest_of_it_and_every_later_rung() -> None:
    ledger = Ledger(UNIT_IDS, rungs=RUNGS)
    for gate in ("P(-1)", "P0", *_rung_gates("run-20")[:8]):  # P1..P8 @ run-20
        _run(ledger, gate)
    _run(ledger, "P9 @ run-20", "failed")
    with pytest.raises(PhaseBlocked, match=r"^P10 @ run-20 is BLOCKED: predecessor P9 @ run-20 is FAILED$"):
        ledger.enter("P10 @ run-20")
    # the first gate of run-20 that is not DONE is named, not the BLOCKED one after it
    with pytest.raises(PhaseBlocked, match=r"^P7 @ run-200 is BLOCKED: predecessor P9 @ run-20 is FAILED$"):
        ledger.enter("P7 @ run-200")
    assert ledger["P7 @ run-200"].status == "BLOCKED" and ledger["P7 @ run-200"].blocked_by == "P9 @ run-20"
    assert ledger["P8 @ run-20"].status == "DONE"


def test_the_verdict_of_a_failure_in_the_first_rung_is_failed_and_names_gates() -> None:
    ledger = _certify({"P9 @ run-20": "failed"})
    verdict = ledger.verdict()
    assert verdict["verdict"] == "FAILED"
    assert verdict["failed"] == ["P9 @ run-20"]
    later = [*_rung_gates("run-20")[9:], *_rung_gates("run-200"), *_rung_gates("rerun-200"), "Reproducibility",
             *DRILL_IDS]
    assert verdict["blocked"] == later
    assert {ledger[g].blocked_by for g in later} == {"P9 @ run-20"}
    assert ledger["P12"].status == "DONE"  # teardown always runs and says what did not pass
    assert ledger["P12"].notes == ["ran after earlier gates did not pass: "
                                   + ", ".join(f"{g} {ledger[g].status}" for g in ["P9 @ run-20", *later])]


@pytest.mark.parametrize("how", ["unit", "mode"])
def test_a_not_implemented_gate_lets_its_rung_go_on_but_blocks_later_rungs_as_incomplete(how: str) -> None:
    """``unit``: no feature for P8; ``mode``: the platform answers 'not implemented' for a mode P8 needs."""
    ledger = Ledger(set(UNIT_IDS) - {"P8"} if how == "unit" else UNIT_IDS, rungs=RUNGS)
    for gate in ("P(-1)", "P0", *_rung_gates("run-20")):
        if how == "unit" and gate.startswith("P8 "):
            continue
        _run(ledger, gate, "not_implemented" if gate == "P8 @ run-20" else "passed")
    ledger.close_all()
    assert ledger["P8 @ run-20"].status == "NOT_IMPLEMENTED"
    # within the rung a NOT_IMPLEMENTED gate does not block the next
    assert _statuses(ledger, ["P9 @ run-20", "P10 @ run-20", "P11 @ run-20"]) == {"DONE"}
    # a later rung starts only when every gate of the earlier rungs is DONE
    with pytest.raises(PhaseBlocked, match=r"^P7 @ run-200 is BLOCKED: predecessor P8 @ run-20 is NOT_IMPLEMENTED$"):
        ledger.enter("P7 @ run-200")
    with pytest.raises(PhaseBlocked, match="predecessor P8 @ run-20 is NOT_IMPLEMENTED"):
        ledger.enter("P1 @ rerun-200")
    _run(ledger, "P12")
    ledger.close_all()
    verdict = ledger.verdict()
    assert verdict["verdict"] == "INCOMPLETE"  # blocked by something not implemented: not ERROR
    assert (verdict["failed"], verdict["errored"]) == ([], [])
    assert verdict["blocked"] == ["P7 @ run-200", "P1 @ rerun-200"]
    assert _root(ledger, "P1 @ rerun-200") == "P8 @ run-20"


def test_a_rung_gate_not_run_blocks_the_next_rung_as_not_run() -> None:
    ledger = Ledger(UNIT_IDS, rungs=RUNGS)
    for gate in ("P(-1)", "P0", *_rung_gates("run-20")):
        if gate != "P5 @ run-20":  # a scenario not selected
            _run(ledger, gate)
    with pytest.raises(PhaseBlocked, match=r"^P1 @ run-200 is BLOCKED: predecessor P5 @ run-20 is NOT_RUN$"):
        ledger.enter("P1 @ run-200")
    ledger = _certify(skip=["P5 @ run-20"])
    assert ledger["P5 @ run-20"].status == "NOT_STARTED"
    assert ledger["P6 @ run-20"].status == "DONE"
    assert ledger["P1 @ run-200"].blocked_by == "P5 @ run-20"
    assert ledger["Reproducibility"].blocked_by == "P5 @ run-20"
    verdict = ledger.verdict()
    assert verdict["verdict"] == "INCOMPLETE"
    assert verdict["not_run"] == ["P5 @ run-20"]


def test_an_error_in_the_first_rung_blocks_the_next_and_the_verdict_is_error() -> None:
    ledger = _certify({"P3 @ run-20": "error"})
    assert ledger["P3 @ run-20"].status == "ERROR"
    assert ledger["P4 @ run-20"].status == "BLOCKED" and ledger["P4 @ run-20"].blocked_by == "P3 @ run-20"
    assert _statuses(ledger, _rung_gates("run-200") + _rung_gates("rerun-200")) == {"BLOCKED"}
    assert ledger["P1 @ run-200"].blocked_by == "P3 @ run-20"
    verdict = ledger.verdict()
    assert verdict["verdict"] == "ERROR"
    assert (verdict["errored"], verdict["failed"]) == (["P3 @ run-20"], [])
    assert _root(ledger, "D5") == "P3 @ run-20"


def test_a_failure_in_a_certification_wide_gate_blocks_every_rung() -> None:
    ledger = _certify({"P0": "failed"})
    assert _statuses(ledger, LADDER_GATES[2:-1]) == {"BLOCKED"}
    assert {ledger[g].blocked_by for g in LADDER_GATES[2:-1]} == {"P0"}
    assert ledger["P12"].status == "DONE"
    assert ledger.verdict()["verdict"] == "FAILED"


def test_the_whole_ladder_done_certifies() -> None:
    ledger = _certify()
    assert _statuses(ledger, LADDER_GATES) == {"DONE"}
    assert ledger["Reproducibility"].notes == []  # the ladder has a rerun to compare
    assert ledger.verdict() == {"verdict": "CERTIFIED", "failed": [], "errored": [], "blocked": [],
                                "not_implemented": [], "not_run": []}


# -- drills and reproducibility ------------------------------------------------------------------


def test_a_failed_drill_blocks_no_other_drill_and_fails_the_certification() -> None:
    ledger = _certify({"D3": "failed"})
    assert ledger["D3"].status == "FAILED"
    assert _statuses(ledger, [d for d in DRILL_IDS if d != "D3"]) == {"DONE"}
    assert ledger["P12"].status == "DONE" and ledger["P12"].notes == ["ran after earlier gates did not pass: D3 FAILED"]
    verdict = ledger.verdict()
    assert verdict["verdict"] == "FAILED"
    assert (verdict["failed"], verdict["blocked"]) == (["D3"], [])


def test_a_drill_that_could_not_judge_blocks_nothing_and_the_verdict_is_error() -> None:
    ledger = _certify({"D1": "error", "Reproducibility": "error"})
    assert _statuses(ledger, DRILL_IDS[1:]) == {"DONE"}
    assert ledger.verdict()["verdict"] == "ERROR"
    assert ledger.verdict()["errored"] == ["Reproducibility", "D1"]


@pytest.mark.parametrize("gate", ["P11 @ rerun-200", "P1 @ run-20"])
def test_reproducibility_and_drills_are_blocked_by_a_rung_gate_not_done(gate: str) -> None:
    ledger = _certify({gate: "failed"})
    assert ledger["Reproducibility"].status == "BLOCKED" and ledger["Reproducibility"].blocked_by == gate
    assert _statuses(ledger, DRILL_IDS) == {"BLOCKED"}
    with pytest.raises(PhaseBlocked, match=rf"^Reproducibility is BLOCKED: predecessor {gate} is FAILED$"):
        ledger.enter("Reproducibility")


def test_reproducibility_is_blocked_by_a_rung_gate_not_implemented() -> None:
    ledger = _certify(implemented=set(UNIT_IDS) - {"P10"})
    assert ledger["Reproducibility"].status == "BLOCKED"
    assert ledger["Reproducibility"].blocked_by == "P10 @ run-20"
    assert _statuses(ledger, DRILL_IDS) == {"DONE"}  # blocked only by gates whose root did not fail
    assert ledger.verdict()["verdict"] == "INCOMPLETE"


def test_a_drill_needs_no_rung_done_only_none_failed_errored_or_blocked() -> None:
    """A drill works on a run of its own: a rung gate not implemented or not run does not block it."""
    ledger = _certify(implemented=set(UNIT_IDS) - {"P10"}, rungs=ladder([20], rerun=False),
                      skip=["P4 @ run-20"])
    assert ledger["Reproducibility"].blocked_by == "P4 @ run-20"
    assert _statuses(ledger, DRILL_IDS) == {"DONE"}
    assert ledger.verdict()["verdict"] == "INCOMPLETE"


@pytest.mark.parametrize("rungs", [ladder([20], rerun=False), ladder([20, 200], rerun=False), ()],
                         ids=["one-run", "no-rerun", "no-rungs"])
def test_without_a_rerun_reproducibility_is_noted_and_the_verdict_incomplete(rungs: tuple[Rung, ...]) -> None:
    ledger = _certify(rungs=rungs, skip=["Reproducibility"])
    assert ledger["Reproducibility"].notes == [
        "the ladder has no rerun to compare (a single run: --events N); certify with --ladder for one"]
    assert {p.status for p in ledger.phases.values() if p.gate != "Reproducibility"} == {"DONE"}
    verdict = ledger.verdict()
    assert verdict["verdict"] == "INCOMPLETE"
    assert verdict["not_run"] == ["Reproducibility"]


# -- gates.json ----------------------------------------------------------------------------------


def test_gates_json_has_the_ladder_and_each_gate_its_unit_rung_and_kind() -> None:
    ledger = _certify({"P9 @ run-20": "failed"})
    gates = json.loads(json.dumps(ledger.to_json()))  # what gates.json holds
    assert gates["ladder"] == [
        {"rung": "run-20", "events": 20, "rerun_of": None},
        {"rung": "run-200", "events": 200, "rerun_of": None},
        {"rung": "rerun-200", "events": 200, "rerun_of": "run-200"},
    ]
    assert [p["gate"] for p in gates["phases"]] == LADDER_GATES
    by_gate = {p["gate"]: p for p in gates["phases"]}
    assert {k: by_gate["P7 @ run-200"][k] for k in ("gate", "phase_id", "rung", "kind", "name", "status",
                                                   "blocked_by")} == {
        "gate": "P7 @ run-200", "phase_id": "P7", "rung": "run-200", "kind": "phase", "name": "Ingest commit",
        "status": "BLOCKED", "blocked_by": "P9 @ run-20"}
    assert {k: by_gate["P0"][k] for k in ("phase_id", "rung", "kind")} == {"phase_id": "P0", "rung": None,
                                                                          "kind": "phase"}
    assert (by_gate["Reproducibility"]["rung"], by_gate["Reproducibility"]["kind"]) == (None, "ladder")
    assert {by_gate[d]["kind"] for d in DRILL_IDS} == {"drill"}
    assert (gates["verdict"], gates["failed"]) == ("FAILED", ["P9 @ run-20"])  # verdict lists hold gate ids
    assert "P7 @ run-200" in gates["blocked"] and "P7" not in gates["blocked"]


def test_gates_json_without_rungs_has_an_empty_ladder_and_plain_gates() -> None:
    gates = Ledger({"P0"}).to_json()
    assert gates["ladder"] == []
    assert [p["gate"] for p in gates["phases"]] == [p["phase_id"] for p in gates["phases"]] == list(UNIT_IDS)


# -- options -------------------------------------------------------------------------------------


def test_options_events_is_a_single_run_and_the_default_is_the_ladder() -> None:
    assert Options(project_root=ROOT, events=50).rungs == (Rung("run-50", 50),)
    assert Options(project_root=ROOT, events=50).rungs[0].slug == "n50"
    assert Options(project_root=ROOT, ladder=(20, 200)).rungs == RUNGS
    assert Options(project_root=ROOT).rungs == RUNGS  # --ladder 20,200 by default
    assert [r.id for r in Options(project_root=ROOT, ladder=(10, 50, 100)).rungs] == [
        "run-10", "run-50", "run-100", "rerun-100"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"ladder": ()}, "--ladder needs at least one run size"),
    ({"ladder": (20, 20)}, "--ladder 20,20: sizes must be distinct and >= 1"),
    ({"ladder": (0, 200)}, "--ladder 0,200: sizes must be distinct and >= 1"),
    ({"events": 0}, "--events 0 must be >= 1"),
])  # fmt: skip
def test_options_refuse_a_bad_ladder_or_events(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Options(project_root=ROOT, **kwargs)


# -- scopes of a certification -------------------------------------------------------------------


@pytest.fixture
def cert(tmp_path: Path) -> Certification:
    """A certification that starts nothing: handles loaded, substrate parts built but not started."""
    certification = Certification(Options(project_root=ROOT, reports_dir=tmp_path, cert_id="cert-ladder",
                                          drill_events=7), implemented=set(UNIT_IDS))
    assert not certification.substrate.started_pids and certification.aws is None
    return certification


@pytest.fixture
def said() -> Iterator[list[str]]:
    lines: list[str] = []
    progress.set_writer(lines.append)
    try:
        yield lines
    finally:
        progress.set_writer(None)


def _begin(cert: Certification, gate: str) -> None:
    cert.begin(cert.ledger[gate])


def _counter() -> tuple[list[str], Callable[[str], Callable[[], str]]]:
    calls: list[str] = []

    def make(value: str) -> Callable[[], str]:
        def fn() -> str:
            calls.append(value)
            return value
        return fn

    return calls, make


def test_a_certification_uses_the_ladder_of_its_options(cert: Certification) -> None:
    assert cert.ledger.rungs == RUNGS
    assert cert.ledger.gates() == LADDER_GATES


def test_once_is_per_rung_or_drill_but_certification_wide_for_pm1_p0_p12(cert: Certification) -> None:
    calls, make = _counter()
    _begin(cert, "P1 @ run-20")
    assert cert.once("p1.pin", make("pin-20")) == "pin-20"
    assert cert.once("p1.pin", make("again")) == "pin-20"  # memoised within the scope
    for key in ("pm1.package", "p0.apply", "p12.destroy"):
        assert cert.once(key, make(f"{key} in run-20")) == f"{key} in run-20"
    _begin(cert, "P1 @ run-200")
    assert cert.once("p1.pin", make("pin-200")) == "pin-200"
    for key in ("pm1.package", "p0.apply", "p12.destroy"):
        assert cert.once(key, make(f"{key} in run-200")) == f"{key} in run-20"
    _begin(cert, "D3")
    assert cert.once("p1.pin", make("pin-d3")) == "pin-d3"
    _begin(cert, "P12")
    assert cert.once("p1.pin", make("pin-wide")) == "pin-wide"  # a gate outside any rung or drill
    assert cert.once("p0.apply", make("x")) == "p0.apply in run-20"
    assert calls == ["pin-20", "pm1.package in run-20", "p0.apply in run-20", "p12.destroy in run-20", "pin-200",
                     "pin-d3", "pin-wide"]


def test_once_gives_its_error_again_in_its_scope_only(cert: Certification) -> None:
    def boom() -> str:
        raise ConfigError("pin failed")

    _begin(cert, "P1 @ run-20")
    for _ in range(2):
        with pytest.raises(ConfigError, match="pin failed"):
            cert.once("p1.pin", boom)
    assert cert.peek("p1.pin") is None
    _begin(cert, "P1 @ run-200")
    assert cert.once("p1.pin", lambda: "pinned") == "pinned"


def test_a_new_scope_runs_the_previous_scopes_clean_ups_last_first(cert: Certification, said: list[str],
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    ran: list[str] = []

    def fail() -> None:
        ran.append("failing")
        raise RuntimeError("daemon would not stop")

    _begin(cert, "P1 @ run-20")
    cert.at_scope_end(lambda: ran.append("first"))
    cert.at_scope_end(fail)
    cert.at_scope_end(lambda: ran.append("last"))
    _begin(cert, "P2 @ run-20")  # the same rung: nothing ends
    assert ran == []
    _begin(cert, "P1 @ run-200")  # a failing clean-up does not raise, and the others still run
    assert ran == ["last", "failing", "first"]
    assert "clean-up of run-20 failed: daemon would not stop" in caplog.text
    assert any(line.endswith("clean-up of run-20 failed: daemon would not stop") for line in said)
    assert cert.scope == "run-200"
    _begin(cert, "P2 @ run-200")
    assert ran == ["last", "failing", "first"]  # each clean-up runs once


def test_a_drill_and_teardown_end_the_scope_before_them(cert: Certification) -> None:
    ran: list[str] = []
    _begin(cert, "P11 @ rerun-200")
    cert.at_scope_end(lambda: ran.append("rerun-200"))
    _begin(cert, "Reproducibility")  # outside any rung: the rerun's daemons stop
    assert ran == ["rerun-200"] and cert.scope is None
    _begin(cert, "D3")
    cert.at_scope_end(lambda: ran.append("D3"))
    _begin(cert, "D4")
    cert.at_scope_end(lambda: ran.append("D4"))
    assert ran == ["rerun-200", "D3"]
    _begin(cert, "P12")
    assert ran == ["rerun-200", "D3", "D4"]
    cert.at_scope_end(lambda: ran.append("closing"))
    cert.end_scope()  # what close() does
    assert ran == ["rerun-200", "D3", "D4", "closing"]


def test_in_scope_looks_at_another_rungs_memo_without_ending_this_one(cert: Certification) -> None:
    ran: list[str] = []
    _begin(cert, "P1 @ run-20")
    cert.once("p1.pin", lambda: "pin-20")
    _begin(cert, "P1 @ run-200")
    cert.once("p1.pin", lambda: "pin-200")
    cert.at_scope_end(lambda: ran.append("run-200"))
    with cert.in_scope("run-20"):
        assert cert.scope == "run-20"
        assert cert.peek("p1.pin") == "pin-20"
        assert cert.once("p1.pin", lambda: "not called") == "pin-20"
        assert (cert.events, cert.run_slug) == (20, "n20")
    assert ran == []  # looking is not ending
    assert cert.scope == "run-200" and cert.peek("p1.pin") == "pin-200"
    with pytest.raises(KeyError), cert.in_scope("rerun-200"):
        raise KeyError("x")
    assert cert.scope == "run-200"  # restored after an error too
    assert cert.current_gate == "P1 @ run-200"


@pytest.mark.parametrize(("gate", "phase", "scope", "events", "slug"), [
    ("P1 @ run-20", "P1", "run-20", 20, "n20"),
    ("P7 @ run-200", "P7", "run-200", 200, "n200"),
    ("P11 @ rerun-200", "P11", "rerun-200", 200, "n200-rerun"),
    ("D3", "D3", "D3", 7, "d3"),  # a drill's run has Options.drill_events
    ("D11", "D11", "D11", 7, "d11"),
    ("P0", "P0", None, None, None),  # outside any rung or drill: no run slug (events are not asserted)
    ("Reproducibility", "Reproducibility", None, None, None),
])  # fmt: skip
def test_events_and_run_slug_follow_the_scope(cert: Certification, gate: str, phase: str, scope: str | None,
                                              events: int | None, slug: str | None) -> None:
    _begin(cert, gate)
    assert (cert.current_phase, cert.current_gate, cert.scope) == (phase, gate, scope)
    assert cert.run_slug == slug
    if events is not None:
        assert cert.events == events


def test_a_single_run_certification_has_one_rung(tmp_path: Path) -> None:
    cert = Certification(Options(project_root=ROOT, reports_dir=tmp_path, cert_id="cert-one", events=50),
                         implemented=set(UNIT_IDS))
    assert cert.ledger.rungs == (Rung("run-50", 50),)
    assert cert.ledger["Reproducibility"].notes[0].startswith("the ladder has no rerun to compare")
    _begin(cert, "P3 @ run-50")
    assert (cert.events, cert.run_slug) == (50, "n50")
