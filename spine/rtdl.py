"""`rtdl` daemon: per batch, archive what was consumed, publish the enriched events, then commit (contract §6)."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from spine import daemon, events, evidence, features, ids, kafka, log, s3
from spine.errors import SpineError
from spine.runscope import RunScope

MODE = "rtdl"
SNAPSHOT = "ingest/kafka_offsets_snapshot.json"
CATCH_UP = "rtdl_core/catch_up.json"
INDEX = "rtdl_core/archive_index.json"
BATCH = 500
WARM_UP_STALL_S = 30.0
_OBJECT = re.compile(r"^partition=(\d+)/(\d{20})-(\d{20})\.jsonl$")


@dataclass(frozen=True)
class Archived:
    """One archive object: a partition's records ``first_offset``..``last_offset`` of one batch."""

    key: str
    partition: int
    first_offset: int
    last_offset: int
    records: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "first_offset": self.first_offset, "last_offset": self.last_offset,
                "records": self.records, "sha256": self.sha256}


def _text(raw: bytes | None) -> str | None:
    # Lossless for any bytes: invalid UTF-8 survives as surrogates, written as \udcXX escapes (ASCII JSON).
    return None if raw is None else raw.decode("utf-8", "surrogateescape")


def archive_body(records: list[kafka.Record]) -> bytes:
    """One JSON line per record, in offset order (contract §6)."""
    lines = [json.dumps({"offset": r.offset, "timestamp_ms": r.timestamp_ms, "key": _text(r.key),
                         "value": _text(r.value), "value_sha256": hashlib.sha256(r.value).hexdigest()},
                        sort_keys=True, separators=(",", ":")) for r in records]
    return ("\n".join(lines) + "\n").encode("ascii")


def lag_max(run: dict[str, Any]) -> int:
    value = (run.get("run_config") or {}).get("rtdl_caught_up_lag_max")
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SpineError(f"run.json run_config.rtdl_caught_up_lag_max={value!r} is not a number of records (>= 0)")
    return value


class Rtdl:
    """One RTDL core for one run: the consumer group, the card state and the archive of what it consumed."""

    def __init__(self, scope: RunScope, stop: threading.Event) -> None:
        env = scope.env
        self.scope, self.stop = scope, stop
        self.traffic, self.out, self.bucket = env["SPINE_TOPIC_TRAFFIC"], env["SPINE_TOPIC_RTDL"], \
            env["SPINE_ARCHIVE_BUCKET"]
        self.lag_max = lag_max(scope.run)
        self.group = ids.group(MODE, scope.platform_run_id)
        self.prefix = f"{scope.platform_run_id}/{self.traffic}/"
        self.settings = kafka.config(env)
        self.partitions = kafka.partitions(self.settings, self.traffic)
        self.state = features.State()
        self.skipped: Counter[str] = Counter()
        self.published = 0
        self.written: dict[str, Archived] = {}  # objects this process wrote (the index lists the bucket)
        self.archived_end = self._archived_ends()
        self.pending = [k for k in (INDEX, CATCH_UP) if not s3.exists(scope.evidence.bucket, scope.evidence.key(k))]
        if CATCH_UP not in self.pending:
            self.pending = []  # caught up before: a restarted RTDL writes neither again
        self.snapshot: dict[str, Any] | None = None
        self.lag_logged = -1
        self.consumer = daemon.consumer(self.settings, MODE, scope.platform_run_id)
        self.producer = kafka.producer(self.settings)

    def close(self) -> None:
        self.consumer.close()  # leaves the group; nothing is committed here
        self.producer.flush(10)

    # -- the run's own events ---------------------------------------------------------------------
    def _own(self, record: kafka.Record) -> tuple[dict[str, Any], int] | None:
        """The envelope and its event time, or None (counted) for another run's record or a non-envelope."""
        try:
            event = json.loads(record.value)
        except ValueError:
            self.skipped["invalid"] += 1
            return None
        if events.problem(event) is not None:
            self.skipped["invalid"] += 1
            return None
        if event["platform_run_id"] != self.scope.platform_run_id \
                or event["scenario_run_id"] != self.scope.scenario_run_id:
            self.skipped["another_run"] += 1
            return None
        try:
            return event, features.event_time_us(event["ts_utc"])
        except ValueError:
            self.skipped["invalid"] += 1
            return None

    # -- start: where the archive ends, the card state before the committed offsets ---------------
    def _archived_ends(self) -> dict[int, int]:
        """Per partition the offset after the last archived record (a record is archived once, even after a crash
        between the archive write and the commit)."""
        ends: dict[int, int] = {}
        for key in s3.list_keys(self.bucket, self.prefix):
            found = _OBJECT.match(key[len(self.prefix):])
            if found:
                partition, last = int(found.group(1)), int(found.group(3))
                ends[partition] = max(ends.get(partition, 0), last + 1)
        return ends

    def warm_up(self) -> None:
        """Rebuild the card state from each partition's records before the group's committed offset: read with an
        assigned consumer outside the group; nothing is archived, published or committed."""
        ends = {p: o for p, o in daemon.committed(self.consumer, self.traffic, self.partitions).items() if o > 0}
        log.info("warm_up", committed=ends, archived_end=self.archived_end)
        if not ends:
            return
        reader = Consumer({**self.settings, "group.id": f"{self.group}.warm-up", "enable.auto.commit": False,
                           "enable.partition.eof": False})
        seen = 0
        try:
            try:
                lows = {p: reader.get_watermark_offsets(TopicPartition(self.traffic, p), timeout=5)[0] for p in ends}
            except KafkaException as exc:
                raise SpineError(f"kafka watermarks of {self.traffic}: {exc}") from exc
            pending = {p: end for p, end in ends.items() if lows[p] < end}
            reader.assign([TopicPartition(self.traffic, p, lows[p]) for p in pending])
            progress = time.monotonic()
            while pending and not self.stop.is_set():
                batch = daemon.consume(reader, self.traffic, max_records=BATCH, timeout_s=0.5)
                for record in batch:
                    end = pending.get(record.partition)
                    if end is None or record.offset >= end:
                        continue
                    own = self._own(record)
                    if own is not None:
                        self.state.observe_event(*own)
                        seen += 1
                    if record.offset + 1 >= end:
                        del pending[record.partition]
                if batch:
                    progress = time.monotonic()
                    continue
                for tp in reader.position([TopicPartition(self.traffic, p) for p in pending]):
                    if tp.offset >= pending[tp.partition]:  # a gap in offsets just before the committed one
                        del pending[tp.partition]
                if pending and time.monotonic() - progress > WARM_UP_STALL_S:
                    raise SpineError(f"warm-up read of {self.traffic} stalled below the committed offsets {pending}")
        finally:
            reader.close()
        self.skipped.clear()  # what the warm-up skipped was counted by the process that consumed it
        log.info("warmed_up", events=seen, cards=self.state.cards)

    # -- the loop ----------------------------------------------------------------------------------
    def serve(self) -> None:
        self.consumer.subscribe([self.traffic])
        log.info("consuming", topic=self.traffic, group=self.group, out=self.out, archive=f"s3://{self.bucket}/"
                 f"{self.prefix}", evidence_pending=self.pending)
        poll = daemon.poll_s()
        check_at = 0.0
        while not self.stop.is_set():
            batch = daemon.consume(self.consumer, self.traffic, max_records=BATCH, timeout_s=min(poll, 0.5))
            if batch:
                self.handle(batch)
            if self.pending and time.monotonic() >= check_at:
                self.check_caught_up()
                check_at = time.monotonic() + poll

    def handle(self, batch: list[kafka.Record]) -> None:
        """Archive, publish, flush, commit: the offsets move only past records that are archived and published."""
        by_partition: dict[int, list[kafka.Record]] = {}
        for record in batch:
            by_partition.setdefault(record.partition, []).append(record)
        for partition, records in sorted(by_partition.items()):
            fresh = [r for r in records if r.offset >= self.archived_end.get(partition, 0)]
            if fresh:
                self._archive(partition, fresh)
        failures: list[str] = []

        def report(err: KafkaError | None, msg: Any) -> None:
            if err is not None:
                failures.append(f"{err.name()}: {err.str()}")

        published = 0
        for record in batch:
            own = self._own(record)
            if own is None:
                continue
            event, ts_us = own
            enriched = {name: event[name] for name in ("event_id", "platform_run_id", "scenario_run_id", "ts_utc",
                                                       "payload")}
            enriched["traffic"] = {"partition": record.partition, "offset": record.offset}
            enriched["features"] = self.state.observe_event(event, ts_us)
            try:
                self.producer.produce(self.out, key=event["payload"]["card_id"].encode(),
                                      value=events.encode(enriched), on_delivery=report)
            except (BufferError, KafkaException) as exc:
                raise SpineError(f"kafka produce to {self.out}: {exc}") from exc
            published += 1
        left = self.producer.flush(15)
        if left or failures:
            raise SpineError(f"kafka produce to {self.out}: {left} enriched event(s) undelivered, "
                             f"{len(failures)} failed ({'; '.join(sorted(set(failures))[:3])}); offsets not committed")
        ends = {p: records[-1].offset + 1 for p, records in by_partition.items()}
        daemon.commit(self.consumer, self.traffic, ends)
        self.published += published
        log.info("batch", records=len(batch), published=published, committed=ends, skipped=dict(self.skipped))

    def _archive(self, partition: int, records: list[kafka.Record]) -> None:
        first, last = records[0].offset, records[-1].offset
        key = f"{self.prefix}partition={partition}/{first:020d}-{last:020d}.jsonl"
        body = archive_body(records)
        s3.put_once(self.bucket, key, body)
        self.written[key] = Archived(key, partition, first, last, len(records), hashlib.sha256(body).hexdigest())
        self.archived_end[partition] = last + 1

    # -- catch-up evidence -------------------------------------------------------------------------
    def check_caught_up(self) -> None:
        """Once IG's offsets snapshot exists and the committed offsets are within the lag of its acknowledged ends:
        the archive index, then catch_up.json (the marker the decision lane waits on)."""
        snapshot = self.snapshot = self.snapshot or evidence.get_json(self.scope.evidence, SNAPSHOT)  # write-once
        if snapshot is None:
            return
        if snapshot.get("topic", self.traffic) != self.traffic or not isinstance(snapshot.get("partitions"), dict) \
                or not all(str(name).isdigit() for name in snapshot["partitions"]):
            raise SpineError(f"{self.scope.evidence.url(SNAPSHOT)} is not an offsets snapshot of {self.traffic}")
        committed = daemon.committed(self.consumer, self.traffic, self.partitions)
        partitions: dict[str, dict[str, Any]] = {}
        for name, entry in sorted(snapshot["partitions"].items(), key=lambda item: int(item[0])):
            acked = entry.get("acked_end_offset") if isinstance(entry, dict) else "missing"
            if acked is not None and (not isinstance(acked, int) or isinstance(acked, bool)):
                raise SpineError(f"{self.scope.evidence.url(SNAPSHOT)}: partition {name} acked_end_offset={acked!r}")
            offset = committed.get(int(name), -1)
            offset_or_none = offset if offset >= 0 else None
            lag = 0 if acked is None else max(0, acked - max(offset, 0))
            partitions[name] = {"acked_end_offset": acked, "committed_offset": offset_or_none, "lag": lag}
        lag = max((p["lag"] for p in partitions.values()), default=0)
        if lag > self.lag_max:
            if lag != self.lag_logged:
                log.info("catching_up", lag=lag, lag_max=self.lag_max)
            self.lag_logged = lag
            return
        if INDEX in self.pending:  # absent at start (an index already written stays as it is)
            evidence.put_json(self.scope.evidence, INDEX, self.index())
            self.pending.remove(INDEX)
        evidence.put_json(self.scope.evidence, CATCH_UP, {
            "platform_run_id": self.scope.platform_run_id, "group": self.group, "topic": self.traffic,
            "lag_max": self.lag_max, "partitions": partitions, "lag": lag, "caught_up": True})
        self.pending = []
        log.info("caught_up", lag=lag, lag_max=self.lag_max, partitions=partitions)

    def index(self) -> dict[str, Any]:
        """Every archive object under the run's prefix, listed from the bucket (a restarted RTDL's index is whole)."""
        objects: dict[str, list[dict[str, Any]]] = {str(p): [] for p in range(self.partitions)}
        for key in s3.list_keys(self.bucket, self.prefix):
            found = _OBJECT.match(key[len(self.prefix):])
            if found is None:
                log.info("archive_unknown_object", key=key)
                continue
            known = self.written.get(key) or self._describe(key, int(found.group(1)), int(found.group(2)),
                                                             int(found.group(3)))
            objects.setdefault(str(known.partition), []).append(known.to_json())
        return {"platform_run_id": self.scope.platform_run_id, "bucket": self.bucket, "topic": self.traffic,
                "prefix": self.prefix, "partitions": objects}

    def _describe(self, key: str, partition: int, first: int, last: int) -> Archived:
        body = s3.get_bytes(self.bucket, key)
        return Archived(key, partition, first, last, body.count(b"\n"), hashlib.sha256(body).hexdigest())


def run(scope: RunScope) -> None:
    stop = daemon.install_stop()
    core = Rtdl(scope, stop)
    try:
        core.warm_up()
        if not stop.is_set():
            core.serve()
    finally:
        core.close()
    log.info("stopped", published=core.published, skipped=dict(core.skipped))
