"""Evidence steps shared by the phases: a named evidence file was written by this certification."""

from __future__ import annotations

from pytest_bdd import parsers, then

from harness.phases import p01
from harness.session import Certification


@then(parsers.parse("the provenance is recorded as {relpath}"))
@then(parsers.parse("the apply snapshot is recorded as {relpath}"))
@then(parsers.parse("the handle resolution is recorded as {relpath}"))
@then(parsers.parse("the teardown proof is recorded as {relpath}"))
def _(cert: Certification, relpath: str) -> None:
    cert.bundle.require(relpath)


@then(parsers.parse("the readiness snapshot is recorded as {relpath}"))
@then(parsers.parse("the IG summaries are recorded as {relpath}"))
@then(parsers.parse("the reconciliation is recorded as {relpath}"))
@then(parsers.parse("RTDL's catch-up claim is recorded as {relpath}"))
@then(parsers.parse("the lag observation is recorded as {relpath}"))
@then(parsers.parse("the archive observation is recorded as {relpath}"))
@then(parsers.parse("the decision observation is recorded as {relpath}"))
@then(parsers.parse("the decision scores are recorded as {relpath}"))
@then(parsers.parse("the redelivery is recorded as {relpath}"))
@then(parsers.parse("the attempts are recorded as {relpath}"))
@then(parsers.parse("the case observation is recorded as {relpath}"))
@then(parsers.parse("the manual closeout is recorded as {relpath}"))
@then(parsers.parse("the fencing attempts are recorded as {relpath}"))
@then(parsers.parse("the contention is recorded as {relpath}"))
@then(parsers.parse("the harness's recount is recorded as {relpath}"))
def _(cert: Certification, relpath: str) -> None:
    p01.require_run_evidence(cert, relpath)
