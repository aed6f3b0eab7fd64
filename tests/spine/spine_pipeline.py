"""Helpers for the decision-plane tests: a run's topics, archive bucket and DSN in SSM, hand-made traffic and enriched
events, the consumer groups read and rewound by the test, and `rtdl` / `decision-lane` as real subprocesses."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import Consumer, Producer, TopicPartition
from spine_bus import Bus, ModeProcess, Record
from spine_lane import REGION, Lane, config_digest

from harness.substrate import PostgresCluster
from harness.wait import wait_until

BASE = "2026-11-25T10:"


def ts(minute: int, second: int = 0) -> str:
    return f"{BASE}{minute:02d}:{second:02d}Z"


def encode(value: dict[str, Any]) -> bytes:
    """The platform's record values: compact JSON, sorted keys."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def group(mode: str, run_id: str) -> str:
    return f"spine.{mode}.{run_id}"


class Daemon(ModeProcess):
    """A consuming daemon as a real process; started once it logs that it consumes."""

    def __init__(self, mode: str, env: dict[str, str], *, logs: Path) -> None:
        super().__init__(mode, env, logs=logs, tag=uuid.uuid4().hex[:6])

    def start(self, *, timeout_s: float = 30.0) -> Daemon:
        """Returns once the daemon says it consumes, or once it exited (a refusal: see ``wait_exit``)."""
        proc = self.spawn()
        wait_until(lambda: proc.poll() is not None or self.logged("consuming"), timeout_s=timeout_s,
                   max_backoff_s=0.1, err_msg=f"{self.mode} did not start consuming")
        return self

    def wait_exit(self, *, timeout_s: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout_s)


@dataclass
class Pipeline:
    """One run's decision plane: traffic, rtdl and decision topics, a versioned archive bucket, the DSN in SSM."""

    bus: Bus
    lane: Lane
    pg: PostgresCluster
    logs: Path
    label: str
    lag_max: int = 0
    daemons: list[Daemon] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.run_id = self.lane.run_id
        self.traffic = self.bus.traffic_topic(self.label)
        self.rtdl_topic = f"fp.bus.rtdl.{self.bus.prefix}.{self.label}"
        self.decision_topic = f"fp.bus.decision.{self.bus.prefix}.{self.label}"
        self.bus.create_topics({self.rtdl_topic: 3, self.decision_topic: 3})
        self.archive = f"archive-{self.run_id}"
        self.lane.s3.create_bucket(Bucket=self.archive, CreateBucketConfiguration={"LocationConstraint": REGION})
        self.lane.s3.put_bucket_versioning(Bucket=self.archive, VersioningConfiguration={"Status": "Enabled"})
        self.ssm_dsn = f"/{self.bus.prefix}/db/dsn"
        self.bus.ssm.put_parameter(Name=self.ssm_dsn, Value=self.pg.dsn, Type="SecureString", Overwrite=True)
        # Pinned like P1: run.json's run_config carries RTDL_CAUGHT_UP_LAG_MAX.
        self.lane.run_config = {**self.lane.run_config, "rtdl_caught_up_lag_max": self.lag_max}
        self.lane.run_config_digest = config_digest(self.lane.run_config)
        self.lane.put_run_json()

    def env(self, **extra: str) -> dict[str, str]:
        return self.lane.env(**self.bus.env(traffic=self.traffic), SPINE_TOPIC_RTDL=self.rtdl_topic,
                             SPINE_TOPIC_DECISION=self.decision_topic, SPINE_ARCHIVE_BUCKET=self.archive,
                             SPINE_SSM_DB_DSN=self.ssm_dsn, SPINE_DAEMON_POLL_S="0.2",
                             SPINE_KAFKA_SESSION_TIMEOUT_MS="2000", SPINE_KAFKA_HEARTBEAT_MS="500", **extra)

    def daemon(self, mode: str, **extra: str) -> Daemon:
        started = Daemon(mode, self.env(**extra), logs=self.logs)
        self.daemons.append(started)
        return started

    def start(self, mode: str, **extra: str) -> Daemon:
        started = self.daemon(mode, **extra).start()
        assert started.proc is not None and started.proc.poll() is None, started.stderr
        return started

    def stop_all(self) -> None:
        for started in reversed(self.daemons):
            started.stop()

    # --- what the test writes as others would ---

    def event(self, event_id: str, card: str, when: str, amount: int, merchant: str, *,
              run_id: str | None = None) -> dict[str, Any]:
        """A traffic envelope (contract §5) of this run, or of ``run_id``."""
        return {"event_id": event_id, "event_type": "card_transaction", "platform_run_id": run_id or self.run_id,
                "scenario_run_id": self.lane.scenario, "ts_utc": when,
                "payload": {"card_id": card, "merchant_id": merchant, "amount_minor": amount, "currency": "GBP",
                            "channel": "ecom"}}

    def produce(self, topic: str, records: list[tuple[bytes, bytes]]) -> list[tuple[int, int]]:
        """Write records in order (idempotent producer, acks=all); their (partition, offset) from delivery reports."""
        producer = Producer({"bootstrap.servers": self.bus.bootstrap, "acks": "all", "enable.idempotence": True,
                             "log_level": 0})
        placed: list[Any] = [None] * len(records)

        def report(i: int) -> Callable[[Any, Any], None]:
            def done(err: Any, msg: Any) -> None:
                placed[i] = err if err is not None else (msg.partition(), msg.offset())

            return done

        for i, (key, value) in enumerate(records):
            producer.produce(topic, key=key, value=value, on_delivery=report(i))
        assert producer.flush(15) == 0
        assert all(isinstance(p, tuple) for p in placed), placed
        return placed

    def put_evidence(self, relative: str, record: dict[str, Any]) -> None:
        self.lane.put(self.lane.evidence_root + relative, json.dumps(record, sort_keys=True).encode())

    def put_snapshot(self, acked_ends: Mapping[int, int | None]) -> None:
        """IG's offsets snapshot as P7 leaves it (only what RTDL reads is meaningful here)."""
        self.put_evidence("ingest/kafka_offsets_snapshot.json", {
            "platform_run_id": self.run_id, "topic": self.traffic, "offsets_from": "delivery reports",
            "partitions": {str(p): {"acked_records": None, "acked_min_offset": None, "acked_end_offset": end,
                                    "broker_low": 0, "broker_high": end} for p, end in acked_ends.items()}})

    def put_receipt_summary(self, admitted: int) -> None:
        self.put_evidence("ingest/receipt_summary.json", {
            "platform_run_id": self.run_id, "scenario_run_id": self.lane.scenario, "requests": 1, "events": admitted,
            "counts": {"ADMITTED": admitted, "DUPLICATE": 0, "QUARANTINED": 0, "PUBLISH_AMBIGUOUS": 0},
            "receipt_objects": [], "ambiguous_event_ids": []})

    # --- what the test reads ---

    def records(self, topic: str, *, run_only: bool = True, min_end: dict[int, int] | None = None) -> list[Record]:
        found = self.bus.records(topic, min_end=min_end)
        if not run_only:
            return found
        return [r for r in found if _run_of(r.value) == self.run_id]

    def committed(self, mode: str, topic: str) -> dict[int, int]:
        """A group's committed offsets, read without joining it (-1001: none)."""
        consumer = Consumer({"bootstrap.servers": self.bus.bootstrap, "group.id": group(mode, self.run_id),
                             "enable.auto.commit": False, "log_level": 0})
        try:
            found = consumer.committed([TopicPartition(topic, p) for p in self.bus.partitions(topic)], timeout=10)
            return {int(tp.partition): int(tp.offset) for tp in found}
        finally:
            consumer.close()

    def rewind(self, mode: str, topic: str) -> None:
        """Commit offset 0 for every partition in the (stopped) daemon's group: everything is delivered again."""
        consumer = Consumer({"bootstrap.servers": self.bus.bootstrap, "group.id": group(mode, self.run_id),
                             "enable.auto.commit": False, "log_level": 0})
        try:
            consumer.commit(offsets=[TopicPartition(topic, p, 0) for p in self.bus.partitions(topic)],
                            asynchronous=False)
        finally:
            consumer.close()

    def archive_objects(self) -> dict[str, bytes]:
        """Every object of the archive bucket (key → bytes), in key order; each key must have one version."""
        listed = self.lane.s3.list_object_versions(Bucket=self.archive).get("Versions", [])
        keys = [v["Key"] for v in listed]
        assert len(keys) == len(set(keys)), "an archive object was written twice"
        return {key: self.lane.s3.get_object(Bucket=self.archive, Key=key)["Body"].read() for key in sorted(keys)}

    def dla(self) -> list[tuple[Any, ...]]:
        """The run's DLA rows as the platform role reads them."""
        with psycopg.connect(self.pg.dsn) as conn:
            return list(conn.execute("select decision_id, event_id, decision, record, record_sha256 from dla_records "
                                     "where platform_run_id = %s order by decision_id", (self.run_id,)).fetchall())


def _run_of(value: bytes) -> str | None:
    try:
        decoded = json.loads(value)
    except ValueError:
        return None
    return decoded.get("platform_run_id") if isinstance(decoded, dict) else None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
