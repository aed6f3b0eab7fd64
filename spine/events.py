"""The traffic event envelope: what WSP sends, what IG validates and publishes (contract §5)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

EVENT_TYPE = "card_transaction"
# Payload fields and their JSON types; the Data Engine's ground truth (fraud_pattern) is never sent.
PAYLOAD = {"card_id": str, "merchant_id": str, "amount_minor": int, "currency": str, "channel": str}
ENVELOPE = ("event_id", "event_type", "platform_run_id", "scenario_run_id", "ts_utc", "payload")


def envelope(row: dict[str, Any], *, platform_run_id: str, scenario_run_id: str) -> dict[str, Any]:
    """One stream-view row as an event; its identity is the Data Engine's event_id (deterministic)."""
    ts = row["ts_utc"]
    return {
        "event_id": str(row["event_id"]),
        "event_type": EVENT_TYPE,
        "platform_run_id": platform_run_id,
        "scenario_run_id": scenario_run_id,
        "ts_utc": ts.isoformat().replace("+00:00", "Z") if hasattr(ts, "isoformat") else str(ts),
        "payload": {name: row[name] for name in PAYLOAD},
    }


def problem(event: Any) -> str | None:
    """Why an event is schema-invalid, or None."""
    if not isinstance(event, dict):
        return "not a JSON object"
    missing = [name for name in ENVELOPE if name not in event]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    extra = sorted(set(event) - set(ENVELOPE))
    if extra:
        return f"unknown field(s) {', '.join(extra)}"
    for name in ("event_id", "platform_run_id", "scenario_run_id", "ts_utc"):
        if not isinstance(event[name], str) or not event[name]:
            return f"{name} must be a non-empty string"
    if event["event_type"] != EVENT_TYPE:
        return f"event_type {event['event_type']!r} is not {EVENT_TYPE!r}"
    payload = event["payload"]
    if not isinstance(payload, dict) or set(payload) != set(PAYLOAD):
        return f"payload must hold exactly {', '.join(PAYLOAD)}"
    for name, kind in PAYLOAD.items():
        value = payload[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"payload.{name} must be {kind.__name__}"
    if payload["amount_minor"] < 0:
        return "payload.amount_minor must be >= 0"
    return None


def encode(event: dict[str, Any]) -> bytes:
    """The record value on the topic: compact canonical JSON, so identical events are identical bytes."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def payload_sha256(event: Any) -> str:
    """The digest that tells a duplicate (same identity, same content) from an identity conflict."""
    return hashlib.sha256(json.dumps(event, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()
