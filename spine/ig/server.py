"""`ig` daemon: the HTTP API (Flask app served by waitress) in front of the admission gate."""

from __future__ import annotations

import hmac
import os
import signal
import threading
import time
from collections import Counter
from typing import Any

from flask import Flask, jsonify, request
from waitress.server import create_server

from spine import aws, canonical, evidence, kafka, log
from spine.errors import Conflict, SpineError
from spine.ig import ingest
from spine.ig.ingest import Gate, Settings
from spine.runscope import RunScope

VERSION = "spine-ig/1"
READY = "ingest/ig_ready.json"
SUMMARIES = ("ingest/receipt_summary.json", "ingest/quarantine_summary.json", "ingest/kafka_offsets_snapshot.json")
MAX_BATCH = 5000
KEY_REFRESH_S = 1.0  # a rotated writer key takes effect within this long (contract §5)


def _listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise SpineError(f"SPINE_IG_LISTEN={value!r} must be HOST:PORT")
    return host, int(port)


class _Bus:
    """Bus connectivity for the health answer and the ingest gate: a real metadata request, at most once a
    second (``checked_at_ms``: when the answer given was asked for)."""

    def __init__(self, settings: dict[str, Any], topic: str) -> None:
        self.settings, self.topic = settings, topic
        self._at, self._answer = 0.0, {"connected": False, "topic": topic, "partitions": None, "error": None,
                                       "checked_at_ms": None}
        self._lock = threading.Lock()

    def state(self) -> dict[str, Any]:
        with self._lock:
            if time.monotonic() - self._at > 1.0:
                asked = {"topic": self.topic, "checked_at_ms": int(time.time() * 1000)}
                try:
                    count = kafka.partitions(self.settings, self.topic, timeout_s=2.0)
                    self._answer = {**asked, "connected": True, "partitions": count, "error": None}
                except SpineError as exc:
                    self._answer = {**asked, "connected": False, "partitions": None, "error": str(exc)}
                self._at = time.monotonic()
            return dict(self._answer)


class WriterKey:
    """The writer key as SSM holds it now: read again once the last read is KEY_REFRESH_S old, and at once
    when a request presents another value, so a rotation refuses the old key within a second and accepts
    the new one at once. The value is never logged."""

    def __init__(self, path: str, *, refresh_s: float = KEY_REFRESH_S) -> None:
        self.path, self.refresh_s = path, refresh_s
        self._lock = threading.Lock()
        self._value, self._read_at = "", float("-inf")
        self._current(fresh=True)

    def _current(self, *, fresh: bool) -> str:
        with self._lock:
            if fresh or time.monotonic() - self._read_at >= self.refresh_s:
                began = time.monotonic()  # the value's age counts from before the read
                self._value, self._read_at = aws.secret(self.path), began
            return self._value

    def accepts(self, presented: str) -> bool:
        """Raises SpineError when SSM does not answer (the request is refused with 503, never let through)."""
        if hmac.compare_digest(presented.encode(), self._current(fresh=False).encode()):
            return True
        return hmac.compare_digest(presented.encode(), self._current(fresh=True).encode())


def create_app(scope: RunScope, gate: Gate, bus: _Bus, writer_key: WriterKey) -> Flask:
    app = Flask("spine.ig")

    def refused() -> Any:
        given = request.headers.get("Authorization", "")
        if not given.startswith("Bearer ") or not given[len("Bearer "):]:
            return jsonify(error="missing writer key (Authorization: Bearer <key>)"), 401
        try:
            accepted = writer_key.accepts(given[len("Bearer "):])
        except SpineError as exc:
            log.info("writer_key_unreadable", reason=str(exc))
            return jsonify(error="the writer key could not be read from SSM: retry"), 503
        if not accepted:
            return jsonify(error="wrong writer key"), 403
        return None

    @app.get("/v1/ops/health")
    def health() -> Any:
        bus_state = bus.state()
        body = {"status": "ok" if bus_state["connected"] else "degraded", "platform_run_id": scope.platform_run_id,
                "scenario_run_id": scope.scenario_run_id, "version": VERSION, "bus": bus_state}
        return jsonify(body), 200 if bus_state["connected"] else 503

    @app.post("/v1/ingest")
    def ingest_batch() -> Any:
        received_at_ms = int(time.time() * 1000)  # arrival, before the key is checked
        denied = refused()
        if denied is not None:
            log.info("auth_refused", status=denied[1])
            return denied
        body = request.get_json(silent=True)
        batch = body.get("events") if isinstance(body, dict) else None
        if not isinstance(batch, list) or not batch:
            return jsonify(error='body must be {"events": [ ... ]} with at least one event'), 400
        if len(batch) > MAX_BATCH:
            return jsonify(error=f"at most {MAX_BATCH} events per request"), 413
        bus_state = bus.state()
        if not bus_state["connected"]:  # nothing is claimed or published while the bus does not answer
            log.info("ingest_refused", reason="bus not connected", error=bus_state["error"])
            return jsonify(error=f"the bus does not answer: nothing was claimed or published; retry "
                                 f"({bus_state['error']})"), 503
        try:
            record = gate.ingest(batch, sender=request.headers.get("X-Spine-Sender", "unknown"),
                                 received_at_ms=received_at_ms)
        except SpineError as exc:  # receipts could not be made durable: the caller must retry
            log.info("ingest_failed", reason=str(exc))
            return jsonify(error=f"receipts not durable: {exc}"), 503
        return jsonify(record), 200

    @app.post("/v1/ops/commit")
    def commit() -> Any:
        denied = refused()
        if denied is not None:
            return denied
        try:
            written = _commit(scope, gate)
        except Conflict as exc:
            return jsonify(error=str(exc)), 409
        except SpineError as exc:  # e.g. the bus is unreachable for the offsets snapshot: retry later
            log.info("commit_failed", reason=str(exc))
            return jsonify(error=f"commit not written: {exc}"), 503
        return jsonify(written), 200

    return app


def _commit(scope: RunScope, gate: Gate) -> dict[str, Any]:
    """The run's ingest closure from the durable receipts: summaries and the offsets snapshot."""
    gate.flush(gate.settings.delivery_timeout_s)
    records = ingest.receipts(scope)
    all_receipts = [r for rec in records for r in rec["receipts"]]
    counts = Counter(r["status"] for r in all_receipts)
    quarantined = [r for r in all_receipts if r["status"] == ingest.QUARANTINED]
    acked: dict[int, list[int]] = {}
    for r in all_receipts:
        if r["status"] == ingest.ADMITTED:
            acked.setdefault(int(r["partition"]), []).append(int(r["offset"]))
    topic = gate.settings.topic
    watermarks = kafka.watermarks(kafka.config(scope.env), topic)
    partitions = {
        str(p): {"acked_records": len(acked.get(p, [])),
                 "acked_min_offset": min(acked[p]) if p in acked else None,
                 "acked_end_offset": max(acked[p]) + 1 if p in acked else None,
                 "broker_low": low, "broker_high": high}
        for p, (low, high) in sorted(watermarks.items())
    }
    summaries: dict[str, dict[str, Any]] = {
        SUMMARIES[0]: {"platform_run_id": scope.platform_run_id, "scenario_run_id": scope.scenario_run_id,
                       "requests": len(records), "events": len(all_receipts),
                       "counts": {s: counts.get(s, 0) for s in ingest.STATUSES},
                       "receipt_objects": [f"{ingest.RECEIPTS}{r['request_id']}.json" for r in records],
                       "ambiguous_event_ids": sorted(str(r["event_id"]) for r in all_receipts
                                                     if r["status"] == ingest.AMBIGUOUS)},
        SUMMARIES[1]: {"platform_run_id": scope.platform_run_id, "count": len(quarantined),
                       "by_reason": dict(Counter(r["reason"].split(":")[0] for r in quarantined)),
                       "objects": sorted(r["quarantine"] for r in quarantined)},
        SUMMARIES[2]: {"platform_run_id": scope.platform_run_id, "topic": topic, "offsets_from": "delivery reports",
                       "partitions": partitions},
    }
    for relative, record in summaries.items():
        evidence.put_json(scope.evidence, relative, record)
    return {"written": list(summaries), "counts": summaries[SUMMARIES[0]]["counts"],
            "digest": canonical.sha256(canonical.dumps(summaries))}


def run(scope: RunScope) -> None:
    env = scope.env
    host, port = _listen(env["SPINE_IG_LISTEN"])
    settings = Settings(topic=env["SPINE_TOPIC_TRAFFIC"], dedupe_table=env["SPINE_IG_DEDUPE_TABLE"],
                        quarantine_bucket=env["SPINE_QUARANTINE_BUCKET"],
                        delivery_timeout_s=int(os.environ.get("SPINE_IG_DELIVERY_TIMEOUT_MS", "10000")) / 1000)
    bus_settings = kafka.config(env)
    writer_key = WriterKey(env["SPINE_SSM_IG_API_KEY"])
    bus = _Bus(bus_settings, settings.topic)
    state = bus.state()
    if not state["connected"]:
        raise SpineError(f"the bus is not reachable: {state['error']}")
    gate = Gate(scope, settings, bus_settings, lambda: kafka.producer(
        bus_settings, delivery_timeout_ms=int(settings.delivery_timeout_s * 1000)))
    # Deterministic: a restarted IG of the same run writes the same bytes (write-once accepts them).
    evidence.put_json(scope.evidence, READY, {
        "platform_run_id": scope.platform_run_id, "scenario_run_id": scope.scenario_run_id, "version": VERSION,
        "topic": settings.topic, "partitions": state["partitions"], "dedupe_table": settings.dedupe_table,
        "quarantine_bucket": settings.quarantine_bucket})
    server = create_server(create_app(scope, gate, bus, writer_key), host=host, port=port, threads=8,
                           ident=VERSION, channel_timeout=120)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")  # waitress's loop ends its dispatcher on it

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("serving", host=host, port=port, topic=settings.topic)
    try:
        server.run()
    finally:
        gate.close()
        log.info("stopped")
