"""`decision-lane` daemon: one decision per enriched event, in the DLA before it is published (contract §6)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from spine import daemon, db, events, evidence, ids, kafka, log, rules, s3
from spine.errors import SpineError
from spine.runscope import RunScope

MODE = "decision-lane"
TABLE = "dla_records"
CATCH_UP = "rtdl_core/catch_up.json"
RECEIPT_SUMMARY = "ingest/receipt_summary.json"
SUMMARY = "decision_lane/summary.json"
BATCH = 500
_INSERT = (f"insert into {TABLE} (decision_id, platform_run_id, event_id, decision, record, record_sha256) "
           "values {rows} on conflict do nothing returning decision_id")
_ROW = "(%s, %s, %s, %s, %s::jsonb, %s)"


def decision(enriched: dict[str, Any]) -> dict[str, Any]:
    """The decision record of one valid enriched event (rules.problem is None): a pure function of it."""
    outcome, reasons = rules.decide(enriched)
    return {"decision_id": ids.decision_id(enriched["platform_run_id"], enriched["event_id"]),
            "event_id": enriched["event_id"], "platform_run_id": enriched["platform_run_id"],
            "scenario_run_id": enriched["scenario_run_id"], "card_id": enriched["payload"]["card_id"],
            "ts_utc": enriched["ts_utc"], "decision": outcome, "reasons": reasons, "policy": rules.POLICY,
            "features": enriched["features"]}


class _Publisher:
    """Decisions onto the decision topic, keyed by card; ``flush`` raises unless every one was delivered."""

    def __init__(self, producer: Producer, topic: str) -> None:
        self.producer, self.topic = producer, topic
        self.failures: list[str] = []

    def _report(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            self.failures.append(f"{err.name()}: {err.str()}")

    def send(self, record: dict[str, Any], body: bytes) -> None:
        try:
            self.producer.produce(self.topic, key=str(record["card_id"]).encode(), value=body,
                                  on_delivery=self._report)
        except (BufferError, KafkaException) as exc:
            raise SpineError(f"kafka produce to {self.topic}: {exc}") from exc

    def flush(self) -> None:
        left = self.producer.flush(15)
        if left or self.failures:
            failed, self.failures = self.failures, []
            raise SpineError(f"kafka produce to {self.topic}: {left} decision(s) undelivered, {len(failed)} failed "
                             f"({'; '.join(sorted(set(failed))[:3])}); offsets not committed")


class Lane:
    """One decision lane for one run: its consumer group on the rtdl topic, the DLA, the decision topic."""

    def __init__(self, scope: RunScope, stop: threading.Event) -> None:
        env = scope.env
        self.scope, self.stop = scope, stop
        self.source, self.topic = env["SPINE_TOPIC_RTDL"], env["SPINE_TOPIC_DECISION"]
        self.group = ids.group(MODE, scope.platform_run_id)
        self.settings = kafka.config(env)
        kafka.partitions(self.settings, self.source)  # both topics answer before the lane starts
        kafka.partitions(self.settings, self.topic)
        self.db = db.Session(env, MODE, stop)  # a lost connection is made again (contract §6)
        self.summarised = s3.exists(scope.evidence.bucket, scope.evidence.key(SUMMARY))
        self.caught_up, self.counted = False, -1
        self.admitted: int | None = None
        self.skipped: Counter[str] = Counter()
        self.recorded = 0
        self.consumer = daemon.consumer(self.settings, MODE, scope.platform_run_id)
        self.publisher = _Publisher(kafka.producer(self.settings), self.topic)

    def close(self) -> None:
        self.consumer.close()  # leaves the group; nothing is committed here
        self.db.close()

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self.db.query(sql, params)

    # -- start: a decision in the DLA but not on the topic is published now ------------------------
    def republish(self) -> None:
        run_id, on_topic = self.scope.platform_run_id, set()

        def seen(record: kafka.Record) -> bool:
            try:
                value = json.loads(record.value)
            except ValueError:
                return False
            if isinstance(value, dict) and value.get("platform_run_id") == run_id:
                on_topic.add(value.get("decision_id"))
            return False  # only the ids are kept

        kafka.read(self.settings, self.topic, keep=seen, timeout_s=120.0)
        recorded = {row[0] for row in self._rows(f"select decision_id from {TABLE} where platform_run_id = %s",
                                                 (run_id,))}
        missing = sorted(recorded - on_topic)
        if missing:
            rows = self._rows(f"select decision_id, record, record_sha256 from {TABLE} where decision_id = any(%s) "
                              "order by decision_id", (missing,))
            for decision_id, record, sha256 in rows:
                body = events.encode(record)
                if hashlib.sha256(body).hexdigest() != sha256:
                    raise SpineError(f"{TABLE} row {decision_id}: its record does not encode to the bytes it "
                                     f"recorded (sha256 {sha256}); not republished")
                self.publisher.send(record, body)
            self.publisher.flush()
        log.info("republished", decisions=len(missing), dla_rows=len(recorded), on_topic=len(on_topic))

    # -- the loop ----------------------------------------------------------------------------------
    def serve(self) -> None:
        self.consumer.subscribe([self.source])
        log.info("consuming", topic=self.source, group=self.group, out=self.topic, summarised=self.summarised)
        poll = daemon.poll_s()
        check_at = 0.0
        while not self.stop.is_set():
            batch = daemon.consume(self.consumer, self.source, max_records=BATCH, timeout_s=min(poll, 0.5))
            if batch:
                self.handle(batch)
            if not self.summarised and time.monotonic() >= check_at:
                self.check_summary()
                check_at = time.monotonic() + poll

    def _enriched(self, record: kafka.Record) -> dict[str, Any] | None:
        try:
            value = json.loads(record.value)
        except ValueError:
            value = None
        if rules.problem(value) is not None:
            self.skipped["invalid"] += 1
            return None
        if value["platform_run_id"] != self.scope.platform_run_id \
                or value["scenario_run_id"] != self.scope.scenario_run_id:
            self.skipped["another_run"] += 1
            return None
        return dict(value)

    def handle(self, batch: list[kafka.Record]) -> None:
        """Record, publish what is new, flush, commit: a redelivered event adds no row and no decision."""
        decided: dict[str, tuple[dict[str, Any], bytes]] = {}
        for record in batch:
            enriched = self._enriched(record)
            if enriched is not None:
                made = decision(enriched)
                decided.setdefault(made["decision_id"], (made, events.encode(made)))
        new: set[str] = set()
        in_doubt = False
        if decided:
            params: list[Any] = []
            for decision_id, (made, body) in decided.items():
                params += [decision_id, made["platform_run_id"], made["event_id"], made["decision"],
                           body.decode("utf-8"), hashlib.sha256(body).hexdigest()]

            def insert(cur: Any) -> set[str]:
                cur.execute(_INSERT.format(rows=", ".join([_ROW] * len(decided))), params)
                return {row[0] for row in cur.fetchall()}

            reconnects = self.db.reconnects
            new = self.db.run(f"insert into {TABLE}", insert)
            # The connection was lost during the insert: an attempt whose commit went unanswered may have recorded
            # rows the retry no longer sees as new. Every DLA row of the run not on the topic is published instead.
            in_doubt = self.db.reconnects != reconnects
        if in_doubt:
            self.republish()
        else:
            for decision_id, (made, body) in decided.items():
                if decision_id in new:
                    self.publisher.send(made, body)
            self.publisher.flush()
        ends: dict[int, int] = {}
        for record in batch:
            ends[record.partition] = max(ends.get(record.partition, 0), record.offset + 1)
        daemon.commit(self.consumer, self.source, ends)
        self.recorded += len(new)
        log.info("batch", records=len(batch), decisions=len(decided), new=len(new), committed=ends,
                 skipped=dict(self.skipped))

    # -- summary evidence --------------------------------------------------------------------------
    def check_summary(self) -> None:
        """Once RTDL is caught up and the run's DLA rows number IG's ADMITTED receipts."""
        ev = self.scope.evidence
        if not self.caught_up:
            catch_up = evidence.get_json(ev, CATCH_UP)
            if catch_up is None or catch_up.get("caught_up") is not True:
                return
            self.caught_up = True
        if self.admitted is None:
            receipts = evidence.get_json(ev, RECEIPT_SUMMARY)
            if receipts is None:
                return
            admitted = (receipts.get("counts") or {}).get("ADMITTED")
            if not isinstance(admitted, int) or isinstance(admitted, bool):
                raise SpineError(f"{ev.url(RECEIPT_SUMMARY)}: counts.ADMITTED={admitted!r} is not a count")
            self.admitted = admitted
        run_id = self.scope.platform_run_id
        by_outcome = {outcome: 0 for outcome in rules.OUTCOMES}
        for outcome, count in self._rows(f"select decision, count(*) from {TABLE} where platform_run_id = %s "
                                         "group by decision", (run_id,)):
            by_outcome[outcome] = int(count)
        decisions = sum(by_outcome.values())
        if decisions != self.admitted:
            if decisions != self.counted:
                log.info("waiting", dla_rows=decisions, admitted=self.admitted)
            self.counted = decisions
            return
        by_reason = {reason: 0 for reason in rules.REASONS}
        for reason, count in self._rows(f"select reason, count(*) from {TABLE}, "
                                        "jsonb_array_elements_text(record -> 'reasons') as reason "
                                        "where platform_run_id = %s group by reason", (run_id,)):
            by_reason[reason] = int(count)
        summary = {"platform_run_id": run_id, "group": self.group, "policy": rules.POLICY, "decisions": decisions,
                   "by_outcome": by_outcome, "by_reason": by_reason, "dla_table": TABLE, "topic": self.topic}
        evidence.put_json(ev, SUMMARY, summary)
        self.summarised = True
        log.info("summary", decisions=decisions, by_outcome=by_outcome, by_reason=by_reason)


def run(scope: RunScope) -> None:
    stop = daemon.install_stop()
    lane = Lane(scope, stop)
    try:
        lane.republish()
        if not stop.is_set():
            lane.serve()
    except db.Interrupted as exc:  # SIGTERM while the database was away: the batch in hand stays uncommitted
        log.info("stopping", reason=str(exc))
    finally:
        lane.close()
    log.info("stopped", recorded=lane.recorded, skipped=dict(lane.skipped))
