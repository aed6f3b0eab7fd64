"""`case-labels` daemon: each REVIEW or DECLINE decision of the run opens one case and appends its labels."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import psycopg
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from spine import daemon, db, evidence, ids, kafka, log, s3
from spine.errors import SpineError
from spine.runscope import RunScope

MODE = "case-labels"
SUMMARY = "case_labels/summary.json"
LANE_SUMMARY = "decision_lane/summary.json"
OUTCOMES = ("APPROVE", "REVIEW", "DECLINE")
BATCH = 500

# One statement per table and batch, whatever its size: the rows travel as arrays.
_CASES = """insert into cases (case_id, platform_run_id, decision_id, event_id, card_id, decision)
select * from unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[])
on conflict do nothing"""
_LABELS = """insert into case_labels (label_id, case_id, platform_run_id, label, source)
select * from unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[])
on conflict do nothing"""


@dataclass(frozen=True)
class Decision:
    decision_id: str
    event_id: str
    card_id: str
    outcome: str
    reasons: tuple[str, ...]
    policy: str


def parse(raw: bytes | None, platform_run_id: str) -> Decision | str:
    """A decision of this run, or why the record is skipped (``foreign`` or ``malformed``)."""
    try:
        doc: Any = json.loads(raw or b"")
    except ValueError:
        return "malformed"
    if not isinstance(doc, dict) or doc.get("platform_run_id") != platform_run_id:
        return "foreign"
    event_id, card_id, reasons, policy = doc.get("event_id"), doc.get("card_id"), doc.get("reasons"), doc.get("policy")
    if (not isinstance(event_id, str) or not isinstance(card_id, str) or not isinstance(policy, str)
            or doc.get("decision") not in OUTCOMES or not isinstance(reasons, list)
            or not all(isinstance(r, str) for r in reasons)
            or doc.get("decision_id") != ids.decision_id(platform_run_id, event_id)):
        return "malformed"
    return Decision(doc["decision_id"], event_id, card_id, doc["decision"], tuple(reasons), policy)


class CaseLabels:
    """The daemon's state: one consumer, one database connection, the running tallies."""

    def __init__(self, scope: RunScope, session: db.Session, consumer: Consumer, topic: str) -> None:
        self.scope, self.db, self.consumer, self.topic = scope, session, consumer, topic
        self.run_id = scope.platform_run_id
        self.tally: Counter[str] = Counter()

    def handle(self, messages: list[Message]) -> None:
        """One batch: its cases and labels in one transaction, then the offsets."""
        cases: dict[str, tuple[str, ...]] = {}
        labels: dict[str, tuple[str, ...]] = {}
        offsets: dict[int, int] = {}
        counts: Counter[str] = Counter()
        for msg in messages:
            error = msg.error()
            if error is not None:
                if error.fatal():
                    raise SpineError(f"consuming {self.topic}: {error}")
                log.info("consume_error", error=str(error))
                continue
            offsets[int(msg.partition() or 0)] = int(msg.offset() or 0) + 1
            found = parse(msg.value(), self.run_id)
            if isinstance(found, str):
                counts[f"skipped_{found}"] += 1
                continue
            counts[found.outcome] += 1
            if found.outcome == "APPROVE":
                continue
            case = ids.case_id(found.decision_id)
            cases[case] = (case, self.run_id, found.decision_id, found.event_id, found.card_id, found.outcome)
            for reason in found.reasons:
                label = ids.label_id(case, reason)
                labels[label] = (label, case, self.run_id, reason, f"decision-lane:{found.policy}")
        if cases:
            def insert(cur: psycopg.Cursor[Any]) -> Counter[str]:
                new: Counter[str] = Counter()
                cur.execute(_CASES, [list(column) for column in zip(*cases.values(), strict=True)])
                new["cases_new"] += max(cur.rowcount, 0)
                if labels:
                    cur.execute(_LABELS, [list(column) for column in zip(*labels.values(), strict=True)])
                    new["labels_new"] += max(cur.rowcount, 0)
                return new

            # Idempotent (ON CONFLICT DO NOTHING): run again whole after a lost connection, before any commit.
            counts.update(self.db.run("insert cases and labels", insert))
        if offsets:
            try:
                self.consumer.commit(offsets=[TopicPartition(self.topic, p, o) for p, o in sorted(offsets.items())],
                                     asynchronous=False)
            except KafkaException as exc:
                raise SpineError(f"committing offsets of {self.topic}: {exc}") from exc
        self.tally.update(counts)
        log.info("batch", records=len(messages), offsets={str(p): o for p, o in sorted(offsets.items())},
                 **dict(counts))

    def summarise(self) -> bool:
        """Write the summary once the lane's summary exists and every REVIEW/DECLINE DLA row has its case."""
        root = self.scope.evidence
        if not s3.exists(root.bucket, root.key(LANE_SUMMARY)):
            return False
        run = (self.run_id,)
        (expected, cases, labels), = self.db.query(
            "select (select count(*) from dla_records"
            "         where platform_run_id = %s and decision in ('REVIEW', 'DECLINE')),"
            " (select count(*) from cases where platform_run_id = %s),"
            " (select count(*) from case_labels where platform_run_id = %s)", run * 3)
        if cases != expected:
            log.info("waiting", cases=cases, review_decline_dla_rows=expected)
            return False
        by_decision = dict(self.db.query("select decision, count(*) from cases where platform_run_id = %s"
                                         " group by decision", run))
        evidence.put_json(root, SUMMARY, {
            "platform_run_id": self.run_id, "group": ids.group(MODE, self.run_id), "cases": cases, "labels": labels,
            "by_decision": {o: int(by_decision.get(o, 0)) for o in OUTCOMES[1:]},
            "dsn_ssm_path": self.scope.env["SPINE_SSM_DB_DSN"], **self.db.facts()})
        return True


def run(scope: RunScope) -> None:
    stop = daemon.install_stop()
    env, root = scope.env, scope.evidence
    topic, idle_s = env["SPINE_TOPIC_DECISION"], daemon.poll_s()
    settings = kafka.config(env)
    kafka.partitions(settings, topic)  # the bus answers and the topic exists, or the daemon refuses here
    # Held for the daemon's life (P10 sees spine-case-labels in pg_stat_activity), made again when it is lost.
    session = db.Session(env, MODE, stop)
    consumer = daemon.consumer(settings, MODE, scope.platform_run_id)
    try:
        consumer.subscribe([topic])
        lane = CaseLabels(scope, session, consumer, topic)
        summarised = s3.exists(root.bucket, root.key(SUMMARY))  # a restart never writes it again
        log.info("consuming", topic=topic, group=ids.group(MODE, scope.platform_run_id), summarised=summarised)
        next_look = 0.0
        try:
            while not stop.is_set():
                messages = consumer.consume(BATCH, timeout=idle_s)
                if messages:
                    lane.handle(messages)
                if not summarised and time.monotonic() >= next_look:
                    summarised = lane.summarise()
                    next_look = time.monotonic() + idle_s
        except db.Interrupted as exc:  # SIGTERM while the database was away: the batch in hand stays uncommitted
            log.info("stopping", reason=str(exc))
        log.info("stopped", **dict(lane.tally))
    finally:
        consumer.close()
        session.close()
