"""P11 obs/gov closure steps."""

from __future__ import annotations

from typing import Any

from pytest_bdd import parsers, then, when

from harness.phases import p11
from harness.session import Certification


@when(parsers.parse("the reporter runs for a run with {fault}"), target_fixture="refused_closure")
def _(cert: Certification, fault: str) -> dict[str, Any]:
    return p11.refused_closure(cert, fault)


@then("the reporter refuses closure naming the fault, writes no run_completed.json and leaves the lock free")
def _(refused_closure: dict[str, Any]) -> None:
    p11.check_closure_refused(refused_closure)


@when("a manual closeout holds the run's lock and the reporter runs", target_fixture="manual")
def _(cert: Certification) -> dict[str, Any]:
    return p11.manual_closeout(cert)


@then("the reporter exits 1 with conflict evidence naming the manual closeout and no run_completed.json")
def _(manual: dict[str, Any]) -> None:
    p11.check_manual_blocks(manual)


@when("the manual closeout takes the lock again and presents its earlier token", target_fixture="stale")
def _(cert: Certification) -> dict[str, Any]:
    return p11.stale_token(cert)


@then("the write with the stale token is refused and the write with the current token accepted")
def _(stale: dict[str, Any]) -> None:
    p11.check_stale_refused(stale)


@when("two reporters are started at once", target_fixture="contention")
def _(cert: Certification) -> dict[str, Any]:
    return p11.two_reporters(cert)


@then("exactly one reporter closes the run and the other exits 1 naming it in its conflict evidence")
def _(contention: dict[str, Any]) -> None:
    p11.check_one_closes(contention)


@when("another reporter runs and the earlier holder writes with its token after closure", target_fixture="after")
def _(cert: Certification) -> dict[str, Any]:
    return p11.after_close(cert)


@then("each is refused and run_completed.json is unchanged")
def _(after: dict[str, Any]) -> None:
    p11.check_closed_stays_closed(after)


@when("the harness recomputes the reconciliation from the receipts, topics and database", target_fixture="recount")
def _(cert: Certification) -> dict[str, Any]:
    return p11.recompute(cert)


@then("every count closes and equals the reporter's obs/reconciliation.json field by field")
def _(recount: dict[str, Any]) -> None:
    p11.check(recount, "reconciliation")


@then("the replay anchors equal the harness's per-partition offsets and digests")
def _(recount: dict[str, Any]) -> None:
    p11.check(recount, "replay_anchors")


@then("run_completed.json vouches for the obs objects as written and names the lock's holder and token")
def _(recount: dict[str, Any]) -> None:
    p11.check(recount, "run_completed")


@then("every environment conformance check holds, the run's image digest among them")
def _(recount: dict[str, Any]) -> None:
    p11.check(recount, "conformance")
