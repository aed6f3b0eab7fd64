"""P5 and P6 checks: a valid record (modelled on a passing run) passes; each mutation is a Finding naming it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from check_records import OTHER_RUN, RUN, SCENARIO, Check, Mutation, Record, fails, mutated

from harness.errors import Finding, HarnessError
from harness.phases import p05, p06

# --- P5 SR gate and READY ----------------------------------------------------------------------------------------

PINS = {"scenario_run_id": SCENARIO, "run_config_digest": "b23f" * 16, "image_digest": "sha256:" + "7dc9" * 16,
        "oracle_root": f"s3://fraud-platform-dev-min-oracle/oracle/{SCENARIO}/"}
CHECKER_RECEIPT = "4073" * 16
PASS_AT = 1_795_617_658.0  # the Oracle _PASS marker's LastModified
CHECK_ENDED_AT = PASS_AT + 0.6  # oracle-check's end
READY_AT_MS = int(PASS_AT * 1000) + 10_000


def _digest(body: Record, **dumps: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, **dumps).encode()).hexdigest()


def ready_value(**changes: Any) -> Record:
    """A READY whose message_id is the digest of its content (everything but message_id)."""
    value = {"type": "READY", "platform_run_id": RUN, **PINS, "checker_receipt_sha256": CHECKER_RECEIPT, **changes}
    return {**value, "message_id": _digest(value)}


def control_record(value: Record, *, key: str | None = RUN, offset: int = 0, timestamp_ms: int = READY_AT_MS) -> Record:
    raw = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    return {"topic": "fp.bus.control.v1", "partition": 0, "offset": offset, "key": key, "timestamp_ms": timestamp_ms,
            "bytes": len(raw), "value": value, "value_sha256": hashlib.sha256(raw).hexdigest()}


def _sr_job(exit_code: int = 0, *stderr: str) -> Record:
    return {"mode": "sr", "argv": ["python", "-m", "spine", "sr"], "exit_code": exit_code, "stderr_tail": list(stderr),
            "started_at": PASS_AT + 8, "duration_s": 2.2, "ended_at": PASS_AT + 10.2, "run_id": RUN}


def ready_observed() -> Record:
    """sr/ready_observed.json: one READY, after the PASS marker, keyed by and naming the run's pins."""
    value = ready_value()
    return {"platform_run_id": RUN, "pins": dict(PINS), "sr_job": _sr_job(),
            "oracle_pass_last_modified": PASS_AT, "oracle_check_ended_at": CHECK_ENDED_AT,
            "checker_receipt_sha256": CHECKER_RECEIPT, "ready_records": [control_record(value)],
            "run_facts_view": {"platform_run_id": RUN, **PINS, "checker_receipt_sha256": CHECKER_RECEIPT,
                               "ready_message_id": value["message_id"], "control_topic": "fp.bus.control.v1"}}


def _reissue(**changes: Any) -> Mutation:
    """The READY replaced by one with ``changes``, its message_id and value digest consistent with them."""
    return lambda r: r["ready_records"].__setitem__(0, control_record(ready_value(**changes)))


def _at(timestamp_ms: int) -> Mutation:
    return lambda r: r["ready_records"][0].update(timestamp_ms=timestamp_ms)


def _message_id(message_id: str) -> Mutation:
    def mutate(r: Record) -> None:
        value = {**r["ready_records"][0]["value"], "message_id": message_id}
        r["ready_records"][0] = control_record(value)
    return mutate


def test_p5_ready_after_pass_passes_one_ready_that_follows_the_oracle_pass() -> None:
    p05.check_ready_after_pass(ready_observed())


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(_at(int(PASS_AT * 1000) - 1000), rf"READY at 0/0 \({PASS_AT - 1}\) precedes the Oracle PASS marker "
                 rf"\({PASS_AT}\)", id="before-pass-marker"),
    pytest.param(_at(int(CHECK_ENDED_AT * 1000) - 100), r"READY at 0/0 precedes the end of oracle-check",
                 id="before-oracle-check-ended"),
    pytest.param(lambda r: r.update(oracle_pass_last_modified=None), r"precedes the Oracle PASS marker \(None\)",
                 id="no-pass-marker"),
    *[pytest.param(_reissue(**{name: "x"}), rf"READY 0/0 contradicts the pins \(READY, pinned\): "
                   rf"\{{'{name}': \('x', ", id=f"contradicts-{name}")
      for name in (*PINS, "platform_run_id", "checker_receipt_sha256")],
    pytest.param(lambda r: r["ready_records"][0].update(key=SCENARIO), rf"READY 0/0 is keyed '{SCENARIO}', not the run",
                 id="keyed-by-scenario"),
    pytest.param(lambda r: r["ready_records"][0].update(key=None), r"READY 0/0 is keyed None, not the run",
                 id="unkeyed"),
    pytest.param(_message_id("0" * 64), r"READY 0/0 message_id is not the digest of its content",
                 id="message-id-made-up"),
    pytest.param(_message_id(_digest({k: v for k, v in ready_value().items() if k != "message_id"},
                                     separators=(",", ":"))),
                 r"message_id is not the digest of its content", id="message-id-other-serialisation"),
    pytest.param(_message_id(_digest(ready_value(scenario_run_id="scn-other"))),
                 r"message_id is not the digest of its content", id="message-id-of-other-content"),
    pytest.param(lambda r: r["ready_records"].append(control_record(ready_value(attempt=2), offset=1)),
                 r"2 distinct READY records for the run on the control topic, expected 1", id="two-distinct-ready"),
    pytest.param(lambda r: r.update(ready_records=[]), r"0 distinct READY records", id="no-ready"),
    pytest.param(lambda r: r.update(sr_job=_sr_job(1, "sr: boom")), r"sr exited 1: sr: boom", id="sr-exit-1"),
    pytest.param(lambda r: r.update(run_facts_view=None), r"no sr/run_facts_view.json in the run's evidence root",
                 id="no-run-facts-view"),
    pytest.param(lambda r: r["run_facts_view"].update(platform_run_id=OTHER_RUN),
                 rf"run_facts_view contradicts the checker receipt or the run: .*{OTHER_RUN}", id="facts-other-run"),
    pytest.param(lambda r: r["run_facts_view"].update(checker_receipt_sha256="0" * 64),
                 r"run_facts_view contradicts the checker receipt", id="facts-other-receipt"),
])
def test_p5_ready_after_pass_names_a_ready_that_should_not_be(mutate: Mutation, match: str) -> None:
    fails(p05.check_ready_after_pass, mutated(ready_observed(), mutate), match)


def duplicate_send() -> Record:
    """sr/duplicate_send.json: the second SR re-emits the same READY bytes (a second copy is allowed)."""
    first = control_record(ready_value())
    return {"platform_run_id": RUN, "sr_job": _sr_job(), "before": [first],
            "after": [first, control_record(ready_value(), offset=1, timestamp_ms=READY_AT_MS + 3000)]}


def test_p5_one_distinct_ready_passes_an_identical_re_emit() -> None:
    p05.check_one_distinct_ready(duplicate_send())


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(lambda r: r["after"].__setitem__(1, control_record(ready_value(attempt=2), offset=1)),
                 r"2 distinct READY values for the run after a re-emit, expected 1", id="second-distinct-ready"),
    pytest.param(lambda r: r.update(after=[control_record(ready_value(attempt=2), offset=1)]),
                 r"the re-emitted READY differs from the first", id="ready-replaced"),
    pytest.param(lambda r: r.update(after=[]), r"0 distinct READY values", id="ready-gone"),
    pytest.param(lambda r: r.update(sr_job=_sr_job(2)), r"the second sr exited 2", id="second-sr-exit-2"),
])
def test_p5_one_distinct_ready_names_a_re_emit_that_is_not_idempotent(mutate: Mutation, match: str) -> None:
    fails(p05.check_one_distinct_ready, mutated(duplicate_send(), mutate), match)


REFUSED_RUN = {fault: f"{RUN}-sr-{fault}" for fault in ("closed-run", "foreign-pins", "no-pass")}
REFUSALS = {
    "closed-run": f"sr: no READY: run {REFUSED_RUN['closed-run']} is closed (s3://evidence/runs/"
                  f"{REFUSED_RUN['closed-run']}/run_completed.json exists): a stale run is never made READY again",
    "foreign-pins": f"sr: no READY: checker receipt is of run {RUN}, not {REFUSED_RUN['foreign-pins']}",
    "no-pass": f"sr: no READY: no Oracle PASS: s3://evidence/runs/{REFUSED_RUN['no-pass']}/oracle/_PASS does not exist",
    "lease": f"sr: no READY: the lease for run {RUN} is held by {p05.LEASE_HOLDER} until 2026-11-25T14:46:13+00:00",
}


def refused(fault: str) -> Record:
    """sr/refused_<fault>.json (sr/lease_refused.json for the lease): exit 1, the fault named, no READY."""
    if fault == "lease":
        return {"platform_run_id": RUN, "fault": "lease", "holder": p05.LEASE_HOLDER,
                "sr_job": _sr_job(1, REFUSALS["lease"]), "ready_before": 1, "ready_after": 1}
    return {"platform_run_id": REFUSED_RUN[fault], "fault": fault, "injected": {}, "other_run": RUN,
            "sr_job": _sr_job(1, REFUSALS[fault]), "ready_after": 0}


def _says(line: str) -> Mutation:
    return lambda r: r["sr_job"].update(stderr_tail=[line])


@pytest.mark.parametrize("fault", sorted(REFUSALS))
def test_p5_refused_passes_a_refusal_that_names_its_fault(fault: str) -> None:
    p05.check_refused(refused(fault))


@pytest.mark.parametrize("fault", sorted(REFUSALS))
@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(lambda r: r["sr_job"].update(exit_code=0), r"sr exited 0 for \S+, not 1", id="exit-0"),
    pytest.param(lambda r: r["sr_job"].update(exit_code=2), r"sr exited 2 for \S+, not 1", id="exit-2-crash"),
    pytest.param(_says("sr: no READY: refused"), r"sr's refusal does not name the fault", id="fault-unnamed"),
    pytest.param(lambda r: r["sr_job"].update(stderr_tail=[]), r"does not name the fault .*: no message",
                 id="silent"),
    pytest.param(lambda r: r["sr_job"].update(stderr_tail=[s.replace("no READY: ", "") for s in r["sr_job"]
                                                            ["stderr_tail"]]),
                 r"sr's refusal does not name the fault", id="no-READY-not-said"),
    pytest.param(lambda r: r.update(ready_after=r.get("ready_before", 0) + 1),
                 r"READY record\(s\) for the refused run|READY records 1 -> 2", id="got-a-ready"),
])
def test_p5_refused_names_a_refusal_that_is_not_one(fault: str, mutate: Mutation, match: str) -> None:
    fails(p05.check_refused, mutated(refused(fault), mutate), match)


@pytest.mark.parametrize(("fault", "other"), [
    pytest.param(fault, other, id=f"{fault}-says-{other}") for fault in sorted(REFUSALS) for other in sorted(REFUSALS)
    if other != fault
])
def test_p5_refused_names_a_refusal_that_names_another_fault(fault: str, other: str) -> None:
    fails(p05.check_refused, mutated(refused(fault), _says(REFUSALS[other])),
           rf"sr's refusal does not name the fault \('{p05.NAMED[fault]}'\)")


@pytest.mark.parametrize(("fault", "mutate", "match"), [
    pytest.param("foreign-pins", _says("sr: no READY: checker receipt is of run run-zzz, not the run"),
                 rf"sr's refusal does not name the other run {RUN}", id="foreign-pins-names-no-run"),
    pytest.param("foreign-pins", _says(f"sr: no READY: pins is of run {REFUSED_RUN['foreign-pins']}"),
                 rf"sr's refusal does not name the other run {RUN}", id="foreign-pins-names-only-its-own-run"),
    pytest.param("lease", _says("sr: no READY: the lease for the run is held by someone"),
                 r"with the lease held: holder named False, READY records 1 -> 1", id="lease-holder-unnamed"),
    pytest.param("lease", lambda r: r.update(ready_after=0), r"READY records 1 -> 0", id="lease-ready-removed"),
])
def test_p5_refused_names_what_a_specific_refusal_lacks(fault: str, mutate: Mutation, match: str) -> None:
    fails(p05.check_refused, mutated(refused(fault), mutate), match)


# --- P6 WSP streaming --------------------------------------------------------------------------------------------

VIEW = [f"evt_{n:02d}" for n in range(1, 7)]
KILLED, RESTART = "wsp-55ddeacd2f65", "wsp-b39e13d9fb39"
VIEW_OBJECT = f"s3://fraud-platform-dev-min-oracle/oracle/{SCENARIO}/stream_view/card_transactions/part-00000.parquet"


def _place(event_id: str) -> tuple[int, int]:
    n = VIEW.index(event_id)
    return n % 2, n // 2


def _wsp_receipt(event_id: str, status: str, sender: str, request: int) -> Record:
    partition, offset = _place(event_id)
    return {"event_id": event_id, "status": status, "partition": partition, "offset": offset,
            "request_id": f"req-{request}", "sender": sender}


def stream_observed(admitted_before_kill: int = 2) -> Record:
    """wsp/stream_observed.json: WSP killed after its first batch, run again: the batch is DUPLICATE, the rest new."""
    killed = [_wsp_receipt(e, "ADMITTED", KILLED, 2) for e in VIEW[:admitted_before_kill]]
    restart = [_wsp_receipt(e, "DUPLICATE" if i < admitted_before_kill else "ADMITTED", RESTART, 3)
               for i, e in enumerate(VIEW)]
    probes = [{"event_id": "p4-invalid-980c9e9b", "status": "QUARANTINED", "partition": None, "offset": None,
               "request_id": "req-1", "sender": "spine-certify"}]
    summary = {"sender": RESTART, "platform_run_id": RUN, "sent": len(VIEW), "retries": 0,
               "receipts": {"ADMITTED": len(VIEW) - admitted_before_kill, "DUPLICATE": admitted_before_kill},
               "stream_view": {"keys": [VIEW_OBJECT], "rows": len(VIEW)}}
    return {
        "platform_run_id": RUN,
        "landed_removed": [f"s3://fraud-platform-dev-min-oracle/oracle/{SCENARIO}/_manifest.json",
                           f"s3://fraud-platform-dev-min-oracle/oracle/{SCENARIO}/card_transactions/part-00000.parquet"],
        "landed_remaining": [],
        "first_attempt": {"pid": 16004, "exit_code": -9, "requests_before_kill": 1, "pace_eps": 20, "batch_size": 2},
        "second_attempt": {"mode": "wsp", "exit_code": 0, "stderr_tail": [], "duration_s": 1.4},
        "view_objects": [VIEW_OBJECT],
        "view_event_ids": list(VIEW),
        "receipts": probes + killed + restart,
        "topic": [{"event_id": e, "partition": _place(e)[0], "offset": _place(e)[1], "platform_run_id": RUN,
                   "timestamp_ms": 1_795_617_681_328} for e in VIEW],
        "wsp_claims": {f"wsp/attempts/{RESTART}.json": summary, "wsp/stream_summary.json": summary},
    }


def _receipt_of(sender: str, event_id: str) -> Callable[[Record], Record]:
    return lambda r: next(x for x in r["receipts"] if x["sender"] == sender and x["event_id"] == event_id)


def _drop_receipt(sender: str, event_id: str) -> Mutation:
    return lambda r: r["receipts"].remove(_receipt_of(sender, event_id)(r))


def _swap_receipts(sender: str, a: str, b: str) -> Mutation:
    def mutate(r: Record) -> None:
        i, j = r["receipts"].index(_receipt_of(sender, a)(r)), r["receipts"].index(_receipt_of(sender, b)(r))
        r["receipts"][i], r["receipts"][j] = r["receipts"][j], r["receipts"][i]
    return mutate


def _resend_after(sender: str, event_id: str) -> Mutation:
    """The sender sends ``event_id`` a second time right after the first."""
    def mutate(r: Record) -> None:
        first = _receipt_of(sender, event_id)(r)
        r["receipts"].insert(r["receipts"].index(first) + 1, {**first, "status": "DUPLICATE"})
    return mutate


def _re_admitted(r: Record) -> None:
    """The restart publishes an event the killed attempt had already published: a new receipt and record."""
    _receipt_of(RESTART, "evt_01")(r).update(status="ADMITTED", offset=9)
    r["topic"].append({"event_id": "evt_01", "partition": 0, "offset": 9, "platform_run_id": RUN, "timestamp_ms": 2})


def _claims(r: Record) -> Record:
    return r["wsp_claims"][f"wsp/attempts/{RESTART}.json"]


@pytest.mark.parametrize("check", [p06.check_streamed_from_views, p06.check_order, p06.check_restart])
def test_p6_checks_pass_a_wsp_killed_mid_stream_and_run_again(check: Check) -> None:
    check(stream_observed())


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(lambda r: r["landed_remaining"].append(r["landed_removed"][0]),
                 r"raw landed objects still present: \['s3://.*/_manifest.json'\]", id="landed-objects-remain"),
    pytest.param(lambda r: r.update(landed_removed=[]), r"no raw landed object was found to remove",
                 id="nothing-landed"),
    pytest.param(lambda r: r["second_attempt"].update(exit_code=1, stderr_tail=["wsp: landed object missing"]),
                 r"wsp exited 1 with the raw landed objects removed: wsp: landed object missing",
                 id="needs-landed-objects"),
    pytest.param(lambda r: r["topic"].pop(3), r"1 stream view event\(s\) not admitted and on the topic: \['evt_04'\]",
                 id="view-event-not-on-topic"),
    pytest.param(_drop_receipt(RESTART, "evt_05"), r"1 stream view event\(s\) not admitted .*\['evt_05'\]",
                 id="view-event-without-receipt"),
    pytest.param(lambda r: _receipt_of(RESTART, "evt_06")(r).update(status="QUARANTINED"),
                 r"not admitted and on the topic: \['evt_06'\]", id="view-event-only-quarantined"),
    pytest.param(lambda r: r.update(view_event_ids=[]), r"the harness found no stream view rows", id="no-view-rows"),
])
def test_p6_streamed_from_views_names_what_did_not_come_from_the_view(mutate: Mutation, match: str) -> None:
    fails(p06.check_streamed_from_views, mutated(stream_observed(), mutate), match)


@pytest.mark.parametrize("event_id", ["evt_03", "evt_06"])
def test_p6_order_takes_a_retried_event_at_its_first_receipt(event_id: str) -> None:
    # WSP retries a batch IG did not answer: the resent events repeat, the stream order is unchanged.
    p06.check_order(mutated(stream_observed(), _resend_after(RESTART, event_id)))


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(_swap_receipts(RESTART, "evt_03", "evt_04"),
                 rf"{RESTART}: event #2 received was evt_04, the stream view's is evt_03", id="restart-out-of-order"),
    pytest.param(_swap_receipts(KILLED, "evt_01", "evt_02"),
                 rf"{KILLED}: event #0 received was evt_02, the stream view's is evt_01", id="killed-out-of-order"),
    pytest.param(_drop_receipt(RESTART, "evt_03"), rf"{RESTART}: event #2 received was evt_04", id="skips-an-event"),
    pytest.param(lambda r: r.update(receipts=r["receipts"][:1]), r"IG received no event of the stream view",
                 id="nothing-received"),
])
def test_p6_order_names_the_first_event_out_of_stream_order(mutate: Mutation, match: str) -> None:
    fails(p06.check_order, mutated(stream_observed(), mutate), match)


@pytest.mark.parametrize(("record", "match"), [
    pytest.param(stream_observed(admitted_before_kill=6),
                 r"the killed attempt admitted 6 of 6 events: it was not killed mid-stream", id="admitted-everything"),
    pytest.param(stream_observed(admitted_before_kill=0),
                 rf"expected receipts from the killed attempt and the restart, found senders \['{RESTART}'\]",
                 id="killed-attempt-sent-nothing"),
    pytest.param(mutated(stream_observed(), _re_admitted), r"not DUPLICATE on restart: \['evt_01'\]",
                 id="re-admitted-on-restart"),
    pytest.param(mutated(stream_observed(), lambda r: _receipt_of(RESTART, "evt_02")(r).update(status="QUARANTINED")),
                 r"not DUPLICATE on restart: \['evt_02'\]", id="quarantined-on-restart"),
    pytest.param(mutated(stream_observed(), _re_admitted),
                 r"events on the traffic topic more than once: \['evt_01'\]", id="twice-on-topic-after-restart"),
    pytest.param(mutated(stream_observed(), lambda r: r["topic"].append({**r["topic"][4], "offset": 7})),
                 r"events on the traffic topic more than once: \['evt_05'\]", id="twice-on-topic"),
    pytest.param(mutated(stream_observed(), lambda r: _claims(r).update(receipts={"ADMITTED": 6})),
                 rf"WSP's summary claims 6 sent \{{'ADMITTED': 6\}}, IG's receipts for {RESTART} show "
                 r"\{'DUPLICATE': 2, 'ADMITTED': 4\}", id="summary-claims-other-statuses"),
    pytest.param(mutated(stream_observed(), lambda r: _claims(r).update(sent=7)),
                 r"WSP's summary claims 7 sent", id="summary-claims-other-sent"),
    pytest.param(mutated(stream_observed(), lambda r: r["wsp_claims"].pop(f"wsp/attempts/{RESTART}.json")),
                 rf"no wsp/attempts summary for the completing attempt \['{RESTART}'\]", id="no-attempt-summary"),
])
def test_p6_restart_names_a_restart_that_added_records_or_a_wsp_that_lies(record: Record, match: str) -> None:
    fails(p06.check_restart, record, match)


def test_p6_restart_cannot_be_judged_when_the_first_attempt_finished() -> None:
    record = mutated(stream_observed(admitted_before_kill=6), lambda r: r["first_attempt"].update(exit_code=0))
    with pytest.raises(HarnessError, match="finished before it could be killed mid-stream") as caught:
        p06.check_restart(record)
    assert not isinstance(caught.value, Finding)  # the harness's pacing failed, not the platform


def withheld_view() -> Record:
    """wsp/withheld_view_refused.json: WSP names the missing stream view and sends nothing."""
    return {"platform_run_id": RUN, "withheld": [VIEW_OBJECT], "receipt_objects_before": 3,
            "receipt_objects_after": 3, "topic_records_before": 20, "topic_records_after": 20,
            "wsp": {"mode": "wsp", "exit_code": 1, "stderr_tail": [
                f"wsp: stream view {VIEW_OBJECT} is missing: nothing is sent "
                "(WSP never falls back to landed objects)"]}}


def test_p6_withheld_refused_passes_a_wsp_that_names_the_view_and_sends_nothing() -> None:
    p06.check_withheld_refused(withheld_view())


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(lambda r: r.update(receipt_objects_after=4),
                 r"IG received 1 request\(s\) while the stream view was withheld", id="sent-a-request"),
    pytest.param(lambda r: r.update(topic_records_after=21), r"the traffic topic grew while the stream view was "
                 r"withheld", id="topic-grew"),
    pytest.param(lambda r: r["wsp"].update(exit_code=0, stderr_tail=[]),
                 r"wsp exited 0 with the stream view withheld, not 1", id="exit-0"),
    pytest.param(lambda r: r["wsp"].update(stderr_tail=["wsp: a stream view is missing"]),
                 r"wsp's refusal does not name the withheld stream view", id="view-unnamed"),
])
def test_p6_withheld_refused_names_a_wsp_that_streamed_without_its_view(mutate: Mutation, match: str) -> None:
    fails(p06.check_withheld_refused, mutated(withheld_view(), mutate), match)
