"""Raw observations of the decision planes: group offsets, archive objects, the rtdl and decision topics,
the DLA, cases and labels in the database, the Data Engine's ground truth.

History first: these functions only read. The phases (P8 to P11) judge what they return, and every
value here comes from the substrate itself (the broker, S3, PostgreSQL), never from a platform summary.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from harness import db, ingress
from harness.aws import AwsSession, s3, ssm
from harness.kafka import KafkaConnection, admin
from harness.kafka.consume import Record, read_until

PATTERNS = ("card_testing", "velocity_burst", "high_value_new_merchant")
# The policy's reasons (contract §6) and the injected pattern each one is meant to catch.
REASON_PATTERN = {"card_testing": "card_testing", "velocity": "velocity_burst",
                  "high_value_new_merchant": "high_value_new_merchant"}
OUTCOMES = ("APPROVE", "REVIEW", "DECLINE")


def policy(features: dict[str, Any], amount_minor: int) -> tuple[str, list[str]]:
    """The decision the contract's policy `spine-rules/1` (§6) gives, recomputed by the harness.

    The reasons in the table's order; the outcome the strongest of them (DECLINE > REVIEW), APPROVE with none.
    """
    reasons, outcome = [], "APPROVE"
    if amount_minor < 500 and features.get("small_count_10m", 0) >= 3:
        reasons.append("card_testing")
        outcome = "DECLINE" if features["small_count_10m"] >= 5 else "REVIEW"
    if features.get("count_15m", 0) >= 4 and features.get("distinct_merchants_15m", 0) >= 3:
        reasons.append("velocity")
        outcome = "DECLINE" if outcome == "DECLINE" else "REVIEW"
    if amount_minor >= 100_000 and features.get("merchant_new_for_card") is True:
        reasons.append("high_value_new_merchant")
        outcome = "DECLINE"
    return outcome, reasons


FEATURE_NAMES = ("card_event_index", "count_10m", "small_count_10m", "count_15m", "distinct_merchants_15m",
                 "amount_sum_15m", "merchant_new_for_card")


def features(traffic: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """event_id → the features of contract §6, recomputed from the run's traffic records in arrival order.

    Each record: ``partition``, ``offset``, ``event_id``, ``card_id``, ``merchant_id``, ``amount_minor``,
    ``ts_us``. A card's events share a partition (the record key), so offset order is its arrival order;
    windows are in event time, both ends inclusive, over the card's events that arrived before it and itself.
    """
    seen: dict[str, list[dict[str, Any]]] = {}
    out: dict[str, dict[str, Any]] = {}
    for r in sorted(traffic, key=lambda r: (r["partition"], r["offset"])):
        earlier = seen.setdefault(r["card_id"], [])
        ts = r["ts_us"]
        w10 = [e for e in [*earlier, r] if ts - 600_000_000 <= e["ts_us"] <= ts]
        w15 = [e for e in [*earlier, r] if ts - 900_000_000 <= e["ts_us"] <= ts]
        out[r["event_id"]] = {
            "card_event_index": len(earlier),
            "count_10m": len(w10),
            "small_count_10m": sum(1 for e in w10 if e["amount_minor"] < 500),
            "count_15m": len(w15),
            "distinct_merchants_15m": len({e["merchant_id"] for e in w15}),
            "amount_sum_15m": sum(e["amount_minor"] for e in w15),
            "merchant_new_for_card": all(e["merchant_id"] != r["merchant_id"] for e in earlier),
        }
        earlier.append(r)
    return out


def ts_us(text: str) -> int:
    """An envelope's ``ts_utc`` as µs since the epoch."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def group(mode: str, platform_run_id: str) -> str:
    """The daemon's consumer group (contract §6)."""
    return f"spine.{mode}.{platform_run_id}"


def decision_id(platform_run_id: str, event_id: str) -> str:
    return "dec_" + sha256(f"{platform_run_id}/{event_id}".encode())[:32]


def case_id(decision: str) -> str:
    return "case_" + sha256(decision.encode())[:32]


def label_id(case: str, label: str) -> str:
    return "lbl_" + sha256(f"{case}/{label}".encode())[:32]


def committed(conn: KafkaConnection, mode: str, platform_run_id: str, topic: str) -> dict[str, int | None]:
    """The daemon's group offsets as the broker holds them, keyed by partition (JSON keys)."""
    partitions = admin.describe_topics(conn, [topic])[topic].partitions or 0
    offsets = admin.committed_offsets(conn, group(mode, platform_run_id), topic, partitions)
    return {str(p): o for p, o in sorted(offsets.items())}


# --- topics -------------------------------------------------------------------------------------------------


def decoded(record: Record) -> dict[str, Any]:
    """A record as the harness keeps it: position, digest, and the JSON value (None when it is not JSON)."""
    try:
        value = json.loads(record.value)
    except ValueError:
        value = None
    return {"partition": record.partition, "offset": record.offset, "sha256": sha256(record.value),
            "key": record.key.decode("utf-8", "replace") if record.key is not None else None,
            "value": value if isinstance(value, dict) else None}


def read_run(conn: KafkaConnection, topic: str, platform_run_id: str, *, identity: str, expected: int,
             timeout_s: float = 60.0) -> tuple[list[Record], str | None]:
    """Every record of ``topic`` (any run's), read from offset 0 until ``expected`` distinct ``identity`` values of
    the run were seen (or ``timeout_s``: then the shortfall, as words, is part of the observation)."""
    seen: dict[str, int] = {"read": 0}
    distinct: set[Any] = set()

    def enough(records: list[Record]) -> bool:
        for r in records[seen["read"]:]:
            value = decoded(r)["value"]
            if value is not None and value.get("platform_run_id") == platform_run_id:
                distinct.add(value.get(identity))
        seen["read"] = len(records)
        return len(distinct) >= expected

    records, shortfall = read_until(conn, topic, enough, timeout_s=timeout_s)
    return records, (f"{len(distinct)} distinct {identity} of {expected} expected on {topic}: {shortfall}"
                     if shortfall else None)


def run_records(conn: KafkaConnection, topic: str, platform_run_id: str, *, identity: str, expected: int,
                timeout_s: float = 60.0) -> tuple[list[dict[str, Any]], str | None]:
    """The run's records of ``topic``, decoded, read as ``read_run`` reads them."""
    records, shortfall = read_run(conn, topic, platform_run_id, identity=identity, expected=expected,
                                  timeout_s=timeout_s)
    found = [item for item in map(decoded, records)
             if item["value"] is not None and item["value"].get("platform_run_id") == platform_run_id]
    return found, shortfall


def topic_digests(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per partition: first and last offset, record count and the replay digest of the run's records
    (sha256 of the lines ``"<offset> <sha256 of the value>\\n"`` in offset order, contract §6)."""
    by_partition: dict[int, list[dict[str, Any]]] = {}
    for r in records:
        by_partition.setdefault(r["partition"], []).append(r)
    anchors = {}
    for partition, items in sorted(by_partition.items()):
        items = sorted(items, key=lambda r: r["offset"])
        lines = "".join(f"{r['offset']} {r['sha256']}\n" for r in items).encode()
        anchors[str(partition)] = {"first_offset": items[0]["offset"], "last_offset": items[-1]["offset"],
                                   "records": len(items), "digest": sha256(lines)}
    return anchors


# --- archive ------------------------------------------------------------------------------------------------


def archive_objects(aws: AwsSession, bucket: str, platform_run_id: str, topic: str) -> list[dict[str, Any]]:
    """Every archive object of the run's traffic topic, parsed line by line by the harness."""
    prefix = f"{platform_run_id}/{topic}/"
    found = []
    for key in s3.list_keys(aws, bucket=bucket, prefix=prefix):
        body = s3.get_bytes(aws, bucket=bucket, key=key)
        item: dict[str, Any] = {"key": key, "sha256": sha256(body), "partition": None, "name_first": None,
                                "name_last": None, "lines": [], "problems": []}
        tail = key[len(prefix):]
        head, _, name = tail.partition("/")
        try:
            item["partition"] = int(head.removeprefix("partition="))
            first, last = name.removesuffix(".jsonl").split("-")
            item["name_first"], item["name_last"] = int(first), int(last)
        except ValueError:
            item["problems"].append(f"key {key} is not <run>/<topic>/partition=<p>/<first>-<last>.jsonl")
        for number, line in enumerate(body.decode("utf-8", "replace").splitlines(), 1):
            try:
                entry = json.loads(line)
                value = str(entry["value"]).encode()
                item["lines"].append({"offset": int(entry["offset"]), "sha256": sha256(value),
                                      "claimed_sha256": entry.get("value_sha256")})
            except (ValueError, KeyError, TypeError) as exc:
                item["problems"].append(f"line {number} of {key} is not an archive line: {exc}")
        found.append(item)
    return found


# --- database -----------------------------------------------------------------------------------------------


def platform_dsn(aws: AwsSession, path: str) -> str:
    """The DSN the platform is given: read from SSM by the harness (the value never reaches evidence)."""
    return ssm.get(aws, path).value


def dla_rows(dsn: str, platform_run_id: str) -> list[dict[str, Any]]:
    rows = db.query(dsn, "select decision_id, event_id, decision, record, record_sha256 from dla_records "
                         "where platform_run_id = %s order by decision_id", (platform_run_id,))
    return [{"decision_id": r[0], "event_id": r[1], "decision": r[2], "record": r[3], "record_sha256": r[4]}
            for r in rows]


def dla_outcomes(dsn: str, platform_run_id: str) -> list[dict[str, Any]]:
    """The DLA rows of the run without their records (a recount needs ids and outcomes only)."""
    rows = db.query(dsn, "select decision_id, decision from dla_records where platform_run_id = %s "
                         "order by decision_id", (platform_run_id,))
    return [{"decision_id": r[0], "decision": r[1]} for r in rows]


def case_rows(dsn: str, platform_run_id: str) -> list[dict[str, Any]]:
    rows = db.query(dsn, "select case_id, decision_id, event_id, card_id, decision from cases "
                         "where platform_run_id = %s order by case_id", (platform_run_id,))
    return [{"case_id": r[0], "decision_id": r[1], "event_id": r[2], "card_id": r[3], "decision": r[4]}
            for r in rows]


def label_rows(dsn: str, platform_run_id: str) -> list[dict[str, Any]]:
    rows = db.query(dsn, "select label_id, case_id, label, source from case_labels "
                         "where platform_run_id = %s order by label_id", (platform_run_id,))
    return [{"label_id": r[0], "case_id": r[1], "label": r[2], "source": r[3]} for r in rows]


def sessions(dsn: str) -> list[dict[str, Any]]:
    """Who is connected to the database, as the server reports it (pg_stat_activity)."""
    rows = db.query(dsn, "select application_name, usename, datname from pg_stat_activity "
                         "where application_name like 'spine-%%' order by application_name")
    return [{"application_name": r[0], "role": r[1], "database": r[2]} for r in rows]


def database_facts(dsn: str) -> dict[str, Any]:
    database, role = db.query(dsn, "select current_database(), current_user")[0]
    return {"database": database, "role": role}


# --- ground truth -------------------------------------------------------------------------------------------


def ground_truth(aws: AwsSession, oracle_root: str) -> dict[str, str]:
    """event_id → the Data Engine's fraud_pattern ("" for none), read from the stream view by the harness."""
    rows, _ = ingress.view_rows(aws, oracle_root)
    return {str(r["event_id"]): str(r.get("fraud_pattern") or "") for r in rows}


def admitted_events(receipts: list[dict[str, Any]]) -> list[str]:
    return sorted({str(r["event_id"]) for r in receipts if r.get("status") == "ADMITTED"})

