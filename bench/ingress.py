"""Benchmark the ingress lane: WSP → IG → traffic topic on the embedded substrate (moto + Tansu).

    .venv/bin/python bench/ingress.py --events 100000 [--batch-size 200] [--seed 42] [--json PATH]

Starts moto and Tansu on free loopback ports and stops them at the end (also on errors, Ctrl-C and SIGTERM),
provisions what the modes need (buckets, the dedupe and lease tables, the SSM bootstrap and writer key, the
traffic topic with 3 partitions and the control topic with 1), pins a run.json, runs the data engine and
oracle-seed → oracle-sort → oracle-check for N events, `sr` (READY), starts `ig` and waits for its health
answer, then times the `wsp` job. Measured, in this order:

  ingress       ADMITTED receipts per wall second of the `wsp` job (its whole life: start, READY, reading
                the stream view, streaming, summary), and of its streaming window (READY seen → last batch);
                per-request latency ≈ the interval between WSP's consecutive `sent` log lines (ms resolution;
                one POST plus building the next batch's envelopes)
  topic         the traffic topic read back: records and distinct event ids of the run
  raw produce   the same payloads and keys with confluent-kafka (idempotent, acks=all, linger.ms=5 like IG's
                producer) into separate topics of the same broker, after one acknowledged warm-up record:
                streamed (one flush at the end) and with a flush after every batch (what a request-scoped
                publisher waiting for acks can reach at best)
  latency       the benchmark POSTs the same batches to IG itself, one at a time like WSP, timing each request:
                to the run's IG again (every event DUPLICATE), then to a second IG of a fresh run (every event
                ADMITTED); ``--skip-probes`` leaves both out
  IG RSS        peak RSS of each IG process and its children (psutil, sampled every 50 ms)
  CPU           CPU seconds of IG, moto, Tansu and WSP during the `wsp` job

Targets (the ingress issue): ingress ≥ 25% of the streamed raw produce rate, IG peak RSS < 300 MiB.
``--profile-ig`` runs the first IG under bench/ig_profile.py (a wall-clock stack sampler) and prints where its
request thread and dedupe pool spend their time; the numbers of such a run carry the sampler's overhead.
``--ig-wrapper SCRIPT`` runs both IGs as `python SCRIPT` (a script that patches spine and ends in
spine.cli.main(["ig"])): the gain of a candidate change, measured without editing spine.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import io
import itertools
import json
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import psutil
import pyarrow.parquet as pq
import requests
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from harness.errors import Timeout
from harness.substrate import MotoServer, TansuBroker, free_port
from harness.wait import wait_until
from spine import events
from spine.contract import MODES

ROOT = Path(__file__).resolve().parents[1]
REGION = "eu-west-2"
IMAGE_DIGEST = "sha256:" + "0" * 64
TOPICS = {"traffic": ("bench-traffic", 3), "control": ("bench-control", 1), "raw": ("bench-raw", 3),
          "raw_batched": ("bench-raw-batched", 3)}
TABLES = {"dedupe": ("bench-ig-dedupe", "dedupe_key"), "lease": ("bench-sr-lease", "platform_run_id")}
SSM = {"bootstrap": "/bench/kafka/bootstrap", "ig_key": "/bench/ig/api_key"}
TARGET_RATIO, TARGET_RSS_MIB = 0.25, 300.0
MIB = 1024 * 1024
_tick = threading.Event()  # never set: the interruptible pause of every poll
_began = time.monotonic()


class BenchError(Exception):
    """The benchmark could not measure what it set out to (a step failed, a count is off)."""


def say(line: str) -> None:
    print(f"[{time.monotonic() - _began:7.1f}s] {line}", file=sys.stderr, flush=True)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# -- processes --------------------------------------------------------------------------------------------------
@dataclass
class Job:
    name: str
    exit: int
    wall_s: float
    peak_rss_mib: float
    cpu_s: float
    out: Path
    err: Path

    def stderr(self) -> str:
        return self.err.read_text(errors="replace").strip()[-2000:]

    def to_json(self) -> dict[str, Any]:
        return {"step": self.name, "exit": self.exit, "wall_s": round(self.wall_s, 3),
                "peak_rss_mib": round(self.peak_rss_mib, 1), "cpu_s": round(self.cpu_s, 3)}


class Family:
    """Every platform process the benchmark starts, each in its own session; ``stop_all`` ends the live ones."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.out").open("wb") as out, (self.logs / f"{name}.err").open("wb") as err:
            proc = subprocess.Popen([sys.executable, *argv], env=env, cwd=ROOT, stdout=out, stderr=err,
                                    stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent)
        self.procs.append(proc)
        return proc

    def job(self, name: str, argv: list[str], env: dict[str, str], *, timeout_s: float = 3600) -> Job:
        """Run to completion; peak RSS and CPU are the child's own (wait4), not the whole family's."""
        began = time.monotonic()
        proc = self.spawn(name, argv, env)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - began > timeout_s:
                self.stop(proc)
                raise BenchError(f"{name} did not finish within {timeout_s:.0f}s")
            _tick.wait(0.005)
        wall = time.monotonic() - began
        proc.returncode = os.waitstatus_to_exitcode(status)
        return Job(name, proc.returncode, wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime,
                   self.logs / f"{name}.out", self.logs / f"{name}.err")

    @staticmethod
    def stop(proc: subprocess.Popen[bytes], *, grace_s: float = 20.0) -> None:
        """SIGTERM the process group (IG flushes its producer and closes), SIGKILL after ``grace_s``."""
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            if proc.poll() is not None:
                return
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=wait_s)

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)


class RssSampler:
    """Peak RSS of one process and its children, sampled in a thread until the process ends or ``stop``."""

    def __init__(self, pid: int, *, interval_s: float = 0.05) -> None:
        self.proc = psutil.Process(pid)
        self.interval_s = interval_s
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-{pid}", daemon=True)
        self._thread.start()

    def _rss(self) -> int:
        total = self.proc.memory_info().rss
        for child in self.proc.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                total += child.memory_info().rss
        return int(total)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self._rss())
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                return
            self.samples += 1
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def peak_mib(self) -> float:
        return self.peak / MIB


def cpu_s(pid: int) -> float:
    try:
        proc = psutil.Process(pid)
        times = proc.cpu_times()
        total = times.user + times.system
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                child_times = child.cpu_times()
                total += child_times.user + child_times.system
        return float(total)
    except psutil.NoSuchProcess:
        return math.nan


# -- the run ----------------------------------------------------------------------------------------------------
@dataclass
class Run:
    """One pinned platform run (run.json in the evidence bucket) and the environment its modes get."""

    run_id: str
    scenario: str
    buckets: dict[str, str]
    base_env: dict[str, str]
    config: dict[str, Any] = field(init=False)
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        self.oracle_source = f"s3://{self.buckets['src']}/oracle/{self.scenario}/"
        self.oracle_root = f"s3://{self.buckets['oracle']}/oracle/{self.scenario}/"
        self.evidence_root = f"s3://{self.buckets['evidence']}/runs/{self.run_id}/"
        self.config = {"platform_run_id": self.run_id, "scenario_run_id": self.scenario, "profile": "embedded",
                       "seed": 0, "events": 0, "oracle_source": self.oracle_source, "oracle_root": self.oracle_root,
                       "evidence_root": self.evidence_root,
                       "topics": {role: name for role, (name, _) in TOPICS.items()}}

    def pin(self, s3: Any, *, seed: int, events_n: int) -> None:
        self.config.update(seed=seed, events=events_n)
        self.digest = hashlib.sha256(json.dumps(self.config, sort_keys=True, separators=(",", ":")).encode()
                                     ).hexdigest()
        run_json = {"platform_run_id": self.run_id, "scenario_run_id": self.scenario,
                    "run_config_digest": self.digest, "run_config": self.config,
                    "image": {"tag": "git-bench", "digest": IMAGE_DIGEST, "source_sha": "bench"},
                    "events": events_n, "handles_digest": "0" * 64, "pinned_at": datetime.now(UTC).isoformat(),
                    "jobs_started_before_pin": 0}
        s3.put_object(Bucket=self.buckets["evidence"], Key=f"runs/{self.run_id}/run.json",
                      Body=json.dumps(run_json, sort_keys=True).encode(), IfNoneMatch="*")

    def env(self, mode: str, **extra: str) -> dict[str, str]:
        env = {**self.base_env, "REQUIRED_PLATFORM_RUN_ID": self.run_id,
               "SPINE_RUN_MANIFEST": f"{self.evidence_root}run.json", "SPINE_RUN_CONFIG_DIGEST": self.digest,
               "SPINE_IMAGE_DIGEST": IMAGE_DIGEST, "SPINE_EVIDENCE_ROOT": self.evidence_root,
               "SPINE_ORACLE_SOURCE": self.oracle_source, "SPINE_ORACLE_ROOT": self.oracle_root, **extra}
        missing = [name for name in MODES[mode].required_env if not env.get(name)] if mode in MODES else []
        if missing:
            raise BenchError(f"the benchmark gives {mode} no {', '.join(missing)} (spine/contract.py)")
        return env


def provision(endpoint: str, bootstrap: str, writer_key: str) -> tuple[Any, dict[str, str]]:
    """Buckets, tables, SSM parameters and topics; returns the S3 client and the bucket names."""
    common: dict[str, Any] = {"endpoint_url": endpoint, "region_name": REGION, "aws_access_key_id": "testing",
                              "aws_secret_access_key": "testing"}
    s3 = boto3.client("s3", config=botocore.config.Config(s3={"addressing_style": "path"}), **common)
    buckets = {role: f"bench-ingress-{role}" for role in ("src", "oracle", "evidence", "quarantine")}
    for bucket in buckets.values():
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    dynamodb = boto3.client("dynamodb", **common)
    for table, hash_key in TABLES.values():
        dynamodb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                              AttributeDefinitions=[{"AttributeName": hash_key, "AttributeType": "S"}],
                              KeySchema=[{"AttributeName": hash_key, "KeyType": "HASH"}])
        dynamodb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    ssm = boto3.client("ssm", **common)
    ssm.put_parameter(Name=SSM["bootstrap"], Value=bootstrap, Type="String")
    ssm.put_parameter(Name=SSM["ig_key"], Value=writer_key, Type="SecureString")
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    new = [NewTopic(name, num_partitions=n, replication_factor=1) for name, n in TOPICS.values()]
    for name, future in admin.create_topics(new, request_timeout=30).items():
        future.result(timeout=30)
        say(f"topic {name} created")
    return s3, buckets


def read_events(s3: Any, run: Run) -> list[dict[str, Any]]:
    """The stream view WSP sends, as the events it builds (spine.events.envelope: the same payloads)."""
    manifest = json.loads(s3.get_object(Bucket=run.buckets["evidence"],
                                        Key=f"runs/{run.run_id}/oracle/stream_view/card_transactions.json")
                          ["Body"].read())
    prefix = f"oracle/{run.scenario}/"
    rows: list[dict[str, Any]] = []
    for f in manifest["files"]:
        data = s3.get_object(Bucket=run.buckets["oracle"], Key=prefix + f["key"])["Body"].read()
        rows.extend(pq.read_table(io.BytesIO(data)).to_pylist())
    return [events.envelope(row, platform_run_id=run.run_id, scenario_run_id=run.scenario) for row in rows]


# -- measurements -----------------------------------------------------------------------------------------------
def percentile(values: list[float], p: float) -> float:
    """Nearest rank."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def latency_ms(values_s: list[float]) -> dict[str, Any]:
    return {"requests": len(values_s), "p50_ms": round(percentile(values_s, 50) * 1000, 2),
            "p99_ms": round(percentile(values_s, 99) * 1000, 2),
            "max_ms": round(max(values_s) * 1000, 2) if values_s else None,
            "mean_ms": round(sum(values_s) / len(values_s) * 1000, 2) if values_s else None}


def log_lines(path: Path) -> Iterator[dict[str, Any]]:
    for line in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict):
                yield record


def start_ig(family: Family, name: str, env: dict[str, str], url: str, *, profile: Path | None = None,
             wrapper: Path | None = None) -> subprocess.Popen[bytes]:
    argv = ["-m", "spine", "ig"]
    if wrapper:
        argv = [str(wrapper)]
    if profile:
        argv = [str(ROOT / "bench" / "ig_profile.py"), "--out", str(profile), *(["--wrapper", str(wrapper)]
                                                                               if wrapper else [])]
    proc = family.spawn(name, argv, env)

    def healthy() -> bool:
        if proc.poll() is not None:
            raise BenchError(f"{name} exited {proc.returncode} before it answered: "
                             f"{(family.logs / f'{name}.err').read_text(errors='replace')[-1500:]}")
        with contextlib.suppress(requests.RequestException):
            return requests.get(f"{url}/v1/ops/health", timeout=2).status_code == 200
        return False

    try:
        wait_until(healthy, timeout_s=60, backoff_s=0.05, max_backoff_s=0.25, err_msg=f"{name} not healthy",
                   operation=f"start {name}")
    except Timeout as exc:
        if isinstance(exc.__cause__, BenchError):
            raise exc.__cause__ from None
        raise
    return proc


def post_batches(url: str, key: str, batches: list[list[dict[str, Any]]], sender: str) -> dict[str, Any]:
    """POST each batch once, in order, one at a time (like WSP); the time of each POST is its receipt latency."""
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {key}", "X-Spine-Sender": sender,
                            "Content-Type": "application/json"})
    bodies = [json.dumps({"events": batch}).encode() for batch in batches]
    latencies: list[float] = []
    counts: Counter[str] = Counter()
    began = time.perf_counter()
    for body in bodies:
        t0 = time.perf_counter()
        answer = session.post(f"{url}/v1/ingest", data=body, timeout=120)
        latencies.append(time.perf_counter() - t0)
        if answer.status_code != 200:
            raise BenchError(f"IG answered {answer.status_code}: {answer.text[:300]}")
        counts.update(r["status"] for r in answer.json()["receipts"])
    wall = time.perf_counter() - began
    n = sum(len(b) for b in batches)
    return {"events": n, "wall_s": round(wall, 3), "events_per_s": round(n / wall, 1),
            "receipts": dict(sorted(counts.items())), **latency_ms(latencies)}


def raw_produce(bootstrap: str, topic: str, items: list[tuple[bytes, bytes]], *, flush_every: int | None) \
        -> dict[str, Any]:
    """Produce every (key, value) with IG's producer settings; the clock stops when every ack is in."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                         "linger.ms": 5, "message.timeout.ms": 60_000, "log_level": 3})
    # Connection, metadata and the idempotent producer id before the clock starts: one acked warm-up record.
    producer.produce(topic, value=b"warm-up", key=b"warm-up")
    if producer.flush(30) != 0:
        raise BenchError(f"raw produce to {topic}: the warm-up record was not acknowledged within 30s")
    outcome: Counter[str] = Counter()

    def report(err: KafkaError | None, msg: Any) -> None:
        outcome["error" if err is not None else "delivered"] += 1

    def produce(key: bytes, value: bytes) -> None:
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=report)
                return
            except BufferError:
                producer.poll(0.05)

    began = time.perf_counter()
    step = flush_every or len(items)
    for start in range(0, len(items), step):
        for key, value in items[start:start + step]:
            produce(key, value)
            producer.poll(0)
        if producer.flush(120) != 0:
            raise BenchError(f"raw produce to {topic}: messages still in flight after 120s")
    wall = time.perf_counter() - began
    if outcome["error"] or outcome["delivered"] != len(items):
        raise BenchError(f"raw produce to {topic}: {dict(outcome)} of {len(items)}")
    return {"topic": topic, "events": len(items), "wall_s": round(wall, 3),
            "events_per_s": round(len(items) / wall, 1), "flush_every": flush_every,
            "bytes": sum(len(v) for _, v in items)}


def topic_count(bootstrap: str, topic: str, partitions: int, run_id: str, *, timeout_s: float = 300) \
        -> dict[str, Any]:
    """Read the traffic topic from the beginning to its end: records and distinct event ids of ``run_id``."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-ingress-reader",
                         "enable.auto.commit": False, "enable.partition.eof": True, "log_level": 3})
    ids: set[str] = set()
    records = 0
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(at_end) < partitions:
            if time.monotonic() > deadline:
                raise BenchError(f"reading {topic}: not at the end of every partition within {timeout_s:.0f}s")
            for msg in consumer.consume(1000, 0.5):
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        at_end.add(int(msg.partition() or 0))
                        continue
                    raise BenchError(f"reading {topic}: {error}")
                at_end.discard(int(msg.partition() or 0))
                event = json.loads(msg.value() or b"null")
                if isinstance(event, dict) and event.get("platform_run_id") == run_id:
                    records += 1
                    ids.add(str(event.get("event_id")))
    finally:
        consumer.close()
    return {"records": records, "distinct_event_ids": len(ids)}


def profile_summary(path: Path, top: int = 8) -> list[str]:
    if not path.exists():
        return ["  (no profile written)"]
    data = json.loads(path.read_text())
    lines = [f"IG profile (wall-clock samples every {data['interval_ms']} ms; share of each role's samples)"]
    for role in ("request", "dedupe-pool", "delivery-poller"):
        found = data["roles"].get(role)
        if not found:
            continue
        lines.append(f"  {role}: {found['samples']} samples")
        for kind in ("spine_paths", "leaves"):
            for entry in found[kind][:top]:
                lines.append(f"    {entry['share'] * 100:5.1f}%  {kind[:-1].replace('_', ' ')}  {entry['where']}")
    return lines


# -- main -------------------------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=200, help="events per IG request (WSP's default: 200)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", type=Path, help="write the result here (default: print it after the table)")
    parser.add_argument("--profile-ig", action="store_true", help="sample the first IG's stacks (adds overhead)")
    parser.add_argument("--ig-wrapper", type=Path,
                        help="run the measured IG as `python SCRIPT` (a script ending in spine.cli.main(['ig'])): "
                             "measures a candidate spine change without editing spine")
    parser.add_argument("--skip-probes", action="store_true",
                        help="no direct ADMITTED/DUPLICATE latency passes (ingress and raw produce only)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, profile)")
    args = parser.parse_args()
    if args.events < 1 or not 1 <= args.batch_size <= 5000:
        parser.error("--events must be >= 1 and --batch-size within 1..5000 (IG's MAX_BATCH)")
    for sig in (signal.SIGTERM, signal.SIGINT):  # SIGINT too: a background start inherits it ignored
        signal.signal(sig, _interrupt)

    work = Path(tempfile.mkdtemp(prefix="ingress-bench-"))
    logs = work / "logs"
    logs.mkdir()
    family = Family(logs)
    samplers: list[RssSampler] = []
    parts: list[MotoServer | TansuBroker] = []
    measured = False
    try:
        moto, tansu = MotoServer(workdir=work), TansuBroker(workdir=work)
        for part in (moto, tansu):
            parts.append(part)  # stop() of a part that did not start is a no-op
            part.start()
            say(f"{part.name} ready at {part.endpoint}")
        result = measure(args, family, samplers, moto, tansu, work)
        print_table(result)
        text = json.dumps(result, indent=1, sort_keys=True)
        if args.json:
            args.json.write_text(text + "\n")
            say(f"result written to {args.json}")
        else:
            print(text)
        measured = True
        return 0
    except BenchError as exc:
        print(f"ingress bench failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        for sampler in samplers:
            sampler.stop()
        stop_everything(family, parts, work, keep=args.keep or not measured)


def stop_everything(family: Family, parts: list[Any], work: Path, *, keep: bool) -> None:
    """Stop the platform processes, then the substrate parts (last started first); drop the work folder
    unless it is kept (its logs explain a failed or interrupted run)."""
    family.stop_all()
    for part in reversed(parts):
        try:
            part.stop()
        except Exception as exc:
            print(f"stopping {part.name} failed: {exc}", file=sys.stderr)
    if keep:
        say(f"work folder kept (logs of every process): {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


def measure(args: argparse.Namespace, family: Family, samplers: list[RssSampler], moto: MotoServer,
            tansu: TansuBroker, work: Path) -> dict[str, Any]:
    assert moto.proc is not None and tansu.proc is not None
    writer_key = secrets.token_urlsafe(24)
    s3, buckets = provision(moto.endpoint, tansu.endpoint, writer_key)
    base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AWS_ENDPOINT_URL": moto.endpoint,
                "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "SPINE_SSM_KAFKA_BOOTSTRAP": SSM["bootstrap"], "SPINE_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
                "SPINE_TOPIC_TRAFFIC": TOPICS["traffic"][0], "SPINE_TOPIC_CONTROL": TOPICS["control"][0],
                "SPINE_SSM_IG_API_KEY": SSM["ig_key"], "SPINE_IG_DEDUPE_TABLE": TABLES["dedupe"][0],
                "SPINE_SR_LEASE_TABLE": TABLES["lease"][0], "SPINE_QUARANTINE_BUCKET": buckets["quarantine"],
                "SPINE_WSP_BATCH_SIZE": str(args.batch_size)}
    scenario = f"scn-seed{args.seed}-n{args.events}"
    run = Run("run-bench-ingress", scenario, buckets, base_env)
    run.pin(s3, seed=args.seed, events_n=args.events)

    jobs: list[Job] = []

    def job(name: str, argv: list[str], env: dict[str, str]) -> Job:
        say(f"{name} ...")
        done = family.job(name, argv, env)
        jobs.append(done)
        say(f"{name} exit {done.exit} in {done.wall_s:.1f}s")
        if done.exit != 0:
            raise BenchError(f"{name} exited {done.exit}: {done.stderr()}")
        return done

    job("engine", ["-m", "spine.engine", "--seed", str(args.seed), "--events", str(args.events),
                   "--out", run.oracle_source], base_env)
    for mode in ("oracle-seed", "oracle-sort", "oracle-check", "sr"):
        job(mode, ["-m", "spine", mode], run.env(mode))

    # IG of the run, then the measured WSP job.
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    profile = work / "ig_profile.json" if args.profile_ig else None
    ig_env = run.env("ig", SPINE_IG_LISTEN=f"127.0.0.1:{port}")
    say(f"ig at {url} ...")
    ig = start_ig(family, "ig", ig_env, url, profile=profile, wrapper=args.ig_wrapper)
    ig_rss = RssSampler(ig.pid)
    samplers.append(ig_rss)
    say("ig healthy; wsp ...")
    pids = {"ig": ig.pid, "moto": moto.proc.pid, "tansu": tansu.proc.pid}
    cpu_before = {name: cpu_s(pid) for name, pid in pids.items()}
    wsp = job("wsp", ["-m", "spine", "wsp"], run.env("wsp", SPINE_IG_URL=url))
    cpu = {name: round(cpu_s(pid) - cpu_before[name], 2) for name, pid in pids.items()}
    cpu["wsp"] = round(wsp.cpu_s, 2)
    ig_peak_during_wsp = ig_rss.peak_mib

    streamed = next((r for r in log_lines(wsp.out) if r.get("event") == "streamed"), {})
    ready_seen = next((float(r["ts"]) for r in log_lines(wsp.out) if r.get("event") == "ready_seen"), math.nan)
    sent_ts = [float(r["ts"]) for r in log_lines(wsp.out) if r.get("event") == "sent"]
    intervals = [b - a for a, b in itertools.pairwise(sent_ts)]
    admitted = int(streamed.get("ADMITTED", 0))
    stream_s = sent_ts[-1] - ready_seen if sent_ts else math.nan
    ingress = {"events": args.events, "batch_size": args.batch_size, "admitted": admitted,
               "receipts": {k: v for k, v in streamed.items() if k.isupper()},
               "wsp_job_wall_s": round(wsp.wall_s, 3), "events_per_s": round(admitted / wsp.wall_s, 1),
               "stream_window_s": round(stream_s, 3), "stream_events_per_s": round(admitted / stream_s, 1),
               "inter_send_latency": latency_ms(intervals), "cpu_s_during_wsp": cpu,
               "ig_peak_rss_mib_during_wsp": round(ig_peak_during_wsp, 1)}
    say(f"wsp: {admitted} admitted, {ingress['events_per_s']} events/s over the job")
    if admitted != args.events:
        raise BenchError(f"WSP reported {streamed} for {args.events} events, not every event ADMITTED")

    say("reading the traffic topic back ...")
    began = time.monotonic()
    on_topic = topic_count(tansu.endpoint, TOPICS["traffic"][0], TOPICS["traffic"][1], run.run_id)
    on_topic["read_s"] = round(time.monotonic() - began, 2)
    say(f"traffic topic: {on_topic}")
    if on_topic["distinct_event_ids"] != args.events:
        raise BenchError(f"the traffic topic holds {on_topic['distinct_event_ids']} event ids of the run, "
                         f"not {args.events}")

    run_events = read_events(s3, run)
    items = [(str(e["payload"]["card_id"]).encode(), events.encode(e)) for e in run_events]
    say("raw produce (streamed) ...")
    raw = raw_produce(tansu.endpoint, TOPICS["raw"][0], items, flush_every=None)
    say(f"raw produce (streamed): {raw['events_per_s']} events/s")
    raw_batched = raw_produce(tansu.endpoint, TOPICS["raw_batched"][0], items, flush_every=args.batch_size)
    say(f"raw produce (flush per batch of {args.batch_size}): {raw_batched['events_per_s']} events/s")

    probes: dict[str, Any] = {}
    if not args.skip_probes:
        batches = [run_events[i:i + args.batch_size] for i in range(0, len(run_events), args.batch_size)]
        say(f"latency: the same {len(batches)} batches again to the first IG (DUPLICATE) ...")
        probes["duplicate"] = post_batches(url, writer_key, batches, "bench-duplicate")
        say(f"duplicate pass: {probes['duplicate']['events_per_s']} events/s, "
            f"p50 {probes['duplicate']['p50_ms']} ms")
    ig_rss.stop()
    Family.stop(ig)
    say(f"ig stopped (exit {ig.returncode})")

    if not args.skip_probes:
        fresh = Run("run-bench-ingress-fresh", scenario, buckets, base_env)
        fresh.pin(s3, seed=args.seed, events_n=args.events)
        fresh_port = free_port()
        fresh_url = f"http://127.0.0.1:{fresh_port}"
        ig2 = start_ig(family, "ig-fresh", fresh.env("ig", SPINE_IG_LISTEN=f"127.0.0.1:{fresh_port}"), fresh_url,
                       wrapper=args.ig_wrapper)
        ig2_rss = RssSampler(ig2.pid)
        samplers.append(ig2_rss)
        fresh_events = [{**e, "platform_run_id": fresh.run_id} for e in run_events]
        batches = [fresh_events[i:i + args.batch_size] for i in range(0, len(fresh_events), args.batch_size)]
        say(f"latency: {len(batches)} batches of a fresh run to a second IG (ADMITTED) ...")
        probes["admitted"] = post_batches(fresh_url, writer_key, batches, "bench-fresh")
        probes["admitted"]["ig_peak_rss_mib"] = round(ig2_rss.peak_mib, 1)
        say(f"admitted pass: {probes['admitted']['events_per_s']} events/s, p50 {probes['admitted']['p50_ms']} ms")
        ig2_rss.stop()
        Family.stop(ig2)
        if probes["admitted"]["receipts"] != {"ADMITTED": args.events}:
            raise BenchError(f"fresh pass receipts {probes['admitted']['receipts']}, not all ADMITTED")
        if probes["duplicate"]["receipts"] != {"DUPLICATE": args.events}:
            raise BenchError(f"duplicate pass receipts {probes['duplicate']['receipts']}, not all DUPLICATE")

    ig_peak = max([ig_rss.peak_mib, *([probes["admitted"]["ig_peak_rss_mib"]] if "admitted" in probes else [])])
    ratio = ingress["events_per_s"] / raw["events_per_s"]
    result: dict[str, Any] = {
        "events": args.events, "batch_size": args.batch_size, "seed": args.seed, "cpus": os.cpu_count(),
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2), "profiled_ig": bool(args.profile_ig),
        "ig_wrapper": str(args.ig_wrapper) if args.ig_wrapper else None,
        "substrate": {"moto": moto.version(), "tansu": tansu.version()},
        "steps": [j.to_json() for j in jobs],
        "ingress": ingress, "topic": on_topic, "raw_produce": raw, "raw_produce_flush_per_batch": raw_batched,
        "probes": probes,
        "ig_peak_rss_mib": {"run": round(ig_rss.peak_mib, 1), "max": round(ig_peak, 1), "samples": ig_rss.samples},
        "targets": {"ingress_vs_raw": {"value": round(ratio, 4), "target": f">= {TARGET_RATIO}",
                                       "met": ratio >= TARGET_RATIO},
                    "ig_peak_rss_mib": {"value": round(ig_peak, 1), "target": f"< {TARGET_RSS_MIB}",
                                        "met": ig_peak < TARGET_RSS_MIB}},
    }
    if profile is not None:
        result["ig_profile"] = json.loads(profile.read_text()) if profile.exists() else None
        result["ig_profile_summary"] = profile_summary(profile)
    return result


def print_table(r: dict[str, Any]) -> None:
    out: Callable[[str], None] = print
    out(f"Ingress lane: {r['events']:,} events, batch {r['batch_size']}, seed {r['seed']}, {r['cpus']} CPUs "
        f"({r['substrate']['moto']}, {r['substrate']['tansu']}){' - IG PROFILED' if r['profiled_ig'] else ''}"
        f"{' - IG via ' + r['ig_wrapper'] if r['ig_wrapper'] else ''}")
    out("")
    out(f"{'step':<14}{'exit':>5}{'wall s':>9}{'cpu s':>8}{'peak RSS MiB':>14}")
    for s in r["steps"]:
        out(f"{s['step']:<14}{s['exit']:>5}{s['wall_s']:>9.2f}{s['cpu_s']:>8.2f}{s['peak_rss_mib']:>14.0f}")
    out("")
    ing, raw, rawb = r["ingress"], r["raw_produce"], r["raw_produce_flush_per_batch"]
    head = f"{'measurement':<46}{'events':>8}{'wall s':>9}{'events/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
    out(head)
    out("-" * len(head))
    lat = ing["inter_send_latency"]
    out(f"{'WSP → IG → topic, wsp job wall':<46}{ing['admitted']:>8}{ing['wsp_job_wall_s']:>9.2f}"
        f"{ing['events_per_s']:>10.1f}{lat['p50_ms']:>9.1f}{lat['p99_ms']:>9.1f}")
    out(f"{'WSP → IG → topic, streaming window':<46}{ing['admitted']:>8}{ing['stream_window_s']:>9.2f}"
        f"{ing['stream_events_per_s']:>10.1f}{'':>9}{'':>9}")
    for name, p in (("direct POST, fresh run (all ADMITTED)", r["probes"].get("admitted")),
                    ("direct POST, same run again (all DUPLICATE)", r["probes"].get("duplicate"))):
        if p:
            out(f"{name:<46}{p['events']:>8}{p['wall_s']:>9.2f}{p['events_per_s']:>10.1f}{p['p50_ms']:>9.1f}"
                f"{p['p99_ms']:>9.1f}")
    out(f"{'raw produce, streamed (idempotent, acks=all)':<46}{raw['events']:>8}{raw['wall_s']:>9.2f}"
        f"{raw['events_per_s']:>10.1f}")
    out(f"{'raw produce, flush every batch':<46}{rawb['events']:>8}{rawb['wall_s']:>9.2f}"
        f"{rawb['events_per_s']:>10.1f}")
    out("")
    out("WSP latency = interval between consecutive `sent` log lines (POST + next batch's envelopes, ms resolution);")
    out("direct POST latency = client-side time of each POST of a pre-encoded batch, one request at a time.")
    out(f"traffic topic read back: {r['topic']['records']} records, {r['topic']['distinct_event_ids']} distinct "
        f"event ids of the run")
    cpu = ing["cpu_s_during_wsp"]
    out("CPU s during the wsp job: " + ", ".join(f"{k} {v:.1f} ({v / ing['wsp_job_wall_s'] * 100:.0f}%)"
                                                 for k, v in cpu.items()))
    passes = "wsp and DUPLICATE pass" if r["probes"] else "wsp"
    out(f"IG peak RSS: {r['ig_peak_rss_mib']['run']:.0f} MiB (the run's IG: {passes}), "
        f"max over IG processes {r['ig_peak_rss_mib']['max']:.0f} MiB")
    out("")
    for name, t in r["targets"].items():
        out(f"target {name:<18} {t['value']!s:>10}  {t['target']:<8} {'met' if t['met'] else 'NOT MET'}")
    for line in r.get("ig_profile_summary", []):
        out(line)
    out("")


if __name__ == "__main__":
    raise SystemExit(main())
