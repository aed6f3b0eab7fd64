"""The gate ledger: every gate of one certification in canonical order, its status and the verdict.

A gate is one unit judged once: P(-1) and P0 for the certification, P1..P11 once per rung of the
ladder (``P7 @ run-200``), the reproducibility comparison of the rerun, each incident drill (D1..D11)
and P12, which always runs last.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.errors import ConfigError, Finding, ModeNotImplemented, PhaseBlocked

PHASES: tuple[tuple[str, str], ...] = (
    ("P(-1)", "Packaging readiness"),
    ("P0", "Substrate readiness"),
    ("P1", "Run pinning"),
    ("P2", "Daemon bring-up"),
    ("P3", "Oracle lane"),
    ("P4", "IG auth and health"),
    ("P5", "SR gate and READY"),
    ("P6", "WSP streaming"),
    ("P7", "Ingest commit"),
    ("P8", "RTDL core"),
    ("P9", "Decision lane and DLA"),
    ("P10", "Case and labels"),
    ("P11", "Obs/Gov closure"),
    ("P12", "Teardown"),
)
PHASE_IDS = tuple(pid for pid, _ in PHASES)
RUN_PHASES = PHASE_IDS[2:-1]  # P1..P11: judged once per rung of the ladder
REPRODUCIBILITY = "Reproducibility"
DRILLS: tuple[tuple[str, str], ...] = (
    ("D1", "IG writer key rotated mid-stream"),
    ("D2", "Broker unavailable mid-stream"),
    ("D3", "IG killed mid-batch"),
    ("D4", "RTDL killed before committing offsets"),
    ("D5", "Decision-lane redelivery from an earlier offset"),
    ("D6", "Stale READY of a previous run on the control topic"),
    ("D7", "Poison (schema-invalid) event"),
    ("D8", "Database unavailable while cases open"),
    ("D9", "Two reporters at once"),
    ("D10", "Evidence bucket refusing writes"),
    ("D11", "NAT gateway and public bucket policy created out of band"),
)
DRILL_IDS = tuple(d for d, _ in DRILLS)
UNITS: tuple[tuple[str, str], ...] = (
    *PHASES[:-1], (REPRODUCIBILITY, "Reproducibility of the rerun"), *DRILLS, PHASES[-1],
)
UNIT_IDS = tuple(u for u, _ in UNITS)
ALWAYS_RUNS = "P12"  # teardown runs last and runs even when earlier phases failed

NOT_STARTED, ACTIVE, DONE, FAILED, ERROR, BLOCKED, NOT_IMPLEMENTED = (
    "NOT_STARTED", "ACTIVE", "DONE", "FAILED", "ERROR", "BLOCKED", "NOT_IMPLEMENTED",
)  # fmt: skip
CERTIFIED, INCOMPLETE = "CERTIFIED", "INCOMPLETE"
NOT_PASSED = (FAILED, ERROR, BLOCKED)  # a later gate is BLOCKED by any of these (P12 still runs)


@dataclass(frozen=True)
class Rung:
    """One run of the ladder: ``run-20``, ``run-200``, or ``rerun-200`` (the same scenario under a new run id)."""

    id: str
    events: int
    rerun_of: str | None = None

    @property
    def slug(self) -> str:
        """What the rung adds to its platform run id."""
        return f"n{self.events}" + ("-rerun" if self.rerun_of else "")


def ladder(events: Sequence[int], *, rerun: bool = True) -> tuple[Rung, ...]:
    """The rungs for ``--ladder``: one run per size, then a rerun of the last one."""
    if not events:
        raise ConfigError("--ladder needs at least one run size, e.g. --ladder 20,200")
    if any(n < 1 for n in events) or len(set(events)) != len(events):
        raise ConfigError(f"--ladder {','.join(map(str, events))}: sizes must be distinct and >= 1")
    rungs = [Rung(f"run-{n}", n) for n in events]
    if rerun:
        rungs.append(Rung(f"re{rungs[-1].id}", rungs[-1].events, rerun_of=rungs[-1].id))
    return tuple(rungs)


def gate_id(unit: str, rung: str | None) -> str:
    return unit if rung is None else f"{unit} @ {rung}"


def catalog(rungs: Sequence[Rung] = ()) -> list[tuple[str, str, str | None]]:
    """(unit, name, rung) of every gate in canonical order. Without rungs, P1..P11 are one plain gate each."""
    names = dict(UNITS)
    gates: list[tuple[str, str, str | None]] = [(u, names[u], None) for u in PHASE_IDS[:2]]
    rung_ids: list[str | None] = [r.id for r in rungs] or [None]
    for rung_id in rung_ids:
        gates += [(u, names[u], rung_id) for u in RUN_PHASES]
    gates.append((REPRODUCIBILITY, names[REPRODUCIBILITY], None))
    gates += [(d, names[d], None) for d in DRILL_IDS]
    gates.append((ALWAYS_RUNS, names[ALWAYS_RUNS], None))
    return gates


def kind_of(unit: str) -> str:
    if unit in DRILL_IDS:
        return "drill"
    return "ladder" if unit == REPRODUCIBILITY else "phase"


INTERRUPTED_NOTE = "the certification was interrupted while this gate was ACTIVE: it could not be judged"


def outcome_of(exc: BaseException | None) -> str:
    """A scenario's outcome from what it raised: only a Finding says the platform failed.

    Every other exception means the harness could not judge: a substrate or harness error
    (SubstrateError, EvidenceError, ConfigError, ToolMissing), a harness bug (KeyError,
    TypeError, a bare ``assert`` in harness code: steps judge only through Finding) or a
    skipped scenario.
    """
    if exc is None:
        return "passed"
    if isinstance(exc, PhaseBlocked):
        return "blocked"
    if isinstance(exc, ModeNotImplemented):
        return "not_implemented"
    if isinstance(exc, Finding):
        return "failed"
    return "error"


def first_line(message: str) -> str:
    return next((line.strip() for line in message.splitlines() if line.strip()), "")


def order(unit: str) -> int:
    """The canonical position of a phase, the reproducibility check or a drill; unknown ids fail loudly."""
    try:
        return UNIT_IDS.index(unit)
    except ValueError:
        raise ConfigError(f"unknown phase or drill {unit!r}; they are {list(UNIT_IDS)}") from None


@dataclass
class ScenarioRecord:
    name: str
    outcome: str  # passed | failed (a Finding) | error (could not judge) | blocked | not_implemented
    duration_s: float
    message: str = ""


@dataclass
class PhaseRecord:
    phase_id: str  # the unit: P7, Reproducibility, D3
    name: str
    status: str
    rung: str | None = None
    scenarios: list[ScenarioRecord] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    blocked_by: str | None = None
    notes: list[str] = field(default_factory=list)
    waived: dict[str, str] = field(default_factory=dict)  # check id -> why this substrate cannot judge it
    started_at: float | None = None
    ended_at: float | None = None

    @property
    def gate(self) -> str:
        return gate_id(self.phase_id, self.rung)

    @property
    def kind(self) -> str:
        return kind_of(self.phase_id)

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return round(self.ended_at - self.started_at, 2)

    def to_json(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "phase_id": self.phase_id,
            "rung": self.rung,
            "kind": self.kind,
            "name": self.name,
            "status": self.status,
            "blocked_by": self.blocked_by,
            "notes": self.notes,
            "waived": dict(sorted(self.waived.items())),
            "duration_s": self.duration_s,
            "evidence": sorted(self.evidence),
            "scenarios": [vars(s) for s in self.scenarios],
        }


class Ledger:
    """Gate statuses for one certification, keyed by gate id. Only one gate is ACTIVE at a time.

    Blocking: a FAILED, ERROR or BLOCKED gate blocks every later gate of its own rung, every later
    certification-wide gate; a rung starts only when every gate of the rungs before it is DONE, and so
    does the reproducibility check. A drill works on a run of its own: only a gate before it that
    FAILED or is ERROR (or BLOCKED by one) blocks it, and it blocks nothing. P12 always runs.
    """

    def __init__(self, implemented: Iterable[str], *, rungs: Sequence[Rung] = ()) -> None:
        implemented = set(implemented)
        for unit in implemented:
            order(unit)
        self.rungs = tuple(rungs)
        self.phases: dict[str, PhaseRecord] = {}
        for unit, name, rung in catalog(self.rungs):
            record = PhaseRecord(unit, name, NOT_STARTED if unit in implemented else NOT_IMPLEMENTED, rung=rung)
            self.phases[record.gate] = record
        if not any(r.rerun_of for r in self.rungs):
            self.phases[REPRODUCIBILITY].notes.append(
                "the ladder has no rerun to compare (a single run: --events N); certify with --ladder for one")

    def __getitem__(self, gate: str) -> PhaseRecord:
        try:
            return self.phases[gate]
        except KeyError:
            raise ConfigError(f"unknown gate {gate!r}; this certification's gates are {list(self.phases)}") from None

    def gates(self) -> list[str]:
        return list(self.phases)

    def active(self) -> PhaseRecord | None:
        return next((p for p in self.phases.values() if p.status == ACTIVE), None)

    def _blocker(self, record: PhaseRecord) -> PhaseRecord | None:
        for other in self.phases.values():
            if other is record:
                return None
            if other.kind != "phase":
                continue  # the reproducibility check and the drills block nothing
            if record.kind == "drill":  # a drill works on a run of its own: only a failure before it blocks it
                if other.status in NOT_PASSED and self._root(other).status in (FAILED, ERROR):
                    return other
            elif other.rung is None or other.rung == record.rung:
                if other.status in NOT_PASSED:
                    return other
            elif other.status != DONE:  # an earlier rung that is not DONE
                return other
        return None

    def _root(self, record: PhaseRecord) -> PhaseRecord:
        """The gate at the end of a chain of BLOCKED gates."""
        seen: set[str] = set()
        while record.status == BLOCKED and record.blocked_by in self.phases and record.gate not in seen:
            seen.add(record.gate)
            record = self.phases[str(record.blocked_by)]
        return record

    def enter(self, gate: str) -> None:
        """Start (or continue) a gate; raises PhaseBlocked when a predecessor does not let it start."""
        record = self[gate]
        if record.status == ACTIVE:
            return
        if record.status == BLOCKED and record.blocked_by is not None:
            raise PhaseBlocked(gate, record.blocked_by, _shown(self.phases[record.blocked_by].status))
        current = self.active()
        if current is not None:
            self.close(current.gate)
        if record.phase_id == ALWAYS_RUNS:
            bad = [p for p in self.phases.values() if p.status in NOT_PASSED]
            if bad:
                record.notes.append("ran after earlier gates did not pass: "
                                    + ", ".join(f"{p.gate} {p.status}" for p in bad))
        else:
            blocker = self._blocker(record)
            if blocker is not None:
                record.status, record.blocked_by = BLOCKED, blocker.gate
                record.started_at = record.ended_at = time.time()
                raise PhaseBlocked(gate, blocker.gate, _shown(blocker.status))
        record.status = ACTIVE
        record.started_at = time.time()

    def record(self, gate: str, scenario: ScenarioRecord) -> None:
        self[gate].scenarios.append(scenario)

    def add_evidence(self, gate: str, relpath: str) -> None:
        evidence = self[gate].evidence
        if relpath not in evidence:
            evidence.append(relpath)

    def close(self, gate: str, *, interrupted: bool = False) -> None:
        record = self[gate]
        if record.status != ACTIVE:
            return
        record.ended_at = time.time()
        outcomes = {s.outcome for s in record.scenarios}
        errors = [s for s in record.scenarios if s.outcome == "error"]
        if "failed" in outcomes:
            # A finding was observed: the gate FAILED even if another scenario could not be judged.
            record.status = FAILED
            record.notes += [f"also could not judge {s.name!r}: {first_line(s.message)}" for s in errors]
        elif errors:
            record.status = ERROR
            record.notes += [f"could not judge {s.name!r}: {first_line(s.message)}" for s in errors]
        elif interrupted:
            # Stopped by the operator (Ctrl-C, SIGTERM) before it could be judged: no finding, so not FAILED.
            record.status = ERROR
        elif outcomes and outcomes <= {"passed", "not_implemented"} and "not_implemented" in outcomes:
            # The platform declares a mode this phase needs but does not build it yet.
            record.status = NOT_IMPLEMENTED
            record.notes.append("the platform answered 'not implemented' for a mode this phase needs")
            return
        else:
            passed = bool(record.scenarios) and outcomes == {"passed"}
            record.status = DONE if passed else FAILED
        if interrupted:
            record.notes.append(INTERRUPTED_NOTE)

    def close_all(self, *, interrupted: bool = False) -> None:
        active = self.active()
        if active is not None:
            self.close(active.gate, interrupted=interrupted)

    def verdict(self) -> dict[str, Any]:
        return decide([(r.gate, r.status, r.blocked_by) for r in self.phases.values()])

    def to_json(self) -> dict[str, Any]:
        return {
            "ladder": [{"rung": r.id, "events": r.events, "rerun_of": r.rerun_of} for r in self.rungs],
            "phases": [record.to_json() for record in self.phases.values()],
            **self.verdict(),
        }


def decide(gates: Sequence[tuple[str, str, str | None]]) -> dict[str, Any]:
    """The verdict from (gate, status, blocked_by) in canonical order: FAILED (a finding) > ERROR (could
    not judge) > INCOMPLETE > CERTIFIED.

    A BLOCKED gate counts as what blocks it, following ``blocked_by``: ERROR when that is an ERROR gate,
    INCOMPLETE when it is a gate that did not run or is not implemented.
    """
    status = {gate: (st, by) for gate, st, by in gates}

    def root(gate: str) -> str:
        seen: set[str] = set()
        while status[gate][0] == BLOCKED and status[gate][1] in status and gate not in seen:
            seen.add(gate)
            gate = str(status[gate][1])
        return status[gate][0]

    by_status: dict[str, list[str]] = {}
    for gate, st, _ in gates:
        by_status.setdefault(st, []).append(gate)
    failed, errored, blocked = (by_status.get(s, []) for s in (FAILED, ERROR, BLOCKED))
    missing = by_status.get(NOT_IMPLEMENTED, [])
    not_run = by_status.get(NOT_STARTED, []) + by_status.get(ACTIVE, [])
    if failed:
        verdict = FAILED
    elif errored or any(root(g) == ERROR for g in blocked):
        verdict = ERROR
    elif missing or not_run or blocked or not gates:  # nothing judged certifies nothing
        verdict = INCOMPLETE
    else:
        verdict = CERTIFIED
    return {"verdict": verdict, "failed": failed, "errored": errored, "blocked": blocked,
            "not_implemented": missing, "not_run": not_run}


def _shown(status: str) -> str:
    return "NOT_RUN" if status in (NOT_STARTED, ACTIVE) else status
