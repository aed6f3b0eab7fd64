"""rtdl and decision-lane as real processes against moto, a Tansu broker and PostgreSQL (contract §6).

Every claim is checked where it lands: archive objects in S3, enriched events and decisions on their topics, group
offsets on the broker, DLA rows in the database, evidence in the run's evidence root.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from spine_bus import Bus, Record
from spine_lane import Lane
from spine_pipeline import Pipeline, encode, group, sha256, ts

from harness.substrate import MotoServer, PostgresCluster
from harness.wait import wait_until
from spine import features

pytestmark = pytest.mark.substrate

_runs = itertools.count()
FEATURES = ("card_event_index", "count_10m", "small_count_10m", "count_15m", "distinct_merchants_15m",
            "amount_sum_15m", "merchant_new_for_card")


@pytest.fixture
def pipeline(moto: MotoServer, bus: Bus, pg: PostgresCluster, tmp_path: Path) -> Iterator[Callable[[str], Pipeline]]:
    """A fresh run with its own topics and archive bucket; every daemon started is stopped afterwards."""
    made: list[Pipeline] = []

    def make(label: str) -> Pipeline:
        lane = Lane(endpoint=moto.endpoint, run_id=f"run-d{next(_runs):03d}-{os.getpid()}")
        made.append(Pipeline(bus=bus, lane=lane, pg=pg, logs=tmp_path / "logs", label=f"{label}{next(_runs)}"))
        return made[-1]

    yield make
    for p in made:
        p.stop_all()


# --- a hand-made run: card testing, velocity, a high value at a new merchant, and noise ---

# (event_id, card, ts_utc, amount_minor, merchant, decision, reasons), in stream order.
SEQUENCE = [
    ("t1", "card-t", ts(0), 100, "m-shop", "APPROVE", []),
    ("v1", "card-v", ts(0), 2500, "m-a", "APPROVE", []),
    ("x1", "card-x", ts(0), 300, "m-1", "APPROVE", []),
    ("t2", "card-t", ts(0, 30), 120, "m-shop", "APPROVE", []),
    ("t3", "card-t", ts(1), 130, "m-shop", "REVIEW", ["card_testing"]),
    ("x2", "card-x", ts(1), 300, "m-2", "APPROVE", []),
    ("t4", "card-t", ts(1, 30), 140, "m-shop", "REVIEW", ["card_testing"]),
    ("t5", "card-t", ts(2), 150, "m-shop", "DECLINE", ["card_testing"]),
    ("x3", "card-x", ts(2), 300, "m-3", "REVIEW", ["card_testing"]),
    ("x4", "card-x", ts(3), 300, "m-4", "REVIEW", ["card_testing", "velocity"]),
    ("v2", "card-v", ts(4), 2500, "m-b", "APPROVE", []),
    ("h1", "card-h", ts(5), 150_000, "m-lux", "DECLINE", ["high_value_new_merchant"]),
    ("h2", "card-h", ts(6), 150_000, "m-lux", "APPROVE", []),
    ("h3", "card-h", ts(7), 99_999, "m-new", "APPROVE", []),
    ("v3", "card-v", ts(8), 2500, "m-c", "APPROVE", []),
    ("h4", "card-h", ts(8), 100_000, "m-new2", "DECLINE", ["velocity", "high_value_new_merchant"]),
    ("t6", "card-t", ts(12), 200, "m-shop", "APPROVE", []),
    ("v4", "card-v", ts(12), 2500, "m-d", "REVIEW", ["velocity"]),
    ("v5", "card-v", ts(27), 2500, "m-a", "APPROVE", []),
]
# Features worked out by hand, in FEATURES order; a window includes an event exactly 600 s / 900 s earlier.
EXPECTED_FEATURES = {
    "t6": (5, 2, 2, 6, 1, 840, False),        # 10m: t5 (at ts - 600 s), t6; 15m: t1..t6
    "v4": (3, 3, 0, 4, 4, 10_000, True),      # 10m: v2, v3, v4; 15m: v1..v4 at 4 merchants
    "v5": (4, 1, 0, 2, 2, 5000, False),       # 15m: v4 (at ts - 900 s) and v5
    "h2": (1, 2, 0, 2, 1, 300_000, False),
    "x4": (3, 4, 4, 4, 4, 1200, True),
}


def traffic_records(p: Pipeline, sequence: list[tuple[Any, ...]]) -> list[tuple[bytes, bytes]]:
    return [(card.encode(), encode(p.event(f"evt-{p.run_id}-{eid}", card, when, amount, merchant)))
            for eid, card, when, amount, merchant, *_ in sequence]


def noise(p: Pipeline) -> list[tuple[bytes, bytes]]:
    """Records RTDL must skip: were any counted, card-t's t6 would have other features (and be reviewed)."""
    foreign = p.event("evt-foreign", "card-t", ts(11), 100, "m-shop", run_id="run-someone-else")
    partial = p.event("evt-partial", "card-t", ts(11, 30), 100, "m-shop")
    del partial["payload"]["currency"]
    return [(b"card-t", encode(foreign)), (b"card-t", b"\xff not an envelope"), (b"card-t", encode(partial))]


def recomputed(p: Pipeline, sequence: list[tuple[Any, ...]]) -> dict[str, dict[str, Any]]:
    """Features of the sequence from the pure state, in one pass (what a never-restarted RTDL computes)."""
    state = features.State()
    return {f"evt-{p.run_id}-{eid}": state.observe(card_id=card, ts_us=features.event_time_us(when),
                                                   amount_minor=amount, merchant_id=merchant)
            for eid, card, when, amount, merchant, *_ in sequence}


def by_event(records: list[Record]) -> dict[str, Record]:
    found = {r.json()["event_id"]: r for r in records}
    assert len(found) == len(records), "an event appears twice"
    return found


def ends_of(placed: list[tuple[int, int]]) -> dict[int, int]:
    ends: dict[int, int] = {}
    for partition, offset in placed:
        ends[partition] = max(ends.get(partition, 0), offset + 1)
    return ends


def archived_lines(p: Pipeline) -> dict[int, list[dict[str, Any]]]:
    """Every archive line per partition, checking each object's key names its first and last offsets."""
    lines: dict[int, list[dict[str, Any]]] = {}
    for key, body in p.archive_objects().items():
        prefix = f"{p.run_id}/{p.traffic}/partition="
        assert key.startswith(prefix) and key.endswith(".jsonl"), key
        partition, span = key[len(prefix):-len(".jsonl")].split("/")
        first, last = (int(x) for x in span.split("-"))
        rows = [json.loads(line) for line in body.decode().splitlines()]
        assert (rows[0]["offset"], rows[-1]["offset"]) == (first, last), key
        lines.setdefault(int(partition), []).extend(rows)
    return lines


def check_archive_is_the_topic(p: Pipeline, topic_records: list[Record]) -> None:
    """The archive holds exactly the topic's records: same offsets (no gap, no overlap), the same bytes."""
    lines = archived_lines(p)
    for partition in {r.partition for r in topic_records} | set(lines):
        wanted = [r for r in topic_records if r.partition == partition]
        got = lines.get(partition, [])
        assert [line["offset"] for line in got] == [r.offset for r in wanted], f"partition {partition}"
        for line, record in zip(got, wanted, strict=True):
            assert line["value"].encode("utf-8", "surrogateescape") == record.value
            assert line["value_sha256"] == sha256(record.value)
            assert line["key"] == (record.key.decode() if record.key is not None else None)
            assert isinstance(line["timestamp_ms"], int)


def decided_records(p: Pipeline, count: int) -> list[Record]:
    """The run's decisions once there are ``count`` of them."""
    found: list[Record] = []

    def enough() -> bool:
        found[:] = p.records(p.decision_topic)
        return len(found) >= count

    wait_until(enough, timeout_s=30, err_msg=f"{count} decisions on {p.decision_topic}")
    return found


def decision_id(run_id: str, event_id: str) -> str:
    return "dec_" + hashlib.sha256(f"{run_id}/{event_id}".encode()).hexdigest()[:32]


# --- rtdl and the decision lane together ---


def test_traffic_becomes_archived_enriched_and_decided_once(pipeline: Callable[[str], Pipeline]) -> None:
    p = pipeline("flow")
    sequence = traffic_records(p, SEQUENCE)
    produced = sequence[:16] + noise(p) + sequence[16:]
    placed = p.produce(p.traffic, produced)
    own_placed = placed[:16] + placed[19:]
    rtdl, lane = p.start("rtdl"), p.start("decision-lane")

    decisions = decided_records(p, len(SEQUENCE))

    # Archive: exactly the consumed records, any run's; the group committed just past what is archived.
    traffic = p.records(p.traffic, run_only=False, min_end=ends_of(placed))
    assert len(traffic) == len(produced)
    check_archive_is_the_topic(p, traffic)
    committed = p.committed("rtdl", p.traffic)
    assert {part: off for part, off in committed.items() if off >= 0} == ends_of(placed)

    # Enriched events: one per own event, nothing of the noise; features in event time.
    enriched = by_event(p.records(p.rtdl_topic))
    expected = recomputed(p, SEQUENCE)
    assert set(enriched) == set(expected)
    for (eid, card, *_), (_, value), at in zip(SEQUENCE, sequence, own_placed, strict=True):
        record = enriched[f"evt-{p.run_id}-{eid}"]
        event = json.loads(value)
        assert record.key == card.encode()
        assert record.json() == {**{k: event[k] for k in ("event_id", "platform_run_id", "scenario_run_id",
                                                          "ts_utc", "payload")},
                                 "traffic": {"partition": at[0], "offset": at[1]},
                                 "features": expected[event["event_id"]]}
        assert record.value == encode(record.json())  # compact, sorted keys
    for eid, values in EXPECTED_FEATURES.items():
        assert enriched[f"evt-{p.run_id}-{eid}"].json()["features"] == dict(zip(FEATURES, values, strict=True)), eid

    # Decisions: one per event, as the policy says; the DLA holds each one with the bytes published.
    decided = by_event(decisions)
    dla = {row[0]: row for row in p.dla()}
    assert len(dla) == len(SEQUENCE)
    for eid, card, when, _, _, outcome, reasons in SEQUENCE:
        event_id = f"evt-{p.run_id}-{eid}"
        record = decided[event_id]
        assert record.key == card.encode()
        assert record.json() == {"decision_id": decision_id(p.run_id, event_id), "event_id": event_id,
                                 "platform_run_id": p.run_id, "scenario_run_id": p.lane.scenario, "card_id": card,
                                 "ts_utc": when, "decision": outcome, "reasons": reasons, "policy": "spine-rules/1",
                                 "features": expected[event_id]}, eid
        row = dla[record.json()["decision_id"]]
        assert (row[1], row[2], row[3], row[4]) == (event_id, outcome, record.json(), sha256(record.value))

    # No offsets snapshot yet, so no catch-up; no catch-up, no summary.
    assert not p.lane.exists(p.lane.evidence_root + "rtdl_core/")
    assert not p.lane.exists(p.lane.evidence_root + "decision_lane/")

    p.put_snapshot(ends_of(own_placed))
    p.put_receipt_summary(len(SEQUENCE))
    summary = wait_until(lambda: p.lane.exists(p.lane.evidence_root + "decision_lane/summary.json")
                         and p.lane.evidence("decision_lane/summary.json"), timeout_s=20, err_msg="lane summary")

    catch_up = p.lane.evidence("rtdl_core/catch_up.json")
    assert catch_up == {"platform_run_id": p.run_id, "group": group("rtdl", p.run_id), "topic": p.traffic,
                        "lag_max": 0, "lag": 0, "caught_up": True,
                        "partitions": {str(part): {"acked_end_offset": end, "committed_offset": committed[part],
                                                   "lag": 0} for part, end in ends_of(own_placed).items()}}
    index = p.lane.evidence("rtdl_core/archive_index.json")
    objects = p.archive_objects()
    assert (index["bucket"], index["topic"]) == (p.archive, p.traffic)
    listed = [o for part in sorted(index["partitions"]) for o in index["partitions"][part]]
    assert sorted(o["key"] for o in listed) == sorted(objects)
    for o in listed:
        body = objects[o["key"]]
        rows = [json.loads(line) for line in body.decode().splitlines()]
        assert (o["sha256"], o["records"]) == (sha256(body), len(rows))
        assert (o["first_offset"], o["last_offset"]) == (rows[0]["offset"], rows[-1]["offset"])
    assert summary == {"platform_run_id": p.run_id, "group": group("decision-lane", p.run_id),
                       "policy": "spine-rules/1", "decisions": 19, "dla_table": "dla_records",
                       "topic": p.decision_topic, "by_outcome": {"APPROVE": 11, "REVIEW": 5, "DECLINE": 3},
                       "by_reason": {"card_testing": 5, "velocity": 3, "high_value_new_merchant": 2}}
    evidence_lines = [line["key"] for d in (rtdl, lane) for line in d.lines("evidence")]
    assert sorted(evidence_lines) == ["decision_lane/summary.json", "rtdl_core/archive_index.json",
                                      "rtdl_core/catch_up.json"]

    # A restarted lane finds its summary and decisions in place: it publishes and writes nothing.
    assert lane.stop() == 0, lane.stderr
    again = p.start("decision-lane")
    assert again.lines("consuming")[0]["summarised"] is True
    assert again.lines("republished")[0]["decisions"] == 0
    assert again.stop() == 0 and rtdl.stop() == 0
    assert not again.logged("evidence") and lane.logged("stopped") and rtdl.logged("stopped")
    assert len(p.records(p.decision_topic)) == len(SEQUENCE)
    assert rtdl.stderr == lane.stderr == again.stderr == ""


def test_a_restarted_rtdl_rebuilds_its_card_state_and_archives_nothing_twice(
        pipeline: Callable[[str], Pipeline]) -> None:
    p = pipeline("restart")
    later: list[tuple[Any, ...]] = [("t7", "card-t", ts(13), 100, "m-shop", "APPROVE", []),
             ("v6", "card-v", ts(28), 2500, "m-e", "APPROVE", [])]
    first = p.produce(p.traffic, traffic_records(p, SEQUENCE))
    p.put_snapshot(ends_of(first))
    rtdl = p.start("rtdl")
    wait_until(lambda: p.lane.exists(p.lane.evidence_root + "rtdl_core/catch_up.json"), timeout_s=30,
               err_msg="rtdl caught up")
    assert rtdl.stop() == 0 and rtdl.logged("stopped"), rtdl.stderr
    before = p.archive_objects()
    catch_up = p.lane.get(p.lane.evidence_root + "rtdl_core/catch_up.json")

    second = p.produce(p.traffic, traffic_records(p, later))
    again = p.start("rtdl")
    wait_until(lambda: {k: v for k, v in p.committed("rtdl", p.traffic).items() if v >= 0}
               == ends_of(first + second), timeout_s=30, err_msg="the later events committed")

    warm_up = again.lines("warm_up")[0]
    assert {int(k): v for k, v in warm_up["committed"].items()} == ends_of(first)
    assert again.lines("warmed_up")[0]["events"] == len(SEQUENCE)
    enriched = by_event(p.records(p.rtdl_topic))
    expected = recomputed(p, SEQUENCE + later)
    assert {eid: r.json()["features"] for eid, r in enriched.items()} == expected
    # By hand: t7 still sees card-t's six earlier events (t6 in 10 minutes, all of them in 15).
    assert enriched[f"evt-{p.run_id}-t7"].json()["features"] == dict(zip(FEATURES, (6, 2, 2, 7, 1, 940, False),
                                                                         strict=True))
    assert enriched[f"evt-{p.run_id}-v6"].json()["features"] == dict(zip(FEATURES, (5, 2, 0, 2, 2, 5000, True),
                                                                         strict=True))
    # Nothing published twice; the earlier objects are untouched, the new ones hold only the new offsets.
    assert len(p.records(p.rtdl_topic)) == len(SEQUENCE) + len(later)
    after = p.archive_objects()
    assert {k: v for k, v in after.items() if k in before} == before
    new_offsets = sorted((int(key.split("partition=")[1].split("/")[0]), json.loads(line)["offset"])
                         for key, body in after.items() if key not in before for line in body.decode().splitlines())
    assert new_offsets == sorted(second)
    check_archive_is_the_topic(p, p.records(p.traffic, run_only=False, min_end=ends_of(first + second)))
    # Caught up before: the restart writes neither catch_up.json nor the index again.
    assert again.lines("consuming")[0]["evidence_pending"] == []
    assert again.stop() == 0, again.stderr
    assert not again.logged("evidence")
    assert p.lane.get(p.lane.evidence_root + "rtdl_core/catch_up.json") == catch_up


def test_rtdl_commits_nothing_it_could_not_archive(pipeline: Callable[[str], Pipeline]) -> None:
    p = pipeline("noarchive")
    rtdl = p.start("rtdl")
    p.lane.s3.delete_bucket(Bucket=p.archive)  # empty: nothing consumed yet
    placed = p.produce(p.traffic, traffic_records(p, SEQUENCE[:5]))

    assert rtdl.wait_exit() == 1
    lines = rtdl.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rtdl: ") and p.archive in lines[0], rtdl.stderr
    assert all(offset < 0 for offset in p.committed("rtdl", p.traffic).values())
    assert p.records(p.rtdl_topic, run_only=False) == []

    # With its archive back, a new RTDL starts from the first record and archives every one.
    p.lane.s3.create_bucket(Bucket=p.archive, CreateBucketConfiguration={"LocationConstraint": "eu-west-2"})
    p.start("rtdl")
    wait_until(lambda: len(p.records(p.rtdl_topic)) == 5, timeout_s=30, err_msg="enriched after the restart")
    check_archive_is_the_topic(p, p.records(p.traffic, run_only=False, min_end=ends_of(placed)))


# --- the decision lane alone, on hand-made enriched events ---


def enriched_event(p: Pipeline, eid: str, card: str, amount: int, values: tuple[Any, ...], *,
                   run_id: str | None = None) -> dict[str, Any]:
    event = p.event(f"evt-{p.run_id}-{eid}", card, ts(1), amount, "m-x", run_id=run_id)
    del event["event_type"]
    return {**event, "traffic": {"partition": 0, "offset": 0}, "features": dict(zip(FEATURES, values, strict=True))}


LANE_EVENTS = [  # (event id, card, amount, features, decision, reasons)
    ("d1", "card-1", 100, (2, 3, 3, 3, 1, 300, False), "REVIEW", ["card_testing"]),
    ("d2", "card-1", 100, (4, 5, 5, 5, 1, 500, False), "DECLINE", ["card_testing"]),
    ("d3", "card-2", 2500, (3, 4, 0, 4, 3, 10_000, True), "REVIEW", ["velocity"]),
    ("d4", "card-3", 150_000, (0, 1, 0, 1, 1, 150_000, True), "DECLINE", ["high_value_new_merchant"]),
    ("d5", "card-4", 2500, (0, 1, 0, 1, 1, 2500, True), "APPROVE", []),
    ("d6", "card-5", 100, (4, 5, 5, 5, 3, 500, False), "DECLINE", ["card_testing", "velocity"]),
]


def test_decision_lane_redelivery_adds_nothing_and_a_lost_publish_is_republished(
        pipeline: Callable[[str], Pipeline]) -> None:
    p = pipeline("lane")
    events = [enriched_event(p, eid, card, amount, values) for eid, card, amount, values, *_ in LANE_EVENTS]
    foreign = enriched_event(p, "f1", "card-1", 100, (4, 5, 5, 5, 1, 500, False), run_id="run-someone-else")
    broken = {k: v for k, v in events[0].items() if k != "features"}
    placed = p.produce(p.rtdl_topic, [(e["payload"]["card_id"].encode(), encode(e)) for e in [*events, foreign,
                                                                                              broken]]
                       + [(b"card-1", b"not json")])
    lane = p.start("decision-lane")
    decisions = decided_records(p, len(events))
    wait_until(lambda: {k: v for k, v in p.committed("decision-lane", p.rtdl_topic).items() if v >= 0}
               == ends_of(placed), timeout_s=15, err_msg="lane offsets committed")
    decided = by_event(decisions)
    for (eid, card, _, values, outcome, reasons), event in zip(LANE_EVENTS, events, strict=True):
        record = decided[event["event_id"]]
        assert (record.key, record.json()["decision"], record.json()["reasons"]) == (card.encode(), outcome,
                                                                                     reasons), eid
        assert record.json()["features"] == dict(zip(FEATURES, values, strict=True))
    assert all(r.json()["platform_run_id"] == p.run_id for r in p.records(p.decision_topic, run_only=False))
    assert lane.stop() == 0 and lane.logged("stopped"), lane.stderr
    assert lane.lines("batch")[-1]["skipped"] == {"another_run": 1, "invalid": 2}

    # A decision recorded by a lane that died before publishing it; then the group is rewound to offset 0.
    orphan_id = decision_id(p.run_id, "evt-orphan")
    orphan = {"decision_id": orphan_id, "event_id": "evt-orphan", "platform_run_id": p.run_id,
              "scenario_run_id": p.lane.scenario, "card_id": "card-9", "ts_utc": ts(2), "decision": "APPROVE",
              "reasons": [], "policy": "spine-rules/1", "features": dict(zip(FEATURES, (0, 1, 0, 1, 1, 700, True),
                                                                             strict=True))}
    body = encode(orphan)
    with psycopg.connect(p.pg.dsn) as conn:  # the platform role may insert
        conn.execute("insert into dla_records (decision_id, platform_run_id, event_id, decision, record, "
                     "record_sha256) values (%s, %s, %s, %s, %s::jsonb, %s)",
                     (orphan_id, p.run_id, "evt-orphan", "APPROVE", body.decode(), sha256(body)))
    p.rewind("decision-lane", p.rtdl_topic)
    assert set(p.committed("decision-lane", p.rtdl_topic).values()) == {0}

    again = p.start("decision-lane")
    assert again.lines("republished")[0]["decisions"] == 1
    wait_until(lambda: {k: v for k, v in p.committed("decision-lane", p.rtdl_topic).items() if v >= 0}
               == ends_of(placed), timeout_s=30, err_msg="redelivered events committed again")
    after = p.records(p.decision_topic)
    assert sorted(r.json()["event_id"] for r in after) == sorted([*decided, "evt-orphan"])
    assert [r.value for r in after if r.json()["event_id"] == "evt-orphan"] == [body]
    assert [r for r in after if r.json()["event_id"] != "evt-orphan"] == decisions
    assert len(p.dla()) == len(events) + 1
    assert sum(line["new"] for line in again.lines("batch")) == 0
    assert sum(line["records"] for line in again.lines("batch")) == len(placed)
    assert again.stop() == 0, again.stderr
    assert not p.lane.exists(p.lane.evidence_root + "decision_lane/")  # RTDL never caught up here


def test_the_platform_role_cannot_rewrite_the_dla(pg: PostgresCluster) -> None:
    run_id = f"run-dla-{os.getpid()}"
    record = {"decision_id": decision_id(run_id, "e1"), "decision": "DECLINE"}
    with psycopg.connect(pg.dsn) as conn:
        conn.execute("insert into dla_records (decision_id, platform_run_id, event_id, decision, record, "
                     "record_sha256) values (%s, %s, 'e1', 'DECLINE', %s::jsonb, %s)",
                     (record["decision_id"], run_id, json.dumps(record), "00" * 32))
    for statement in ("update dla_records set decision = 'APPROVE' where platform_run_id = %s",
                      "delete from dla_records where platform_run_id = %s"):
        with psycopg.connect(pg.dsn) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
            conn.execute(statement, (run_id,))
        assert refused.value.sqlstate == "42501"
    with psycopg.connect(pg.dsn) as conn:
        rows = conn.execute("select decision, record from dla_records where platform_run_id = %s",
                            (run_id,)).fetchall()
    assert rows == [("DECLINE", record)]


def test_decision_lane_refuses_a_database_it_cannot_reach_without_printing_the_dsn(
        pipeline: Callable[[str], Pipeline]) -> None:
    p = pipeline("nodb")
    wrong = p.pg.dsn.replace(f":{p.pg.password}@", ":not-the-password@")
    p.bus.ssm.put_parameter(Name=p.ssm_dsn, Value=wrong, Type="SecureString", Overwrite=True)
    lane = p.daemon("decision-lane")
    lane.start()

    assert lane.wait_exit() == 1
    lines = lane.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"decision-lane: database at SSM {p.ssm_dsn} "), lane.stderr
    assert "not-the-password" not in lane.stderr + lane.stdout
    assert not lane.logged("consuming")


def test_decision_lane_and_case_labels_outlast_a_database_restart(pipeline: Callable[[str], Pipeline]) -> None:
    """PostgreSQL stopped mid-run (every session ended) and started again: both daemons keep running, retry their
    connection, and every event is decided once and every flagged decision opens one case (contract §6)."""
    p = pipeline("dbdown")
    events = [enriched_event(p, eid, card, amount, values) for eid, card, amount, values, *_ in LANE_EVENTS]
    first, second = events[:2], events[2:]
    p.produce(p.rtdl_topic, [(e["payload"]["card_id"].encode(), encode(e)) for e in first])
    lane, cases = p.start("decision-lane"), p.start("case-labels")
    decided_records(p, len(first))

    def flagged_cases() -> int:
        with psycopg.connect(p.pg.dsn) as conn:
            return int(conn.execute("select count(*) from cases where platform_run_id = %s",
                                    (p.run_id,)).fetchone()[0])  # type: ignore[index]

    p.pg.stop_server()
    try:
        placed = p.produce(p.rtdl_topic, [(e["payload"]["card_id"].encode(), encode(e)) for e in second])
        wait_until(lambda: lane.logged("database_lost"), timeout_s=30, err_msg="the lane never met the outage")
        assert lane.proc is not None and lane.proc.poll() is None, lane.stderr
        assert len(p.records(p.decision_topic)) == len(first)  # nothing decided without its DLA row
    finally:
        p.pg.start_server()
    decisions = decided_records(p, len(events))
    wait_until(lambda: {k: v for k, v in p.committed("decision-lane", p.rtdl_topic).items() if v >= 0}
               == ends_of(placed), timeout_s=30, err_msg="the lane did not commit the events met during the outage")
    flagged = [eid for eid, *_, outcome, _ in LANE_EVENTS if outcome != "APPROVE"]
    wait_until(lambda: flagged_cases() == len(flagged), timeout_s=30, err_msg="cases not opened after the outage")
    assert sorted(r.json()["event_id"] for r in decisions) == sorted(e["event_id"] for e in events)
    assert len(p.dla()) == len(events)
    assert lane.logged("database_reconnected") and lane.proc is not None and lane.proc.poll() is None
    assert cases.proc is not None and cases.proc.poll() is None, cases.stderr
    with psycopg.connect(p.pg.dsn) as conn:
        sessions = conn.execute("select application_name from pg_stat_activity where application_name like "
                                "'spine-%%'").fetchall()
    assert {("spine-decision-lane",), ("spine-case-labels",)} <= set(sessions)
    assert lane.stop() == 0 and cases.stop() == 0, lane.stderr + cases.stderr


def test_a_daemon_waiting_for_its_database_stops_cleanly(pipeline: Callable[[str], Pipeline]) -> None:
    p = pipeline("dbstop")
    lane = p.start("decision-lane")
    p.pg.stop_server()
    try:
        event = enriched_event(p, "d1", "card-1", 100, (2, 3, 3, 3, 1, 300, False))
        p.produce(p.rtdl_topic, [(b"card-1", encode(event))])
        wait_until(lambda: lane.logged("database_lost"), timeout_s=30, err_msg="the lane never met the outage")
        assert lane.stop() == 0, lane.stderr  # SIGTERM while it waits: exit 0, the batch in hand uncommitted
    finally:
        p.pg.start_server()
    assert all(offset < 0 for offset in p.committed("decision-lane", p.rtdl_topic).values())
    assert p.records(p.decision_topic) == []
