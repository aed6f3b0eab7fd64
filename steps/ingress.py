"""P4 IG auth/health, P5 SR READY, P6 WSP and P7 ingest commit steps."""

from __future__ import annotations

from typing import Any

from pytest_bdd import given, parsers, then, when

from harness.phases import p04, p05, p06, p07
from harness.session import Certification


@when("the harness asks IG for its health", target_fixture="ig_health")
def _(cert: Certification) -> dict[str, Any]:
    return p04.health(cert)


@then("IG answers 200 naming the run, its version and a connected bus")
def _(ig_health: dict[str, Any]) -> None:
    p04.check_health(ig_health)


@when("the harness sends a batch with no writer key, one with a wrong key and one with the writer key",
      target_fixture="probes")
@given("the harness sent a batch with no writer key, one with a wrong key and one with the writer key",
       target_fixture="probes")
def _(cert: Certification) -> dict[str, Any]:
    return p04.auth_probes(cert)


@then("the batch without a key gets 401 and the batch with a wrong key gets 403")
def _(probes: dict[str, Any]) -> None:
    p04.check_refused_status(probes)


@then("nothing of the refused batches is on the traffic topic, in the dedupe table or in the receipts")
def _(probes: dict[str, Any]) -> None:
    p04.check_refused_left_nothing(probes)


@then("the schema-invalid event and another run's event get QUARANTINED receipts")
@then("each is in the quarantine bucket with its reason and none is on the traffic topic")
def _(probes: dict[str, Any]) -> None:
    p04.check_quarantined(probes)


@when("the scenario runner gates the run", target_fixture="ready")
@given("the scenario runner gated the run", target_fixture="ready")
def _(cert: Certification) -> dict[str, Any]:
    return p05.ensure_ready(cert)


@then("exactly one distinct READY for the run is on the control topic, after the Oracle PASS, matching the pins")
def _(ready: dict[str, Any]) -> None:
    p05.check_ready_after_pass(ready)


@when("the scenario runner gates the run again", target_fixture="resend")
def _(cert: Certification) -> dict[str, Any]:
    return p05.duplicate_send(cert)


@then("the control topic still holds exactly one distinct READY for the run")
def _(resend: dict[str, Any]) -> None:
    p05.check_one_distinct_ready(resend)


@when("the scenario runner gates the run while another holder owns its lease", target_fixture="refusal")
def _(cert: Certification) -> dict[str, Any]:
    return p05.held_lease(cert)


@when(parsers.parse("the scenario runner is asked to gate {case}"), target_fixture="refusal")
def _(cert: Certification, case: str) -> dict[str, Any]:
    return p05.refused_run(cert, case)


@then("the scenario runner refuses naming the holder and publishes nothing")
@then("it exits 1 naming why, and no READY exists for that run")
def _(refusal: dict[str, Any]) -> None:
    p05.check_refused(refusal)


@when("the raw landed objects are removed and WSP streams the run, killed mid-stream once", target_fixture="stream")
@given("WSP streamed the run", target_fixture="stream")
def _(cert: Certification) -> dict[str, Any]:
    return p06.ensure_streamed(cert)


@then("every event of the stream view is admitted and on the traffic topic, and no landed object remains")
def _(stream: dict[str, Any]) -> None:
    p06.check_streamed_from_views(stream)


@then("per WSP attempt, IG received the stream view's events in the view's order")
def _(stream: dict[str, Any]) -> None:
    p06.check_order(stream)


@then("the restart got DUPLICATE receipts for what was admitted before the kill, and each event is on the topic once")
def _(stream: dict[str, Any]) -> None:
    p06.check_restart(stream)


@when("the stream view is withheld and WSP is started again", target_fixture="withheld")
def _(cert: Certification) -> dict[str, Any]:
    return p06.withheld_view(cert)


@then("WSP exits 1 naming the stream view, and IG received nothing")
def _(withheld: dict[str, Any]) -> None:
    p06.check_withheld_refused(withheld)


@when("IG commits the run's ingest", target_fixture="commit")
def _(cert: Certification) -> dict[str, Any]:
    return p07.ensure_committed(cert)


@then("IG's receipt and quarantine summaries equal the harness's recount of the receipts")
def _(cert: Certification, commit: dict[str, Any]) -> None:
    p07.check_committed(commit)
    p07.check(p07.reconcile(cert), "summaries")


@when("the harness reconciles the traffic topic with IG's receipts", target_fixture="reconciliation")
def _(cert: Certification) -> dict[str, Any]:
    return p07.reconcile(cert)


@then("every ADMITTED receipt names a record holding its event, and no record of the run lacks a receipt")
def _(reconciliation: dict[str, Any]) -> None:
    p07.check(reconciliation, "receipts_to_records", "unreceipted_records")


@then("no quarantined or duplicate event is on the topic and no event is on it twice")
def _(reconciliation: dict[str, Any]) -> None:
    p07.check(reconciliation, "refused_not_published")


@then("the run's events on the topic are the stream view's events, field by field")
def _(reconciliation: dict[str, Any]) -> None:
    p07.check(reconciliation, "stream_view")


@then("every PUBLISH_AMBIGUOUS receipt is reconciled with the topic")
def _(reconciliation: dict[str, Any]) -> None:
    p07.check(reconciliation, "ambiguous")


@then("IG's offsets snapshot equals the acknowledged end offsets, with the broker's watermark beside them")
def _(reconciliation: dict[str, Any]) -> None:
    p07.check(reconciliation, "offsets")


@when("a well-formed event is written to the traffic topic around IG", target_fixture="rogue")
def _(cert: Certification) -> dict[str, Any]:
    return p07.rogue_record(cert)


@then("the harness's reconciliation names the record as one without a receipt")
def _(rogue: dict[str, Any]) -> None:
    p07.check_rogue_found(rogue)
