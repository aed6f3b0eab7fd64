"""P3 oracle lane steps."""

from __future__ import annotations

from typing import Any

from pytest_bdd import parsers, then, when

from harness.phases import p03
from harness.session import Certification

_FAULTS = {
    "one source object removed": "removed-source-object",
    "one row changed after landing": "row-changed-after-landing",
    "a local source path": "local-source",
}


@when("the data engine writes the source root and seed, sort and check run", target_fixture="lane")
def _(cert: Certification) -> dict[str, Any]:
    return p03.ensure_lane(cert)


@then("every job of the lane exits 0")
def _(lane: dict[str, Any]) -> None:
    p03.check_jobs_succeeded(lane)


@then("the landing manifest proves byte continuity")
def _(lane: dict[str, Any]) -> None:
    p03.check_continuity(lane)


@then("every output has a stream view manifest and a sort receipt")
def _(lane: dict[str, Any]) -> None:
    p03.check_views(lane)


@then("the checker receipt says PASS and the PASS marker exists")
def _(lane: dict[str, Any]) -> None:
    p03.check_closed(lane)


@then("the harness's own reading of every stream view agrees with the source manifest and the receipts")
def _(cert: Certification, lane: dict[str, Any]) -> None:
    p03.check_recomputed(cert, lane)


@when(parsers.parse("the oracle lane runs with {fault}"), target_fixture="lane")
def _(cert: Certification, fault: str) -> dict[str, Any]:
    return p03.fault_lane(cert, _FAULTS[fault])


@then("the lane fails closed with no PASS marker")
def _(lane: dict[str, Any]) -> None:
    p03.check_fault_detected(lane)
