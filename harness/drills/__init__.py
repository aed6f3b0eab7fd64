"""Incident drills D1..D11: Chaos Toolkit's shape, one module per fault family.

Each drill works on a run of its own (run id ``...-d7``, pinned, streamed and closed like a rung's
run), states a steady-state hypothesis, probes it, injects one fault through a real action on the
substrate, observes what the platform did, rolls the fault back and probes the steady state again.
Its journal, ``drills/<name>/journal.json``, holds every probe and action with what the harness
observed, written whether the drill passes or not. A drill passes only when the platform failed
closed (nothing lost, nothing duplicated, nothing admitted that should not be, no green closure
while the fault held) and the harness's own reconciliation shows it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from harness import canonical
from harness.errors import Finding
from harness.session import Certification

T = TypeVar("T")
P = TypeVar("P")  # what a judge finds: problems, as a list or by family
STAGES = ("steady-state-before", "method", "observe", "rollback", "steady-state-after")


@dataclass
class Journal:
    """What one drill did and saw, in order. ``step`` runs and records; ``write`` puts it in the bundle."""

    drill: str  # D7
    name: str  # poison-event: the journal's directory
    title: str
    hypothesis: str
    fault: str
    entries: list[dict[str, Any]] = field(default_factory=list)
    problems: dict[str, list[str]] = field(default_factory=dict)  # stage -> what did not hold
    started_at: float = field(default_factory=time.time)
    platform_run_id: str | None = None

    @property
    def directory(self) -> str:
        """Where the drill's evidence goes in the bundle."""
        return f"drills/{self.name}"

    @property
    def path(self) -> str:
        return f"{self.directory}/journal.json"

    def step(self, stage: str, label: str, fn: Callable[[], T], *, summary: Callable[[T], Any] | None = None) -> T:
        """Run one probe, action or rollback and record what it returned (or raised) and how long it took."""
        if stage not in STAGES:
            raise ValueError(f"stage {stage!r} must be one of {STAGES}")
        began = time.time()
        entry: dict[str, Any] = {"stage": stage, "label": label, "at": round(began - self.started_at, 3)}
        self.entries.append(entry)
        try:
            value = fn()
        except Exception as exc:
            entry.update(status="raised", error=f"{type(exc).__name__}: {exc}",
                         duration_s=round(time.time() - began, 3))
            raise
        entry.update(status="ok", duration_s=round(time.time() - began, 3),
                     observed=summary(value) if summary is not None else value)
        return value

    def expect(self, stage: str, problems: list[str]) -> None:
        """Record what did not hold at ``stage`` (nothing: it held); the drill fails on any of it."""
        if stage not in STAGES:
            raise ValueError(f"stage {stage!r} must be one of {STAGES}")
        self.problems.setdefault(stage, []).extend(problems)

    def to_json(self, *, outcome: str, error: str | None = None) -> dict[str, Any]:
        return {
            "drill": self.drill,
            "name": self.name,
            "title": self.title,
            "platform_run_id": self.platform_run_id,
            "steady_state_hypothesis": self.hypothesis,
            "fault": self.fault,
            "stages": list(STAGES),
            "entries": self.entries,
            "outcome": outcome,
            "problems": {stage: self.problems.get(stage, []) for stage in STAGES},
            "error": error,
            "duration_s": round(time.time() - self.started_at, 3),
        }


def run(cert: Certification, journal: Journal, body: Callable[[Journal], None]) -> dict[str, Any]:
    """Run a drill's body once in its scope; the journal is written whatever happens, and returned.

    ``body`` probes, injects, observes and rolls back through ``journal.step`` and records what did
    not hold with ``journal.expect``. Raising means the drill could not be judged: the journal says
    so and the error propagates (the drill is ERROR, not FAILED).
    """
    def execute() -> dict[str, Any]:
        error: str | None = None
        try:
            body(journal)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            failed = any(journal.problems.values())
            record = journal.to_json(outcome="error" if error else "failed" if failed else "passed", error=error)
            cert.evidence_bytes(journal.path, canonical.dumps(record))
        return record

    return cert.once(f"drill.{journal.drill}", execute)


def flat(problems: dict[str, list[str]], *, prefix: str = "", skip: Any = ()) -> list[str]:
    """A judge's problems by family as lines ``<prefix><family>: <problem>``, the ``skip`` families left out."""
    return [f"{prefix}{family}: {p}" for family, found in problems.items() if family not in skip for p in found]


def recorded(cert: Certification, j: Journal, name: str, observed: T, judge: Callable[[T], P]) -> P:
    """The observation written to ``drills/<name>/<file>`` beside what ``judge`` finds in it (``verify`` judges the
    observation again offline, never reading the problems back); returns what the judge found."""
    found = judge(observed)
    cert.evidence(f"{j.directory}/{name}", {"observed": observed, "problems": found})
    return found


def findings(check: Callable[..., None], *args: Any) -> list[str]:
    """What a phase's check function finds (its Finding's details); empty when it passes."""
    try:
        check(*args)
    except Finding as exc:
        return list(exc.details)
    return []


STAGE_CLAIMS = {
    "steady-state-before": "the steady state held before the fault",
    "observe": "the platform failed closed while the fault held",
    "steady-state-after": "the steady state holds again after the rollback",
}


def check(record: dict[str, Any], stage: str) -> None:
    """One stage of a drill held: it ran (a journal entry that did not raise) and nothing at it failed."""
    problems = list(record["problems"].get(stage, []))
    if not any(e["stage"] == stage and e["status"] == "ok" for e in record["entries"]):
        problems.append(f"the journal has no {stage} entry that completed: {STAGE_CLAIMS.get(stage, stage)} "
                        "was never shown")
    if problems:
        raise Finding(f"{record['drill']}.{stage}", problems)
