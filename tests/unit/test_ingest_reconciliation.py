"""P7: judge, a pure function of the observation, passes a compliant one and names each lie in its family."""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from check_records import OTHER_RUN, RUN, SCENARIO, Mutation, Record, mutated

from harness.errors import Finding
from harness.phases import p07

PROBES = {"invalid": "p4-invalid-980c9e9b", "other-run": "p4-other-run-980c9e9b"}
# event id -> (partition, offset, ts_utc, payload)
EVENTS: dict[str, tuple[int, int, str, Record]] = {
    "evt_a": (1, 0, "2025-02-12T01:32:23.095614Z", {"amount_minor": 1423, "card_id": "card_dc", "channel": "ecom",
                                                    "currency": "GBP", "merchant_id": "mer_e8"}),
    "evt_b": (2, 0, "2025-02-12T06:27:06.839555Z", {"amount_minor": 636, "card_id": "card_9f", "channel": "ecom",
                                                    "currency": "GBP", "merchant_id": "mer_e8"}),
    "evt_c": (1, 1, "2025-02-12T09:42:37.768101Z", {"amount_minor": 1047, "card_id": "card_af",
                                                    "channel": "contactless", "currency": "EUR",
                                                    "merchant_id": "mer_d1"}),
    "evt_d": (0, 0, "2025-02-12T11:00:00.000001Z", {"amount_minor": 5, "card_id": "card_01", "channel": "pos",
                                                    "currency": "EUR", "merchant_id": "mer_d1"}),
}
FOREIGN_AT = (0, 1)  # a record of another run, reconciled with that run


def _envelope(event_id: str, *, run: str = RUN, ts_utc: str | None = None, payload: Record | None = None) -> Record:
    _p, _o, ts, body = EVENTS.get(event_id, (0, 0, "2026-01-01T00:00:00Z", {"amount_minor": 1}))
    return {"event_id": event_id, "event_type": "card_transaction", "platform_run_id": run,
            "scenario_run_id": SCENARIO, "ts_utc": ts_utc or ts, "payload": dict(payload or body)}


def topic_record(partition: int, offset: int, event: Record | None) -> Record:
    """One record of the traffic topic as the harness decoded it (event None: not an event envelope)."""
    return {"partition": partition, "offset": offset, "timestamp_ms": 1_795_617_681_328 + offset,
            "event_id": event and event["event_id"], "platform_run_id": event and event["platform_run_id"],
            "event": event}


def receipt(event_id: str, status: str, *, partition: int | None = None, offset: int | None = None,
            request: int = 2, reason: str | None = None) -> Record:
    return {"event_id": event_id, "status": status, "partition": partition, "offset": offset, "reason": reason,
            "request_id": f"0ef0f89cec9c-{request:08d}"}


def _admitted(event_id: str, status: str = "ADMITTED", request: int = 2) -> Record:
    partition, offset, _ts, _payload = EVENTS[event_id]
    return receipt(event_id, status, partition=partition, offset=offset, request=request)


def claim_consistently(obs: Record) -> Record:
    """IG's three summaries, written as a compliant IG would from its receipts."""
    counts = Counter(r["status"] for r in obs["receipts"])
    ends: dict[str, int] = {}
    for r in obs["receipts"]:
        if r["status"] == "ADMITTED":
            ends[str(r["partition"])] = max(ends.get(str(r["partition"]), 0), r["offset"] + 1)
    obs["claims"] = {
        "ingest/receipt_summary.json": {"platform_run_id": RUN, "events": len(obs["receipts"]), "requests": 3,
                                        "counts": {s: counts.get(s, 0) for s in p07.STATUSES},
                                        "ambiguous_event_ids": sorted(r["event_id"] for r in obs["receipts"]
                                                                      if r["status"] == "PUBLISH_AMBIGUOUS")},
        "ingest/quarantine_summary.json": {"platform_run_id": RUN, "count": counts.get("QUARANTINED", 0)},
        "ingest/kafka_offsets_snapshot.json": {"platform_run_id": RUN, "offsets_from": "delivery reports",
                                               "partitions": {p: {"acked_end_offset": end, "acked_min_offset": 0}
                                                              for p, end in ends.items()}},
    }
    return obs


def observation(*, profile: str = "dev_min") -> Record:
    """What p07.observe reads for a compliant run (modelled on a passing run's ingest/reconciliation.json).

    Four stream view events, each ADMITTED once and on the topic once, one re-sent as DUPLICATE, two P4 probes
    QUARANTINED, IG's summaries agreeing with its receipts, and a record of another run this run does not answer for.
    """
    receipts = [receipt(PROBES["invalid"], "QUARANTINED", request=1, reason="schema-invalid: missing payload"),
                receipt(PROBES["other-run"], "QUARANTINED", request=1, reason="another run's event"),
                _admitted("evt_a"), _admitted("evt_b"),
                _admitted("evt_a", "DUPLICATE", request=3), _admitted("evt_c", request=3),
                _admitted("evt_d", request=3)]
    topic = [topic_record(p, o, _envelope(e)) for e, (p, o, _ts, _payload) in EVENTS.items()]
    topic.append(topic_record(*FOREIGN_AT, _envelope("rogue-1", run=OTHER_RUN)))
    expected = [{"event_id": e, "ts_utc": ts, "payload": dict(payload)} for e, (_p, _o, ts, payload) in EVENTS.items()]
    obs = {"platform_run_id": RUN, "scenario_run_id": SCENARIO, "profile": profile, "receipts": receipts,
           "topic": sorted(topic, key=lambda e: (e["partition"], e["offset"])), "expected": expected,
           "broker_watermarks": {"0": [0, 2], "1": [0, 2], "2": [0, 1]}}
    return claim_consistently(obs)


def ambiguous(event_id: str) -> Record:
    """A compliant observation where IG could not confirm ``event_id``'s publish: PUBLISH_AMBIGUOUS, yet on the
    topic exactly once (reconciled)."""
    obs = observation()
    obs["receipts"] = [receipt(event_id, "PUBLISH_AMBIGUOUS", request=3, reason="delivery report timed out")
                       if r["event_id"] == event_id and r["status"] == "ADMITTED" else r for r in obs["receipts"]]
    return claim_consistently(obs)



def judge_fails(obs: Record, match: str) -> Finding:
    with pytest.raises(Finding, match=match) as caught:
        p07.check(p07.judge(obs), *p07.FAMILIES)
    return caught.value


def _receipt_of(event_id: str, status: str = "ADMITTED") -> Callable[[Record], Record]:
    return lambda o: next(r for r in o["receipts"] if r["event_id"] == event_id and r["status"] == status)


def _at(partition: int, offset: int) -> Callable[[Record], Record]:
    return lambda o: next(e for e in o["topic"] if (e["partition"], e["offset"]) == (partition, offset))


def _drop_record(event_id: str) -> Mutation:
    return lambda o: o["topic"].remove(next(e for e in o["topic"] if e["event_id"] == event_id))


def _publish(event: Record, partition: int = 2, offset: int = 1) -> Mutation:
    return lambda o: o["topic"].append(topic_record(partition, offset, event))


def _summary(o: Record) -> Record:
    return o["claims"]["ingest/receipt_summary.json"]


def _snapshot(o: Record) -> Record:
    return o["claims"]["ingest/kafka_offsets_snapshot.json"]["partitions"]


def _field(name: str, value: Any) -> Mutation:
    return lambda o: _at(1, 1)(o)["event"]["payload"].update({name: value})


def test_judge_finds_no_problem_in_a_compliant_observation() -> None:
    verdict = p07.judge(observation())
    p07.check(verdict, *p07.FAMILIES)
    assert verdict["counts"] == {"ADMITTED": 4, "DUPLICATE": 1, "QUARANTINED": 2, "PUBLISH_AMBIGUOUS": 0}
    assert verdict["acked_end_offsets"] == {0: 1, 1: 2, 2: 1}
    assert verdict["waived"] == {}


def test_judge_is_a_pure_function_of_the_observation() -> None:
    obs = observation()
    before = copy.deepcopy(obs)
    assert p07.judge(obs) == p07.judge(obs)
    assert obs == before


def test_a_reconciled_publish_ambiguous_event_passes() -> None:
    verdict = p07.judge(ambiguous("evt_c"))
    p07.check(verdict, *p07.FAMILIES)
    assert verdict["counts"]["PUBLISH_AMBIGUOUS"] == 1


@pytest.mark.parametrize(("mutate", "match"), [
    # receipts_to_records: an ADMITTED receipt names a position; the harness reads what is there.
    pytest.param(lambda o: _receipt_of("evt_c")(o).update(partition=2, offset=0),
                 r"receipts_to_records: ADMITTED evt_c names 2/0, which holds evt_b", id="admitted-at-another-event"),
    pytest.param(lambda o: _receipt_of("evt_c")(o).update(offset=7),
                 r"receipts_to_records: ADMITTED evt_c names 1/7: no record there", id="admitted-at-nothing"),
    pytest.param(lambda o: _receipt_of("evt_c")(o).update(partition=None, offset=None),
                 r"receipts_to_records: ADMITTED evt_c names None/None: no record there", id="admitted-at-no-position"),
    pytest.param(lambda o: _receipt_of("evt_a", "DUPLICATE")(o).update(status="ADMITTED"),
                 r"receipts_to_records: evt_a has 2 ADMITTED receipts", id="admitted-twice"),
    # unreceipted_records: every record of the run on the topic has a receipt.
    pytest.param(lambda o: o["receipts"].remove(_receipt_of("evt_d")(o)),
                 r"unreceipted_records: record at 0/0 \(event evt_d\) has no receipt", id="record-without-receipt"),
    pytest.param(_publish(_envelope("evt_x")), r"unreceipted_records: record at 2/1 \(event evt_x\) has no receipt",
                 id="record-written-around-ig"),
    pytest.param(lambda o: o["topic"].append(topic_record(2, 1, None)),
                 r"unreceipted_records: record at 2/1 is not an event envelope", id="record-not-an-envelope"),
    # refused_not_published: nothing QUARANTINED is on the topic, nothing is on it twice.
    pytest.param(_publish(_envelope(PROBES["invalid"])),
                 rf"refused_not_published: QUARANTINED {PROBES['invalid']} is on the traffic topic",
                 id="quarantined-on-topic"),
    pytest.param(_publish(_envelope("evt_b")), r"refused_not_published: event evt_b is on the traffic topic 2 times",
                 id="on-topic-twice"),
    # stream_view: the run's records are exactly the stream view's rows, field by field.
    pytest.param(lambda o: (o["receipts"].remove(_receipt_of("evt_d")(o)), _drop_record("evt_d")(o)),
                 r"stream_view: 1 stream view event\(s\) not on the topic: \['evt_d'\]", id="view-event-missing"),
    pytest.param(lambda o: (o["receipts"].append(receipt("evt_x", "ADMITTED", partition=2, offset=1)),
                            _publish(_envelope("evt_x"))(o)),
                 r"stream_view: 1 event\(s\) on the topic that the stream view lacks: \['evt_x'\]", id="extra-event"),
    pytest.param(lambda o: o.update(expected=[]), r"stream_view: the harness read no stream view rows for the run",
                 id="no-view-rows"),
    *[pytest.param(_field(name, value), rf"stream_view: event evt_c on the topic differs from its stream view row "
                   rf".*'payload': \(\{{.*'{name}': {value!r}", id=f"payload-{name}-differs")
      for name, value in (("amount_minor", 1048), ("card_id", "card_00"), ("channel", "ecom"), ("currency", "GBP"),
                          ("merchant_id", "mer_00"))],
    pytest.param(lambda o: _at(1, 1)(o)["event"]["payload"].update(amount_minor="1047"),
                 r"stream_view: event evt_c on the topic differs", id="payload-amount-as-text"),
    pytest.param(lambda o: _at(1, 1)(o)["event"]["payload"].pop("channel"),
                 r"stream_view: event evt_c on the topic differs", id="payload-field-dropped"),
    pytest.param(lambda o: _at(1, 1)(o)["event"]["payload"].update(is_fraud=True),
                 r"stream_view: event evt_c on the topic differs", id="payload-ground-truth-leaked"),
    pytest.param(lambda o: _at(1, 1)(o)["event"].update(ts_utc="2025-02-12T09:42:37Z"),
                 r"stream_view: event evt_c on the topic differs .*'ts_utc': \('2025-02-12T09:42:37Z'",
                 id="ts-differs"),
    # summaries: IG's claims against the harness's recount of the receipts.
    *[pytest.param(lambda o, status=status, n=n: _summary(o)["counts"].update({status: n}),
                   rf"summaries: IG's receipt summary claims 7 events .*'{status}': {n}.*, its receipts show 7 ",
                   id=f"summary-claims-{n}-{status}")
      for status, n in (("ADMITTED", 5), ("DUPLICATE", 0), ("QUARANTINED", 0), ("PUBLISH_AMBIGUOUS", 1))],
    pytest.param(lambda o: _summary(o)["counts"].pop("PUBLISH_AMBIGUOUS"),
                 r"summaries: IG's receipt summary claims 7 events", id="summary-omits-a-status"),
    pytest.param(lambda o: _summary(o).update(events=6), r"summaries: IG's receipt summary claims 6 events",
                 id="summary-claims-other-event-count"),
    pytest.param(lambda o: o["claims"].pop("ingest/receipt_summary.json"),
                 r"summaries: IG wrote no ingest/receipt_summary.json", id="no-receipt-summary"),
    pytest.param(lambda o: o["claims"]["ingest/quarantine_summary.json"].update(count=1),
                 r"summaries: IG's quarantine summary claims 1 quarantined, its receipts show 2",
                 id="quarantine-summary-claims-other-count"),
    pytest.param(lambda o: o["claims"].pop("ingest/quarantine_summary.json"),
                 r"summaries: IG's quarantine summary claims None quarantined", id="no-quarantine-summary"),
    # offsets: IG's snapshot against the delivery reports in its receipts; the broker's watermark (dev_min).
    pytest.param(lambda o: _snapshot(o)["1"].update(acked_end_offset=3),
                 r"offsets: IG's offsets snapshot claims acknowledged ends \{.*1: 3.*\}, the delivery reports in its "
                 r"receipts give \{.*1: 2.*\}", id="snapshot-claims-other-end"),
    pytest.param(lambda o: _snapshot(o).pop("0"), r"offsets: IG's offsets snapshot claims acknowledged ends",
                 id="snapshot-omits-a-partition"),
    pytest.param(lambda o: _snapshot(o).update({"3": {"acked_end_offset": 1}}),
                 r"offsets: IG's offsets snapshot claims acknowledged ends", id="snapshot-claims-extra-partition"),
    pytest.param(lambda o: o["claims"].pop("ingest/kafka_offsets_snapshot.json"),
                 r"offsets: IG wrote no ingest/kafka_offsets_snapshot.json", id="no-offsets-snapshot"),
    pytest.param(lambda o: o["broker_watermarks"].update({"1": [0, 1]}),
                 r"offsets: partition 1: the broker's high watermark 1 is below the acknowledged end 2",
                 id="dev-min-broker-below-acked-end"),
    pytest.param(lambda o: o["broker_watermarks"].pop("2"),
                 r"offsets: partition 2: the broker's high watermark None is below the acknowledged end 1",
                 id="dev-min-broker-lacks-a-partition"),
])
def test_judge_names_each_lie_in_its_family(mutate: Mutation, match: str) -> None:
    judge_fails(mutated(observation(), mutate), match)


@pytest.mark.parametrize(("obs", "match"), [
    pytest.param(mutated(ambiguous("evt_c"), _drop_record("evt_c")),
                 r"ambiguous: 1 PUBLISH_AMBIGUOUS event\(s\) not reconciled with the topic \(on it not exactly once\): "
                 r"\['evt_c'\]", id="ambiguous-not-on-topic"),
    pytest.param(mutated(ambiguous("evt_c"), _publish(_envelope("evt_c"))),
                 r"ambiguous: 1 PUBLISH_AMBIGUOUS event\(s\) not reconciled .*\['evt_c'\]",
                 id="ambiguous-on-topic-twice"),
    pytest.param(mutated(ambiguous("evt_c"), lambda o: _summary(o)["counts"].update(PUBLISH_AMBIGUOUS=0)),
                 r"summaries: IG's receipt summary claims .*'PUBLISH_AMBIGUOUS': 0", id="ambiguous-not-counted"),
    pytest.param(mutated(ambiguous("evt_c"), lambda o: _snapshot(o)["1"].update(acked_end_offset=2)),
                 r"offsets: IG's offsets snapshot claims acknowledged ends", id="ambiguous-counted-as-acked"),
])
def test_judge_names_an_unreconciled_publish_ambiguous_event(obs: Record, match: str) -> None:
    judge_fails(obs, match)


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(_publish(_envelope(PROBES["other-run"], run=OTHER_RUN)),
                 rf"QUARANTINED {PROBES['other-run']} is on the traffic topic",
                 id="quarantined-other-run-event-on-topic"),
    pytest.param(lambda o: _receipt_of("evt_a", "DUPLICATE")(o).update(partition=2, offset=0),
                 r"receipts_to_records: DUPLICATE evt_a", id="duplicate-receipt-at-another-event"),
    pytest.param(lambda o: _at(1, 1)(o)["event"].update(scenario_run_id="scn-other"),
                 r"stream_view: event evt_c on the topic differs", id="envelope-of-another-scenario"),
    pytest.param(lambda o: _summary(o).update(ambiguous_event_ids=["evt_z"]),
                 r"summaries: .*evt_z", id="summary-names-another-ambiguous-event"),
])
def test_judge_names_lies_beyond_the_basic_families(mutate: Mutation, match: str) -> None:
    judge_fails(mutated(observation(), mutate), match)


def test_embedded_profile_waives_the_broker_watermark_instead_of_failing() -> None:
    obs = mutated(observation(profile="embedded"), lambda o: o["broker_watermarks"].update({"1": [0, 1]}))
    verdict = p07.judge(obs)
    p07.check(verdict, *p07.FAMILIES)
    assert verdict["problems"]["offsets"] == []
    assert verdict["waived"] == {"P7.broker_watermark": p07.TANSU_WATERMARK}
    assert verdict["broker_high_watermarks"] == {0: 2, 1: 1, 2: 1}


def test_embedded_profile_still_compares_the_offsets_snapshot() -> None:
    obs = mutated(observation(profile="embedded"), lambda o: _snapshot(o)["1"].update(acked_end_offset=3))
    judge_fails(obs, r"offsets: IG's offsets snapshot claims acknowledged ends")


def test_check_names_only_the_families_asked_for() -> None:
    verdict = p07.judge(mutated(observation(), _publish(_envelope("evt_b"))))
    p07.check(verdict, "summaries", "receipts_to_records", "ambiguous", "offsets")
    with pytest.raises(Finding, match=r"\[P7\.refused_not_published\+stream_view\]") as caught:
        p07.check(verdict, "refused_not_published", "stream_view")
    assert caught.value.details == ["refused_not_published: event evt_b is on the traffic topic 2 times"]


def commit_observed() -> Record:
    """ingest/commit_observed.json: IG answered the commit and wrote its three summaries."""
    return {"platform_run_id": RUN, "claims": dict(observation()["claims"]),
            "answer": {"status": 200, "body": {"counts": {"ADMITTED": 4}, "written": list(p07.SUMMARIES)}}}


def test_check_committed_passes_a_commit_with_its_three_summaries() -> None:
    p07.check_committed(commit_observed())


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(lambda r: r["answer"].update(status=500, body={"error": "boom"}),
                 r"IG commit answered 500: \{'error': 'boom'\}", id="commit-500"),
    *[pytest.param(lambda r, s=summary: r["claims"].pop(s), rf"missing \['{summary}'\]", id=f"no-{summary}")
      for summary in p07.SUMMARIES],
])
def test_check_committed_names_a_commit_without_its_summaries(mutate: Mutation, match: str) -> None:
    with pytest.raises(Finding, match=match):
        p07.check_committed(mutated(commit_observed(), mutate))


def rogue(*, receipted: bool) -> Record:
    """ingest/fault_record_around_ig.json, judged from an observation of the rogue run."""
    rogue_run = f"{RUN}-written-around-ig"
    obs = observation()
    obs.update(platform_run_id=rogue_run, receipts=[], expected=[], claims={})
    obs["topic"].append(topic_record(2, 1, _envelope("rogue-b9cf", run=rogue_run)))
    if receipted:  # a judge that wrongly accepted the record would say nothing about it
        obs["receipts"] = [receipt("rogue-b9cf", "ADMITTED", partition=2, offset=1)]
    return {"written": {"platform_run_id": rogue_run, "event_id": "rogue-b9cf", "partition": 2, "offset": 1},
            "judged": p07.judge(obs)}


def test_check_rogue_found_passes_when_the_judge_names_the_record_written_around_ig() -> None:
    p07.check_rogue_found(rogue(receipted=False))


def test_check_rogue_found_names_a_judge_that_missed_the_record() -> None:
    with pytest.raises(Finding, match=r"did not find the record written around IG \(record at 2/1 \(event "
                                      r"rogue-b9cf\) has no receipt\)"):
        p07.check_rogue_found(rogue(receipted=True))
