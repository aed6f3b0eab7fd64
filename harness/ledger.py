"""The gate ledger: phases P(-1)..P12 in canonical order, their statuses and the verdict."""

from __future__ import annotations

import time
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
ALWAYS_RUNS = "P12"  # teardown runs last and runs even when earlier phases failed

NOT_STARTED, ACTIVE, DONE, FAILED, ERROR, BLOCKED, NOT_IMPLEMENTED = (
    "NOT_STARTED", "ACTIVE", "DONE", "FAILED", "ERROR", "BLOCKED", "NOT_IMPLEMENTED",
)  # fmt: skip
CERTIFIED, INCOMPLETE = "CERTIFIED", "INCOMPLETE"
NOT_PASSED = (FAILED, ERROR, BLOCKED)  # a later phase is BLOCKED by any of these (P12 still runs)


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


def order(phase_id: str) -> int:
    try:
        return PHASE_IDS.index(phase_id)
    except ValueError:
        raise ConfigError(f"unknown phase {phase_id!r}; phases are {list(PHASE_IDS)}") from None


@dataclass
class ScenarioRecord:
    name: str
    outcome: str  # passed | failed (a Finding) | error (could not judge) | blocked | not_implemented
    duration_s: float
    message: str = ""


@dataclass
class PhaseRecord:
    phase_id: str
    name: str
    status: str
    scenarios: list[ScenarioRecord] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    blocked_by: str | None = None
    notes: list[str] = field(default_factory=list)
    waived: dict[str, str] = field(default_factory=dict)  # check id -> why this substrate cannot judge it
    started_at: float | None = None
    ended_at: float | None = None

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return round(self.ended_at - self.started_at, 2)

    def to_json(self) -> dict[str, Any]:
        return {
            "phase_id": self.phase_id,
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
    """Phase statuses for one certification. Only one phase is ACTIVE at a time."""

    def __init__(self, implemented: set[str]) -> None:
        for pid in implemented:
            order(pid)
        self.phases = {
            pid: PhaseRecord(pid, name, NOT_STARTED if pid in implemented else NOT_IMPLEMENTED)
            for pid, name in PHASES
        }

    def __getitem__(self, phase_id: str) -> PhaseRecord:
        order(phase_id)
        return self.phases[phase_id]

    def active(self) -> PhaseRecord | None:
        return next((p for p in self.phases.values() if p.status == ACTIVE), None)

    def enter(self, phase_id: str) -> None:
        """Start (or continue) a phase; raises PhaseBlocked when a predecessor is FAILED, ERROR or BLOCKED."""
        record = self[phase_id]
        if record.status == ACTIVE:
            return
        if record.status == BLOCKED and record.blocked_by is not None:
            raise PhaseBlocked(phase_id, record.blocked_by, self.phases[record.blocked_by].status)
        current = self.active()
        if current is not None:
            self.close(current.phase_id)
        predecessors = [self.phases[pid] for pid in PHASE_IDS[: order(phase_id)]]
        bad = [p for p in predecessors if p.status in NOT_PASSED]
        if phase_id == ALWAYS_RUNS:
            if bad:
                record.notes.append(
                    "ran after earlier phases did not pass: "
                    + ", ".join(f"{p.phase_id} {p.status}" for p in bad)
                )
        elif bad:
            record.status, record.blocked_by = BLOCKED, bad[0].phase_id
            record.started_at = record.ended_at = time.time()
            raise PhaseBlocked(phase_id, bad[0].phase_id, bad[0].status)
        record.status = ACTIVE
        record.started_at = time.time()

    def record(self, phase_id: str, scenario: ScenarioRecord) -> None:
        self[phase_id].scenarios.append(scenario)

    def add_evidence(self, phase_id: str, relpath: str) -> None:
        evidence = self[phase_id].evidence
        if relpath not in evidence:
            evidence.append(relpath)

    def close(self, phase_id: str, *, interrupted: bool = False) -> None:
        record = self[phase_id]
        if record.status != ACTIVE:
            return
        record.ended_at = time.time()
        outcomes = {s.outcome for s in record.scenarios}
        errors = [s for s in record.scenarios if s.outcome == "error"]
        if "failed" in outcomes:
            # A finding was observed: the phase FAILED even if another scenario could not be judged.
            record.status = FAILED
            record.notes += [f"also could not judge {s.name!r}: {first_line(s.message)}" for s in errors]
        elif errors:
            record.status = ERROR
            record.notes += [f"could not judge {s.name!r}: {first_line(s.message)}" for s in errors]
        elif outcomes and outcomes <= {"passed", "not_implemented"} and "not_implemented" in outcomes:
            # The platform declares a mode this phase needs but does not build it yet.
            record.status = NOT_IMPLEMENTED
            record.notes.append("the platform answered 'not implemented' for a mode this phase needs")
            return
        else:
            passed = bool(record.scenarios) and outcomes == {"passed"}
            record.status = DONE if passed and not interrupted else FAILED
        if interrupted:
            record.notes.append("the certification was interrupted while this phase was ACTIVE")

    def close_all(self, *, interrupted: bool = False) -> None:
        active = self.active()
        if active is not None:
            self.close(active.phase_id, interrupted=interrupted)

    def verdict(self) -> dict[str, Any]:
        """FAILED (a finding) > ERROR (could not judge) > INCOMPLETE > CERTIFIED."""
        by_status: dict[str, list[str]] = {}
        for pid in PHASE_IDS:
            by_status.setdefault(self.phases[pid].status, []).append(pid)
        failed, errored, blocked = (by_status.get(s, []) for s in (FAILED, ERROR, BLOCKED))
        missing = by_status.get(NOT_IMPLEMENTED, [])
        not_run = by_status.get(NOT_STARTED, []) + by_status.get(ACTIVE, [])
        if failed:
            verdict = FAILED
        elif errored or blocked:  # with no FAILED phase, every BLOCKED one is blocked by an ERROR phase
            verdict = ERROR
        elif missing or not_run:
            verdict = INCOMPLETE
        else:
            verdict = CERTIFIED
        return {
            "verdict": verdict,
            "failed": failed,
            "errored": errored,
            "blocked": blocked,
            "not_implemented": missing,
            "not_run": not_run,
        }

    def to_json(self) -> dict[str, Any]:
        return {"phases": [self.phases[pid].to_json() for pid in PHASE_IDS], **self.verdict()}
