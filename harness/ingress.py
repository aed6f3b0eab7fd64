"""Raw observations of the ingress planes: IG receipts, the traffic topic, the stream view the run streams.

History first: these functions only read and record. The phases (P4 to P7) judge what they return.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq

from harness.aws import AwsSession, s3
from harness.kafka import KafkaConnection
from harness.kafka.consume import Record, read_all

RECEIPTS = "ingest/receipts/"
VIEW_OUTPUT = "card_transactions"
PAYLOAD_FIELDS = ("card_id", "merchant_id", "amount_minor", "currency", "channel")


@dataclass(frozen=True)
class TopicEvent:
    """One traffic record as the harness decoded it (``event_id`` None: not an event envelope)."""

    partition: int
    offset: int
    timestamp_ms: int
    event_id: str | None
    platform_run_id: str | None
    event: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {"partition": self.partition, "offset": self.offset, "timestamp_ms": self.timestamp_ms,
                "event_id": self.event_id, "platform_run_id": self.platform_run_id}


def receipt_records(aws: AwsSession, evidence_root: str) -> list[dict[str, Any]]:
    """Every durable receipt record (one per IG request) of the run, in arrival order."""
    bucket, prefix = s3.split_url(evidence_root)
    records = [s3.get_json(aws, bucket=bucket, key=key)
               for key in s3.list_keys(aws, bucket=bucket, prefix=prefix + RECEIPTS)]
    return sorted(records, key=lambda r: (r.get("received_at_ms", 0), str(r.get("request_id", ""))))


def flat_receipts(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-event receipts in arrival order, each with its request id and sender."""
    return [{**r, "request_id": rec.get("request_id"), "sender": rec.get("sender")}
            for rec in records for r in sorted(rec.get("receipts", []), key=lambda r: r.get("index", 0))]


def acked_end_offsets(receipts: list[dict[str, Any]]) -> dict[int, int]:
    """Per partition, one past the highest offset IG's delivery reports acknowledged."""
    ends: dict[int, int] = {}
    for r in receipts:
        if r.get("status") == "ADMITTED" and isinstance(r.get("partition"), int) and isinstance(r.get("offset"), int):
            ends[r["partition"]] = max(ends.get(r["partition"], 0), r["offset"] + 1)
    return ends


def decode(record: Record) -> TopicEvent:
    try:
        event = json.loads(record.value)
    except ValueError:
        event = None
    if not isinstance(event, dict):
        return TopicEvent(record.partition, record.offset, record.timestamp_ms, None, None, None)
    return TopicEvent(record.partition, record.offset, record.timestamp_ms,
                      str(event["event_id"]) if "event_id" in event else None,
                      str(event["platform_run_id"]) if "platform_run_id" in event else None, event)


def topic_events(conn: KafkaConnection, topic: str, *, min_end: dict[int, int] | None = None,
                 timeout_s: float = 60.0) -> list[TopicEvent]:
    """Every record of the traffic topic from the beginning, decoded by the harness."""
    return [decode(r) for r in read_all(conn, topic, min_end=min_end, timeout_s=timeout_s)]


def view_rows(aws: AwsSession, oracle_root: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The stream view's rows in stored order, read by the harness from the objects under stream_view/."""
    bucket, prefix = s3.split_url(oracle_root)
    keys = s3.list_keys(aws, bucket=bucket, prefix=f"{prefix}stream_view/{VIEW_OUTPUT}/")
    rows: list[dict[str, Any]] = []
    for key in keys:
        rows.extend(pq.read_table(io.BytesIO(s3.get_bytes(aws, bucket=bucket, key=key))).to_pylist())
    return rows, [f"s3://{bucket}/{k}" for k in keys]


def expected_event(row: dict[str, Any]) -> dict[str, Any]:
    """What the contract says the stream-view row becomes on the topic (ground truth is not sent)."""
    return {"event_id": str(row["event_id"]), "payload": {name: row[name] for name in PAYLOAD_FIELDS},
            "ts_utc": row["ts_utc"].isoformat().replace("+00:00", "Z")}
