"""D1, D2, D3 and D7 judges: a compliant recorded observation passes; each mutation, the way a platform that did
not fail closed would leave it, is named. Plus the rotated writer key never reaching anything the harness writes."""

from __future__ import annotations

import json
import re
from typing import Any
from unittest import mock

import pytest
from check_records import RUN, SCENARIO, Mutation, Record, mutated

from harness import redact
from harness.aws.ssm import Parameter
from harness.drills import faults, ingress
from harness.errors import HarnessError
from harness.phases import p01

VIEW = [f"evt_{n:016x}" for n in range(4)]
T = 1_795_000_000_000  # the rotation / the freeze, in ms


def _receipt(event_id: str, offset: int, *, status: str = "ADMITTED", sender: str = "wsp-old",
             at: int = T - 300, **extra: Any) -> Record:
    placed = {"partition": 0, "offset": offset} if status in ("ADMITTED", "DUPLICATE") else {}
    return {"event_id": event_id, "status": status, "sender": sender, "received_at_ms": at,
            "request_id": f"req-{sender}", **placed, **extra}


def _record(event_id: str, offset: int, *, run: str = RUN, ts: int = T - 500) -> Record:
    return {"partition": 0, "offset": offset, "timestamp_ms": ts, "event_id": event_id, "platform_run_id": run,
            "event": {"event_id": event_id, "platform_run_id": run}}


def _ledger() -> tuple[list[Record], list[Record]]:
    """The run's four events, each admitted once at its own record."""
    return [_receipt(e, i) for i, e in enumerate(VIEW)], [_record(e, i) for i, e in enumerate(VIEW)]


def _problems(found: list[str], match: str) -> None:
    assert any(re.search(match, p) for p in found), found


# --- exactly once -----------------------------------------------------------------------------------------------


def test_exactly_once_passes_a_compliant_ledger() -> None:
    receipts, topic = _ledger()
    duplicate = _receipt(VIEW[0], 0, status="DUPLICATE", sender="wsp-new")
    assert ingress.exactly_once(RUN, VIEW, [*receipts, duplicate], [*topic, _record("other", 9, run="run-other")]) == []


LEDGER_FAULTS = [
    pytest.param(lambda r, t: t.append(_record(VIEW[1], 7)), r"not on the traffic topic exactly once: evt_0+1 \(2\)",
                 id="duplicate-record"),
    pytest.param(lambda r, t: (r.pop(2), t.pop(2)), r"without exactly one ADMITTED receipt: evt_0+2 \(0\)",
                 id="lost-event"),
    pytest.param(lambda r, t: r.append(_receipt(VIEW[3], 3, sender="wsp-new")),
                 r"without exactly one ADMITTED receipt: evt_0+3 \(2\)", id="admitted-twice"),
    pytest.param(lambda r, t: r[1].update(offset=2), r"ADMITTED evt_0+1 names 0/2, which holds evt_0+2",
                 id="receipt-names-another-record"),
    pytest.param(lambda r, t: r[1].update(offset=40), r"ADMITTED evt_0+1 names 0/40, which holds no record",
                 id="admitted-without-a-record"),
    pytest.param(lambda r, t: t.append(_record(VIEW[0], 5)), r"without an ADMITTED receipt: 0/5 \(evt_0+\)",
                 id="record-without-a-receipt"),
    pytest.param(lambda r, t: (r.append(_receipt("poison", 6)), t.append(_record("poison", 6))),
                 r"not in the stream view: \['poison'\]", id="admitted-outside-the-view"),
    pytest.param(lambda r, t: r.append(_receipt("amb", 0, status="PUBLISH_AMBIGUOUS")),
                 r"PUBLISH_AMBIGUOUS never reconciled .*\['amb'\]", id="ambiguity-left"),
]


@pytest.mark.parametrize(("mutate", "match"), LEDGER_FAULTS)
def test_exactly_once_names_what_was_lost_doubled_or_unreceipted(mutate: Any, match: str) -> None:
    receipts, topic = _ledger()
    mutate(receipts, topic)
    _problems(ingress.exactly_once(RUN, VIEW, receipts, topic), match)


def test_exactly_once_accepts_an_ambiguous_publish_reconciled_by_an_admitted_receipt() -> None:
    receipts, topic = _ledger()
    receipts.insert(0, _receipt(VIEW[2], 0, status="PUBLISH_AMBIGUOUS", reason="_MSG_TIMED_OUT"))
    receipts[3]["reason"] = "reconciled: the earlier publish is on the topic"
    assert ingress.exactly_once(RUN, VIEW, receipts, topic) == []


# --- D1 writer key rotated --------------------------------------------------------------------------------------


def rotation_record() -> Record:
    """What D1 recorded: the old key accepted inside the window, refused after it; the old WSP refused with 403."""
    receipts, topic = _ledger()
    receipts[2:] = [_receipt(e, i + 2, at=T + 600) for i, e in enumerate(VIEW[2:])]  # inside the second
    return {"platform_run_id": RUN, "view_event_ids": VIEW,
            "rotation": {"path": "/p/ig/api_key", "version_before": 1, "version_after": 2, "rotated_at_ms": T,
                         "window_s": 1.0},
            "old_key_polls": [{"sent_at_ms": T + 10, "status": 400}, {"sent_at_ms": T + 700, "status": 400},
                              {"sent_at_ms": T + 900, "status": 403}],
            "old_wsp": {"pid": 7, "exit_code": 1, "timed_out": False,
                        "output_tail": 'wsp: IG refused the writer key (403): {"error":"wrong writer key"}'},
            "probe": {"event_id": "d1-old-key-1", "answer": {"status": 403, "body": {"error": "wrong writer key"}}},
            "receipts": receipts, "topic": topic, "probe_dedupe_items": {"d1-old-key-1": None}}


def test_rotation_judge_passes_a_key_refused_within_its_window() -> None:
    assert ingress.judge_rotation(rotation_record()) == []


ROTATION_FAULTS = [
    pytest.param(lambda r: r["old_key_polls"].append({"sent_at_ms": T + 1500, "status": 400}),
                 r"accepted the old key 1\.50s after the rotation", id="old-key-accepted-late"),
    pytest.param(lambda r: r["old_key_polls"].__setitem__(slice(None), [{"sent_at_ms": T + 5, "status": 400}]),
                 r"never refused the old key", id="old-key-never-refused"),
    pytest.param(lambda r: r["probe"]["answer"].update(status=200), r"old key after the rotation was answered 200",
                 id="old-key-event-answered"),
    pytest.param(lambda r: r["receipts"].append(_receipt("d1-old-key-1", 9, sender="d1-old-key-probe", at=T + 2000)),
                 r"old key's event d1-old-key-1 has a receipt", id="old-key-event-receipted"),
    pytest.param(lambda r: r["topic"].append(_record("d1-old-key-1", 9)),
                 r"old key's event d1-old-key-1 is on the traffic topic at 0/9", id="old-key-event-published"),
    pytest.param(lambda r: r["probe_dedupe_items"].update({"d1-old-key-1": {"state": "PENDING"}}),
                 r"has a dedupe item", id="old-key-event-claimed"),
    pytest.param(lambda r: r["receipts"].append(_receipt(VIEW[3], 3, status="DUPLICATE", at=T + 1400)),
                 r"1 receipt\(s\) for requests with the old key received after the rotation took effect",
                 id="old-wsp-receipted-after-the-window"),
    pytest.param(lambda r: r["old_wsp"].update(output_tail="wsp: IG answered 500"), r"without a 401/403 from IG",
                 id="old-wsp-stopped-for-another-reason"),
    pytest.param(lambda r: r["old_wsp"].update(timed_out=True, exit_code=None), r"kept running for 120s",
                 id="old-wsp-never-stopped"),
]


@pytest.mark.parametrize(("mutate", "match"), ROTATION_FAULTS)
def test_rotation_judge_names_an_old_key_that_still_works(mutate: Mutation, match: str) -> None:
    _problems(ingress.judge_rotation(mutated(rotation_record(), mutate)), match)


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(lambda r: r["old_wsp"].update(exit_code=0), r"finished \(exit 0\) before the rotation",
                 id="wsp-finished-first"),
    pytest.param(lambda r: [x.update(received_at_ms=T + 1) for x in r["receipts"]], r"no request .* before the "
                 "rotation", id="nothing-sent-before"),
])
def test_rotation_that_did_not_land_mid_stream_cannot_be_judged(mutate: Mutation, match: str) -> None:
    with pytest.raises(HarnessError, match=match):
        ingress.judge_rotation(mutated(rotation_record(), mutate))


def test_a_rotated_key_is_registered_before_it_is_written_and_never_shown() -> None:
    written: list[tuple[str, str, bool]] = []
    versions = iter([Parameter("/p/ig/api_key", "SecureString", 1, "the-old-writer-key-123"),
                     Parameter("/p/ig/api_key", "SecureString", 2, "unused")])

    def put(aws: Any, name: str, value: str, *, secure: bool) -> None:
        assert redact.scrub(value) == redact.MASK  # registered before SSM ever holds it
        written.append((name, value, secure))

    cert = mock.Mock()
    cert.handles.ssm = {"ig_api_key": "/p/ig/api_key"}
    with mock.patch.object(faults.ssm, "get", lambda aws, name: next(versions)), \
            mock.patch.object(faults.ssm, "put", put):
        rotation = faults.rotate_secret(cert, "ig_api_key")
    ((name, new, secure),) = written
    assert (name, secure, rotation.new) == ("/p/ig/api_key", True, new) and new != rotation.old
    shown = json.dumps(rotation.to_json()) + repr(rotation)
    assert new not in shown and rotation.old not in shown
    assert rotation.to_json() == {"path": "/p/ig/api_key", "version_before": 1, "version_after": 2,
                                  "rotated_at_ms": rotation.rotated_at_ms}


# --- D2 broker frozen -------------------------------------------------------------------------------------------


def frozen_record() -> Record:
    """What D2 recorded: the harness's event answered PUBLISH_AMBIGUOUS, the bus reported down, one receipt answered
    while frozen for a record produced before the freeze, the reporter refused and left the lock free."""
    _, topic = _ledger()
    ambiguous = {"event_id": VIEW[3], "index": 0, "status": "PUBLISH_AMBIGUOUS", "reason": "_MSG_TIMED_OUT"}
    return {"platform_run_id": RUN,
            "freeze": {"frozen": True, "frozen_at_ms": T, "process_group": 9, "wsp_alive": True},
            "health": [{"status": 200}, {"status": 503, "body": {"bus": {"connected": False}}}],
            "probe": {"event_id": VIEW[3], "answer": {"status": 200, "body": {"receipts": [ambiguous]}}},
            "receipts_while_frozen": [{**ambiguous, "request_id": "r2"},
                                      {"event_id": VIEW[0], "status": "ADMITTED", "partition": 0, "offset": 0}],
            "topic": topic,
            "reporter": {"outcome": {"reporter": "reporter-while-frozen-1", "exit_code": 1, "stderr": "does not close",
                                     "conflict": None, "refused": {"open": [{"check": "admitted_events = x"}]}},
                         "run_completed": False, "lock": {"state": "RELEASED", "token": 1}}}


def test_frozen_judge_passes_a_platform_that_failed_closed() -> None:
    assert ingress.judge_frozen(frozen_record()) == []


def test_frozen_judge_accepts_a_refusal_instead_of_ambiguity() -> None:
    refused = mutated(frozen_record(), lambda r: r["probe"].update(answer={"status": 503, "body": {"error": "bus"}}))
    assert ingress.judge_frozen(refused) == []


FROZEN_FAULTS = [
    pytest.param(lambda r: r["probe"]["answer"]["body"]["receipts"][0].update(status="ADMITTED"),
                 r"got receipt ADMITTED: no delivery report can come from a stopped broker", id="admitted-frozen"),
    pytest.param(lambda r: r["probe"].update(answer={"status": 500, "body": {}}), r"answered 500, neither refused",
                 id="answered-otherwise"),
    pytest.param(lambda r: r["probe"]["answer"]["body"].update(receipts=[]), r"answered 200 with 0 receipt\(s\)",
                 id="answered-200-with-no-receipt"),
    pytest.param(lambda r: r["probe"]["answer"]["body"]["receipts"][0].update(event_id="evt-other"),
                 r"answered 200 with 0 receipt\(s\) for it", id="receipt-for-another-event"),
    pytest.param(lambda r: r.update(health=[{"status": 200}]), r"never reported its bus down", id="bus-claimed-up"),
    pytest.param(lambda r: r["topic"][0].update(timestamp_ms=T + 40),
                 r"ADMITTED evt_0+ answered while the broker was frozen for a record produced after it stopped",
                 id="admitted-record-produced-while-frozen"),
    pytest.param(lambda r: r["receipts_while_frozen"][1].update(offset=30), r"names 0/30, which does not hold it",
                 id="admitted-record-missing"),
    pytest.param(lambda r: r["reporter"]["outcome"].update(exit_code=0), r"exited 0, not 1", id="reporter-closed"),
    pytest.param(lambda r: r["reporter"]["outcome"].update(refused=None), r"wrote no obs/refused_",
                 id="no-refusal-evidence"),
    pytest.param(lambda r: r["reporter"].update(run_completed=True), r"run_completed.json exists",
                 id="green-closure-while-frozen"),
    pytest.param(lambda r: r["reporter"].update(lock={"state": "CLOSED"}), r"left the lock", id="lock-held"),
]


@pytest.mark.parametrize(("mutate", "match"), FROZEN_FAULTS)
def test_frozen_judge_names_what_did_not_fail_closed(mutate: Mutation, match: str) -> None:
    _problems(ingress.judge_frozen(mutated(frozen_record(), mutate)), match)


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(lambda r: r["freeze"].update(frozen=False), r"not stopped after SIGSTOP", id="not-frozen"),
    pytest.param(lambda r: r["freeze"].update(wsp_alive=False), r"did not land mid-stream", id="not-mid-stream"),
])
def test_a_freeze_that_did_not_hold_cannot_be_judged(mutate: Mutation, match: str) -> None:
    with pytest.raises(HarnessError, match=match):
        ingress.judge_frozen(mutated(frozen_record(), mutate))


# --- D3 IG killed mid-batch -------------------------------------------------------------------------------------


def killed_record() -> Record:
    """What D3 recorded: two claims PENDING when IG died, nothing receipted; afterwards all admitted once."""
    receipts, topic = _ledger()
    return {"platform_run_id": RUN, "view_event_ids": VIEW,
            "killed": {"pending_event_id": VIEW[0], "exit_code": -9, "batch": VIEW[:2]},
            "left": {"items": {VIEW[0]: "PENDING", VIEW[1]: "PENDING"}, "receipted": [], "on_topic": []},
            "wsp": {"exit_code": 0}, "resumed": None,
            "after": {"items": dict.fromkeys(VIEW, "ADMITTED"), "receipts": receipts, "topic": topic}}


def test_killed_judge_passes_a_batch_reconciled_by_the_new_ig() -> None:
    assert ingress.judge_killed(killed_record()) == []


KILLED_FAULTS = [
    pytest.param(lambda r: r["after"]["items"].update({VIEW[1]: "PENDING"}), r"not ADMITTED after IG came back",
                 id="claim-left-pending"),
    pytest.param(lambda r: r.update(wsp={"exit_code": 1}, resumed={"exit_code": 1}), r"no WSP completed the run",
                 id="run-never-completed"),
    pytest.param(lambda r: (r["after"]["receipts"].pop(0), r["after"]["topic"].pop(0)),
                 r"without exactly one ADMITTED receipt: evt_0+ \(0\)", id="cut-batch-lost"),
    pytest.param(lambda r: r["after"]["topic"].append(_record(VIEW[0], 8)),
                 r"not on the traffic topic exactly once: evt_0+ \(2\)", id="cut-batch-published-twice"),
    pytest.param(lambda r: r["after"]["receipts"][0].update(status="DUPLICATE"),
                 r"record\(s\) of the run on the traffic topic without an ADMITTED receipt: 0/0",
                 id="cut-batch-answered-duplicate"),
]


@pytest.mark.parametrize(("mutate", "match"), KILLED_FAULTS)
def test_killed_judge_names_what_the_kill_lost_or_doubled(mutate: Mutation, match: str) -> None:
    _problems(ingress.judge_killed(mutated(killed_record(), mutate)), match)


def test_a_kill_that_cut_no_batch_cannot_be_judged() -> None:
    settled = mutated(killed_record(), lambda r: r["left"].update(items={VIEW[0]: "ADMITTED", VIEW[1]: "ADMITTED"}))
    with pytest.raises(HarnessError, match="did not cut a batch"):
        ingress.judge_killed(settled)


# --- D7 poison event --------------------------------------------------------------------------------------------


def _pins() -> p01.Pins:
    return p01.Pins(RUN, SCENARIO, {}, "0" * 64, {})


REAL = {"event_id": VIEW[3], "event_type": "card_transaction", "platform_run_id": RUN, "scenario_run_id": SCENARIO,
        "ts_utc": "2026-01-01T00:00:03Z", "payload": {"card_id": "c1", "merchant_id": "m1", "amount_minor": 700,
                                                     "currency": "EUR", "channel": "ecom"}}  # a stream-view event


def poison_record() -> Record:
    """What D7 recorded: five poison values quarantined with their objects; the run's events flow as usual."""
    poison = ingress.poison_events(_pins())
    urls = [f"s3://quarantine/{RUN}/p{i}.json" for i in range(len(poison))]
    receipts = [{"index": i, "event_id": p["event"].get("event_id") if isinstance(p["event"], dict) else None,
                 "status": "QUARANTINED", "reason": "schema-invalid: ...", "quarantine": url}
                for i, (p, url) in enumerate(zip(poison, urls, strict=True))]
    enriched = {**REAL, "traffic": {"partition": 0, "offset": 3}, "features": {}}
    return {"platform_run_id": RUN, "poison": poison, "view_event_ids": VIEW,
            "answer": {"status": 200, "body": {"receipts": receipts}},
            "quarantine_objects": {url: {"event": p["event"], "reason": "schema-invalid: ..."}
                                   for p, url in zip(poison, urls, strict=True)},
            "traffic": [{"partition": 0, "offset": 3, "value": json.dumps(REAL)}],
            "rtdl": [{"partition": 0, "offset": 0, "value": enriched}],
            "decision": [{"partition": 0, "offset": 0, "value": {"event_id": VIEW[3], "decision": "APPROVE"}}],
            "dla": [{"decision_id": "dec_1", "event_id": VIEW[3], "decision": "APPROVE"}], "cases": []}


def _unique_poison(record: Record) -> str:
    return str(record["poison"][2]["event"]["event_id"])


def test_poison_judge_passes_quarantined_poison_that_reached_nothing() -> None:
    assert ingress.judge_poison(poison_record()) == []


def test_the_poison_batch_holds_every_kind_once_each_under_an_identity_of_its_own() -> None:
    poison = ingress.poison_events(_pins())
    kinds = [p["kind"] for p in poison]
    assert len(kinds) == len(set(kinds)) == 5
    ids = [p["event"].get("event_id") for p in poison if isinstance(p["event"], dict)]
    assert len(ids) == len(set(ids)) == 4 and not set(ids) & set(VIEW)
    assert all(isinstance(p["event"], dict) or p["kind"] == "not an object" for p in poison)


POISON_FAULTS = [
    pytest.param(lambda r: r["answer"]["body"]["receipts"][2].update(status="ADMITTED"),
                 r"poison #2 \(wrong type: amount_minor a string\): receipt .* not QUARANTINED", id="admitted"),
    pytest.param(lambda r: r["answer"]["body"]["receipts"].pop(4), r"poison #4 \(not an object\): receipt None",
                 id="no-receipt"),
    pytest.param(lambda r: r["quarantine_objects"].clear(), r"poison #0 .*: no quarantine object",
                 id="no-quarantine-object"),
    pytest.param(lambda r: next(iter(r["quarantine_objects"].values())).update(event={"other": 1}),
                 r"poison #0 .*: no quarantine object holding it", id="quarantine-object-of-something-else"),
    pytest.param(lambda r: r["traffic"].append({"partition": 1, "offset": 0,
                                                "value": json.dumps(r["poison"][1]["event"])}),
                 r"poison #1 .* is on the traffic topic at 1/0", id="poison-published"),
    pytest.param(lambda r: r["traffic"].append({"partition": 1, "offset": 1,
                                                "value": json.dumps({"event_id": _unique_poison(r)})}),
                 r"poison #2 .*: event id d7-wrong-type-\w+ is on the traffic topic at 1/1", id="poison-id-published"),
    pytest.param(lambda r: r["rtdl"].append({"partition": 2, "offset": 0, "value": {"event_id": _unique_poison(r)}}),
                 r"is on the rtdl topic at 2/0", id="poison-enriched"),
    pytest.param(lambda r: r["decision"].append({"partition": 2, "offset": 1,
                                                 "value": {"event_id": _unique_poison(r)}}),
                 r"is on the decision topic at 2/1", id="poison-decided"),
    pytest.param(lambda r: r["dla"].append({"decision_id": "dec_p", "event_id": _unique_poison(r), "decision": "x"}),
                 r"has DLA row dec_p", id="poison-in-the-dla"),
    pytest.param(lambda r: r["cases"].append({"case_id": "case_p", "event_id": _unique_poison(r), "decision": "x"}),
                 r"has case case_p", id="poison-opened-a-case"),
    pytest.param(lambda r: r["dla"].append({"decision_id": "dec_n", "event_id": r["poison"][3]["event"]["event_id"],
                                            "decision": "x"}), r"poison #3 \(wrong type: event_id a number\): event "
                 r"id \d+ has DLA row dec_n", id="numeric-id-decided"),
    pytest.param(lambda r: r["answer"].update(status=401, body={"error": "missing writer key"}), r"answered the poison "
                 "batch with the writer key 401", id="refused-with-the-writer-key"),
]


@pytest.mark.parametrize(("mutate", "match"), POISON_FAULTS)
def test_poison_judge_names_poison_that_got_past_ig(mutate: Mutation, match: str) -> None:
    _problems(ingress.judge_poison(mutated(poison_record(), mutate)), match)
