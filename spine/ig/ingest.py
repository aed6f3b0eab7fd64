"""IG admission: validate, dedupe (conditional write), publish with acks=all, durable receipts."""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Producer

from spine import aws, canonical, events, log, s3
from spine.errors import SpineError
from spine.runscope import RunScope

ADMITTED, DUPLICATE, QUARANTINED, AMBIGUOUS = "ADMITTED", "DUPLICATE", "QUARANTINED", "PUBLISH_AMBIGUOUS"
STATUSES = (ADMITTED, DUPLICATE, QUARANTINED, AMBIGUOUS)
RECEIPTS = "ingest/receipts/"
PENDING = "PENDING"


@dataclass
class Settings:
    topic: str
    dedupe_table: str
    quarantine_bucket: str
    delivery_timeout_s: float


@dataclass
class _Delivery:
    done: threading.Event = field(default_factory=threading.Event)
    partition: int | None = None
    offset: int | None = None
    error: str | None = None


class Gate:
    """One IG process for one run: every request is answered only after its receipts are durable."""

    def __init__(self, scope: RunScope, settings: Settings, producer: Producer) -> None:
        self.scope = scope
        self.settings = settings
        self.producer = producer
        self.instance = uuid.uuid4().hex[:12]
        self._seq = itertools.count(1)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="ig-dedupe")
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="ig-delivery", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.05)

    def close(self) -> None:
        self.producer.flush(self.settings.delivery_timeout_s)
        self._stop.set()
        self._pool.shutdown(wait=True)

    # -- admission ------------------------------------------------------------------------------
    def ingest(self, batch: list[Any], *, sender: str) -> dict[str, Any]:
        receipts: list[dict[str, Any] | None] = [None] * len(batch)
        seen: dict[str, int] = {}
        candidates: list[int] = []
        later: list[int] = []  # same identity again in this request: judged against the first
        for i, event in enumerate(batch):
            reason = self._refusal(event)
            if reason:
                receipts[i] = self._quarantine(event, i, reason)
            elif event["event_id"] in seen:
                later.append(i)
            else:
                seen[event["event_id"]] = i
                candidates.append(i)
        digests = {i: events.payload_sha256(batch[i]) for i in (*candidates, *later)}
        claims = list(self._pool.map(lambda i: self._claim(batch[i], digests[i]), candidates))
        publish: list[tuple[int, _Delivery]] = []
        for i, claim in zip(candidates, claims, strict=True):
            if claim is None:
                publish.append((i, self._publish(batch[i])))
            else:
                receipts[i] = claim if claim["status"] != QUARANTINED else self._quarantine(
                    batch[i], i, claim["reason"])
        deadline = time.monotonic() + self.settings.delivery_timeout_s + 5
        for _, delivery in publish:
            delivery.done.wait(max(0.0, deadline - time.monotonic()))
        settled = [self._settle(batch[i], digests[i], delivery) for i, delivery in publish]
        # The outcomes are durable in the dedupe table before any receipt names them (25 items per call).
        items = [item for _, item in settled]
        list(self._pool.map(lambda chunk: aws.put_all(self.settings.dedupe_table, chunk),
                            [items[k:k + 25] for k in range(0, len(items), 25)]))
        for (i, _), (receipt, _) in zip(publish, settled, strict=True):
            receipts[i] = receipt
        for i in later:
            first_index = seen[batch[i]["event_id"]]
            first = receipts[first_index] or {}
            if digests[i] != digests[first_index]:
                receipts[i] = self._quarantine(batch[i], i, "identity conflict: same event_id, different payload")
            else:
                receipts[i] = {**first, "status": DUPLICATE if first.get("status") == ADMITTED else first["status"],
                               "reason": "repeated in the same request"}
        record: dict[str, Any] = {
            "request_id": f"{self.instance}-{next(self._seq):08d}",
            "platform_run_id": self.scope.platform_run_id,
            "sender": sender,
            "received_at_ms": int(time.time() * 1000),
            "receipts": [{"index": i, **r} for i, r in enumerate(receipts) if r is not None],
        }
        # Durable before the answer: a receipt the caller saw always exists in the run's evidence.
        key = self.scope.evidence.key(f"{RECEIPTS}{record['request_id']}.json")
        s3.put_once(self.scope.evidence.bucket, key, canonical.dumps(record))
        counts = Counter(str(r["status"]) for r in record["receipts"])
        log.info("ingest", request_id=record["request_id"], sender=sender, events=len(batch), **counts)
        return record

    def _refusal(self, event: Any) -> str | None:
        problem = events.problem(event)
        if problem:
            return f"schema-invalid: {problem}"
        if event["platform_run_id"] != self.scope.platform_run_id:
            return (f"another run's event: platform_run_id {event['platform_run_id']} is not "
                    f"{self.scope.platform_run_id}")
        if event["scenario_run_id"] != self.scope.scenario_run_id:
            return f"another scenario's event: scenario_run_id {event['scenario_run_id']}"
        return None

    def _dedupe_key(self, event: dict[str, Any]) -> str:
        return f"{self.scope.platform_run_id}/{event['event_id']}"

    def _claim(self, event: dict[str, Any], digest: str) -> dict[str, Any] | None:
        """None when this request owns the identity; otherwise the receipt the earlier claim implies."""
        key = self._dedupe_key(event)
        try:
            aws.put_new(self.settings.dedupe_table, {"dedupe_key": key, "payload_sha256": digest, "state": PENDING,
                                                     "platform_run_id": self.scope.platform_run_id},
                        key="dedupe_key")
            return None
        except aws.ConditionFailed as lost:
            held = lost.item or aws.get(self.settings.dedupe_table, {"dedupe_key": key}) or {}
        base = {"event_id": event["event_id"], "payload_sha256": digest}
        if held.get("payload_sha256") != digest:
            return {**base, "status": QUARANTINED, "reason": "identity conflict: event_id already admitted with "
                                                             "another payload"}
        if held.get("state") == ADMITTED:
            return {**base, "status": DUPLICATE, "topic": held.get("topic"), "partition": held.get("partition"),
                    "offset": held.get("offset")}
        return {**base, "status": AMBIGUOUS, "reason": f"an earlier publish of this event is {held.get('state')}: "
                                                       "its outcome is unknown"}

    def _publish(self, event: dict[str, Any]) -> _Delivery:
        delivery = _Delivery()

        def report(err: KafkaError | None, msg: Any) -> None:
            if err is not None:
                delivery.error = f"{err.name()}: {err.str()}"
            else:
                delivery.partition, delivery.offset = msg.partition(), msg.offset()
            delivery.done.set()

        key = str(event["payload"]["card_id"]).encode()
        try:
            self.producer.produce(self.settings.topic, value=events.encode(event), key=key, on_delivery=report)
        except (BufferError, Exception) as exc:  # not even queued: nothing was sent
            delivery.error = f"not queued: {exc}"
            delivery.done.set()
        return delivery

    def _settle(self, event: dict[str, Any], digest: str,
                delivery: _Delivery) -> tuple[dict[str, Any], dict[str, Any]]:
        """The receipt of a publish and the dedupe item that records its outcome."""
        base = {"event_id": event["event_id"], "payload_sha256": digest}
        item = {"dedupe_key": self._dedupe_key(event), "payload_sha256": digest,
                "platform_run_id": self.scope.platform_run_id}
        if delivery.done.is_set() and delivery.error is None:
            placed = {"topic": self.settings.topic, "partition": delivery.partition, "offset": delivery.offset}
            return {**base, "status": ADMITTED, **placed}, {**item, "state": ADMITTED, **placed}
        error = delivery.error or "no delivery report before the deadline"
        return {**base, "status": AMBIGUOUS, "reason": error}, {**item, "state": AMBIGUOUS, "error": error}

    def _quarantine(self, event: Any, index: int, reason: str) -> dict[str, Any]:
        event_id = event.get("event_id") if isinstance(event, dict) else None
        ident = str(event_id) if isinstance(event_id, str) and event_id else f"invalid-{uuid.uuid4().hex[:8]}"
        key = f"{self.scope.platform_run_id}/{ident}/{uuid.uuid4().hex[:12]}.json"
        body = canonical.dumps({"platform_run_id": self.scope.platform_run_id, "reason": reason, "event": event})
        s3.put_once(self.settings.quarantine_bucket, key, body)
        return {"event_id": event_id, "status": QUARANTINED, "reason": reason,
                "quarantine": f"s3://{self.settings.quarantine_bucket}/{key}"}


def receipts(scope: RunScope) -> list[dict[str, Any]]:
    """Every durable receipt record of the run, oldest first."""
    bucket, prefix = scope.evidence.bucket, scope.evidence.key(RECEIPTS)
    records = []
    for key in s3.list_keys(bucket, prefix):
        raw = s3.get_bytes(bucket, key)
        try:
            records.append(json.loads(raw))
        except ValueError as exc:
            raise SpineError(f"receipt object s3://{bucket}/{key} is not JSON: {exc}") from exc
    return sorted(records, key=lambda r: (r.get("received_at_ms", 0), r.get("request_id", "")))
