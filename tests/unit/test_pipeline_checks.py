"""P8, P9 and P10 checks: a compliant recorded observation passes; each mutation is a Finding naming the fault."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest
from check_records import OTHER_RUN, RUN, Mutation, Record, fails, mutated
from pipeline_records import (
    DECISION,
    EVENTS,
    FEATURES,
    FLAGGED,
    FOREIGN_AT,
    RTDL,
    TRAFFIC,
    canonical,
    case_id,
    case_of,
    decision_id,
    decision_record,
    decision_value,
    dla_row,
    label_id,
    labels_of,
    p9_traffic,
    sha256,
    traffic_value,
    truth,
)

from harness import pipeline
from harness.errors import Finding
from harness.phases import p08, p09, p10

# --- P8 RTDL caught up ---------------------------------------------------------------------------------------

GROUP = f"spine.rtdl.{RUN}"


def lag_observed() -> Record:
    """rtdl_core/lag_observed.json: IG acknowledged 4 + 3 records; RTDL's group committed past all of them (the
    other run's record at 1/3 too), and its catch_up.json says what the broker holds."""
    claim = {"platform_run_id": RUN, "group": GROUP, "topic": TRAFFIC, "lag_max": 0, "lag": 0, "caught_up": True,
             "partitions": {"0": {"acked_end_offset": 4, "committed_offset": 4, "lag": 0},
                            "1": {"acked_end_offset": 3, "committed_offset": 4, "lag": 0}}}
    return {"platform_run_id": RUN, "group": GROUP, "topic": TRAFFIC, "lag_max": 0,
            "acked_end_offsets": {"0": 4, "1": 3}, "committed": {"0": 4, "1": 4}, "polls": 3,
            "claims": {p08.CATCH_UP: claim, p08.INDEX: {"partitions": {}}}}


def _catch_up(r: Record) -> Record:
    return r["claims"][p08.CATCH_UP]


def test_p8_lags_is_the_acknowledged_end_minus_the_committed_offset() -> None:
    assert p08.lags({0: 4, 1: 3, 2: 5}, {"0": 1, "1": 7}) == {0: 3, 1: 0, 2: 5}
    assert p08.lags({0: 4}, {"0": None}) == {0: 4}
    assert p08.lags({}, {"0": 3}) == {}


def test_p8_caught_up_passes_a_group_at_the_acknowledged_ends() -> None:
    obs = lag_observed()
    assert p08.judge_lag(obs) == []
    p08.check_caught_up(obs)


def test_p8_caught_up_passes_a_lag_within_the_pinned_maximum() -> None:
    def lagging(r: Record) -> None:
        r.update(lag_max=2, committed={"0": 2, "1": 3})
        _catch_up(r).update(lag_max=2)
        _catch_up(r)["partitions"]["0"].update(committed_offset=2)
        _catch_up(r)["partitions"]["1"].update(committed_offset=3)

    p08.check_caught_up(mutated(lag_observed(), lagging))


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(lambda r: (r["committed"].update({"0": 2}),
                            _catch_up(r)["partitions"]["0"].update(committed_offset=2)),
                 rf"partition 0: group {GROUP} committed 2, acknowledged end 4: lag 2 > RTDL_CAUGHT_UP_LAG_MAX 0",
                 id="lag-over-max"),
    pytest.param(lambda r: r["committed"].update({"1": None}),
                 rf"partition 1: group {GROUP} committed None, acknowledged end 3: lag 3 > RTDL_CAUGHT_UP_LAG_MAX 0",
                 id="nothing-committed"),
    pytest.param(lambda r: r["committed"].pop("1"), r"partition 1: group .* committed None, acknowledged end 3: lag 3",
                 id="partition-not-in-group"),
    pytest.param(lambda r: r.update(acked_end_offsets={}),
                 r"IG's receipts acknowledge no record of the run: there is nothing RTDL could catch up on",
                 id="no-acked-records"),
    pytest.param(lambda r: r["claims"].pop(p08.CATCH_UP), r"RTDL wrote no rtdl_core/catch_up\.json", id="no-claim"),
    pytest.param(lambda r: _catch_up(r).update(caught_up=False),
                 r"RTDL's rtdl_core/catch_up\.json does not claim caught_up: False", id="claim-not-caught-up"),
    pytest.param(lambda r: _catch_up(r).update(caught_up="true"), r"does not claim caught_up: 'true'",
                 id="claim-caught-up-as-text"),
    pytest.param(lambda r: _catch_up(r).pop("caught_up"), r"does not claim caught_up: None",
                 id="claim-without-caught-up"),
    pytest.param(lambda r: _catch_up(r).update(group=f"spine.rtdl.{OTHER_RUN}"),
                 rf"RTDL's claim names group 'spine\.rtdl\.{OTHER_RUN}' on '{TRAFFIC}', the contract '{GROUP}'",
                 id="claim-other-group"),
    pytest.param(lambda r: _catch_up(r).update(topic=RTDL),
                 rf"RTDL's claim names group '{GROUP}' on '{RTDL}', the contract '{GROUP}' on '{TRAFFIC}'",
                 id="claim-other-topic"),
    pytest.param(lambda r: _catch_up(r).update(lag_max=100), r"RTDL's claim uses lag_max 100, run\.json pins 0",
                 id="claim-other-lag-max"),
    pytest.param(lambda r: _catch_up(r)["partitions"]["0"].update(acked_end_offset=5),
                 r"partition 0: RTDL's claim has acknowledged end 5, IG's receipts give 4", id="claim-other-acked-end"),
    pytest.param(lambda r: _catch_up(r)["partitions"].pop("1"),
                 r"partition 1: RTDL's claim has acknowledged end None, IG's receipts give 3",
                 id="claim-omits-a-partition"),
    pytest.param(lambda r: _catch_up(r)["partitions"]["1"].update(committed_offset=9),
                 r"partition 1: RTDL claims committed offset 9, the broker holds 4 for its group",
                 id="claim-committed-beyond-broker"),
    pytest.param(lambda r: _catch_up(r)["partitions"]["0"].update(committed_offset=0),
                 r"partition 0: RTDL claims caught up at committed offset 0, short of the acknowledged end 4 by more "
                 r"than RTDL_CAUGHT_UP_LAG_MAX 0", id="claim-caught-up-at-0"),
    pytest.param(lambda r: _catch_up(r)["partitions"]["1"].pop("committed_offset"),
                 r"partition 1: RTDL claims caught up at committed offset None", id="claim-without-committed"),
])
def test_p8_caught_up_names_a_lag_or_a_claim_the_broker_contradicts(mutate: Mutation, match: str) -> None:
    finding = fails(p08.check_caught_up, mutated(lag_observed(), mutate), match)
    assert finding.check == "P8.caught_up"


# --- P8 archive ----------------------------------------------------------------------------------------------

ARCHIVE = "fraud-platform-dev-min-archive"
PREFIX = f"{RUN}/{TRAFFIC}/"
# partition -> the objects RTDL wrote, (first, last) per consumed batch; partition 1 holds the other run's record
BATCHES = {0: [(0, 1), (2, 2), (3, 3)], 1: [(0, 3)]}
TOPIC_ENDS = {0: 4, 1: 4}


def key_of(partition: int, first: int, last: int) -> str:
    return f"{PREFIX}partition={partition}/{first:020d}-{last:020d}.jsonl"


def line(partition: int, offset: int, *, value: bytes | None = None, value_sha256: str | None = None) -> Record:
    """One archive line as RTDL writes it (contract §6)."""
    raw = traffic_value(partition, offset) if value is None else value
    return {"offset": offset, "timestamp_ms": 1_795_617_681_328 + offset, "key": f"card-{partition}",
            "value": raw.decode(), "value_sha256": value_sha256 or sha256(raw)}


def body(lines: list[Record]) -> bytes:
    return b"".join(canonical(entry) + b"\n" for entry in lines)


def store(world: Record, key: str, data: bytes, *, index: bool = True) -> None:
    """Put an object in the archive bucket; ``index``: RTDL's index lists it as it is."""
    world["bucket"][key] = data
    if not index:
        return
    partition = key[len(PREFIX):].split("/")[0].removeprefix("partition=")
    entries = world["index"]["partitions"].setdefault(partition, [])
    entries[:] = [e for e in entries if e["key"] != key]
    first, last = (int(n) for n in key.rsplit("/", 1)[1].removesuffix(".jsonl").split("-"))
    entries.append({"key": key, "first_offset": first, "last_offset": last, "records": data.count(b"\n"),
                    "sha256": sha256(data)})


def archive_world() -> Record:
    """What P8 reads beside the topic: the archive bucket's bytes, the group's offsets and RTDL's index."""
    world: Record = {"bucket": {}, "committed": {"0": 4, "1": 4},
                     "index": {"platform_run_id": RUN, "bucket": ARCHIVE, "topic": TRAFFIC, "prefix": PREFIX,
                               "partitions": {}},
                     "records": [{"partition": p, "offset": o, "sha256": sha256(traffic_value(p, o)),
                                  "run": (p, o) != FOREIGN_AT} for p, end in TOPIC_ENDS.items() for o in range(end)]}
    for partition, batches in BATCHES.items():
        for first, last in batches:
            store(world, key_of(partition, first, last), body([line(partition, o) for o in range(first, last + 1)]))
    return world


def observe_archive(world: Record) -> Record:
    """p08.observe_archive's record: the objects as pipeline.archive_objects parses them from the bucket's bytes
    (S3's list and get answered from ``world["bucket"]``)."""
    stored: dict[str, bytes] = world["bucket"]

    def list_keys(_aws: object, *, bucket: str, prefix: str) -> list[str]:
        assert bucket == ARCHIVE
        return sorted(k for k in stored if k.startswith(prefix))

    def get_bytes(_aws: object, *, bucket: str, key: str) -> bytes:
        assert bucket == ARCHIVE
        return stored[key]

    with mock.patch.multiple(pipeline.s3, list_keys=list_keys, get_bytes=get_bytes):
        objects = pipeline.archive_objects(None, ARCHIVE, RUN, TRAFFIC)  # type: ignore[arg-type]
    assert len(objects) == len(stored)
    return {"platform_run_id": RUN, "topic": TRAFFIC, "bucket": ARCHIVE, "records": copy.deepcopy(world["records"]),
            "objects": objects, "committed": dict(world["committed"]), "index": copy.deepcopy(world["index"])}


def judged_archive(world: Record) -> Record:
    obs = observe_archive(world)
    return {"observed": obs, "problems": p08.judge_archive(obs)}


def _drop(partition: int, first: int, last: int, *, from_index: bool = True) -> Mutation:
    def mutate(w: Record) -> None:
        key = key_of(partition, first, last)
        del w["bucket"][key]
        if from_index:
            entries = w["index"]["partitions"][str(partition)]
            entries[:] = [e for e in entries if e["key"] != key]
    return mutate


def _put(partition: int, first: int, last: int, lines: list[Record], *, index: bool = True) -> Mutation:
    return lambda w: store(w, key_of(partition, first, last), body(lines), index=index)


def _index_entry(partition: int, first: int) -> Callable[[Record], Record]:
    return lambda w: next(e for e in w["index"]["partitions"][str(partition)] if e["first_offset"] == first)


def test_p8_archive_passes_objects_holding_exactly_the_topics_records() -> None:
    result = judged_archive(archive_world())
    assert result["problems"] == []
    p08.check_archive(result)


def test_p8_archive_starts_at_the_topics_first_offset_not_at_0() -> None:
    # the topic's partition 1 was trimmed by retention to start at offset 2: RTDL could consume nothing before it
    def trimmed(w: Record) -> None:
        w["records"] = [r for r in w["records"] if not (r["partition"] == 1 and r["offset"] < 2)]
        _drop(1, 0, 3)(w)
        _put(1, 2, 3, [line(1, 2), line(1, 3)])(w)

    p08.check_archive(judged_archive(mutated(archive_world(), trimmed)))


def test_p8_archive_passes_another_runs_record_not_yet_consumed() -> None:
    world = mutated(archive_world(), lambda w: w["records"].append(
        {"partition": 1, "offset": 4, "sha256": sha256(b"{}"), "run": False}))
    p08.check_archive(judged_archive(world))


def test_p8_archive_passes_an_object_archived_after_the_index_was_written() -> None:
    # another run's record reached partition 1 after RTDL wrote its index (committed to 4 then): RTDL archived it
    def later(w: Record) -> None:
        w["records"].append({"partition": 1, "offset": 4, "sha256": sha256(b"{}"), "run": False})
        _put(1, 4, 4, [line(1, 4, value=b"{}")], index=False)(w)
        w["committed"]["1"] = 5

    obs = observe_archive(mutated(archive_world(), later))
    assert any("is not in the archive index" in p for p in p08.judge_archive(obs))  # no claim: it must be listed
    obs["indexed_up_to"] = {"0": 4, "1": 4}
    assert p08.judge_archive(obs) == []
    obs["indexed_up_to"] = {"0": 4, "1": 5}  # the index claims offset 4 was already committed: then it must list it
    assert any(f"archive object {key_of(1, 4, 4)} is not in the archive index" in p for p in p08.judge_archive(obs))


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(_drop(0, 2, 2), rf"partition 0: offsets 2-2 are in no archive object \(a gap before "
                 rf"{key_of(0, 3, 3)}\)", id="gap-between-objects"),
    pytest.param(_drop(0, 0, 1), rf"partition 0: offsets 0-1 are in no archive object \(a gap before "
                 rf"{key_of(0, 2, 2)}\)", id="first-object-after-the-topics-first-offset"),
    pytest.param(_drop(0, 2, 2), r"partition 0: committed records not archived: offsets 2\n",
                 id="committed-records-not-archived"),
    pytest.param(_drop(0, 3, 3), r"partition 0: the group committed offset 4, past the archived end 3: records "
                 r"were committed before they were archived", id="committed-past-archived-end"),
    pytest.param(lambda w: w["committed"].update({"1": 6}), r"partition 1: the group committed offset 6, past the "
                 r"archived end 4", id="committed-beyond-everything"),
    pytest.param(lambda w: (w["bucket"].clear(), w["index"]["partitions"].clear()),
                 r"partition 0: the group committed offset 4, past the archived end 0", id="nothing-archived"),
    pytest.param(_put(0, 1, 2, [line(0, 1), line(0, 2)]), r"partition 0 offset 1 is archived 2 times",
                 id="overlapping-objects"),
    pytest.param(_put(0, 0, 1, [line(0, 0), line(0, 1), line(0, 1)]), r"partition 0 offset 1 is archived 2 times",
                 id="offset-twice-in-one-object"),
    pytest.param(_put(0, 0, 1, [line(0, 0)]), rf"{key_of(0, 0, 1)} holds offsets 0, its name says 0-1",
                 id="object-shorter-than-its-name"),
    pytest.param(_put(0, 0, 1, [line(0, 1), line(0, 0)]), rf"{key_of(0, 0, 1)} holds offsets 1, 0, its name says 0-1",
                 id="object-out-of-offset-order"),
    pytest.param(_put(1, 0, 3, [*(line(1, o) for o in range(4)), line(1, 4, value=b"{}")]),
                 rf"{key_of(1, 0, 3)} holds offsets 0-4 \(5\), its name says 0-3", id="object-longer-than-its-name"),
    pytest.param(_put(1, 4, 4, [line(1, 4, value=b"{}")]), rf"{key_of(1, 4, 4)}: offset 4 is not on partition 1",
                 id="archived-offset-not-on-topic"),
    pytest.param(_put(0, 0, 1, [line(0, 0), line(0, 1, value=traffic_value(0, 2))]),
                 rf"{key_of(0, 0, 1)}: offset 1 holds other bytes than the topic \(sha256 "
                 rf"{sha256(traffic_value(0, 2))[:12]}…, topic {sha256(traffic_value(0, 1))[:12]}…\)",
                 id="other-bytes"),
    pytest.param(_put(0, 0, 1, [line(0, 0), line(0, 1, value=json.dumps(json.loads(traffic_value(0, 1))).encode())]),
                 rf"{key_of(0, 0, 1)}: offset 1 holds other bytes than the topic", id="value-re-serialised"),
    pytest.param(_put(0, 0, 1, [line(0, 0), line(0, 1, value_sha256="0" * 64)]),
                 rf"{key_of(0, 0, 1)}: offset 1 claims value_sha256 000000000000…, its value hashes to "
                 rf"{sha256(traffic_value(0, 1))[:12]}…", id="claimed-value-sha256-wrong"),
    pytest.param(lambda w: w["records"].append({"partition": 1, "offset": 4, "sha256": "ab" * 32, "run": True}),
                 r"1 record\(s\) of the run are in no archive object: \[\(1, 4\)\]", id="run-record-not-archived"),
    pytest.param(lambda w: w.update(index=None), r"RTDL wrote no rtdl_core/archive_index\.json", id="no-index"),
    pytest.param(lambda w: w["index"]["partitions"]["1"].append({**_index_entry(1, 0)(w), "key": key_of(1, 4, 4)}),
                 rf"the archive index lists {key_of(1, 4, 4)}, which is not in the archive bucket",
                 id="index-lists-a-missing-object"),
    pytest.param(_put(1, 4, 4, [line(1, 4, value=b"{}")], index=False),
                 rf"archive object {key_of(1, 4, 4)} is not in the archive index", id="index-misses-an-object"),
    pytest.param(lambda w: _index_entry(0, 2)(w).update(sha256="0" * 64),
                 rf"the archive index says {key_of(0, 2, 2)} has sha256 000000000000… and 1 records; it has "
                 r"[0-9a-f]{12}… and 1", id="index-other-sha256"),
    pytest.param(lambda w: _index_entry(0, 0)(w).update(records=3),
                 rf"the archive index says {key_of(0, 0, 1)} has sha256 [0-9a-f]{{12}}… and 3 records; it has "
                 r"[0-9a-f]{12}… and 2", id="index-other-record-count"),
    pytest.param(lambda w: w["bucket"].update({f"{PREFIX}stray.json": b"{}\n"}),
                 rf"key {PREFIX}stray\.json is not <run>/<topic>/partition=<p>/<first>-<last>\.jsonl",
                 id="unparseable-key"),
    pytest.param(lambda w: w["bucket"].update({f"{PREFIX}partition=x/{0:020d}-{1:020d}.jsonl": body([line(0, 0)])}),
                 r"key .*/partition=x/.* is not <run>/<topic>/partition=<p>/<first>-<last>\.jsonl",
                 id="unparseable-partition"),
    pytest.param(lambda w: w["bucket"].update({key_of(0, 0, 1): body([line(0, 0)]) + b"not json\n"}),
                 rf"line 2 of {key_of(0, 0, 1)} is not an archive line: Expecting value", id="unparseable-line"),
    pytest.param(lambda w: w["bucket"].update({key_of(0, 0, 1): body([line(0, 0), {"offset": 1}])}),
                 rf"line 2 of {key_of(0, 0, 1)} is not an archive line: 'value'", id="line-without-value"),
])
def test_p8_archive_names_each_gap_overlap_and_lie(mutate: Mutation, match: str) -> None:
    result = judged_archive(mutated(archive_world(), mutate))
    with pytest.raises(Finding, match=match) as caught:
        p08.check_archive(result)
    assert caught.value.check == "P8.archive"


def test_p8_archive_names_a_key_with_a_partition_but_no_offsets() -> None:
    stray = f"{PREFIX}partition=0/{4:020d}-{4:020d}.jsonl.tmp"
    result = judged_archive(mutated(archive_world(), lambda w: w["bucket"].update({stray: b""})))
    assert rf"key {stray} is not <run>/<topic>/partition=<p>/<first>-<last>.jsonl" in result["problems"]


# --- P8 an archive object removed out of band --------------------------------------------------------------------


def removed_record(partition: int = 0, first: int = 0, last: int = 1) -> Record:
    """rtdl_core/fault_archive_object_removed.json, judged with the object gone and put back."""
    return {"removed": {"key": key_of(partition, first, last), "partition": partition, "offsets": [first, last]},
            "problems_while_removed": p08.judge_archive(observe_archive(mutated(archive_world(),
                                                                                _drop(partition, first, last,
                                                                                      from_index=False)))),
            "problems_after_restore": p08.judge_archive(observe_archive(archive_world()))}


@pytest.mark.parametrize(("partition", "first", "last"), [(0, 0, 1), (0, 2, 2), (0, 3, 3), (1, 0, 3)])
def test_p8_gap_named_and_restored_pass_the_judge_on_a_removed_object(partition: int, first: int, last: int) -> None:
    record = removed_record(partition, first, last)
    p08.check_gap_named(record)
    p08.check_restored(record)


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(lambda r: r.update(problems_while_removed=[]),
                 rf"removing {key_of(0, 0, 1)} was not named as a gap: no problem found", id="nothing-found"),
    pytest.param(lambda r: r.update(problems_while_removed=[p for p in r["problems_while_removed"]
                                                            if "index" in p]),
                 rf"removing {key_of(0, 0, 1)} was not named as a gap: \['the archive index lists", id="only-index"),
    pytest.param(lambda r: r.update(problems_while_removed=[p.replace("partition 0", "partition 1")
                                                            for p in r["problems_while_removed"]]),
                 r"was not named as a gap: \['partition 1", id="gap-named-in-another-partition"),
])
def test_p8_gap_named_names_a_judge_that_missed_the_removed_object(mutate: Mutation, match: str) -> None:
    fails(p08.check_gap_named, mutated(removed_record(), mutate), match)


def test_p8_gap_named_does_not_take_partition_10_for_partition_1() -> None:
    record = {"removed": {"key": key_of(1, 0, 3), "partition": 1, "offsets": [0, 3]},
              "problems_while_removed": ["partition 10: offsets 0-3 are in no archive object (a gap before x)"],
              "problems_after_restore": []}
    fails(p08.check_gap_named, record, r"was not named as a gap")


def test_p8_gap_named_names_a_gap_at_other_offsets() -> None:
    record = mutated(removed_record(0, 0, 1), lambda r: r.update(problems_while_removed=[
        f"partition 0: offsets 7-9 are in no archive object (a gap before {key_of(0, 10, 12)})"]))
    fails(p08.check_gap_named, record, r"was not named as a gap")


def test_p8_restored_names_what_is_still_wrong_after_the_object_is_back() -> None:
    record = removed_record()
    record["problems_after_restore"] = record["problems_while_removed"]
    finding = fails(p08.check_restored, record, r"partition 0: offsets 0-1 are in no archive object")
    assert finding.check == "P8.archive"


# --- P9 decision lane + DLA ----------------------------------------------------------------------------------


def decisions_observed() -> Record:
    """decision_lane/decisions_observed.json: one decision per admitted event, each with its DLA row (the same
    bytes), the Data Engine's ground truth and the lane's summary agreeing with them."""
    decisions = [decision_record(e) for e in EVENTS]
    return {"platform_run_id": RUN, "topic": DECISION, "admitted": sorted(EVENTS), "decisions": decisions,
            "traffic": p9_traffic(), "read_shortfall": None,
            "dla": [dla_row(e) for e in sorted(EVENTS, key=decision_id)], "truth": truth(),
            "claim": {"platform_run_id": RUN, "group": f"spine.decision-lane.{RUN}", "policy": "spine-rules/1",
                      "decisions": 7, "by_outcome": {"APPROVE": 3, "REVIEW": 2, "DECLINE": 2},
                      "by_reason": {"card_testing": 2, "velocity": 2, "high_value_new_merchant": 1},
                      "dla_table": "dla_records", "topic": DECISION}}


def _decision(event_id: str) -> Callable[[Record], Record]:
    return lambda o: next(d for d in o["decisions"] if d["value"]["event_id"] == event_id)


def _dla(event_id: str) -> Callable[[Record], Record]:
    return lambda o: next(r for r in o["dla"] if r["event_id"] == event_id)


def _redecide(event_id: str, **changes: Any) -> Mutation:
    """The lane decided ``event_id`` otherwise and says so consistently: on the topic and in the DLA."""
    def mutate(o: Record) -> None:
        value = decision_value(event_id, **changes)
        record = _decision(event_id)(o)
        record.update(decision_record(event_id, value, at=(record["partition"], record["offset"])))
        o["dla"][o["dla"].index(_dla(event_id)(o))] = dla_row(event_id, value)
    return mutate


def _publish_twice(event_id: str, value: Record | None = None) -> Mutation:
    return lambda o: o["decisions"].append(decision_record(event_id, value, at=(0, 9)))


def p9_fails(obs: Record, match: str) -> Finding:
    result = {"observed": obs, "judged": p09.judge(obs)}
    with pytest.raises(Finding, match=match) as caught:
        p09.check(result, *p09.FAMILIES)
    return caught.value


def test_p9_judge_finds_no_problem_in_a_compliant_lane() -> None:
    obs = decisions_observed()
    before = copy.deepcopy(obs)
    verdict = p09.judge(obs)
    assert verdict["problems"] == {family: [] for family in p09.FAMILIES}
    assert verdict["by_outcome"] == {"APPROVE": 3, "DECLINE": 2, "REVIEW": 2}
    p09.check({"observed": obs, "judged": verdict}, *p09.FAMILIES)
    assert obs == before


def test_p9_a_pattern_never_injected_is_not_a_failure() -> None:
    obs = decisions_observed()
    assert "high_value_new_merchant" not in obs["truth"].values()
    verdict = p09.judge(obs)
    assert verdict["problems"]["ground_truth"] == []
    assert verdict["scores"]["patterns"]["high_value_new_merchant"]["injected"] == 0


def test_p9_a_stream_view_without_any_injected_pattern_cannot_be_scored() -> None:
    verdict = p09.judge(mutated(decisions_observed(), lambda o: o.update(truth=dict.fromkeys(o["truth"], ""))))
    assert verdict["problems"]["ground_truth"] == [
        "the stream view holds no injected fraud pattern: there is nothing to score the decisions against"]
    assert {p: s["injected"] for p, s in verdict["scores"]["patterns"].items()} == {
        "card_testing": 0, "velocity_burst": 0, "high_value_new_merchant": 0}


def test_p9_hand_worked_features_are_the_harness_recomputation() -> None:
    assert {e: f for e, f in pipeline.features(p9_traffic()).items() if e in FEATURES} == FEATURES


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(lambda o: _decision("evt_01")(o)["value"].update(decision="DECLINE", reasons=["card_testing"]),
                 r"policy: decision for evt_01: DECLINE \['card_testing'\]; the policy on the recomputed features "
                 r"gives APPROVE \[\]", id="decline-everything"),
    pytest.param(lambda o: _decision("evt_05")(o)["value"].update(decision="APPROVE", reasons=[]),
                 r"policy: decision for evt_05: APPROVE \[\]; the policy on the recomputed features gives REVIEW "
                 r"\['velocity'\]", id="pattern-missed"),
    pytest.param(lambda o: _decision("evt_03")(o)["value"]["features"].update(small_count_10m=2),
                 r"policy: decision for evt_03: features \(decision, recomputed from the traffic topic\) "
                 r"\{'small_count_10m': \(2, 5\)\}", id="features-lie"),
    pytest.param(lambda o: o.update(traffic=[r for r in o["traffic"] if r["event_id"] != "evt_06"]),
                 r"policy: decision dec_\w+ is for evt_06, which is not a record of the run on the traffic topic",
                 id="decision-for-no-traffic"),
])
def test_p9_policy_names_a_decision_the_contract_would_not_give(mutate: Mutation, match: str) -> None:
    with pytest.raises(Finding, match=match):
        p09.check({"judged": p09.judge(mutated(decisions_observed(), mutate))}, "policy")


@pytest.mark.parametrize(("mutate", "match"), [
    # decisions: one per admitted event, the contract's id, a known outcome with well-formed reasons.
    pytest.param(lambda o: (o["decisions"].remove(_decision("evt_05")(o)), o["dla"].remove(_dla("evt_05")(o))),
                 r"decisions: 1 admitted event\(s\) have no decision: \['evt_05'\]", id="missing-decision"),
    pytest.param(_publish_twice("evt_02", decision_value("evt_02", decision="DECLINE", reasons=["card_testing"])),
                 r"decisions: event evt_02 has 2 decision records", id="two-decisions-for-one-event"),
    pytest.param(_publish_twice("evt_02"), rf"decisions: decision {decision_id('evt_02')} is on the topic 2 times",
                 id="same-decision-twice"),
    pytest.param(lambda o: o["admitted"].remove("evt_06"), r"decisions: decision for evt_06, which has no ADMITTED "
                 r"receipt", id="decision-for-non-admitted-event"),
    pytest.param(lambda o: o.update(admitted=[]), r"decisions: the run has no ADMITTED receipt: there is nothing to "
                 r"decide", id="nothing-admitted"),
    pytest.param(_redecide("evt_02", decision_id=decision_id("evt_02", run=OTHER_RUN)),
                 rf"decisions: decision at 1/0 has decision_id '{decision_id('evt_02', run=OTHER_RUN)}', the "
                 rf"contract's id for evt_02 is {decision_id('evt_02')}", id="decision-id-of-another-run"),
    pytest.param(_redecide("evt_02", decision_id="dec_" + sha256(b"evt_02")[:32]),
                 r"decisions: decision at 1/0 has decision_id 'dec_", id="decision-id-without-the-run"),
    pytest.param(_redecide("evt_03", decision="BLOCK"), r"decisions: decision at 2/0 has decision 'BLOCK'",
                 id="unknown-outcome"),
    pytest.param(_redecide("evt_01", reasons=["velocity"]), r"decisions: decision at 0/0: APPROVE with reasons "
                 r"\['velocity'\] \(APPROVE has none, REVIEW and DECLINE at least one\)", id="approve-with-reasons"),
    pytest.param(_redecide("evt_02", reasons=[]), r"decisions: decision at 1/0: REVIEW with reasons \[\]",
                 id="review-without-reasons"),
    pytest.param(_redecide("evt_06", reasons=None), r"decisions: decision at 2/1: DECLINE with reasons None",
                 id="decline-reasons-missing"),
    pytest.param(_redecide("evt_05", reasons=["velocity_burst"]), r"decisions: decision at 1/1 gives reasons outside "
                 r"the policy: \['velocity_burst'\]", id="pattern-name-as-reason"),
    pytest.param(lambda o: o.update(read_shortfall=f"6 distinct decision_id of 7 expected on {DECISION}: timed out"),
                 rf"decisions: 6 distinct decision_id of 7 expected on {DECISION}", id="read-shortfall"),
    # dla: one row per decision, the published bytes.
    pytest.param(lambda o: o["dla"].remove(_dla("evt_03")(o)), rf"dla: decision {decision_id('evt_03')} \(event "
                 r"evt_03\) has no DLA record", id="dla-row-missing"),
    pytest.param(lambda o: _dla("evt_03")(o)["record"].update(reasons=["card_testing"]),
                 rf"dla: DLA record {decision_id('evt_03')} differs from the decision on the topic", id="dla-record"),
    pytest.param(lambda o: _dla("evt_03")(o).update(record_sha256="0" * 64),
                 rf"dla: DLA record {decision_id('evt_03')} has record_sha256 000000000000…, the published bytes "
                 rf"hash to {sha256(canonical(decision_value('evt_03')))[:12]}…", id="dla-sha256"),
    pytest.param(lambda o: _dla("evt_03")(o).update(decision="APPROVE"),
                 rf"dla: DLA record {decision_id('evt_03')} says evt_03 APPROVE, the topic evt_03 DECLINE",
                 id="dla-outcome"),
    pytest.param(lambda o: _dla("evt_03")(o).update(event_id="evt_04"),
                 rf"dla: DLA record {decision_id('evt_03')} says evt_04 DECLINE, the topic evt_03 DECLINE",
                 id="dla-event"),
    pytest.param(lambda o: o["decisions"].remove(_decision("evt_04")(o)),
                 rf"dla: DLA record {decision_id('evt_04')} \(event evt_04\) has no decision on the topic",
                 id="dla-row-without-decision"),
    # ground_truth: each injected pattern flagged at least once; every decided event in the stream view.
    pytest.param(lambda o: o["truth"].update(evt_01="high_value_new_merchant"),
                 r"ground_truth: pattern high_value_new_merchant: 1 injected event\(s\), none flagged \(REVIEW or "
                 r"DECLINE\): \['evt_01'\]", id="pattern-never-flagged"),
    pytest.param(_redecide("evt_05", decision="APPROVE", reasons=[]),
                 r"ground_truth: pattern velocity_burst: 2 injected event\(s\), none flagged .*\['evt_04', 'evt_05'\]",
                 id="pattern-flag-withdrawn"),
    pytest.param(lambda o: o["truth"].pop("evt_06"), r"ground_truth: 1 decided event\(s\) are not in the stream "
                 r"view: \['evt_06'\]", id="decided-event-not-in-view"),
    # summary: the lane's claim against the topic and the DLA.
    pytest.param(lambda o: o.update(claim=None), r"summary: the decision lane wrote no decision_lane/summary\.json",
                 id="no-summary"),
    pytest.param(lambda o: o["claim"].update(decisions=8), r"summary: the lane's summary claims 8 decisions; the DLA "
                 r"has 7 rows and the topic 7 records", id="summary-decisions"),
    pytest.param(lambda o: o["dla"].append(dla_row("evt_01", decision_value("evt_01", decision_id="dec_x"))),
                 r"summary: the lane's summary claims 7 decisions; the DLA has 8 rows", id="summary-misses-a-dla-row"),
    pytest.param(lambda o: o["claim"]["by_outcome"].update(APPROVE=4, REVIEW=1),
                 r"summary: the lane's summary claims \{'APPROVE': 4, 'REVIEW': 1, 'DECLINE': 2\}, the topic shows",
                 id="summary-by-outcome"),
    pytest.param(lambda o: o["claim"].pop("by_outcome"), r"summary: the lane's summary claims None, the topic shows",
                 id="summary-without-by-outcome"),
])
def test_p9_judge_names_each_fault_in_its_family(mutate: Mutation, match: str) -> None:
    p9_fails(mutated(decisions_observed(), mutate), match)


def test_p9_summary_ignores_an_outcome_counted_zero() -> None:
    obs = mutated(decisions_observed(), lambda o: o["claim"]["by_outcome"].update(UNKNOWN=0))
    assert p09.judge(obs)["problems"]["summary"] == []


def test_p9_check_names_only_the_families_asked_for() -> None:
    obs = mutated(decisions_observed(), lambda o: o["dla"].remove(_dla("evt_03")(o)))
    result = {"observed": obs, "judged": p09.judge(obs)}
    p09.check(result, "decisions", "ground_truth")
    with pytest.raises(Finding, match=r"\[P9\.dla\+summary\]") as caught:
        p09.check(result, "dla", "summary")
    assert caught.value.details == [
        f"dla: decision {decision_id('evt_03')} (event evt_03) has no DLA record",
        "summary: the lane's summary claims 7 decisions; the DLA has 6 rows and the topic 7 records"]


def test_p9_score_by_hand() -> None:
    # flagged: evt_02 (card_testing), evt_03 (card_testing, velocity), evt_05 (velocity), evt_06 (high value);
    # injected: card_testing evt_02, evt_03, evt_07; velocity_burst evt_04, evt_05; no high_value_new_merchant.
    scores = p09.score(truth(), [decision_value(e) for e in EVENTS])
    assert scores["patterns"] == {
        "card_testing": {"injected": 3, "flagged": 2, "recall": 0.6667, "missed": ["evt_07"]},
        "velocity_burst": {"injected": 2, "flagged": 1, "recall": 0.5, "missed": ["evt_04"]},
        "high_value_new_merchant": {"injected": 0, "flagged": 0, "recall": None, "missed": []},
    }
    assert scores["reasons"] == {
        "card_testing": {"pattern": "card_testing", "flagged": 2, "true_positive": 2, "precision": 1.0},
        "velocity": {"pattern": "velocity_burst", "flagged": 2, "true_positive": 1, "precision": 0.5},
        "high_value_new_merchant": {"pattern": "high_value_new_merchant", "flagged": 1, "true_positive": 0,
                                    "precision": 0.0},
    }
    # 5 fraud events, 4 flagged, 3 of them fraud
    assert scores["overall"] == {"events": 7, "fraud": 5, "flagged": 4, "flagged_fraud": 3, "precision": 0.75,
                                 "recall": 0.6}


def test_p9_score_with_nothing_flagged_has_no_precision_and_no_recall() -> None:
    approved = [decision_value(e, decision="APPROVE", reasons=[]) for e in EVENTS]
    scores = p09.score(truth(), approved)
    assert scores["overall"] == {"events": 7, "fraud": 5, "flagged": 0, "flagged_fraud": 0, "precision": None,
                                 "recall": 0.0}
    assert scores["patterns"]["card_testing"] == {"injected": 3, "flagged": 0, "recall": 0.0,
                                                  "missed": ["evt_02", "evt_03", "evt_07"]}
    assert {r: s["precision"] for r, s in scores["reasons"].items()} == dict.fromkeys(scores["reasons"])


def test_p9_score_counts_a_decline_as_flagged_and_an_approve_as_not() -> None:
    scores = p09.score({"e1": "card_testing", "e2": "card_testing"},
                       [{"event_id": "e1", "decision": "DECLINE", "reasons": ["card_testing"]},
                        {"event_id": "e2", "decision": "APPROVE", "reasons": []}])
    assert scores["patterns"]["card_testing"] == {"injected": 2, "flagged": 1, "recall": 0.5, "missed": ["e2"]}
    assert scores["overall"]["precision"] == 1.0


# --- P9 redelivery ---------------------------------------------------------------------------------------------


def redelivery() -> Record:
    """decision_lane/redelivery.json: the group rewound to 0, the restarted lane consumed back to the end and
    published nothing new."""
    return {"platform_run_id": RUN, "group": f"spine.decision-lane.{RUN}", "topic": RTDL, "ends": {"0": 5, "1": 3},
            "committed_before": {"0": 5, "1": 3}, "committed_after_rewind": {"0": 0, "1": 0},
            "committed_after_restart": {"0": 5, "1": 3}, "before": {"decision_records": 7, "dla": 7},
            "after": {"decision_records": 7, "dla": 7}, "judged_after": p09.judge(decisions_observed())["problems"]}


def test_p9_redelivery_passes_a_lane_that_decided_nothing_twice() -> None:
    p09.check_redelivery(redelivery())


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(lambda r: r["committed_after_rewind"].update({"1": 3}),
                 r"the lane's group was not rewound to 0: \{'0': 0, '1': 3\}", id="not-rewound"),
    pytest.param(lambda r: r["committed_after_restart"].update({"0": 4}), r"the restarted lane did not consume the "
                 r"redelivered events \(committed, end\): \{'0': \(4, 5\)\}", id="not-back-to-the-end"),
    pytest.param(lambda r: r.update(committed_after_restart={"0": 5}),
                 r"did not consume the redelivered events \(committed, end\): \{'1': \(None, 3\)\}",
                 id="nothing-committed-after-restart"),
    pytest.param(lambda r: r["after"].update(decision_records=8),
                 r"redelivery changed the decision records: 7 before, 8 after", id="decision-republished"),
    pytest.param(lambda r: r["after"].update(dla=6), r"redelivery changed the dla: 7 before, 6 after",
                 id="dla-row-lost"),
    pytest.param(lambda r: r.update(judged_after=p09.judge(mutated(decisions_observed(),
                                                                   _publish_twice("evt_02")))["problems"]),
                 r"after redelivery, decisions: event evt_02 has 2 decision records", id="problems-after"),
])
def test_p9_redelivery_names_a_lane_that_is_not_idempotent(mutate: Mutation, match: str) -> None:
    finding = fails(p09.check_redelivery, mutated(redelivery(), mutate), match)
    assert finding.check == "P9.redelivery"


# --- P9 the DLA refuses an overwrite -----------------------------------------------------------------------------

REFUSED = {"refused": True, "sqlstate": "42501", "error": "InsufficientPrivilege",
           "message": "permission denied for table dla_records"}
LET_THROUGH = {"refused": False, "sqlstate": None, "error": None, "rowcount": 1}


def dla_overwrite() -> Record:
    """decision_lane/dla_overwrite_refused.json: UPDATE and DELETE refused by privilege, the second INSERT by the
    primary key; the row as it was."""
    row = dla_row("evt_03")
    return {"decision_id": row["decision_id"], "as_role": "spine",
            "attempts": {"update": dict(REFUSED), "delete": dict(REFUSED),
                         "insert_again": {"refused": True, "sqlstate": "23505", "error": "UniqueViolation",
                                          "message": "duplicate key value violates unique constraint"}},
            "before": row, "after": copy.deepcopy(row)}


def test_p9_overwrite_refused_passes_a_database_that_refused_every_attempt() -> None:
    p09.check_overwrite_refused(dla_overwrite())


@pytest.mark.parametrize(("mutate", "match"), [
    *[pytest.param(lambda r, a=attempt: r["attempts"].update({a: dict(LET_THROUGH)}),
                   rf"{attempt} of DLA record {decision_id('evt_03')} as spine was not refused by the database: "
                   r"\{'refused': False", id=f"{attempt}-let-through")
      for attempt in ("update", "delete", "insert_again")],
    pytest.param(lambda r: r["after"]["record"].update(decision="APPROVE", reasons=[]),
                 rf"DLA record {decision_id('evt_03')} changed: ", id="row-changed"),
    pytest.param(lambda r: r.update(after=None), rf"DLA record {decision_id('evt_03')} changed: .* → None",
                 id="row-deleted"),
])
def test_p9_overwrite_refused_names_an_overwrite_the_database_allowed(mutate: Mutation, match: str) -> None:
    finding = fails(p09.check_overwrite_refused, mutated(dla_overwrite(), mutate), match)
    assert finding.check == "P9.dla_append_only"


# --- P10 case/labels -----------------------------------------------------------------------------------------

DSN_PATH, DATABASE, ROLE = "/fraud-platform/dev_min/db/dsn", "spine_case_labels", "spine"


def cases_observed() -> Record:
    """case_labels/cases_observed.json: one case per REVIEW/DECLINE decision with one label per reason, in the
    pinned database, case/labels connected to it as the platform role."""
    values = [decision_value(e) for e in EVENTS]
    return {
        "platform_run_id": RUN, "dsn_ssm_path": DSN_PATH, "pinned": {"database": DATABASE, "role": ROLE},
        "database": {"database": DATABASE, "role": ROLE},
        "sessions": [{"application_name": "spine-case-labels", "role": ROLE, "database": DATABASE},
                     {"application_name": "spine-decision-lane", "role": ROLE, "database": DATABASE}],
        "decisions": [{k: v[k] for k in ("decision_id", "event_id", "card_id", "decision", "reasons")} for v in values],
        "dla": [{k: v[k] for k in ("decision_id", "event_id", "decision")} for v in values],
        "cases": sorted((case_of(e) for e in FLAGGED), key=lambda c: c["case_id"]),
        "labels": sorted((label for e in FLAGGED for label in labels_of(e)), key=lambda label: label["label_id"]),
        "claim": {"platform_run_id": RUN, "group": f"spine.case-labels.{RUN}", "cases": 4, "labels": 5,
                  "by_decision": {"REVIEW": 2, "DECLINE": 2}, "dsn_ssm_path": DSN_PATH, "database": DATABASE,
                  "role": ROLE, "server_version": "16.4"},
    }


CASE = {e: case_id(decision_id(e)) for e in EVENTS}


def _case(event_id: str) -> Callable[[Record], Record]:
    return lambda o: next(c for c in o["cases"] if c["event_id"] == event_id)


def _drop_labels(event_id: str) -> Mutation:
    return lambda o: o.update(labels=[label for label in o["labels"] if label["case_id"] != CASE[event_id]])


def _rename_case(event_id: str, new_id: str) -> Mutation:
    """The case and its labels under another case id, the labels' ids consistent with it."""
    def mutate(o: Record) -> None:
        _case(event_id)(o)["case_id"] = new_id
        for label in o["labels"]:
            if label["case_id"] == CASE[event_id]:
                label.update(case_id=new_id, label_id=label_id(new_id, label["label"]))
    return mutate


def _add_label(event_id: str, label: str) -> Mutation:
    return lambda o: o["labels"].append({"label_id": label_id(CASE[event_id], label), "case_id": CASE[event_id],
                                         "label": label, "source": "decision-lane:spine-rules/1"})


def p10_fails(obs: Record, match: str) -> Finding:
    with pytest.raises(Finding, match=match) as caught:
        p10.check({"observed": obs, "problems": p10.judge(obs)}, *p10.FAMILIES)
    return caught.value


def test_p10_judge_finds_no_problem_in_compliant_cases() -> None:
    obs = cases_observed()
    assert len(obs["cases"]) == 4 and len(obs["labels"]) == 5
    assert p10.judge(obs) == {family: [] for family in p10.FAMILIES}
    p10.check({"observed": obs, "problems": p10.judge(obs)}, *p10.FAMILIES)


def test_p10_the_harness_ids_are_the_contracts() -> None:
    # pipeline_records computes the ids from the contract's text; the harness must agree with it.
    assert pipeline.decision_id(RUN, "evt_02") == decision_id("evt_02")
    assert pipeline.case_id(decision_id("evt_02")) == CASE["evt_02"]
    assert pipeline.label_id(CASE["evt_02"], "card_testing") == label_id(CASE["evt_02"], "card_testing")


@pytest.mark.parametrize(("mutate", "match"), [
    # cases: one per REVIEW/DECLINE decision, none for APPROVE, the contract's id, the decision's fields.
    pytest.param(lambda o: (o["cases"].remove(_case("evt_05")(o)), _drop_labels("evt_05")(o)),
                 rf"cases: decision {decision_id('evt_05')} \(REVIEW, event evt_05\) has no case", id="missing-case"),
    pytest.param(lambda o: o["cases"].append({**_case("evt_02")(o), "case_id": "case_second"}),
                 rf"cases: decision {decision_id('evt_02')} has 2 cases", id="two-cases-for-a-decision"),
    pytest.param(lambda o: o["cases"].append(case_of("evt_01")),
                 rf"cases: case {CASE['evt_01']} was opened for an APPROVE decision \({decision_id('evt_01')}\)",
                 id="case-for-approve"),
    pytest.param(lambda o: o["cases"].append({**case_of("evt_02"), "decision_id": "dec_unknown",
                                              "case_id": case_id("dec_unknown")}),
                 rf"cases: case {case_id('dec_unknown')} names decision dec_unknown, which is not on the decision "
                 r"topic", id="case-for-unknown-decision"),
    pytest.param(_rename_case("evt_03", "case_" + sha256(b"evt_03")[:32]),
                 rf"cases: case case_{sha256(b'evt_03')[:32]} of {decision_id('evt_03')}: the contract's id is "
                 rf"{CASE['evt_03']}", id="case-id-not-the-contracts"),
    *[pytest.param(lambda o, f=field, v=value: _case("evt_03")(o).update({f: v}),
                   rf"cases: case {CASE['evt_03']} differs from its decision \(case, decision\): "
                   rf"\{{'{field}': \('{value}', '{expected}'\)\}}", id=f"case-{field}-differs")
      for field, value, expected in (("event_id", "evt_02", "evt_03"), ("card_id", "card_zz", "card_b2"),
                                     ("decision", "REVIEW", "DECLINE"))],
    pytest.param(lambda o: next(r for r in o["dla"] if r["event_id"] == "evt_06").update(decision="APPROVE"),
                 r"cases: the decision topic flags 4 decisions, the DLA 3", id="dla-flags-otherwise"),
    # labels: one per reason of the case's decision, the contract's ids, of an existing case.
    pytest.param(lambda o: o["labels"].append({"label_id": label_id("case_gone", "velocity"), "case_id": "case_gone",
                                               "label": "velocity", "source": "decision-lane:spine-rules/1"}),
                 rf"labels: label {label_id('case_gone', 'velocity')} names case case_gone, which does not exist",
                 id="label-of-missing-case"),
    pytest.param(lambda o: next(lb for lb in o["labels"] if lb["case_id"] == CASE["evt_05"]).update(label_id="lbl_1"),
                 rf"labels: label lbl_1 \(velocity of {CASE['evt_05']}\): the contract's id is "
                 rf"{label_id(CASE['evt_05'], 'velocity')}", id="label-id-not-the-contracts"),
    pytest.param(lambda o: o.update(labels=[lb for lb in o["labels"]
                                            if (lb["case_id"], lb["label"]) != (CASE["evt_03"], "velocity")]),
                 rf"labels: case {CASE['evt_03']} has labels \['card_testing'\], its decision's reasons are "
                 r"\['card_testing', 'velocity'\]", id="label-missing"),
    pytest.param(_add_label("evt_02", "velocity"), rf"labels: case {CASE['evt_02']} has labels \['card_testing', "
                 r"'velocity'\], its decision's reasons are \['card_testing'\]", id="label-extra"),
    pytest.param(_drop_labels("evt_06"), rf"labels: case {CASE['evt_06']} has labels \[\], its decision's reasons are "
                 r"\['high_value_new_merchant'\]", id="case-without-labels"),
    # managed_db: the DSN in SSM reaches the pinned database as the pinned role; case/labels is connected to it.
    pytest.param(lambda o: o["database"].update(database="postgres"),
                 rf"managed_db: the DSN in SSM {DSN_PATH} reaches database 'postgres' as 'spine'; pinned "
                 rf"'{DATABASE}' as 'spine'", id="other-database"),
    pytest.param(lambda o: o["database"].update(role="postgres"),
                 rf"managed_db: the DSN in SSM {DSN_PATH} reaches database '{DATABASE}' as 'postgres'; pinned "
                 rf"'{DATABASE}' as 'spine'", id="other-role"),
    pytest.param(lambda o: o["sessions"].pop(0), r"managed_db: case/labels holds no connection to this database \(no "
                 r"spine-case-labels session in pg_stat_activity: \[\{'application_name': 'spine-decision-lane'",
                 id="no-case-labels-session"),
    pytest.param(lambda o: o["sessions"][0].update(role="postgres"),
                 rf"managed_db: case/labels is connected to '{DATABASE}' as 'postgres', not to '{DATABASE}' as "
                 r"'spine'", id="session-as-another-role"),
    pytest.param(lambda o: o["sessions"][0].update(database="postgres"),
                 r"managed_db: case/labels is connected to 'postgres' as 'spine'", id="session-to-another-database"),
    # summary: case/labels' claim against the database.
    pytest.param(lambda o: o.update(claim=None), r"summary: case/labels wrote no case_labels/summary\.json",
                 id="no-summary"),
    pytest.param(lambda o: o["claim"].update(cases=5), r"summary: the summary claims 5 cases and 5 labels; the "
                 r"database holds 4 and 5", id="summary-cases"),
    pytest.param(lambda o: o["claim"].update(labels=4), r"summary: the summary claims 4 cases and 4 labels; the "
                 r"database holds 4 and 5", id="summary-labels"),
    pytest.param(lambda o: o["claim"].update(dsn_ssm_path="/fraud-platform/dev_min/db/local_dsn"),
                 rf"summary: case/labels says it used the DSN at '/fraud-platform/dev_min/db/local_dsn', the pinned "
                 rf"path is '{DSN_PATH}'", id="summary-dsn-path"),
    pytest.param(lambda o: o["claim"].update(database="spine_local"),
                 rf"summary: case/labels says it wrote to 'spine_local' as 'spine'; the DSN in SSM reaches "
                 rf"'{DATABASE}' as 'spine'", id="summary-database"),
    pytest.param(lambda o: o["claim"].update(role="postgres"),
                 r"summary: case/labels says it wrote to .* as 'postgres'", id="summary-role"),
])
def test_p10_judge_names_each_fault_in_its_family(mutate: Mutation, match: str) -> None:
    p10_fails(mutated(cases_observed(), mutate), match)


def test_p10_check_names_only_the_families_asked_for() -> None:
    obs = mutated(cases_observed(), lambda o: o["sessions"].pop(0))
    result = {"observed": obs, "problems": p10.judge(obs)}
    p10.check(result, "cases", "labels", "summary")
    with pytest.raises(Finding, match=r"\[P10\.managed_db\]"):
        p10.check(result, "managed_db")


# --- P10 the database refuses UPDATE and DELETE -------------------------------------------------------------------


def _refusals() -> Iterator[tuple[str, Record]]:
    for who in ("platform", "owner"):
        for verb in ("update", "delete"):
            for table in ("cases", "case_labels"):
                message = (f"permission denied for table {table}" if who == "platform"
                           else f"append-only: {verb.upper()} on {table} is refused")
                yield f"{who}: {verb} {table}", {"refused": True, "sqlstate": "42501",
                                                 "error": "InsufficientPrivilege", "message": message}


def append_only_refusals() -> Record:
    """case_labels/append_only_refusals.json: every UPDATE and DELETE refused with 42501, no row changed."""
    obs = cases_observed()
    rows = {"cases": obs["cases"], "labels": obs["labels"]}
    return {"platform_run_id": RUN, "roles": {"platform": ROLE, "owner": "spine_owner"}, "attempts": dict(_refusals()),
            "rows_before": rows, "rows_after": copy.deepcopy(rows)}


def test_p10_refused_passes_a_database_that_refused_every_attempt() -> None:
    record = append_only_refusals()
    assert len(record["attempts"]) == 8
    p10.check_refused(record)


@pytest.mark.parametrize(("mutate", "match"), [
    *[pytest.param(lambda r, n=name: r["attempts"].update({n: dict(LET_THROUGH)}),
                   rf"{name} was not refused by the database: \{{'refused': False", id=f"{name}-let-through")
      for name, _ in _refusals()],
    pytest.param(lambda r: r["attempts"]["owner: delete cases"].update(sqlstate="23503", error="ForeignKeyViolation"),
                 r"owner: delete cases was refused with SQLSTATE 23503, not 42501 \(insufficient privilege\)",
                 id="refused-by-a-foreign-key"),
    pytest.param(lambda r: r["attempts"]["platform: update cases"].update(sqlstate="25006",
                                                                           message="read-only transaction"),
                 r"platform: update cases was refused with SQLSTATE 25006, not 42501 \(insufficient privilege\): "
                 r"read-only transaction", id="refused-as-read-only"),
    pytest.param(lambda r: r["rows_after"]["cases"][0].update(card_id="changed"),
                 r"the cases or labels changed after the attempts", id="case-changed"),
    pytest.param(lambda r: r["rows_after"]["labels"].pop(), r"the cases or labels changed after the attempts",
                 id="label-deleted"),
])
def test_p10_refused_names_an_attempt_the_database_did_not_refuse(mutate: Mutation, match: str) -> None:
    finding = fails(p10.check_refused, mutated(append_only_refusals(), mutate), match)
    assert finding.check == "P10.append_only"
