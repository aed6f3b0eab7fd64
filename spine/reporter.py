"""`reporter` job: the single writer of closure — lock, read the whole run, reconcile, fenced evidence, close."""

from __future__ import annotations

import array
import concurrent.futures
import hashlib
import json
import os
import re
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn

import numpy
import psycopg

from spine import aws, canonical, db, evidence, kafka, log, runscope, s3
from spine.errors import Conflict, NotFound, SpineError, UsageError
from spine.ig import ingest
from spine.lock import HELD, Held, Lock
from spine.runscope import RunScope

COMPLETED = "run_completed.json"
RECONCILIATION = "obs/reconciliation.json"
REPORT = "obs/run_report.json"
CONFORMANCE = "obs/environment_conformance.json"
ANCHORS = "obs/replay_anchors.json"
ARCHIVE_INDEX = "rtdl_core/archive_index.json"
OUTCOMES = ("APPROVE", "REVIEW", "DECLINE")
# role → (variable naming the topic, the identity that makes a record distinct)
TOPICS = {"traffic": ("SPINE_TOPIC_TRAFFIC", "event_id"), "rtdl": ("SPINE_TOPIC_RTDL", "event_id"),
          "decision": ("SPINE_TOPIC_DECISION", "decision_id")}
# Each of these must equal admitted_events (contract §6: the chain of closes).
CHAIN = ("traffic_events", "traffic_records", "enriched_events", "decisions", "decision_records", "dla_records")
PRIVILEGES = ("UPDATE", "DELETE")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_FETCH = 32  # receipt objects fetched at once: bounded memory, parallel reads
# librdkafka prefetches up to 64 MiB by default: a smaller queue keeps the job's memory flat at 1M records, and a
# short backoff once it is full keeps the fetcher from idling a second each time (4x slower reads otherwise).
_READ_SETTINGS = {"queued.max.messages.kbytes": 16384, "queued.min.messages": 20000, "fetch.queue.backoff.ms": 10,
                  "fetch.wait.max.ms": 100}


def reporter_id() -> str:
    value = os.environ.get("SPINE_REPORTER_ID") or f"reporter-{secrets.token_hex(6)}"
    if not _ID.fullmatch(value):
        raise UsageError(f"SPINE_REPORTER_ID={value!r} must be letters, digits, '.', '_' or '-' (at most 128)")
    return value


# --- reading the run ---------------------------------------------------------------------------------------


class Distinct:
    """Identities as 64-bit hashes in a flat array, 8 bytes each (a set of ints costs ~100): at 1M records the job
    stays far under its memory budget. ``hash()`` is stable within the process, which is all a count needs; a
    collision (p ~ 3e-8 at 1M) can only lower a count, so it makes a run refuse, never close wrongly.
    Each identity may carry a small code (the decision's outcome), counted over first occurrences."""

    def __init__(self) -> None:
        self.hashes = array.array("q")
        self.codes = array.array("b")
        self.names: dict[str, int] = {}
        self._counted = (0, 0)  # (hashes seen, distinct among them) at the last count

    def add(self, ident: str, code: str | None = None) -> None:
        self.hashes.append(hash(ident))
        if code is not None:
            self.codes.append(self.names.setdefault(code, len(self.names)))

    def count(self) -> int:
        if self._counted[0] != len(self.hashes):
            self._counted = (len(self.hashes), int(numpy.unique(numpy.frombuffer(self.hashes, numpy.int64)).size))
        return self._counted[1]

    def reaches(self, target: int) -> bool:
        """Distinct count >= target, sorting only when enough new identities arrived to possibly get there."""
        seen, distinct = self._counted
        if distinct >= target or len(self.hashes) - seen < target - distinct:
            return distinct >= target
        return self.count() >= target

    def by_code(self) -> Counter[str]:
        """Per code, the identities whose first occurrence carries it."""
        _, first = numpy.unique(numpy.frombuffer(self.hashes, numpy.int64), return_index=True)
        codes = numpy.frombuffer(self.codes, numpy.int8)[first]
        names = {code: name for name, code in self.names.items()}
        return Counter({names[int(c)]: int(n) for c, n in zip(*numpy.unique(codes, return_counts=True), strict=True)})


@dataclass
class Receipts:
    """The run's receipt records, folded as they are read (no receipt is kept)."""

    platform_run_id: str
    counts: Counter[str] = field(default_factory=Counter)
    admitted: Distinct = field(default_factory=Distinct)
    ambiguous: set[str] = field(default_factory=set)
    unreconciled: list[str] = field(default_factory=list)  # ambiguous event ids that no ADMITTED receipt resolves
    acked_end: dict[int, int] = field(default_factory=dict)
    admitted_events: int = 0
    objects: int = 0
    foreign_objects: int = 0

    def add(self, record: Any) -> None:
        self.objects += 1
        if not isinstance(record, dict) or record.get("platform_run_id") != self.platform_run_id:
            self.foreign_objects += 1
            return
        for receipt in record.get("receipts") or []:
            status, event_id = receipt.get("status"), str(receipt.get("event_id"))
            self.counts[str(status)] += 1
            if status == ingest.ADMITTED:
                self.admitted.add(event_id)
                partition, offset = int(receipt["partition"]), int(receipt["offset"])
                self.acked_end[partition] = max(self.acked_end.get(partition, 0), offset + 1)
            elif status == ingest.AMBIGUOUS:
                self.ambiguous.add(event_id)


def read_receipts(scope: RunScope) -> Receipts:
    root = scope.evidence
    keys = s3.list_keys(root.bucket, root.key(ingest.RECEIPTS))
    found = Receipts(scope.platform_run_id)
    s3.client()  # created once before the pool (functools.cache is not a lock)
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        for start in range(0, len(keys), _FETCH):
            for key, raw in zip(keys[start:start + _FETCH],
                                pool.map(lambda k: s3.get_bytes(root.bucket, k), keys[start:start + _FETCH]),
                                strict=True):
                try:
                    found.add(json.loads(raw))
                except ValueError as exc:
                    raise SpineError(f"receipt object s3://{root.bucket}/{key} is not JSON: {exc}") from exc
    if found.ambiguous:  # IG reconciles an ambiguous publish with an ADMITTED receipt (contract §5)
        admitted = numpy.frombuffer(found.admitted.hashes, numpy.int64)
        found.unreconciled = sorted(e for e in found.ambiguous if not numpy.isin(hash(e), admitted))
    found.admitted_events, found.admitted = found.admitted.count(), Distinct()  # the count stays, the ids go
    return found


@dataclass
class Anchor:
    """One partition's run records: where they start and end and a digest of (offset, value digest) lines."""

    first_offset: int
    last_offset: int = -1
    records: int = 0
    digest: Any = field(default_factory=hashlib.sha256)

    def to_json(self) -> dict[str, Any]:
        return {"first_offset": self.first_offset, "last_offset": self.last_offset, "records": self.records,
                "digest": self.digest.hexdigest()}


class Tally:
    """One topic read from its first offset: per record only its identity (hashed), partition, offset and value
    digest are kept, so a million records cost a few megabytes."""

    def __init__(self, platform_run_id: str, id_field: str, ends: dict[int, int], lows: dict[int, int]) -> None:
        self.platform_run_id, self.id_field, self.ends = platform_run_id, id_field, ends
        self.pending = {p for p, end in ends.items() if end > lows.get(p, 0)}
        self.ids = Distinct()
        self.distinct = 0
        self.by_outcome: Counter[str] = Counter()
        self.records = self.read = self.skipped = 0
        self.anchors: dict[int, Anchor] = {}

    def keep(self, record: kafka.Record) -> bool:
        """Fold one record in; never keeps it (kafka.read's list stays empty)."""
        self.read += 1
        if record.partition in self.pending and record.offset + 1 >= self.ends[record.partition]:
            self.pending.discard(record.partition)
        try:
            doc: Any = json.loads(record.value.decode())
        except ValueError:  # UnicodeDecodeError included
            doc = None
        ident = doc.get(self.id_field) if isinstance(doc, dict) else None
        if not isinstance(ident, str) or doc.get("platform_run_id") != self.platform_run_id:
            self.skipped += 1
            return False
        self.records += 1
        self.ids.add(ident, str(doc.get("decision")) if self.id_field == "decision_id" else None)
        anchor = self.anchors.get(record.partition)
        if anchor is None:
            anchor = self.anchors[record.partition] = Anchor(first_offset=record.offset)
        anchor.last_offset, anchor.records = record.offset, anchor.records + 1
        anchor.digest.update(f"{record.offset} {hashlib.sha256(record.value).hexdigest()}\n".encode())
        return False

    def done(self, target: int) -> bool:
        return not self.pending and self.records >= target and self.ids.reaches(target)

    def finish(self) -> None:
        """Keep the counts, free the identities before the next topic is read."""
        self.distinct = self.ids.count()
        if self.id_field == "decision_id":
            self.by_outcome = self.ids.by_code()
        self.ids = Distinct()


def read_topic(settings: dict[str, Any], topic: str, platform_run_id: str, *, id_field: str,
               acked_end: dict[int, int], target: int, timeout_s: float) -> tuple[Tally, dict[str, Any]]:
    """The run's records of ``topic``, read until every partition reaches its end and ``target`` distinct
    identities are in hand (or ``timeout_s`` passes). The end is the acknowledged end (receipts) or the broker's
    high watermark, whichever is further: the embedded broker's watermark can only fall short, never overshoot."""
    started = time.monotonic()
    marks = kafka.watermarks(settings, topic)
    lows = {p: low for p, (low, _) in marks.items()}
    ends = {p: max(acked_end.get(p, 0), marks.get(p, (0, 0))[1]) for p in {*marks, *acked_end}}
    tally = Tally(platform_run_id, id_field, ends, lows)
    kafka.read({**settings, **_READ_SETTINGS}, topic, keep=tally.keep, until=lambda _found: tally.done(target),
               timeout_s=timeout_s)
    read = {"topic": topic, "ends": {str(p): e for p, e in sorted(ends.items())}, "target": target,
            "records_read": tally.read, "skipped": tally.skipped, "complete": tally.done(target),
            "seconds": round(time.monotonic() - started, 3)}
    tally.finish()
    log.info("topic_read", **read)
    return tally, read


def read_database(conn: psycopg.Connection[Any], platform_run_id: str) -> dict[str, Any]:
    """DLA rows per outcome (and the reasons of the REVIEW/DECLINE ones), cases and labels of the run."""
    run = (platform_run_id,)
    dla = {str(d): (int(n), int(r)) for d, n, r in db.query(
        conn, "select decision, count(*), coalesce(sum(case when jsonb_typeof(record->'reasons') = 'array'"
              " then jsonb_array_length(record->'reasons') else 0 end), 0)"
              " from dla_records where platform_run_id = %s group by decision", run)}
    (cases,), = db.query(conn, "select count(*) from cases where platform_run_id = %s", run)
    (labels,), = db.query(conn, "select count(*) from case_labels where platform_run_id = %s", run)
    return {"dla_by_outcome": {o: dla.get(o, (0, 0))[0] for o in OUTCOMES},
            "dla_reasons": sum(dla.get(o, (0, 0))[1] for o in OUTCOMES[1:]), "cases": int(cases),
            "labels": int(labels)}


# --- judging it ----------------------------------------------------------------------------------------------


def _judged(check: str, left: Any, right: Any) -> dict[str, Any]:
    return {"check": check, "left": left, "right": right, "ok": left == right}


def reconcile(platform_run_id: str, receipts: Receipts, tallies: dict[str, Tally],
              database: dict[str, Any]) -> dict[str, Any]:
    """The contract's counts and closes; the same observations give the same bytes (no time, no reporter)."""
    traffic, rtdl, decision = tallies["traffic"], tallies["rtdl"], tallies["decision"]
    dla = database["dla_by_outcome"]
    counts: dict[str, Any] = {
        "receipts": {s: receipts.counts.get(s, 0) for s in ingest.STATUSES},
        "admitted_events": receipts.admitted_events,
        "traffic_records": traffic.records, "traffic_events": traffic.distinct,
        "enriched_records": rtdl.records, "enriched_events": rtdl.distinct,
        "decision_records": decision.records, "decisions": decision.distinct,
        # an outcome outside the three is listed too, so it cannot close against the DLA
        "decisions_by_outcome": {**{o: 0 for o in OUTCOMES}, **decision.by_outcome},
        "dla_records": sum(dla.values()), "dla_by_outcome": dla,
        "cases": database["cases"], "labels": database["labels"],
    }
    closes = [_judged(f"admitted_events = {name}", counts["admitted_events"], counts[name]) for name in CHAIN]
    closes += [
        _judged("decisions_by_outcome = dla_by_outcome", counts["decisions_by_outcome"], dla),
        _judged("cases = dla REVIEW + DECLINE", counts["cases"], dla["REVIEW"] + dla["DECLINE"]),
        _judged("labels = reasons of the dla REVIEW and DECLINE decisions", counts["labels"], database["dla_reasons"]),
        _judged("PUBLISH_AMBIGUOUS unreconciled = 0", len(receipts.unreconciled), 0),
    ]
    return {"platform_run_id": platform_run_id, "counts": counts, "closes": closes,
            "closed": all(c["ok"] for c in closes)}


def archive(root: s3.Location) -> dict[str, Any] | None:
    """RTDL's archive index as the anchors name it: its digest and every object it lists."""
    raw = s3.get_optional(root.bucket, root.key(ARCHIVE_INDEX))
    if raw is None:
        return None
    try:
        index = json.loads(raw)
    except ValueError as exc:
        raise SpineError(f"{root.url(ARCHIVE_INDEX)} is not JSON: {exc}") from exc
    objects: list[dict[str, Any]] = []
    partitions = index.get("partitions") if isinstance(index, dict) else None
    for p, entry in sorted((partitions or {}).items(), key=lambda kv: int(kv[0])):
        listed = entry if isinstance(entry, list) else entry.get("objects", []) if isinstance(entry, dict) else []
        objects += [{"partition": int(p), **obj} for obj in listed if isinstance(obj, dict)]
    return {"index": ARCHIVE_INDEX, "index_sha256": canonical.sha256(raw),
            "bucket": index.get("bucket") if isinstance(index, dict) else None, "objects": objects}


def _check(name: str, expected: Any, observed: Any) -> dict[str, Any]:
    return {"name": name, "expected": expected, "observed": observed, "ok": expected == observed}


def conformance(scope: RunScope, lock: Lock, partitions: dict[str, int | None],
                privileges: dict[tuple[str, str], bool]) -> dict[str, Any]:
    """What the platform ran on, against what it was pinned to; the same environment gives the same bytes."""
    env, run = scope.env, scope.run
    bucket = env["SPINE_ARCHIVE_BUCKET"]
    try:  # a listing that matches nothing: the bucket answers, or NotFound (NoSuchBucket)
        s3.list_keys(bucket, f"{scope.platform_run_id}/.reporter-probe")
        bucket_exists = True
    except NotFound:
        bucket_exists = False
    item = aws.get(lock.table, {"platform_run_id": scope.platform_run_id}) or {}
    checks = [
        _check("image digest", (run.get("image") or {}).get("digest"), env["SPINE_IMAGE_DIGEST"]),
        _check("run config digest", run.get("run_config_digest"), env["SPINE_RUN_CONFIG_DIGEST"]),
        *(_check(f"topic {role} exists", {"topic": env[TOPICS[role][0]], "exists": True},
                 {"topic": env[TOPICS[role][0]], "exists": count is not None}) for role, count in partitions.items()),
        _check("archive bucket exists", {"bucket": bucket, "exists": True},
               {"bucket": bucket, "exists": bucket_exists}),
        _check("reporter lock table holds the lock", {"table": lock.table, "state": HELD, "held_by_reporter": True},
               {"table": lock.table, "state": item.get("state"),
                "held_by_reporter": item.get("holder") == lock.holder and item.get("token") == lock.token}),
        *(_check(f"platform role has no {privilege} on {table}", False, granted)
          for (table, privilege), granted in sorted(privileges.items())),
    ]
    return {"platform_run_id": scope.platform_run_id, "checks": checks, "ok": all(c["ok"] for c in checks)}


# --- the job -------------------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _conflict(scope: RunScope, lock: Lock, held: Held) -> NoReturn:
    """The table refused this reporter: say who holds the lock, write nothing else."""
    item, relative = held.item, f"obs/conflict_{lock.holder}.json"
    record = {"platform_run_id": scope.platform_run_id, "reporter": lock.holder, "reporter_token": lock.token,
              "refused": held.message, "holder": item.get("holder"), "holder_token": item.get("token"),
              "state": item.get("state"), "expires_at": item.get("expires_at")}
    try:
        evidence.put_json(scope.evidence, relative, record)
    except Conflict:
        log.info("conflict_evidence_kept", key=relative)  # an earlier conflict of this reporter id stays
    raise SpineError(f"{held}; conflict evidence {relative}")


def _put_obs(root: s3.Location, relative: str, record: dict[str, Any], *, same: str | None = None) -> str:
    """Write one obs object (write-once) and return the sha256 of what is stored. ``same`` names a field whose
    equal value makes an earlier attempt's object (a reporter that died before closing) acceptable as it is."""
    body = canonical.dumps(record)
    try:
        outcome = s3.put_once(root.bucket, root.key(relative), body)
    except Conflict:
        existing = s3.get_bytes(root.bucket, root.key(relative))
        if same is None or json.loads(existing).get(same) != record.get(same):
            raise
        log.info("evidence", key=relative, outcome="kept from an earlier attempt")
        return canonical.sha256(existing)
    log.info("evidence", key=relative, outcome=outcome)
    return canonical.sha256(body)


def run(scope: RunScope) -> None:
    env, root, run_id = scope.env, scope.evidence, scope.platform_run_id
    me, lease_s = reporter_id(), runscope.seconds("SPINE_REPORTER_LEASE_S", 30)
    timeout_s = runscope.seconds("SPINE_REPORTER_READ_TIMEOUT_S", 60)
    log.bind(reporter=me)
    lock = Lock(env["SPINE_REPORTER_LOCK_TABLE"], run_id, me, lease_s=lease_s)
    if s3.exists(root.bucket, root.key(COMPLETED)):
        # Closed: the only write is this reporter's conflict evidence naming who closed it (the lock's holder).
        _conflict(scope, lock, Held(f"run {run_id} is closed: {COMPLETED} exists", lock.current() or {}))
    try:
        lock.take()
    except Held as held:
        _conflict(scope, lock, held)
    try:
        with lock.renewed():  # the reads may outlast the lease; the writes fence (and extend) it themselves
            seen = observe(scope, timeout_s)
        _closure(scope, lock, seen)
    except Held as held:
        _conflict(scope, lock, held)
    except BaseException:
        if lock.state == HELD:  # a failure, not a refusal: free the run for the next reporter at once
            try:
                lock.release()
            except SpineError as exc:
                log.info("release_failed", reason=str(exc))
        raise


@dataclass
class Observation:
    """Everything the reporter read of the run, before any judgement."""

    receipts: Receipts
    partitions: dict[str, int | None]
    tallies: dict[str, Tally]
    reads: dict[str, Any]
    database: dict[str, Any]
    privileges: dict[tuple[str, str], bool]
    started_at: str
    seconds: dict[str, float]


def observe(scope: RunScope, timeout_s: float) -> Observation:
    """Receipts, then the three topics (each read to its end and its expected identities), then the database."""
    env, run_id = scope.env, scope.platform_run_id
    started_at, t0 = _now(), time.monotonic()
    receipts = read_receipts(scope)
    seconds = {"receipts": round(time.monotonic() - t0, 3)}
    log.info("receipts_read", objects=receipts.objects, **dict(receipts.counts))
    settings = kafka.config(env)
    partitions: dict[str, int | None] = {}
    for role, (variable, _) in TOPICS.items():
        try:
            partitions[role] = kafka.partitions(settings, env[variable])
        except SpineError as exc:
            log.info("topic_missing", role=role, topic=env[variable], reason=str(exc))
            partitions[role] = None
    conn = db.connect(env, "reporter")
    try:
        t0 = time.monotonic()
        dla_records = sum(read_database(conn, run_id)["dla_by_outcome"].values())
        admitted = receipts.admitted_events
        targets = {"traffic": admitted, "rtdl": admitted, "decision": max(admitted, dla_records)}
        tallies: dict[str, Tally] = {}
        reads: dict[str, Any] = {}
        for role, (variable, id_field) in TOPICS.items():
            if partitions[role] is None:  # nothing to read: its counts stay 0 and do not close
                tallies[role] = Tally(run_id, id_field, {}, {})
                reads[role] = {"topic": env[variable], "complete": False, "missing": True}
                continue
            tallies[role], reads[role] = read_topic(
                settings, env[variable], run_id, id_field=id_field,
                acked_end=receipts.acked_end if role == "traffic" else {}, target=targets[role], timeout_s=timeout_s)
        seconds["topics"] = round(time.monotonic() - t0, 3)
        t0 = time.monotonic()
        database = read_database(conn, run_id)  # after the topics: the latest DLA rows, cases and labels
        privileges = {(table, privilege): bool(granted) for table, privilege, granted in db.query(
            conn, "select t, p, has_table_privilege(current_user, t, p)"
                  " from unnest(%s::text[]) t cross join unnest(%s::text[]) p", (list(db.TABLES), list(PRIVILEGES)))}
        seconds["database"] = round(time.monotonic() - t0, 3)
    finally:
        conn.close()
    return Observation(receipts, partitions, tallies, reads, database, privileges, started_at, seconds)


def _closure(scope: RunScope, lock: Lock, seen: Observation) -> None:
    """Closes: the obs objects, CLOSED, run_completed.json last — each write fenced. Otherwise refuses."""
    root, run_id = scope.evidence, scope.platform_run_id
    reconciliation = reconcile(run_id, seen.receipts, seen.tallies, seen.database)
    if not reconciliation["closed"]:
        _refuse(scope, lock, reconciliation, seen.receipts.unreconciled, seen.reads)
    anchors = {"platform_run_id": run_id,
               "topics": {role: {"topic": scope.env[TOPICS[role][0]],
                                 "partitions": {str(p): a.to_json() for p, a in sorted(tally.anchors.items())}}
                          for role, tally in seen.tallies.items()},
               "archive": archive(root)}
    environment = conformance(scope, lock, seen.partitions, seen.privileges)
    report = {"platform_run_id": run_id, "scenario_run_id": scope.scenario_run_id, "reporter": lock.holder,
              "fencing_token": lock.token, "started_at": seen.started_at, "finished_at": _now(),
              "seconds": seen.seconds, "receipt_objects": seen.receipts.objects,
              "foreign_receipt_objects": seen.receipts.foreign_objects, "reads": seen.reads,
              "counts": reconciliation["counts"], "closed": True,
              "reconciliation_sha256": canonical.sha256(canonical.dumps(reconciliation)),
              "environment_ok": environment["ok"], "image": scope.run.get("image"),
              "run_config_digest": scope.run.get("run_config_digest")}
    digests: dict[str, str] = {}
    for relative, record, same in ((RECONCILIATION, reconciliation, None), (REPORT, report, "reconciliation_sha256"),
                                   (CONFORMANCE, environment, None), (ANCHORS, anchors, None)):
        lock.fence(f"fenced write of {relative}")
        digests[relative] = _put_obs(root, relative, record, same=same)
    lock.close()
    lock.fence_closed(f"fenced write of {COMPLETED}")
    evidence.put_json(root, COMPLETED, {
        "platform_run_id": run_id, "scenario_run_id": scope.scenario_run_id, "closed_by": lock.holder,
        "fencing_token": lock.token, "counts": reconciliation["counts"], "obs": digests})
    log.info("closed", token=lock.token, **{k: v for k, v in reconciliation["counts"].items() if isinstance(v, int)})


def _refuse(scope: RunScope, lock: Lock, reconciliation: dict[str, Any], ambiguous: list[str],
            reads: dict[str, Any]) -> NoReturn:
    """What does not close, as evidence; the lock released (fenced); exit 1 naming it."""
    relative = f"obs/refused_{lock.holder}.json"
    open_closes = [c for c in reconciliation["closes"] if not c["ok"]]
    lock.fence(f"fenced write of {relative}")
    try:
        evidence.put_json(scope.evidence, relative, {
            "platform_run_id": scope.platform_run_id, "reporter": lock.holder, "fencing_token": lock.token,
            "counts": reconciliation["counts"], "open": open_closes, "ambiguous_event_ids": ambiguous,
            "reads": {role: {k: v for k, v in read.items() if k != "seconds"} for role, read in reads.items()}})
    except Conflict:
        log.info("refusal_evidence_kept", key=relative)  # an earlier refusal of this reporter id stays
    lock.release()
    named = "; ".join(f"{c['check']} ({c['left']} vs {c['right']})" for c in open_closes)
    if ambiguous:
        named += f"; PUBLISH_AMBIGUOUS left for {', '.join(ambiguous[:10])}{' ...' if len(ambiguous) > 10 else ''}"
    raise SpineError(f"run {scope.platform_run_id} does not close: {named}; evidence {relative}; lock released")
