"""sr, ig and wsp as real processes against moto and a Tansu broker: READY once, admission exactly once, streaming.

Every claim is checked where it lands: the topics are read by the test itself, receipts and evidence in S3,
quarantine objects in the quarantine bucket, dedupe and lease items in DynamoDB.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import os
import secrets
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import requests
from spine_bus import CONTROL, Bus, Ig, Record
from spine_lane import IMAGE_DIGEST, REGION, Lane, run

from harness.substrate import MotoServer, TansuBroker, free_port
from harness.wait import wait_until
from spine import sr
from spine.engine import generate, render

pytestmark = pytest.mark.substrate

SEED, EVENTS = 11, 30
VIEW = "stream_view/card_transactions/part-00000.parquet"
SUMMARIES = ("ingest/receipt_summary.json", "ingest/quarantine_summary.json", "ingest/kafka_offsets_snapshot.json")
_runs = itertools.count()


# --- fixtures: one moto (tests/conftest.py) and one Tansu broker per module, a fresh run per test ---


@pytest.fixture(scope="module")
def scenario_files() -> dict[str, bytes]:
    """The engine's files for a small scenario, rendered once (what `python -m spine.engine` writes)."""
    return render(generate(SEED, EVENTS), seed=SEED, events=EVENTS, scenario_run_id=f"scn-seed{SEED}-n{EVENTS}").files


@pytest.fixture
def new_lane(moto: MotoServer) -> Callable[[], Lane]:
    """A fresh run: its own buckets and a pinned run.json, nothing run yet."""
    return lambda: Lane(endpoint=moto.endpoint, run_id=f"run-i{next(_runs):03d}-{os.getpid()}", seed=SEED,
                        events=EVENTS)


@pytest.fixture
def passed_lane(new_lane: Callable[[], Lane], scenario_files: dict[str, bytes]) -> Callable[[], Lane]:
    """A fresh run whose real Oracle lane (oracle-seed → oracle-sort → oracle-check) passed."""

    def make() -> Lane:
        lane = new_lane()
        lane.put_source(scenario_files)
        lane.lane("oracle-seed", "oracle-sort", "oracle-check")
        return lane

    return make


@pytest.fixture
def start_ig(bus: Bus, tmp_path: Path) -> Iterator[Callable[..., Ig]]:
    """Start `python -m spine ig` for a lane (health answered); every one started is stopped afterwards."""
    started: list[Ig] = []

    def start(lane: Lane, *, traffic: str, **env: str) -> Ig:
        ig = Ig(lane, bus.env(traffic=traffic, **env), logs=tmp_path / "logs")
        started.append(ig)
        return ig.start()

    yield start
    for ig in started:
        ig.stop()


# --- helpers ---


def event(lane: Lane, n: int, *, run_id: str | None = None, **payload: Any) -> dict[str, Any]:
    """A valid traffic event of the lane's run (contract §5), written out by hand."""
    return {"event_id": f"evt-{n:05d}", "event_type": "card_transaction", "platform_run_id": run_id or lane.run_id,
            "scenario_run_id": lane.scenario, "ts_utc": f"2026-11-25T10:{n // 60:02d}:{n % 60:02d}Z",
            "payload": {"card_id": f"card-{n:03d}", "merchant_id": f"m-{n % 4}", "amount_minor": 1000 + n,
                        "currency": "GBP", "channel": "ecom", **payload}}


def receipts_of(answer: requests.Response) -> list[dict[str, Any]]:
    assert answer.status_code == 200, answer.text
    receipts: list[dict[str, Any]] = answer.json()["receipts"]
    return receipts


def statuses(receipts: list[dict[str, Any]]) -> list[str]:
    return [r["status"] for r in receipts]


def acked_ends(receipts: list[dict[str, Any]]) -> dict[int, int]:
    """Per partition, the end offset the receipts acknowledge (what a read of the topic must reach)."""
    ends: dict[int, int] = {}
    for r in receipts:
        if r["status"] in ("ADMITTED", "DUPLICATE"):
            ends[r["partition"]] = max(ends.get(r["partition"], 0), r["offset"] + 1)
    return ends


def at(records: list[Record]) -> dict[tuple[int, int], Record]:
    return {(r.partition, r.offset): r for r in records}


def receipt_keys(lane: Lane) -> list[str]:
    return [k for k in lane.evidence_keys() if k.startswith("ingest/receipts/")]


def stored_receipts(lane: Lane, *, sender: str) -> list[dict[str, Any]]:
    """The durable receipt records of one sender, in request order."""
    records = [lane.evidence(k) for k in receipt_keys(lane)]
    return sorted((r for r in records if r["sender"] == sender), key=lambda r: r["request_id"])


def view_rows(lane: Lane) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = pq.read_table(io.BytesIO(lane.get(lane.oracle_root + VIEW))).to_pylist()
    return rows


def make_ready(lane: Lane, bus: Bus) -> dict[str, Any]:
    """Run sr for the lane; it must publish (or find) the run's READY."""
    proc = lane.spine("sr", **bus.env())
    assert proc.returncode == 0, proc.stderr
    (record,) = bus.ready_records(lane.run_id)
    message: dict[str, Any] = record.json()
    return message


@contextlib.contextmanager
def listener() -> Iterator[tuple[str, Callable[[], bool]]]:
    """A loopback port that accepts nothing but tells whether anyone connected: an IG nobody may reach."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)

    def contacted() -> bool:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return False
        conn.close()
        return True

    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", contacted
    finally:
        sock.close()


def refused_before_work(proc: Any, mode: str) -> str:
    """A fail-closed refusal: exit 1 and exactly one stderr line, prefixed with the mode."""
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{mode}: "), proc.stderr
    line: str = lines[0]
    return line


# --- IG ---


def test_ig_health_names_its_run_and_a_connected_bus(bus: Bus, new_lane: Callable[[], Lane],
                                                      start_ig: Callable[..., Ig]) -> None:
    lane = new_lane()
    traffic = bus.traffic_topic("health")
    ig = start_ig(lane, traffic=traffic)

    answer = ig.health()
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok"
    assert (body["platform_run_id"], body["scenario_run_id"]) == (lane.run_id, lane.scenario)
    checked = body["bus"].pop("checked_at_ms")
    assert body["bus"] == {"connected": True, "topic": traffic, "partitions": 3, "error": None}
    assert 0 <= time.time() * 1000 - checked < 60_000
    ready = lane.evidence("ingest/ig_ready.json")
    assert (ready["platform_run_id"], ready["topic"], ready["partitions"]) == (lane.run_id, traffic, 3)


def test_ig_refuses_a_missing_or_wrong_key_and_publishes_nothing(bus: Bus, new_lane: Callable[[], Lane],
                                                                 start_ig: Callable[..., Ig]) -> None:
    lane = new_lane()
    traffic = bus.traffic_topic("auth")
    ig = start_ig(lane, traffic=traffic)
    batch = [event(lane, n) for n in range(3)]

    assert ig.post(batch, key=None).status_code == 401
    assert ig.post(batch, key=None, authorization="Bearer ").status_code == 401
    assert ig.post(batch, key=None, authorization=f"Basic {bus.writer_key}").status_code == 401
    assert ig.post(batch, key="not-the-writer-key").status_code == 403
    assert ig.post(batch, key=bus.writer_key + "x").status_code == 403
    assert ig.commit(key=None).status_code == 401
    assert ig.commit(key="not-the-writer-key").status_code == 403

    assert bus.records(traffic) == []
    assert receipt_keys(lane) == []
    assert all(bus.dedupe_item(lane.run_id, e["event_id"]) is None for e in batch)
    assert not any(k.startswith("ingest/") and k != "ingest/ig_ready.json" for k in lane.evidence_keys())
    # The key is what was refused: the same batch with the writer key is admitted.
    admitted = receipts_of(ig.post(batch, key=bus.writer_key))
    assert statuses(admitted) == ["ADMITTED"] * 3
    assert len(bus.records(traffic, min_end=acked_ends(admitted))) == 3


def test_ig_admits_a_batch_once_and_answers_its_repeat_as_duplicate(bus: Bus, new_lane: Callable[[], Lane],
                                                                     start_ig: Callable[..., Ig]) -> None:
    lane = new_lane()
    traffic = bus.traffic_topic("admit")
    ig = start_ig(lane, traffic=traffic)
    batch = [event(lane, n) for n in range(8)]

    first = receipts_of(ig.post(batch, key=bus.writer_key))
    assert statuses(first) == ["ADMITTED"] * len(batch)
    assert [r["event_id"] for r in first] == [e["event_id"] for e in batch]
    records = bus.records(traffic, min_end=acked_ends(first))
    assert len(records) == len(batch)
    by_position = at(records)
    for sent, receipt in zip(batch, first, strict=True):
        record = by_position[(receipt["partition"], receipt["offset"])]
        assert receipt["topic"] == traffic
        assert record.json() == sent
        assert record.key == sent["payload"]["card_id"].encode()
    assert len({r.partition for r in records}) > 1  # a real 3-partition topic, not one log

    again = receipts_of(ig.post(batch, key=bus.writer_key))
    assert statuses(again) == ["DUPLICATE"] * len(batch)
    assert [(r["partition"], r["offset"]) for r in again] == [(r["partition"], r["offset"]) for r in first]
    assert bus.records(traffic) == records


def test_ig_quarantines_conflicts_invalid_and_foreign_events(bus: Bus, new_lane: Callable[[], Lane],
                                                            start_ig: Callable[..., Ig]) -> None:
    lane = new_lane()
    traffic = bus.traffic_topic("quarantine")
    ig = start_ig(lane, traffic=traffic)
    admitted = event(lane, 0)
    assert statuses(receipts_of(ig.post([admitted], key=bus.writer_key))) == ["ADMITTED"]

    missing = event(lane, 1)
    del missing["payload"]["currency"]
    sent: list[Any] = [
        event(lane, 0, amount_minor=999_999),         # the admitted identity with another payload
        missing,                                      # schema-invalid: a payload field missing
        event(lane, 2, amount_minor="1002"),          # schema-invalid: a string amount
        {**event(lane, 3), "event_type": "refund"},   # schema-invalid: another event type
        "not an event",                               # schema-invalid: not an object
        event(lane, 4, run_id="run-someone-else"),    # another run's event
        event(lane, 5),                               # new: admitted ...
        event(lane, 5, amount_minor=1),               # ... and its identity again with another payload
    ]
    receipts = receipts_of(ig.post(sent, key=bus.writer_key))

    assert statuses(receipts) == ["QUARANTINED"] * 6 + ["ADMITTED", "QUARANTINED"]
    reasons = [r.get("reason", "") for r in receipts]
    assert reasons[0].startswith("identity conflict") and reasons[7].startswith("identity conflict")
    assert all(reason.startswith("schema-invalid") for reason in reasons[1:5])
    assert "payload" in reasons[1] and "amount_minor" in reasons[2] and "refund" in reasons[3]
    assert reasons[5].startswith("another run's event") and "run-someone-else" in reasons[5]
    for receipt, original in zip(receipts, sent, strict=True):
        if receipt["status"] == "QUARANTINED":
            stored = bus.quarantined(receipt["quarantine"])
            assert stored == {"platform_run_id": lane.run_id, "reason": receipt["reason"], "event": original}

    records = bus.records(traffic, min_end=acked_ends(receipts))
    assert sorted(r.json()["event_id"] for r in records) == ["evt-00000", "evt-00005"]
    assert [r.json() for r in records if r.json()["event_id"] == "evt-00000"] == [admitted]
    # A conflict never replaces what was admitted: the original is still a DUPLICATE of itself.
    assert statuses(receipts_of(ig.post([admitted], key=bus.writer_key))) == ["DUPLICATE"]
    assert (bus.dedupe_item(lane.run_id, "evt-00000") or {}).get("state") == "ADMITTED"


def test_ig_answers_only_once_its_receipts_are_durable(bus: Bus, new_lane: Callable[[], Lane],
                                                      start_ig: Callable[..., Ig]) -> None:
    lane = new_lane()
    traffic = bus.traffic_topic("durable")
    ig = start_ig(lane, traffic=traffic)

    answer = ig.post([event(lane, n) for n in range(3)], key=bus.writer_key)
    assert answer.status_code == 200
    record = answer.json()
    # Read once, right after the answer, without polling: the record answered is already the stored one.
    assert lane.evidence(f"ingest/receipts/{record['request_id']}.json") == record

    # Take the evidence store away: IG must not answer 200 for receipts it could not make durable.
    evidence_bucket = lane.buckets["evidence"]
    for key in lane.evidence_keys():
        lane.s3.delete_object(Bucket=evidence_bucket, Key=f"runs/{lane.run_id}/{key}")
    lane.s3.delete_bucket(Bucket=evidence_bucket)
    batch = [event(lane, 10)]
    refused = ig.post(batch, key=bus.writer_key)
    assert refused.status_code == 503
    assert "receipts not durable" in refused.json()["error"]

    lane.s3.create_bucket(Bucket=evidence_bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    lane.put_run_json()
    retried = ig.post(batch, key=bus.writer_key)
    (receipt,) = receipts_of(retried)
    # The event was published once before the receipt write failed, and no receipt ever said so: the retry
    # reconciles it against the topic and is its one ADMITTED receipt, pointing at that one record.
    assert receipt["status"] == "ADMITTED"
    assert receipt["reason"] == "reconciled: the earlier publish is on the topic"
    records = [r for r in bus.records(traffic, min_end=acked_ends([receipt])) if r.json()["event_id"] == "evt-00010"]
    assert [(r.partition, r.offset) for r in records] == [(receipt["partition"], receipt["offset"])]
    assert lane.evidence(f"ingest/receipts/{retried.json()['request_id']}.json") == retried.json()


def test_ig_commit_writes_the_summaries_of_what_was_sent(bus: Bus, new_lane: Callable[[], Lane],
                                                         start_ig: Callable[..., Ig]) -> None:
    lane = new_lane()
    traffic = bus.traffic_topic("commit")
    ig = start_ig(lane, traffic=traffic)
    valid = [event(lane, n) for n in range(5)]
    sent = {
        "ADMITTED": receipts_of(ig.post(valid, key=bus.writer_key)),
        "DUPLICATE": receipts_of(ig.post(valid, key=bus.writer_key)),
        "QUARANTINED": receipts_of(ig.post([event(lane, 0, amount_minor=1), {"event_id": "evt-x"},
                                            event(lane, 9, run_id="run-someone-else")], key=bus.writer_key)),
    }
    assert {status: set(statuses(receipts)) for status, receipts in sent.items()} == {s: {s} for s in sent}

    assert ig.commit(key=None).status_code == 401
    assert not any(lane.exists(lane.evidence_root + name) for name in SUMMARIES)
    answer = ig.commit(key=bus.writer_key)
    assert answer.status_code == 200, answer.text
    expected = {"ADMITTED": 5, "DUPLICATE": 5, "QUARANTINED": 3, "PUBLISH_AMBIGUOUS": 0}
    assert answer.json()["counts"] == expected
    assert sorted(answer.json()["written"]) == sorted(SUMMARIES)

    summary, quarantine, offsets = (lane.evidence(name) for name in SUMMARIES)
    assert summary["counts"] == expected
    assert (summary["platform_run_id"], summary["requests"], summary["events"]) == (lane.run_id, 3, 13)
    assert sorted(summary["receipt_objects"]) == receipt_keys(lane)
    assert summary["ambiguous_event_ids"] == []
    assert quarantine["count"] == 3
    assert quarantine["by_reason"] == {"identity conflict": 1, "schema-invalid": 1, "another run's event": 1}
    assert quarantine["objects"] == sorted(r["quarantine"] for r in sent["QUARANTINED"])
    # Offsets come from the delivery reports; the broker's watermark is recorded beside them as reported
    # (Tansu's is wrong for multi-record batches, so it is compared with the broker, not with the acks).
    assert (offsets["topic"], offsets["offsets_from"]) == (traffic, "delivery reports")
    watermarks = bus.high_watermarks(traffic)
    acked, ends = Counter(r["partition"] for r in sent["ADMITTED"]), acked_ends(sent["ADMITTED"])
    assert sorted(offsets["partitions"]) == ["0", "1", "2"]
    for partition, state in offsets["partitions"].items():
        assert state["acked_records"] == acked.get(int(partition), 0)
        assert state["acked_end_offset"] == ends.get(int(partition))
        assert state["broker_high"] == watermarks[int(partition)]
    records = bus.records(traffic, min_end=ends)
    assert sorted((r.partition, r.offset) for r in records) == sorted((r["partition"], r["offset"])
                                                                      for r in sent["ADMITTED"])
    # Committing again over the same receipts writes the same bytes (write-once accepts them).
    assert ig.commit(key=bus.writer_key).json() == answer.json()


def test_ig_of_another_run_refuses_before_serving(bus: Bus, new_lane: Callable[[], Lane]) -> None:
    lane = new_lane()
    port = free_port()
    env = lane.env(**bus.env(traffic=bus.traffic_topic("foreign")), SPINE_IG_LISTEN=f"127.0.0.1:{port}",
                   REQUIRED_PLATFORM_RUN_ID="run-someone-else")
    proc = run(["-m", "spine", "ig"], env, timeout_s=60)  # a daemon that served would time out here

    line = refused_before_work(proc, "ig")
    assert f"platform_run_id='{lane.run_id}'" in line and "REQUIRED_PLATFORM_RUN_ID='run-someone-else'" in line
    assert '"event": "serving"' not in proc.stdout
    assert lane.evidence_keys() == ["run.json"]


def test_ig_refuses_to_start_on_an_unreachable_bus(bus: Bus, new_lane: Callable[[], Lane]) -> None:
    lane = new_lane()
    nothing = bus.put_bootstrap("nothing", f"127.0.0.1:{free_port()}")  # nothing listens there
    env = lane.env(**bus.env(traffic=bus.traffic_topic("unreachable"), ssm_bootstrap=nothing),
                   SPINE_IG_LISTEN=f"127.0.0.1:{free_port()}")
    proc = run(["-m", "spine", "ig"], env, timeout_s=60)

    line = refused_before_work(proc, "ig")  # one line: librdkafka's own complaints go to the JSON log
    assert line.startswith("ig: the bus is not reachable: kafka metadata for ")
    assert '"event": "serving"' not in proc.stdout
    assert lane.evidence_keys() == ["run.json"]


def test_ig_stops_on_sigterm_with_exit_0(bus: Bus, new_lane: Callable[[], Lane],
                                         start_ig: Callable[..., Ig]) -> None:
    lane = new_lane()
    ig = start_ig(lane, traffic=bus.traffic_topic("sigterm"))
    assert statuses(receipts_of(ig.post([event(lane, 0)], key=bus.writer_key))) == ["ADMITTED"]

    assert ig.stop() == 0, ig.stderr
    logged = [json.loads(line)["event"] for line in ig.stdout.splitlines()]
    assert logged[-2:] == ["stopped", "done"]
    with pytest.raises(requests.ConnectionError):
        ig.health()


def test_ig_answers_publish_ambiguous_under_a_frozen_broker_and_reconciles_it_on_a_retry(
        bus: Bus, new_lane: Callable[[], Lane], start_ig: Callable[..., Ig], tmp_path: Path) -> None:
    # Its own broker: this test freezes it (SIGSTOP) under a running IG, then thaws it.
    own = TansuBroker(workdir=tmp_path / "tansu")
    own.start()
    try:
        bootstrap = bus.put_bootstrap("ambiguous", own.endpoint)
        traffic = f"fp.bus.traffic.{bus.prefix}.ambiguous"
        bus.create_topics({traffic: 3}, bootstrap=own.endpoint)
        lane = new_lane()
        ig = start_ig(lane, traffic=traffic, ssm_bootstrap=bootstrap, SPINE_IG_DELIVERY_TIMEOUT_MS="1500")
        assert statuses(receipts_of(ig.post([event(lane, 0)], key=bus.writer_key))) == ["ADMITTED"]

        assert ig.health().status_code == 200  # IG's view of the bus is fresh for the next second
        own.freeze()
        began = time.monotonic()
        answer = ig.post([event(lane, 1)], key=bus.writer_key)
        (receipt,) = receipts_of(answer)
        assert time.monotonic() - began < 1.5 + 5 + 10
        assert receipt["status"] == "PUBLISH_AMBIGUOUS"
        assert "timed out" in receipt["reason"].lower()
        assert lane.evidence(f"ingest/receipts/{answer.json()['request_id']}.json") == answer.json()
        assert (bus.dedupe_item(lane.run_id, "evt-00001") or {}).get("state") == "PUBLISH_AMBIGUOUS"
        # Once IG sees the bus gone, nothing more is claimed or published: the caller is told to retry.
        wait_until(lambda: ig.health().status_code == 503, timeout_s=15, err_msg="health never reported the bus")
        assert ig.health().json()["bus"]["connected"] is False
        refused = ig.post([event(lane, 2)], key=bus.writer_key)
        assert refused.status_code == 503 and "nothing was claimed" in refused.text
        assert bus.dedupe_item(lane.run_id, "evt-00002") is None
        # No offsets snapshot without the bus: the commit is refused, not written half.
        assert ig.commit(key=bus.writer_key).status_code == 503
        assert not any(lane.exists(lane.evidence_root + name) for name in SUMMARIES)

        own.thaw()
        wait_until(lambda: ig.health().status_code == 200, timeout_s=30, err_msg="IG never saw the bus again")
        # The retry reconciles the ambiguous publish against the topic: admitted once, never a second record.
        (again,) = receipts_of(ig.post([event(lane, 1)], key=bus.writer_key))
        assert again["status"] == "ADMITTED", again  # found on the topic (reconciled) or published now
        (third,) = receipts_of(ig.post([event(lane, 2)], key=bus.writer_key))
        assert third["status"] == "ADMITTED"
        records = [r for r in bus.records(traffic, bootstrap=own.endpoint) if r.json()["event_id"] == "evt-00001"]
        assert [(r.partition, r.offset) for r in records] == [(again["partition"], again["offset"])]
        assert (bus.dedupe_item(lane.run_id, "evt-00001") or {}).get("state") == "ADMITTED"
        assert ig.stop() == 0, ig.stderr
        assert ig.stderr == ""  # the client's connection errors went to the JSON log on stdout
    finally:
        own.stop()


def test_ig_reconciles_claims_a_dead_ig_left_pending(bus: Bus, new_lane: Callable[[], Lane],
                                                    start_ig: Callable[..., Ig]) -> None:
    lane = new_lane()
    traffic = bus.traffic_topic("pending")
    published, lost = event(lane, 1), event(lane, 2)
    # What an IG killed mid-batch leaves: both claims PENDING under its id, one record on the topic, no receipt.
    for e in (published, lost):
        bus.ddb.put_item(TableName=bus.dedupe_table, Item={
            "dedupe_key": {"S": f"{lane.run_id}/{e['event_id']}"}, "state": {"S": "PENDING"},
            "payload_sha256": {"S": hashlib.sha256(json.dumps(e, sort_keys=True, separators=(",", ":"))
                                                   .encode()).hexdigest()},
            "platform_run_id": {"S": lane.run_id}, "owner": {"S": "dead-ig"}})
    bus.produce(traffic, [(b"card-001", json.dumps(published, sort_keys=True, separators=(",", ":")).encode())])
    ig = start_ig(lane, traffic=traffic)

    receipts = receipts_of(ig.post([published, lost], key=bus.writer_key))
    assert statuses(receipts) == ["ADMITTED", "ADMITTED"]
    assert receipts[0]["reason"] == "reconciled: the earlier publish is on the topic"
    records = bus.records(traffic, min_end=acked_ends(receipts))
    mine = [r for r in records if r.json()["platform_run_id"] == lane.run_id]
    assert sorted(r.json()["event_id"] for r in mine) == ["evt-00001", "evt-00002"]
    assert {(r["partition"], r["offset"]) for r in receipts} == {(r.partition, r.offset) for r in mine}
    assert statuses(receipts_of(ig.post([published, lost], key=bus.writer_key))) == ["DUPLICATE", "DUPLICATE"]
    assert all((bus.dedupe_item(lane.run_id, e["event_id"]) or {}).get("state") == "ADMITTED"
               for e in (published, lost))


def test_ig_refuses_a_rotated_writer_key_within_a_second_and_accepts_the_new_one_at_once(
        bus: Bus, new_lane: Callable[[], Lane], start_ig: Callable[..., Ig]) -> None:
    lane = new_lane()
    old = secrets.token_urlsafe(24)
    path = f"/{bus.prefix}/ig/rotated/{lane.run_id}"
    bus.ssm.put_parameter(Name=path, Value=old, Type="SecureString")
    ig = start_ig(lane, traffic=bus.traffic_topic("rotation"), SPINE_SSM_IG_API_KEY=path)
    assert ig.post([], key=old).status_code == 400  # accepted: the body is refused, not the key
    new = secrets.token_urlsafe(24)
    bus.ssm.put_parameter(Name=path, Value=new, Type="SecureString", Overwrite=True)
    rotated = time.monotonic()
    assert ig.post([event(lane, 1)], key=new).status_code == 200  # the new key at once
    wait_until(lambda: ig.post([], key=old).status_code == 403, timeout_s=5, err_msg="the old key was never refused")
    assert time.monotonic() - rotated < 1.0 + 1.0
    refused = ig.post([event(lane, 2)], key=old)
    assert refused.status_code == 403
    assert bus.dedupe_item(lane.run_id, "evt-00002") is None
    assert old not in ig.stdout + ig.stderr and new not in ig.stdout + ig.stderr


# --- SR ---


def test_sr_publishes_one_ready_and_a_rerun_publishes_none(bus: Bus, passed_lane: Callable[[], Lane]) -> None:
    lane = passed_lane()
    proc = lane.spine("sr", **bus.env())
    assert proc.returncode == 0, proc.stderr

    (record,) = bus.ready_records(lane.run_id)
    ready = record.json()
    checker_receipt = lane.get(lane.evidence_root + "oracle/checker_receipt.json")
    assert ready == {**ready, "type": "READY", "platform_run_id": lane.run_id, "scenario_run_id": lane.scenario,
                     "run_config_digest": lane.run_config_digest, "image_digest": IMAGE_DIGEST,
                     "oracle_root": lane.oracle_root,
                     "checker_receipt_sha256": hashlib.sha256(checker_receipt).hexdigest()}
    assert ready == sr.ready_message(ready)  # its message id is the digest of the rest
    facts = lane.evidence("sr/run_facts_view.json")
    assert (facts["platform_run_id"], facts["ready_message_id"], facts["control_topic"]) == (
        lane.run_id, ready["message_id"], CONTROL)
    manifest = lane.manifest()
    for name, output in facts["outputs"].items():
        assert output["row_count"] == manifest["outputs"][name]["row_count"]
        assert output["content_hash"] == manifest["outputs"][name]["content_hash"]
    assert facts["outputs"]["card_transactions"]["row_count"] == EVENTS
    assert bus.lease(lane.run_id) is None  # released

    again = lane.spine("sr", **bus.env())
    assert again.returncode == 0, again.stderr
    assert '"event": "ready_exists"' in again.stdout
    assert bus.ready_records(lane.run_id) == [record]


def test_sr_refuses_while_another_holds_the_lease(bus: Bus, passed_lane: Callable[[], Lane]) -> None:
    lane = passed_lane()
    bus.put_lease(lane.run_id, holder="sr-elsewhere", expires_at=time.time() + 600)

    line = refused_before_work(lane.spine("sr", **bus.env()), "sr")
    assert "held by sr-elsewhere" in line
    assert bus.ready_records(lane.run_id) == []
    assert (bus.lease(lane.run_id) or {}).get("holder") == "sr-elsewhere"
    assert not lane.exists(lane.evidence_root + "sr/run_facts_view.json")

    # An expired lease is taken over.
    bus.put_lease(lane.run_id, holder="sr-elsewhere", expires_at=time.time() - 1)
    assert make_ready(lane, bus)["platform_run_id"] == lane.run_id


def _drop_pass(lane: Lane, other: Lane | None) -> str:
    lane.delete(lane.evidence_root + "oracle/_PASS")
    return "oracle/_PASS"


def _close_run(lane: Lane, other: Lane | None) -> str:
    lane.put(lane.evidence_root + "run_completed.json", b'{"closed": true}\n')
    return f"run {lane.run_id} is closed"


def _stale_run(lane: Lane, other: Lane | None) -> str:
    lane.put_run_json(pinned_at="2026-01-01T00:00:00+00:00")  # same pins, pinned long ago
    return f"run {lane.run_id} is stale"


def _foreign_receipt(lane: Lane, other: Lane | None) -> str:
    assert other is not None
    lane.put(lane.evidence_root + "oracle/checker_receipt.json",
             other.get(other.evidence_root + "oracle/checker_receipt.json"))
    return f"checker receipt is of run {other.run_id}"


@pytest.mark.parametrize("fault", [_drop_pass, _close_run, _stale_run, _foreign_receipt],
                         ids=["no-pass", "closed", "stale", "foreign"])
def test_sr_refuses_a_run_it_cannot_vouch_for(bus: Bus, passed_lane: Callable[[], Lane],
                                              fault: Callable[[Lane, Lane | None], str]) -> None:
    lane = passed_lane()
    other = passed_lane() if fault is _foreign_receipt else None
    named = fault(lane, other)

    line = refused_before_work(lane.spine("sr", **bus.env()), "sr")
    assert line.startswith("sr: no READY: ") and named in line
    assert bus.ready_records(lane.run_id) == []
    assert not lane.exists(lane.evidence_root + "sr/run_facts_view.json")
    assert bus.lease(lane.run_id) is None


# --- WSP ---


def test_wsp_without_ready_exits_1_in_time_and_sends_nothing(bus: Bus, passed_lane: Callable[[], Lane]) -> None:
    lane = passed_lane()
    facts = {"platform_run_id": lane.run_id, "scenario_run_id": lane.scenario, "image_digest": IMAGE_DIGEST,
             "run_config_digest": lane.run_config_digest, "oracle_root": lane.oracle_root,
             "checker_receipt_sha256": "00" * 32}
    key = lane.run_id.encode()
    bus.produce(CONTROL, [
        # A READY of another run, a READY keyed by this run pinning another config, a stale READY under this
        # run's id vouching for another Oracle root or image than run.json's, a torso, garbage.
        (b"run-someone-else", sr.encode(sr.ready_message({**facts, "platform_run_id": "run-someone-else"}))),
        (key, sr.encode(sr.ready_message({**facts, "run_config_digest": "f" * 64}))),
        (key, sr.encode(sr.ready_message({**facts, "oracle_root": "s3://elsewhere/oracle/scn-previous/"}))),
        (key, sr.encode(sr.ready_message({**facts, "image_digest": "sha256:" + "cd" * 32}))),
        (key, sr.encode({k: v for k, v in sr.ready_message(facts).items() if k != "image_digest"})),
        (key, b"\xff not json"),
    ])
    timeout_s = 3
    with listener() as (url, contacted):
        began = time.monotonic()
        proc = lane.spine("wsp", **bus.env(), SPINE_IG_URL=url, SPINE_WSP_READY_TIMEOUT_S=str(timeout_s))
        elapsed = time.monotonic() - began
        assert not contacted()

    line = refused_before_work(proc, "wsp")
    assert "no READY" in line and lane.run_id in line
    assert timeout_s <= elapsed < timeout_s + 20
    assert not any(k.startswith("wsp/") for k in lane.evidence_keys())


def test_wsp_streams_every_row_once_in_order_and_a_rerun_is_all_duplicate(
        bus: Bus, passed_lane: Callable[[], Lane], start_ig: Callable[..., Ig]) -> None:
    lane = passed_lane()
    ready = make_ready(lane, bus)
    traffic = bus.traffic_topic("stream")
    ig = start_ig(lane, traffic=traffic)
    env = bus.env(traffic=traffic, SPINE_IG_URL=ig.url, SPINE_WSP_BATCH_SIZE="7")

    proc = lane.spine("wsp", **env)
    assert proc.returncode == 0, proc.stderr

    rows = view_rows(lane)
    order = [row["event_id"] for row in rows]
    assert len(order) == EVENTS
    requests_sent = stored_receipts(lane, sender=lane.evidence("wsp/stream_summary.json")["sender"])
    receipts = [receipt for request in requests_sent for receipt in request["receipts"]]
    records = bus.records(traffic, min_end=acked_ends(receipts))
    assert sorted(r.json()["event_id"] for r in records) == sorted(order)  # every row, exactly once
    by_id = {r.json()["event_id"]: r for r in records}
    for row in rows:
        sent = by_id[row["event_id"]].json()
        assert (sent["platform_run_id"], sent["scenario_run_id"]) == (lane.run_id, lane.scenario)
        assert sent["ts_utc"] == row["ts_utc"].isoformat().replace("+00:00", "Z")
        assert sent["payload"] == {k: row[k] for k in ("card_id", "merchant_id", "amount_minor", "currency",
                                                       "channel")}
    for partition in {r.partition for r in records}:
        positions = [order.index(r.json()["event_id"]) for r in records if r.partition == partition]
        assert positions == sorted(positions), f"partition {partition} is not in stream order"

    summary = lane.evidence("wsp/stream_summary.json")
    assert (summary["sent"], summary["receipts"], summary["stream_view"]["rows"]) == (EVENTS, {"ADMITTED": EVENTS},
                                                                                     EVENTS)
    assert summary["ready_message_id"] == ready["message_id"]
    assert summary["checkpoint"] == {"index": EVENTS, "last_event_id": order[-1]}
    assert lane.evidence(f"wsp/attempts/{summary['sender']}.json") == summary
    assert [len(r["receipts"]) for r in requests_sent] == [7, 7, 7, 7, 2]
    assert [r["event_id"] for r in receipts] == order  # the receipts, in request order, are the stream order
    assert all(at(records)[(r["partition"], r["offset"])].json()["event_id"] == r["event_id"] for r in receipts)

    again = lane.spine("wsp", **env)
    assert again.returncode == 0, again.stderr
    attempts = [k for k in lane.evidence_keys() if k.startswith("wsp/attempts/")]
    (second,) = [lane.evidence(k) for k in attempts if k != f"wsp/attempts/{summary['sender']}.json"]
    assert (second["sent"], second["receipts"]) == (EVENTS, {"DUPLICATE": EVENTS})
    assert bus.records(traffic) == records
    assert lane.evidence("wsp/stream_summary.json") == summary  # the first run's summary stays


def test_wsp_refuses_a_missing_stream_view_object_and_sends_nothing(bus: Bus,
                                                                   passed_lane: Callable[[], Lane]) -> None:
    lane = passed_lane()
    make_ready(lane, bus)
    lane.delete(lane.oracle_root + VIEW)
    with listener() as (url, contacted):
        proc = lane.spine("wsp", **bus.env(), SPINE_IG_URL=url)
        assert not contacted()

    line = refused_before_work(proc, "wsp")
    assert lane.oracle_root + VIEW in line
    assert not any(k.startswith("wsp/") for k in lane.evidence_keys())


def test_wsp_streams_from_the_stream_view_alone(bus: Bus, passed_lane: Callable[[], Lane],
                                                start_ig: Callable[..., Ig]) -> None:
    lane = passed_lane()
    make_ready(lane, bus)
    bucket, prefix = lane.url_parts(lane.oracle_root)
    listed = [o["Key"] for o in lane.s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]]
    raw = [k for k in listed if not k.startswith(prefix + "stream_view/")]
    assert prefix + "_manifest.json" in raw and len(raw) > 3  # the landed parts and their manifest
    for key in raw:
        lane.s3.delete_object(Bucket=bucket, Key=key)
    traffic = bus.traffic_topic("viewonly")
    ig = start_ig(lane, traffic=traffic)

    proc = lane.spine("wsp", **bus.env(traffic=traffic, SPINE_IG_URL=ig.url))
    assert proc.returncode == 0, proc.stderr
    summary = lane.evidence("wsp/stream_summary.json")
    assert (summary["sent"], summary["receipts"]) == (EVENTS, {"ADMITTED": EVENTS})
    receipts = [r for request in stored_receipts(lane, sender=summary["sender"]) for r in request["receipts"]]
    records = bus.records(traffic, min_end=acked_ends(receipts))
    assert sorted(r.json()["event_id"] for r in records) == sorted(row["event_id"] for row in view_rows(lane))
