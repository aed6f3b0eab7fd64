"""Incident drill steps: every drill runs through its module and is judged stage by stage from its journal."""

from __future__ import annotations

from typing import Any

from pytest_bdd import parsers, then, when

from harness import drills
from harness.drills import catalog
from harness.errors import Finding
from harness.session import Certification


@when(parsers.parse("drill {drill} runs on a run of its own"), target_fixture="drill_record")
def _(cert: Certification, drill: str) -> dict[str, Any]:
    return catalog.runner(drill)(cert)


@then(parsers.parse("its journal is recorded as {relpath}"))
def _(cert: Certification, drill_record: dict[str, Any], relpath: str) -> None:
    if relpath != f"drills/{drill_record['name']}/journal.json" or not cert.bundle.has(relpath):
        raise Finding(f"{drill_record['drill']}.journal", [f"no journal at {relpath} in the bundle"])


@then("the steady state held before the fault")
def _(drill_record: dict[str, Any]) -> None:
    drills.check(drill_record, "steady-state-before")


@then(parsers.parse("the platform failed closed while the fault held: {what}"))
def _(drill_record: dict[str, Any], what: str) -> None:
    drills.check(drill_record, "observe")


@then("the steady state holds again after the rollback")
def _(drill_record: dict[str, Any]) -> None:
    drills.check(drill_record, "steady-state-after")
