"""Helpers of bench/pipeline.py: the decision plane's surfaces, the traffic and IG evidence the benchmark writes in
IG's place, the daemons as processes, the stage watch, CPU accounting and the harness's P11 recount."""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import os
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psutil
import pyarrow as pa
from ingress import BenchError, Family, log_lines

from harness import pipeline
from harness.aws import AwsSession, s3, ssm
from harness.kafka import KafkaConnection, admin
from harness.kafka.consume import watermarks
from harness.phases import p11
from harness.wait import wait_until
from spine import canonical, events
from spine.contract import MODES
from spine.engine import generate

REGION = "eu-west-2"
IMAGE_DIGEST = "sha256:" + "0" * 64
PARTITIONS = 3
DAEMONS = ("rtdl", "decision-lane", "case-labels")
# The evidence each daemon writes when its stage is done, in pipeline order (contract §6).
STAGES = {"rtdl": "rtdl_core/catch_up.json", "decision-lane": "decision_lane/summary.json",
          "case-labels": "case_labels/summary.json"}
# Which topic each daemon's group consumes (role), and the foreign warm-up record that proves it joined.
CONSUMES = {"rtdl": "traffic", "decision-lane": "rtdl", "case-labels": "decision"}
WARM_UP_RUN = "run-bench-warm-up"
MIB = 1024 * 1024


# -- the run's surfaces -----------------------------------------------------------------------------------------
@dataclass
class Plane:
    """One pinned run of the decision planes: its topics, buckets, lock table, SSM surfaces and every mode's env."""

    run_id: str
    scenario: str
    aws: AwsSession
    conn: KafkaConnection
    dsn: str
    knobs: dict[str, str]
    topics: dict[str, str] = field(init=False)
    config: dict[str, Any] = field(init=False)
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        self.topics = {role: f"bench.{role}.{self.run_id}" for role in ("traffic", "rtdl", "decision")}
        self.buckets = {role: f"bench-pipeline-{role}" for role in ("evidence", "archive")}
        self.lock_table = "bench-pipeline-reporter-lock"
        self.ssm = {"bootstrap": "/bench/pipeline/kafka/bootstrap", "db_dsn": "/bench/pipeline/db/dsn"}
        self.evidence_root = f"s3://{self.buckets['evidence']}/runs/{self.run_id}/"
        self.config = {"platform_run_id": self.run_id, "scenario_run_id": self.scenario, "profile": "embedded",
                       "evidence_root": self.evidence_root, "topics": self.topics, "rtdl_caught_up_lag_max": 0}

    def provision(self, *, events_n: int, seed: int) -> None:
        """Buckets (the archive versioned), the lock table, SSM, the three topics, then run.json (like P0 and P1)."""
        client = self.aws.client("s3")
        for bucket in self.buckets.values():
            client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        client.put_bucket_versioning(Bucket=self.buckets["archive"], VersioningConfiguration={"Status": "Enabled"})
        dynamodb = self.aws.client("dynamodb")
        dynamodb.create_table(TableName=self.lock_table, BillingMode="PAY_PER_REQUEST",
                              AttributeDefinitions=[{"AttributeName": "platform_run_id", "AttributeType": "S"}],
                              KeySchema=[{"AttributeName": "platform_run_id", "KeyType": "HASH"}])
        dynamodb.get_waiter("table_exists").wait(TableName=self.lock_table,
                                                 WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        ssm.put(self.aws, self.ssm["bootstrap"], self.conn.bootstrap, secure=False)
        ssm.put(self.aws, self.ssm["db_dsn"], self.dsn, secure=True)
        admin.ensure_topics(self.conn, dict.fromkeys(self.topics.values(), PARTITIONS), replication_factor=1)
        wait_until(lambda: all(state.partitions == PARTITIONS for state in
                               admin.describe_topics(self.conn, list(self.topics.values())).values()),
                   timeout_s=30, err_msg=f"topics {sorted(self.topics.values())} not visible")
        self.config.update(seed=seed, events=events_n)
        self.digest = hashlib.sha256(json.dumps(self.config, sort_keys=True, separators=(",", ":")).encode()
                                     ).hexdigest()
        run_json = {"platform_run_id": self.run_id, "scenario_run_id": self.scenario,
                    "run_config_digest": self.digest, "run_config": self.config,
                    "image": {"tag": "git-bench", "digest": IMAGE_DIGEST, "source_sha": "bench"},
                    "events": events_n, "handles_digest": "0" * 64, "pinned_at": datetime.now(UTC).isoformat()}
        s3.put_once(self.aws, bucket=self.buckets["evidence"], key=f"runs/{self.run_id}/run.json",
                    body=json.dumps(run_json, sort_keys=True).encode())

    def env(self, mode: str, **extra: str) -> dict[str, str]:
        assert self.aws.endpoint_url is not None
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AWS_ENDPOINT_URL": self.aws.endpoint_url,
               "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "REQUIRED_PLATFORM_RUN_ID": self.run_id,
               "SPINE_RUN_MANIFEST": f"{self.evidence_root}run.json", "SPINE_RUN_CONFIG_DIGEST": self.digest,
               "SPINE_IMAGE_DIGEST": IMAGE_DIGEST, "SPINE_EVIDENCE_ROOT": self.evidence_root,
               "SPINE_SSM_KAFKA_BOOTSTRAP": self.ssm["bootstrap"], "SPINE_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
               "SPINE_TOPIC_TRAFFIC": self.topics["traffic"], "SPINE_TOPIC_RTDL": self.topics["rtdl"],
               "SPINE_TOPIC_DECISION": self.topics["decision"], "SPINE_ARCHIVE_BUCKET": self.buckets["archive"],
               "SPINE_SSM_DB_DSN": self.ssm["db_dsn"], "SPINE_REPORTER_LOCK_TABLE": self.lock_table,
               **self.knobs, **extra}
        missing = [name for name in MODES[mode].required_env if not env.get(name)]
        if missing:
            raise BenchError(f"the benchmark gives {mode} no {', '.join(missing)} (spine/contract.py)")
        return env

    def evidence_key(self, relative: str) -> str:
        return f"runs/{self.run_id}/{relative}"

    def evidence_json(self, relative: str) -> dict[str, Any] | None:
        raw = s3.get_optional(self.aws, bucket=self.buckets["evidence"], key=self.evidence_key(relative))
        return json.loads(raw) if raw is not None else None


# -- the traffic, as WSP would send it and IG would publish it ---------------------------------------------------
@dataclass
class Traffic:
    """The run's events in stream order as (key, value) records, with what each receipt names."""

    records: list[tuple[bytes, bytes]]
    event_ids: list[str]
    digests: list[str]

    @property
    def size_bytes(self) -> int:
        return sum(len(v) for _, v in self.records)


def make_traffic(seed: int, events_n: int, *, run_id: str, scenario: str, chunk: int = 50_000) -> Traffic:
    """The Data Engine's card_transactions in stream-view order (ts_utc, event_id), each row WSP's envelope
    (spine.events.envelope), encoded as IG publishes it and keyed by payload.card_id."""
    table: pa.Table = generate(seed, events_n)["card_transactions"]
    table = table.sort_by([("ts_utc", "ascending"), ("event_id", "ascending")])
    traffic = Traffic([], [], [])
    for start in range(0, table.num_rows, chunk):
        for row in table.slice(start, chunk).to_pylist():
            event = events.envelope(row, platform_run_id=run_id, scenario_run_id=scenario)
            traffic.records.append((str(event["payload"]["card_id"]).encode(), events.encode(event)))
            traffic.event_ids.append(event["event_id"])
            traffic.digests.append(events.payload_sha256(event))
    return traffic


def warm_up_value(role: str) -> bytes:
    """A record of another run: every daemon consumes, skips and commits it (its join is then proven)."""
    return events.encode({"event_id": f"evt-warm-up-{role}", "event_type": "card_transaction",
                          "platform_run_id": WARM_UP_RUN, "scenario_run_id": "scn-warm-up",
                          "decision_id": f"dec-warm-up-{role}", "ts_utc": "2026-01-01T00:00:00Z",
                          "payload": {"card_id": "card-warm-up"}})


def acked_ends(placed: list[tuple[int, int]]) -> dict[int, int]:
    ends: dict[int, int] = {}
    for partition, offset in placed:
        ends[partition] = max(ends.get(partition, 0), offset + 1)
    return ends


def write_ig_evidence(plane: Plane, traffic: Traffic, placed: list[tuple[int, int]], *, batch: int,
                      workers: int = 8) -> dict[str, Any]:
    """What IG leaves for a run it admitted whole (spine/ig: Gate.ingest, server._commit): one receipt object per
    ``batch`` events under ingest/receipts/, then receipt_summary.json, quarantine_summary.json and
    kafka_offsets_snapshot.json (acknowledged offsets from the delivery reports, the broker's watermarks beside)."""
    began = time.monotonic()
    bucket, topic, run = plane.buckets["evidence"], plane.topics["traffic"], plane.run_id
    instance = uuid.uuid4().hex[:12]
    objects: list[tuple[str, bytes]] = []
    for n, start in enumerate(range(0, len(placed), batch), 1):
        receipts = [{"index": i, "event_id": traffic.event_ids[start + i], "status": "ADMITTED",
                     "payload_sha256": traffic.digests[start + i], "topic": topic, "partition": partition,
                     "offset": offset} for i, (partition, offset) in enumerate(placed[start:start + batch])]
        request_id = f"{instance}-{n:08d}"
        objects.append((request_id, canonical.dumps({
            "request_id": request_id, "platform_run_id": run, "sender": "bench-pipeline",
            "received_at_ms": int(time.time() * 1000), "receipts": receipts})))
    plane.aws.client("s3")  # created once, before the pool
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda item: s3.put_once(plane.aws, bucket=bucket,
                                               key=plane.evidence_key(f"ingest/receipts/{item[0]}.json"),
                                               body=item[1]), objects))
    receipts_s = time.monotonic() - began
    by_partition: dict[int, list[int]] = {}
    for partition, offset in placed:
        by_partition.setdefault(partition, []).append(offset)
    marks = watermarks(plane.conn, topic)
    summaries: dict[str, dict[str, Any]] = {
        "ingest/receipt_summary.json": {
            "platform_run_id": run, "scenario_run_id": plane.scenario, "requests": len(objects),
            "events": len(placed), "counts": {"ADMITTED": len(placed), "DUPLICATE": 0, "QUARANTINED": 0,
                                              "PUBLISH_AMBIGUOUS": 0},
            "receipt_objects": [f"ingest/receipts/{request_id}.json" for request_id, _ in objects],
            "ambiguous_event_ids": []},
        "ingest/quarantine_summary.json": {"platform_run_id": run, "count": 0, "by_reason": {}, "objects": []},
        "ingest/kafka_offsets_snapshot.json": {
            "platform_run_id": run, "topic": topic, "offsets_from": "delivery reports",
            "partitions": {str(p): {"acked_records": len(by_partition.get(p, [])),
                                    "acked_min_offset": min(by_partition[p]) if p in by_partition else None,
                                    "acked_end_offset": max(by_partition[p]) + 1 if p in by_partition else None,
                                    "broker_low": low, "broker_high": high}
                           for p, (low, high) in sorted(marks.items())}},
    }
    for relative, record in summaries.items():
        s3.put_once(plane.aws, bucket=bucket, key=plane.evidence_key(relative), body=canonical.dumps(record))
    return {"receipt_objects": len(objects), "receipts_s": round(receipts_s, 3),
            "total_s": round(time.monotonic() - began, 3)}


# -- processes --------------------------------------------------------------------------------------------------
def start_daemon(family: Family, mode: str, env: dict[str, str], *,
                 timeout_s: float = 60.0) -> subprocess.Popen[bytes]:
    """`python -m spine <mode>`, returned once it logs that it consumes (its bus, database and consumer set up)."""
    proc = family.spawn(mode, ["-m", "spine", mode], env)
    out = family.logs / f"{mode}.out"

    def consuming() -> bool:
        if proc.poll() is not None:
            return True
        return any(r.get("event") == "consuming" for r in log_lines(out))

    wait_until(consuming, timeout_s=timeout_s, backoff_s=0.05, max_backoff_s=0.2,
               err_msg=f"{mode} did not start consuming", operation=f"start {mode}")
    if proc.poll() is not None:
        raise BenchError(f"{mode} exited {proc.returncode} before consuming: "
                         f"{(family.logs / f'{mode}.err').read_text(errors='replace')[-1500:]}")
    return proc


def cpu_total(pid: int) -> float:
    """CPU seconds of a process, its live children and the children it reaped (PostgreSQL's ended backends)."""
    try:
        proc = psutil.Process(pid)
        times = proc.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                child_times = child.cpu_times()
                total += child_times.user + child_times.system
        return float(total)
    except psutil.NoSuchProcess:
        return float("nan")


class CpuClock:
    """CPU seconds per named process over a window (``mark`` → ``since``); ``bench`` is this process."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.marks: dict[str, dict[str, float]] = {}

    def now(self) -> dict[str, float]:
        return {**{name: cpu_total(pid) for name, pid in self.pids.items()}, "bench": time.process_time()}

    def mark(self, label: str) -> None:
        self.marks[label] = self.now()

    def since(self, label: str) -> dict[str, float]:
        now, then = self.now(), self.marks[label]
        return {name: round(now[name] - then[name], 2) for name in now}


def hwm(pid: int) -> int:
    """The kernel's peak RSS of a process since its exec (VmHWM), in bytes; 0 once it is gone.

    Not a child's ru_maxrss from wait4: exec folds the forked parent's RSS into it, so every child of a big parent
    (this benchmark holds the run's traffic) reports at least the parent's size."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


class RssWatch:
    """Peak RSS per named process, all read by one thread: a single process's VmHWM (exact, so a short spike between
    samples still counts, unless it is in the process's last ``interval_s``); for one named with ``children=True``
    (PostgreSQL) the sum of its and its children's RSS, the children refreshed every ``refresh`` samples. No
    per-sample process-table scan: on two cores a sampler per process scanning children cost the measured pipeline a
    third of a core."""

    def __init__(self, *, interval_s: float = 0.05, refresh: int = 10) -> None:
        self.interval_s, self.refresh = interval_s, refresh
        self.procs: dict[str, tuple[psutil.Process, bool]] = {}
        self.kids: dict[str, list[psutil.Process]] = {}
        self.peak: dict[str, int] = {}
        self.samples = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-watch", daemon=True)
        self._thread.start()

    def add(self, name: str, pid: int, *, children: bool = False) -> None:
        with self._lock:
            self.procs[name] = (psutil.Process(pid), children)
            self.kids[name] = []
            self.peak[name] = 0

    @staticmethod
    def _rss(proc: psutil.Process) -> int:
        try:
            return int(proc.memory_info().rss)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return 0

    def sample(self) -> None:
        with self._lock:
            for name, (proc, children) in self.procs.items():
                if not children:
                    self.peak[name] = max(self.peak[name], hwm(proc.pid))
                    continue
                if self.samples % self.refresh == 0:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        self.kids[name] = proc.children(recursive=True)
                total = self._rss(proc) + sum(self._rss(kid) for kid in self.kids[name])
                self.peak[name] = max(self.peak[name], total)
            self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)

    def peak_mib(self, name: str) -> float:
        return round(self.peak.get(name, 0) / MIB, 1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class SelfRss:
    """Peak RSS of this process alone (not its children: the daemons are), sampled in a thread."""

    def __init__(self, *, interval_s: float = 0.05) -> None:
        self.proc = psutil.Process(os.getpid())
        self.baseline = self.peak = int(self.proc.memory_info().rss)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval_s,), name="self-rss", daemon=True)
        self._thread.start()

    def _run(self, interval_s: float) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, int(self.proc.memory_info().rss))
            self._stop.wait(interval_s)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join(timeout=5)
        self.peak = max(self.peak, int(self.proc.memory_info().rss))
        return {"baseline_mib": round(self.baseline / MIB, 1), "peak_mib": round(self.peak / MIB, 1),
                "delta_mib": round((self.peak - self.baseline) / MIB, 1)}


# -- watching the stages ----------------------------------------------------------------------------------------
class Watch:
    """Polled with wait_until: when RTDL's committed offsets reach the acknowledged ends (read as P8 reads them,
    without joining the group), and when each stage's evidence object appears, in seconds since ``t0``."""

    def __init__(self, plane: Plane, procs: dict[str, subprocess.Popen[bytes]], t0: float) -> None:
        self.plane, self.procs, self.t0 = plane, procs, t0
        self.ends: dict[int, int] | None = None
        self.caught_up_s: float | None = None
        self.stages: dict[str, float] = {}
        self.committed: dict[int, int | None] = {}
        self.failed: str | None = None
        self.polls = 0

    def check(self) -> bool:
        self.polls += 1
        for mode, proc in self.procs.items():
            if proc.poll() is not None:
                self.failed = f"{mode} exited {proc.returncode}"
                return True
        if self.ends is not None and self.caught_up_s is None:
            self.committed = admin.committed_offsets(self.plane.conn, pipeline.group("rtdl", self.plane.run_id),
                                                     self.plane.topics["traffic"], PARTITIONS)
            if all((self.committed.get(p) or 0) >= end for p, end in self.ends.items()):
                self.caught_up_s = time.monotonic() - self.t0
        for mode, relative in STAGES.items():  # in pipeline order: a later stage waits on the earlier one
            if mode in self.stages:
                continue
            if not s3.key_exists(self.plane.aws, bucket=self.plane.buckets["evidence"],
                                 key=self.plane.evidence_key(relative)):
                break
            self.stages[mode] = time.monotonic() - self.t0
        return len(self.stages) == len(STAGES) and self.caught_up_s is not None


def wait_for_groups(plane: Plane, warm: dict[str, dict[int, int]], *, timeout_s: float = 60.0) -> float:
    """Until every daemon's group has committed past the warm-up record on its topic: all three have joined."""
    began = time.monotonic()

    def joined() -> bool:
        for mode, role in CONSUMES.items():
            committed = admin.committed_offsets(plane.conn, pipeline.group(mode, plane.run_id), plane.topics[role],
                                                PARTITIONS)
            if any((committed.get(p) or 0) < end for p, end in warm[role].items()):
                return False
        return True

    wait_until(joined, timeout_s=timeout_s, backoff_s=0.05, max_backoff_s=0.2,
               err_msg="a daemon's group did not consume its warm-up record", operation="wait for the groups")
    return time.monotonic() - began


def daemon_activity(path: Any, t0_wall: float) -> dict[str, Any]:
    """From a daemon's `batch` log lines after t0 (not the warm-up's): batches, records and when the first and last
    batch ended (s since t0)."""
    batches = [r for r in log_lines(path) if r.get("event") == "batch" and float(r["ts"]) >= t0_wall]
    if not batches:
        return {"batches": 0, "records": 0}
    first, last = float(batches[0]["ts"]) - t0_wall, float(batches[-1]["ts"]) - t0_wall
    records = sum(int(b.get("records", 0)) for b in batches)
    return {"batches": len(batches), "records": records, "first_batch_s": round(first, 2),
            "last_batch_s": round(last, 2), "mean_batch": round(records / len(batches), 1)}


# -- the harness's own recount (P11) -----------------------------------------------------------------------------
def harness_recount(plane: Plane, *, timeout_s: float) -> dict[str, Any]:
    """P11's own observation without a Certification (``harness.phases.p11.gather``: receipts, the three
    topics, the DLA, cases and labels), then ``recount`` and ``closes``."""
    began = time.monotonic()
    obs = p11.gather(plane.aws, plane.conn, run=plane.run_id, evidence_root=plane.evidence_root,
                     topics={role: plane.topics[role] for role in p11.ROLES},
                     dsn=pipeline.platform_dsn(plane.aws, plane.ssm["db_dsn"]), timeout_s=timeout_s)
    observed_s = time.monotonic() - began
    counts = p11.recount(obs)
    problems = p11.closes(counts, obs)
    return {"wall_s": round(time.monotonic() - began, 3), "observe_s": round(observed_s, 3),
            "recount_s": round(time.monotonic() - began - observed_s, 3), "counts": counts, "open": problems,
            "read_shortfalls": obs["read_shortfalls"], "closed": not problems and not obs["read_shortfalls"]}


# -- scaling -----------------------------------------------------------------------------------------------------
SCALED = {"end_to_end_s": ("stages", "case_labels_summary_s"), "reporter_wall_s": ("reporter", "wall_s"),
          "reporter_peak_rss_mib": ("reporter", "peak_rss_mib"),
          "harness_recount_s": ("harness_recount", "wall_s"),
          "harness_recount_rss_delta_mib": ("harness_recount", "rss", "delta_mib")}


def _metric(result: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = result
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return float(value) if isinstance(value, int | float) else None


def scaling(results: list[dict[str, Any]], *, target_events: int = 1_000_000) -> dict[str, Any]:
    """Per metric a line through the measured sizes (least squares), read at ``target_events``: an extrapolation,
    unless a result is at that size. With one size, times scale in proportion and memory is not extrapolated."""
    by_size = {int(r["events"]): r for r in results}  # the latest result per size
    sizes = sorted(by_size)
    out: dict[str, Any] = {"sizes": sizes, "target_events": target_events,
                           "measured_at_target": target_events in by_size, "metrics": {}}
    for name, path in SCALED.items():
        points = [(n, v) for n in sizes if (v := _metric(by_size[n], path)) is not None]
        entry: dict[str, Any] = {"points": {str(n): round(v, 3) for n, v in points}}
        if target_events in by_size and (v := _metric(by_size[target_events], path)) is not None:
            entry.update(value=round(v, 2), how="measured")
        elif len(points) >= 2:
            mean_n = sum(n for n, _ in points) / len(points)
            mean_v = sum(v for _, v in points) / len(points)
            slope = sum((n - mean_n) * (v - mean_v) for n, v in points) / sum((n - mean_n) ** 2 for n, _ in points)
            intercept = mean_v - slope * mean_n
            entry.update(value=round(intercept + slope * target_events, 2), how="extrapolated (linear fit)",
                         per_100k=round(slope * 100_000, 3), intercept=round(intercept, 3))
        elif points and name.endswith("_s"):
            n, v = points[0]
            entry.update(value=round(v * target_events / n, 2), how="extrapolated (proportional, one size)")
        else:
            entry.update(value=None, how="not extrapolated (needs two sizes)")
        out["metrics"][name] = entry
    return out
