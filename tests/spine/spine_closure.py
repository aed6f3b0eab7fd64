"""Helpers for the closure tests: the decision plane's surfaces (topics, the DSN in SSM, the lock table, the archive
bucket), an upstream run written by hand (receipts, the three topics, DLA rows) and `case-labels` as a process."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from confluent_kafka import Producer
from spine_bus import Bus, Record, _table
from spine_lane import REGION, Lane

from harness.substrate import PostgresCluster
from spine import ids

POLICY = "spine-rules/1"
# Event n's decision: the outcome and reasons cycle, so a run of 3k events has k of each.
DECIDED = (("APPROVE", ()), ("REVIEW", ("velocity",)), ("DECLINE", ("card_testing", "high_value_new_merchant")))


def compact(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


@dataclass
class Plane:
    """The surfaces `case-labels` and `reporter` read besides the bus: shared by every run of a module, like the
    topics of a real deployment (so each run's reads meet other runs' records)."""

    bus: Bus
    pg: PostgresCluster

    def __post_init__(self) -> None:
        prefix = self.bus.prefix
        self.traffic = self.bus.traffic_topic("closure")
        self.rtdl, self.decision = f"fp.bus.rtdl.{prefix}", f"fp.bus.decision.{prefix}"
        self.bus.create_topics({self.rtdl: 3, self.decision: 3})
        self.ssm_dsn = f"/{prefix}/db/dsn"
        self.bus.ssm.put_parameter(Name=self.ssm_dsn, Value=self.pg.dsn, Type="SecureString")
        self.lock_table = f"{prefix}-reporter-lock"
        _table(self.bus.ddb, self.lock_table, "platform_run_id")
        self.archive_bucket = f"{prefix}-archive"
        self.bus.s3.create_bucket(Bucket=self.archive_bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        self.bus.s3.put_bucket_versioning(Bucket=self.archive_bucket, VersioningConfiguration={"Status": "Enabled"})

    def env(self, **extra: str) -> dict[str, str]:
        """The modes' variables; ``extra`` adds or overrides (knobs shortened for tests: the embedded launcher's
        group timings, a fast idle poll, a bounded reporter read)."""
        knobs = {"SPINE_TOPIC_RTDL": self.rtdl, "SPINE_TOPIC_DECISION": self.decision,
                 "SPINE_ARCHIVE_BUCKET": self.archive_bucket, "SPINE_SSM_DB_DSN": self.ssm_dsn,
                 "SPINE_REPORTER_LOCK_TABLE": self.lock_table, "SPINE_DAEMON_POLL_S": "0.2",
                 "SPINE_KAFKA_SESSION_TIMEOUT_MS": "2000", "SPINE_KAFKA_HEARTBEAT_MS": "500",
                 "SPINE_REPORTER_READ_TIMEOUT_S": "20"}
        return self.bus.env(traffic=self.traffic, **{**knobs, **extra})

    def produce(self, topic: str, records: Iterable[tuple[bytes, bytes]]) -> list[tuple[int, int]]:
        """Publish like the platform's producers (idempotent, acks=all); returns each record's (partition, offset)
        from its delivery report."""
        records = list(records)
        producer = Producer({"bootstrap.servers": self.bus.bootstrap, "acks": "all", "enable.idempotence": True,
                             "linger.ms": 5, "log_level": 0})
        placed: list[Any] = [None] * len(records)
        for i, (key, value) in enumerate(records):
            producer.produce(topic, key=key, value=value,
                             on_delivery=lambda err, msg, i=i: placed.__setitem__(i, err or (msg.partition(),
                                                                                                msg.offset())))
        assert producer.flush(15) == 0 and all(isinstance(p, tuple) for p in placed), placed
        return placed

    def sql(self, statement: str, params: tuple[Any, ...] = (), *, owner: bool = False) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.pg.owner_dsn if owner else self.pg.dsn) as conn, conn.cursor() as cur:
            cur.execute(statement, params)  # type: ignore[arg-type]
            return list(cur.fetchall()) if cur.description else []

    def lock(self, run_id: str) -> dict[str, Any] | None:
        item = self.bus.ddb.get_item(TableName=self.lock_table, Key={"platform_run_id": {"S": run_id}},
                                     ConsistentRead=True).get("Item")
        if not item:
            return None
        return {k: int(v["N"]) if "N" in v else next(iter(v.values())) for k, v in item.items()}

    def put_lock(self, run_id: str, *, holder: str, token: int, state: str, expires_at: int) -> None:
        """A lock item written by hand: a manual closeout, or a reporter that died holding it."""
        self.bus.ddb.put_item(TableName=self.lock_table, Item={
            "platform_run_id": {"S": run_id}, "holder": {"S": holder}, "token": {"N": str(token)},
            "state": {"S": state}, "expires_at": {"N": str(expires_at)}})


@dataclass
class Upstream:
    """One run's upstream, as ig, rtdl and decision-lane would have left it."""

    lane: Lane
    plane: Plane
    events: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.lane.run_id

    def review_or_decline(self) -> list[dict[str, Any]]:
        return [d for d in self.decisions if d["decision"] != "APPROVE"]

    def open_cases(self) -> None:
        """What case-labels does, written by hand (for the reporter's tests)."""
        for d in self.review_or_decline():
            case = ids.case_id(d["decision_id"])
            self.plane.sql("insert into cases (case_id, platform_run_id, decision_id, event_id, card_id, decision)"
                           " values (%s, %s, %s, %s, %s, %s)",
                           (case, self.run_id, d["decision_id"], d["event_id"], d["card_id"], d["decision"]))
            for reason in d["reasons"]:
                self.plane.sql("insert into case_labels (label_id, case_id, platform_run_id, label, source)"
                               " values (%s, %s, %s, %s, %s)",
                               (ids.label_id(case, reason), case, self.run_id, reason, f"decision-lane:{POLICY}"))

    def insert_dla(self, decision: dict[str, Any]) -> None:
        raw = compact(decision)
        self.plane.sql("insert into dla_records (decision_id, platform_run_id, event_id, decision, record,"
                       " record_sha256) values (%s, %s, %s, %s, %s, %s)",
                       (decision["decision_id"], self.run_id, decision["event_id"], decision["decision"],
                        raw.decode(), hashlib.sha256(raw).hexdigest()))

    def put_lane_summary(self) -> None:
        self.lane.put(self.lane.evidence_root + "decision_lane/summary.json", compact({
            "group": ids.group("decision-lane", self.run_id), "policy": POLICY, "decisions": len(self.decisions)}))


def build(lane: Lane, plane: Plane, *, events: int, ambiguous: int = 0, missing_dla: int = 0,
          cases: bool = True, lane_summary: bool = True) -> Upstream:
    """Write a run's upstream by hand: the traffic records and their receipts (two requests, one retry that got
    DUPLICATE, ``ambiguous`` events whose publish is unknown), the enriched events, the decisions, the DLA rows
    (all but the last ``missing_dla``), the cases (``cases``), the archive index — and one record of another run
    on each topic, which nothing may count."""
    up = Upstream(lane, plane)
    run_id, scenario = lane.run_id, lane.scenario
    for n in range(events):
        up.events.append({"event_id": f"evt-{run_id}-{n:04d}", "event_type": "card_transaction",
                          "platform_run_id": run_id, "scenario_run_id": scenario,
                          "ts_utc": f"2026-11-25T10:{n // 60:02d}:{n % 60:02d}Z",
                          "payload": {"card_id": f"card-{n % 5}", "merchant_id": f"m-{n % 4}", "amount_minor": 100 + n,
                                      "currency": "GBP", "channel": "ecom"}})
    other = f"{run_id}-other"
    foreign = {"event_id": "evt-foreign", "platform_run_id": other, "decision_id": ids.decision_id(other, "evt-f"),
               "decision": "REVIEW", "reasons": ["velocity"], "card_id": "card-0", "policy": POLICY}
    placed = plane.produce(plane.traffic, [(e["payload"]["card_id"].encode(), compact(e)) for e in up.events]
                           + [(b"card-0", compact(foreign))])
    receipts = [{"index": i, "event_id": e["event_id"], "status": "ADMITTED", "payload_sha256": "00" * 32,
                 "topic": plane.traffic, "partition": p, "offset": o}
                for i, (e, (p, o)) in enumerate(zip(up.events, placed, strict=False))]
    up.ambiguous = [f"evt-{run_id}-ambiguous-{k}" for k in range(ambiguous)]
    retry = [{**receipts[0], "index": 0, "status": "DUPLICATE"}]
    retry += [{"index": k + 1, "event_id": e, "status": "PUBLISH_AMBIGUOUS", "payload_sha256": "00" * 32,
               "reason": "no delivery report before the deadline"} for k, e in enumerate(up.ambiguous)]
    for request, (sender, batch) in enumerate((("wsp-a", receipts), ("wsp-b", retry))):
        lane.put(lane.evidence_root + f"ingest/receipts/r{request}.json", compact({
            "request_id": f"r{request}", "platform_run_id": run_id, "sender": sender,
            "received_at_ms": 1_700_000_000_000 + request, "receipts": batch}))
    enriched = [{**{k: e[k] for k in ("event_id", "platform_run_id", "scenario_run_id", "ts_utc", "payload")},
                 "traffic": {"partition": p, "offset": o}, "features": {"card_event_index": n // 5}}
                for n, (e, (p, o)) in enumerate(zip(up.events, placed, strict=False))]
    plane.produce(plane.rtdl, [(e["payload"]["card_id"].encode(), compact(e)) for e in enriched]
                  + [(b"card-0", compact(foreign))])
    for n, e in enumerate(up.events):
        outcome, reasons = DECIDED[n % 3]
        up.decisions.append({"decision_id": ids.decision_id(run_id, e["event_id"]), "event_id": e["event_id"],
                             "platform_run_id": run_id, "scenario_run_id": scenario, "card_id": e["payload"]["card_id"],
                             "ts_utc": e["ts_utc"], "decision": outcome, "reasons": list(reasons), "policy": POLICY,
                             "features": {"card_event_index": n // 5}})
    plane.produce(plane.decision, [(d["card_id"].encode(), compact(d)) for d in up.decisions]
                  + [(b"card-0", compact(foreign))])
    for d in up.decisions[:len(up.decisions) - missing_dla]:
        up.insert_dla(d)
    if cases:
        up.open_cases()
    if lane_summary:
        up.put_lane_summary()
    lane.put(lane.evidence_root + "rtdl_core/archive_index.json", compact({
        "bucket": plane.archive_bucket, "partitions": {"0": [{"key": f"{run_id}/{plane.traffic}/partition=0/x.jsonl",
                                                              "first_offset": 0, "last_offset": 0, "records": 1,
                                                              "sha256": "11" * 32}]}}))
    return up


def anchors(records: list[Record], run_id: str) -> dict[str, dict[str, Any]]:
    """The replay anchors of one topic, recomputed from the test's own reading of it."""
    out: dict[str, dict[str, Any]] = {}
    digests: dict[int, Any] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        if r.json().get("platform_run_id") != run_id:
            continue
        entry = out.setdefault(str(r.partition), {"first_offset": r.offset, "records": 0})
        entry["last_offset"], entry["records"] = r.offset, entry["records"] + 1
        digests.setdefault(r.partition, hashlib.sha256()).update(
            f"{r.offset} {hashlib.sha256(r.value).hexdigest()}\n".encode())
    for p, h in digests.items():
        out[str(p)]["digest"] = h.hexdigest()
    return out


