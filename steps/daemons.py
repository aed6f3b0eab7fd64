"""P2 daemon bring-up steps."""

from __future__ import annotations

from typing import Any

from pytest_bdd import given, then, when

from harness.phases import p02
from harness.session import Certification


@when("the run's daemons are started on the compute provider", target_fixture="readiness")
@given("the run's daemons are started on the compute provider", target_fixture="readiness")
def _(cert: Certification) -> dict[str, Any]:
    return p02.readiness_once(cert)


@then("every daemon's process runs and answers readiness for the run")
def _(readiness: dict[str, Any]) -> None:
    p02.check_running(readiness)


@then("every daemon's service has exactly one task meant to run")
def _(readiness: dict[str, Any]) -> None:
    p02.check_single_replica(readiness)


@then("every daemon's task is tagged with the run")
def _(readiness: dict[str, Any]) -> None:
    p02.check_tagged(readiness)


@when("the ingestion gate is started for another run id", target_fixture="foreign")
def _(cert: Certification) -> dict[str, Any]:
    return p02.foreign_daemon(cert)


@then("it exits refusing the run scope and never answered health")
def _(foreign: dict[str, Any]) -> None:
    p02.check_foreign_refused(foreign)
