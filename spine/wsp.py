"""`wsp` job: after its run's READY, streams the card_transactions stream view to IG in stream order."""

from __future__ import annotations

import io
import json
import os
import threading
import time
import uuid
from collections import Counter
from typing import Any

import pyarrow.parquet as pq
import requests

from spine import aws, canonical, events, evidence, kafka, log, s3, sr
from spine.errors import NotFound, SpineError
from spine.runscope import RunScope

OUTPUT = "card_transactions"
VIEW_MANIFEST = f"oracle/stream_view/{OUTPUT}.json"
SUMMARY = "wsp/stream_summary.json"
ATTEMPTS = "wsp/attempts/"
_pause = threading.Event()  # never set: an interruptible wait between retries and paced sends


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, str(default))
    if not raw.isdigit():
        raise SpineError(f"{name}={raw!r} must be a non-negative integer")
    return int(raw)


def ready_pins(scope: RunScope) -> dict[str, Any]:
    """What a READY must carry to be this run's: every field it shares with run.json (contract §5)."""
    return {"platform_run_id": scope.platform_run_id, "scenario_run_id": scope.scenario_run_id,
            "run_config_digest": scope.run.get("run_config_digest"),
            "image_digest": (scope.run.get("image") or {}).get("digest"),
            "oracle_root": (scope.run.get("run_config") or {}).get("oracle_root")}


def ready_mismatch(value: bytes, pins: dict[str, Any]) -> str | None:
    """Why a control record keyed by this run is not its READY (None: it is). A READY left by another run, or
    one that vouches for another Oracle root or image under this run's id, is stale: it is never acted on."""
    try:
        message = json.loads(value)
    except ValueError:
        return "not JSON"
    if not isinstance(message, dict) or message.get("type") != sr.READY:
        return "not a READY"
    wrong = sorted(k for k, v in pins.items() if v is None or message.get(k) != v)
    if wrong:
        return "contradicts run.json: " + ", ".join(f"{k}={message.get(k)!r}" for k in wrong)
    try:
        if message != sr.ready_message({**message}):
            return "its message_id is not the digest of its content, or it carries other fields"
    except (KeyError, TypeError):
        return "not a READY (fields missing)"
    return None


def wait_for_ready(scope: RunScope, *, timeout_s: float) -> dict[str, Any]:
    """No READY, no read: the run's own READY on the control topic, matching run.json's pins."""
    topic, key = scope.env["SPINE_TOPIC_CONTROL"], scope.platform_run_id.encode()
    pins = ready_pins(scope)

    def valid(record: kafka.Record) -> bool:
        if record.key != key:
            return False
        why = ready_mismatch(record.value, pins)
        if why is not None:
            log.info("ready_ignored", partition=record.partition, offset=record.offset, reason=why)
        return why is None

    found = kafka.read(kafka.config(scope.env), topic, keep=valid, until=bool, timeout_s=timeout_s)
    if not found:
        raise SpineError(f"no READY for run {scope.platform_run_id} on {topic} within {timeout_s:.0f}s: "
                         "no READY, no read")
    return dict(json.loads(found[0].value))


def read_view(scope: RunScope) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The stream view's rows in stream order; only stream_view objects, never the raw landed ones."""
    root = s3.Location.parse(scope.env["SPINE_ORACLE_ROOT"], name="SPINE_ORACLE_ROOT").root
    manifest = evidence.get_json(scope.evidence, VIEW_MANIFEST)
    if manifest is None:
        raise SpineError(f"no stream view manifest {scope.evidence.url(VIEW_MANIFEST)}: nothing is sent")
    files = manifest.get("files") or []
    rows: list[dict[str, Any]] = []
    for f in files:
        key = str(f.get("key", ""))
        if not key.startswith(f"stream_view/{OUTPUT}/"):
            raise SpineError(f"{root.url(key)} is not a stream view object: WSP reads stream views only")
        try:
            data = s3.get_bytes(root.bucket, root.key(key))
        except NotFound:
            raise SpineError(f"stream view {root.url(key)} is missing: nothing is sent (WSP never falls back to "
                             "landed objects)") from None
        if canonical.sha256(data) != f.get("sha256"):
            raise SpineError(f"stream view {root.url(key)} is not the object its manifest records: nothing is sent")
        rows.extend(pq.read_table(io.BytesIO(data)).to_pylist())
    if not rows or len(rows) != manifest.get("row_count"):
        raise SpineError(f"stream view {OUTPUT} holds {len(rows)} rows, its manifest {manifest.get('row_count')}")
    return rows, {"keys": [root.url(f["key"]) for f in files], "rows": len(rows)}


class _Sender:
    def __init__(self, url: str, key: str, sender: str, *, attempts: int, timeout_s: float) -> None:
        self.url, self.sender, self.attempts, self.timeout_s = url.rstrip("/"), sender, attempts, timeout_s
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {key}", "X-Spine-Sender": sender})
        self.retries = 0

    def send(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """POST one batch; 5xx, timeouts and refused connections are retried with backoff."""
        delay, last = 0.2, ""
        for attempt in range(1, self.attempts + 1):
            try:
                answer = self.session.post(f"{self.url}/v1/ingest", json={"events": batch}, timeout=self.timeout_s)
                if answer.status_code == 200:
                    return list(answer.json()["receipts"])
                if answer.status_code in (401, 403):
                    raise SpineError(f"IG refused the writer key ({answer.status_code}): {answer.text.strip()}")
                if answer.status_code < 500 and answer.status_code != 429:
                    raise SpineError(f"IG answered {answer.status_code}: {answer.text.strip()[:300]}")
                last = f"HTTP {answer.status_code}: {answer.text.strip()[:200]}"
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if attempt < self.attempts:
                self.retries += 1
                log.info("retry", attempt=attempt, reason=last, backoff_s=delay)
                _pause.wait(delay)
                delay = min(delay * 2, 5.0)
        raise SpineError(f"IG did not accept a batch after {self.attempts} attempts: {last}")


def run(scope: RunScope) -> None:
    env = scope.env
    ready = wait_for_ready(scope, timeout_s=_int_env("SPINE_WSP_READY_TIMEOUT_S", 60))
    log.info("ready_seen", message_id=ready["message_id"])
    rows, view = read_view(scope)
    batch_size = max(1, _int_env("SPINE_WSP_BATCH_SIZE", 200))
    pace = _int_env("SPINE_WSP_PACE_EPS", 0)  # events per second; 0 streams as fast as IG admits
    sender_id = f"wsp-{uuid.uuid4().hex[:12]}"
    sender = _Sender(env["SPINE_IG_URL"], aws.secret(env["SPINE_SSM_IG_API_KEY"]), sender_id,
                     attempts=_int_env("SPINE_WSP_MAX_ATTEMPTS", 8), timeout_s=30.0)
    counts: Counter[str] = Counter()
    began, sent, last_event = time.monotonic(), 0, None
    for start in range(0, len(rows), batch_size):
        batch = [events.envelope(row, platform_run_id=scope.platform_run_id, scenario_run_id=scope.scenario_run_id)
                 for row in rows[start:start + batch_size]]
        if pace:
            _pause.wait(max(0.0, began + start / pace - time.monotonic()))
        receipts = sender.send(batch)
        counts.update(r["status"] for r in receipts)
        sent += len(batch)
        last_event = batch[-1]["event_id"]
        log.info("sent", sent=sent, of=len(rows), last_event_id=last_event)
    summary = {"platform_run_id": scope.platform_run_id, "scenario_run_id": scope.scenario_run_id,
               "sender": sender_id, "ready_message_id": ready["message_id"], "stream_view": view, "sent": sent,
               "receipts": dict(sorted(counts.items())), "retries": sender.retries, "batch_size": batch_size,
               "checkpoint": {"index": sent, "last_event_id": last_event}}
    evidence.put_json(scope.evidence, f"{ATTEMPTS}{sender_id}.json", summary)
    if not s3.exists(scope.evidence.bucket, scope.evidence.key(SUMMARY)):
        evidence.put_json(scope.evidence, SUMMARY, summary)
    log.info("streamed", sent=sent, **counts)
