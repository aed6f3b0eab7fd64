"""P1 run pinning steps."""

from __future__ import annotations

from typing import Any

from pytest_bdd import given, then, when

from harness.phases import p01
from harness.session import Certification


@when("the run is pinned", target_fixture="pins")
@given("the run is pinned", target_fixture="pins")
def _(cert: Certification) -> p01.Pins:
    return p01.ensure_pinned(cert)


@then("run.json in the evidence bucket holds the pins, and no job of the run started before it")
def _(cert: Certification, pins: p01.Pins) -> None:
    p01.check_pinned(cert, pins)


@when("the same run id is pinned again", target_fixture="repin")
def _(cert: Certification, pins: p01.Pins) -> dict[str, Any]:
    return p01.repin(cert, pins)


@then("the second pin is refused and run.json is unchanged")
def _(repin: dict[str, Any]) -> None:
    p01.check_repin_refused(repin)


@when("a job is started with a different run config digest", target_fixture="refusal")
def _(cert: Certification, pins: p01.Pins) -> dict[str, Any]:
    return p01.mismatched_job(cert, pins, "config")


@when("a job is started with a different image digest", target_fixture="refusal")
def _(cert: Certification, pins: p01.Pins) -> dict[str, Any]:
    return p01.mismatched_job(cert, pins, "image")


@then("the job refuses, naming the config digest")
def _(refusal: dict[str, Any]) -> None:
    p01.check_refused(refusal, "config")


@then("the job refuses, naming the image digest")
def _(refusal: dict[str, Any]) -> None:
    p01.check_refused(refusal, "image")
