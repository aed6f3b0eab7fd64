"""IG admission: validate, dedupe (conditional write), publish with acks=all, durable receipts, reconciliation."""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Producer

from spine import aws, canonical, events, kafka, log, s3
from spine.errors import SpineError
from spine.runscope import RunScope

ADMITTED, DUPLICATE, QUARANTINED, AMBIGUOUS = "ADMITTED", "DUPLICATE", "QUARANTINED", "PUBLISH_AMBIGUOUS"
STATUSES = (ADMITTED, DUPLICATE, QUARANTINED, AMBIGUOUS)
RECEIPTS = "ingest/receipts/"
PENDING = "PENDING"
RECONCILE_READ_S = 60.0  # reading the traffic topic to reconcile an identity whose publish is in doubt


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


@dataclass(frozen=True)
class _Recover:
    """A claim taken over from a publish whose outcome is unknown (ambiguous, or left PENDING by a dead IG)."""

    held: dict[str, Any]


class Gate:
    """One IG process for one run: every request is answered only after its receipts are durable.

    Each claim in ``ig_dedupe`` names its owner (this process); a claim left PENDING by another process (an
    IG that died mid-batch: one replica per run) or settled PUBLISH_AMBIGUOUS is reconciled against the
    traffic topic when its identity is sent again, so a retry never publishes a second record.
    """

    def __init__(self, scope: RunScope, settings: Settings, bus: dict[str, Any],
                 new_producer: Callable[[], Producer]) -> None:
        self.scope = scope
        self.settings = settings
        self.bus = bus
        self.instance = uuid.uuid4().hex[:12]
        self._new_producer = new_producer
        self._producers = [new_producer()]  # the newest publishes; replaced ones are polled until drained
        self._renew_lock = threading.Lock()
        self._seq = itertools.count(1)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="ig-dedupe")
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="ig-delivery", daemon=True)
        self._poller.start()

    @property
    def producer(self) -> Producer:
        return self._producers[-1]

    def _poll(self) -> None:
        while not self._stop.is_set():
            # A replaced producer is polled while it still owes delivery reports; it is kept (never destroyed
            # under a broker that may not answer) until the process ends.
            producers = [p for p in self._producers[:-1] if len(p)] + [self._producers[-1]]
            for p in producers:
                p.poll(0.05 / len(producers))

    def _renew(self, failed: Producer) -> None:
        """A producer whose publish failed is replaced: its idempotent session may be fenced for good after
        an outage (librdkafka bumps the epoch; the embedded broker then fences every later record)."""
        with self._renew_lock:
            if self._producers[-1] is failed:
                self._producers.append(self._new_producer())
                log.info("producer_renewed", after="a failed or timed-out publish")

    def flush(self, timeout_s: float) -> None:
        for p in list(self._producers):
            p.flush(timeout_s)

    def close(self) -> None:
        self.flush(self.settings.delivery_timeout_s)
        self._stop.set()
        self._pool.shutdown(wait=True)

    # -- admission ------------------------------------------------------------------------------
    def ingest(self, batch: list[Any], *, sender: str, received_at_ms: int | None = None) -> dict[str, Any]:
        received_at_ms = int(time.time() * 1000) if received_at_ms is None else received_at_ms
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
        owned: list[int] = []  # identities this request claimed (fresh or taken over): their outcome is ours
        recover: list[int] = []
        for i, claim in zip(candidates, claims, strict=True):
            if claim is None:
                owned.append(i)
            elif isinstance(claim, _Recover):
                owned.append(i)
                recover.append(i)
            else:
                receipts[i] = claim if claim["status"] != QUARANTINED else self._quarantine(
                    batch[i], i, claim["reason"])
        outcomes: dict[int, dict[str, Any]] = {}  # index -> the dedupe item that records its outcome
        try:
            publish_now = [i for i in owned if i not in recover]
            for i, (receipt, item) in self._reconcile({i: (batch[i], digests[i]) for i in recover}).items():
                if receipt is None:
                    publish_now.append(i)  # not on the topic: published now, under this request's claim
                else:
                    receipts[i], outcomes[i] = receipt, item
            producer = self.producer
            publish = [(i, self._publish(producer, batch[i])) for i in sorted(publish_now)]
            deadline = time.monotonic() + self.settings.delivery_timeout_s + 5
            for _, delivery in publish:
                delivery.done.wait(max(0.0, deadline - time.monotonic()))
            for i, delivery in publish:
                receipts[i], outcomes[i] = self._settle(batch[i], digests[i], delivery)
            if any(not d.done.is_set() or d.error for _, d in publish):
                self._renew(producer)
            for i in later:
                first_index = seen[batch[i]["event_id"]]
                first = receipts[first_index] or {}
                if digests[i] != digests[first_index]:
                    receipts[i] = self._quarantine(batch[i], i, "identity conflict: same event_id, different payload")
                else:
                    receipts[i] = {**first, "status": DUPLICATE if first.get("status") == ADMITTED
                                   else first["status"], "reason": "repeated in the same request"}
            record: dict[str, Any] = {
                "request_id": f"{self.instance}-{next(self._seq):08d}",
                "platform_run_id": self.scope.platform_run_id,
                "sender": sender,
                "received_at_ms": received_at_ms,
                "receipts": [{"index": i, **r} for i, r in enumerate(receipts) if r is not None],
            }
            # Durable before the answer, and before the table: a claim still PENDING after a crash here is
            # reconciled by the next IG from this record and the topic, never answered as a bare duplicate.
            key = self.scope.evidence.key(f"{RECEIPTS}{record['request_id']}.json")
            s3.put_once(self.scope.evidence.bucket, key, canonical.dumps(record))
            items = list(outcomes.values())
            list(self._pool.map(lambda chunk: aws.put_all(self.settings.dedupe_table, chunk),
                                [items[k:k + 25] for k in range(0, len(items), 25)]))
        except Exception:
            self._release_in_doubt([(batch[i], digests[i]) for i in owned])
            raise
        counts = Counter(str(r["status"]) for r in record["receipts"])
        log.info("ingest", request_id=record["request_id"], sender=sender, events=len(batch), **counts)
        return record

    def _release_in_doubt(self, claimed: list[tuple[dict[str, Any], str]]) -> None:
        """A request that failed after claiming: its claims become PUBLISH_AMBIGUOUS (reconciled on a retry),
        never PENDING under a live owner (which a retry would answer ambiguous for ever)."""
        items = [{**self._item(event, digest), "state": AMBIGUOUS, "error": "the request failed before its "
                  "receipts were durable"} for event, digest in claimed]
        try:
            aws.put_all(self.settings.dedupe_table, items)
        except SpineError as exc:  # the claims stay PENDING under this owner; the original error is raised
            log.info("release_failed", reason=str(exc), claims=len(items))

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

    def _item(self, event: dict[str, Any], digest: str) -> dict[str, Any]:
        return {"dedupe_key": self._dedupe_key(event), "payload_sha256": digest,
                "platform_run_id": self.scope.platform_run_id, "owner": self.instance}

    def _claim(self, event: dict[str, Any], digest: str) -> dict[str, Any] | _Recover | None:
        """None when this request owns the identity; _Recover when it took over a claim in doubt; otherwise
        the receipt the earlier claim implies."""
        key = self._dedupe_key(event)
        try:
            aws.put_new(self.settings.dedupe_table, {**self._item(event, digest), "state": PENDING}, key="dedupe_key")
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
        if held.get("state") == PENDING and held.get("owner") == self.instance:
            return {**base, "status": AMBIGUOUS, "reason": "an earlier publish of this event is in flight: its "
                                                           "outcome is unknown"}
        try:  # settled ambiguous, or PENDING under an IG that is gone: take the claim over, then reconcile
            aws.update_if(self.settings.dedupe_table, {"dedupe_key": key},
                          update="SET #o = :me, #s = :pending",
                          condition="#s = :state AND (attribute_not_exists(#o) OR #o = :owner)",
                          names={"#o": "owner", "#s": "state"},
                          values={":me": self.instance, ":pending": PENDING, ":state": str(held.get("state")),
                                  ":owner": str(held.get("owner"))})
        except aws.ConditionFailed:
            return {**base, "status": AMBIGUOUS, "reason": "another request is reconciling this event: its "
                                                           "outcome is unknown"}
        return _Recover(held)

    def _reconcile(self, doubtful: dict[int, tuple[dict[str, Any], str]]
                   ) -> dict[int, tuple[dict[str, Any] | None, dict[str, Any]]]:
        """Each identity in doubt against the run's receipts, then the traffic topic read from the start:
        already ADMITTED (a receipt names it) -> DUPLICATE; on the topic once with its payload -> ADMITTED at
        that record; not on the topic -> (None, ...): published again under the claim; otherwise, or when the
        bus does not answer, PUBLISH_AMBIGUOUS again."""
        if not doubtful:
            return {}
        results: dict[int, tuple[dict[str, Any] | None, dict[str, Any]]] = {}
        try:
            self.flush(self.settings.delivery_timeout_s)  # every outstanding publish of this process reported
            admitted: dict[str, dict[str, Any]] = {}
            for record in receipts(self.scope):
                for r in record.get("receipts") or []:
                    if r.get("status") == ADMITTED:
                        admitted.setdefault(str(r.get("event_id")), r)
            wanted = {event["event_id"] for event, _ in doubtful.values() if event["event_id"] not in admitted}
            on_topic = self._records_of(wanted) if wanted else {}
        except SpineError as exc:
            return {i: self._still_ambiguous(event, digest, f"outcome still unknown: {exc}")
                    for i, (event, digest) in doubtful.items()}
        for i, (event, digest) in doubtful.items():
            base = {"event_id": event["event_id"], "payload_sha256": digest}
            earlier = admitted.get(event["event_id"])
            found = on_topic.get(event["event_id"], [])
            if earlier is not None:
                placed = {k: earlier.get(k) for k in ("topic", "partition", "offset")}
                results[i] = ({**base, "status": DUPLICATE, **placed, "reason": "reconciled: already admitted"},
                              {**self._item(event, digest), "state": ADMITTED, **placed})
            elif len(found) == 1 and found[0][1] == digest:
                placed = {"topic": self.settings.topic, "partition": found[0][0].partition,
                          "offset": found[0][0].offset}
                results[i] = ({**base, "status": ADMITTED, **placed,
                               "reason": "reconciled: the earlier publish is on the topic"},
                              {**self._item(event, digest), "state": ADMITTED, **placed})
            elif not found:
                results[i] = (None, {})
            else:
                where = ", ".join(f"{r.partition}/{r.offset}" for r, _ in found)
                results[i] = self._still_ambiguous(event, digest, f"on the topic {len(found)} time(s) ({where}), "
                                                                  "not once with its payload")
        log.info("reconciled", identities=len(doubtful), **Counter(
            "republish" if r is None else r["status"] for r, _ in results.values()))
        return results

    def _still_ambiguous(self, event: dict[str, Any], digest: str,
                         reason: str) -> tuple[dict[str, Any], dict[str, Any]]:
        return ({"event_id": event["event_id"], "payload_sha256": digest, "status": AMBIGUOUS, "reason": reason},
                {**self._item(event, digest), "state": AMBIGUOUS, "error": reason})

    def _records_of(self, wanted: set[str]) -> dict[str, list[tuple[kafka.Record, str]]]:
        """The run's traffic records carrying one of ``wanted`` event ids, each with its payload digest."""
        run = self.scope.platform_run_id

        def decoded(record: kafka.Record) -> dict[str, Any] | None:
            try:
                value = json.loads(record.value)
            except ValueError:
                return None
            return value if isinstance(value, dict) else None

        found: dict[str, list[tuple[kafka.Record, str]]] = {}
        for record in kafka.read(self.bus, self.settings.topic, timeout_s=RECONCILE_READ_S,
                                 keep=lambda r: (v := decoded(r)) is not None and v.get("platform_run_id") == run
                                 and v.get("event_id") in wanted):
            value = decoded(record) or {}
            found.setdefault(str(value["event_id"]), []).append((record, events.payload_sha256(value)))
        return found

    def _publish(self, producer: Producer, event: dict[str, Any]) -> _Delivery:
        delivery = _Delivery()

        def report(err: KafkaError | None, msg: Any) -> None:
            if err is not None:
                delivery.error = f"{err.name()}: {err.str()}"
            else:
                delivery.partition, delivery.offset = msg.partition(), msg.offset()
            delivery.done.set()

        key = str(event["payload"]["card_id"]).encode()
        try:
            producer.produce(self.settings.topic, value=events.encode(event), key=key, on_delivery=report)
        except (BufferError, Exception) as exc:  # not even queued: nothing was sent
            delivery.error = f"not queued: {exc}"
            delivery.done.set()
        return delivery

    def _settle(self, event: dict[str, Any], digest: str,
                delivery: _Delivery) -> tuple[dict[str, Any], dict[str, Any]]:
        """The receipt of a publish and the dedupe item that records its outcome."""
        base = {"event_id": event["event_id"], "payload_sha256": digest}
        item = self._item(event, digest)
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
