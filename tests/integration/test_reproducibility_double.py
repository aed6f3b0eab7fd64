"""A rerun of the same scenario through the real rtdl, decision-lane and case-labels daemons compares identical; a
decision lane whose decisions depend on the wall clock does not, though P9's per-run check passes it.

One moto server, one Tansu broker and one PostgreSQL cluster for the module; the traffic, rtdl and decision topics,
the archive and evidence buckets and the database are shared by the runs, as a certification shares them. The Data
Engine's scenario (seed 7, 200 events) goes through the real `oracle-seed` and `oracle-sort` once; each run then
streams the stream view, read by the test, onto the traffic topic in IG's place (keyed by card, acks=all) and
writes IG's receipts and summaries as IG would, under its own platform_run_id; the three daemons run as processes
until case-labels writes its summary. ``reproducibility.observe`` reads each run with the run's own reading of the
stream view (``read_stream_views``: P3's recompute).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from harness import ingress, pipeline, reproducibility
from harness.aws import AwsSession, s3, ssm
from harness.errors import Finding
from harness.kafka import KafkaConnection, admin, produce
from harness.phases import p09
from harness.substrate import MotoServer, PostgresCluster, TansuBroker
from harness.wait import wait_until
from spine import events
from spine.engine import generate, render

pytestmark = pytest.mark.substrate

ROOT = Path(__file__).resolve().parents[2]
WALLCLOCK_LANE = Path(__file__).with_name("wallclock_lane.py")
REGION = "eu-west-2"
IMAGE_DIGEST = "sha256:" + "cd" * 32
SEED, EVENTS = 7, 200
SCENARIO = f"scn-seed{SEED}-n{EVENTS}"
PARTITIONS = 3
RECEIPT_BATCH = 50
KNOBS = {"SPINE_DAEMON_POLL_S": "0.2", "SPINE_KAFKA_SESSION_TIMEOUT_MS": "2000", "SPINE_KAFKA_HEARTBEAT_MS": "500"}


@dataclass
class World:
    """What every run shares: buckets, topics, SSM surfaces, the scenario's source and oracle roots."""

    aws: AwsSession
    conn: KafkaConnection
    logs: Path
    prefix: str = field(default_factory=lambda: f"r{uuid.uuid4().hex[:8]}")

    def __post_init__(self) -> None:
        self.buckets = {role: f"{self.prefix}-{role}" for role in ("source", "oracle", "evidence", "archive")}
        self.topics = {role: f"{self.prefix}.{role}" for role in ("traffic", "rtdl", "decision")}
        self.ssm = {"bootstrap": f"/{self.prefix}/kafka/bootstrap", "db_dsn": f"/{self.prefix}/db/dsn"}
        self.source = f"s3://{self.buckets['source']}/oracle/{SCENARIO}/"
        self.oracle_root = f"s3://{self.buckets['oracle']}/oracle/{SCENARIO}/"

    def provision(self, dsn: str) -> None:
        client = self.aws.client("s3")
        for bucket in self.buckets.values():
            client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        client.put_bucket_versioning(Bucket=self.buckets["archive"], VersioningConfiguration={"Status": "Enabled"})
        ssm.put(self.aws, self.ssm["bootstrap"], self.conn.bootstrap, secure=False)
        ssm.put(self.aws, self.ssm["db_dsn"], dsn, secure=True)
        admin.ensure_topics(self.conn, dict.fromkeys(self.topics.values(), PARTITIONS), replication_factor=1)
        wait_until(lambda: all(t.partitions == PARTITIONS for t in
                               admin.describe_topics(self.conn, list(self.topics.values())).values()),
                   timeout_s=30, err_msg="topics not visible")


@dataclass
class Run:
    """One platform run of the scenario: its run.json pinned like P1, every mode's environment."""

    world: World
    run_id: str
    processes: list[tuple[str, subprocess.Popen[bytes], Path]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.evidence_root = f"s3://{self.world.buckets['evidence']}/runs/{self.run_id}/"
        config = {"profile": "embedded", "seed": SEED, "events": EVENTS, "oracle_source": self.world.source,
                  "oracle_root": self.world.oracle_root, "rtdl_caught_up_lag_max": 0}
        self.digest = hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        run_json = {"platform_run_id": self.run_id, "scenario_run_id": SCENARIO, "run_config_digest": self.digest,
                    "run_config": config, "image": {"tag": "git-repro", "digest": IMAGE_DIGEST, "source_sha": "repro"},
                    "events": EVENTS, "handles_digest": "0" * 64, "pinned_at": datetime.now(UTC).isoformat()}
        self.put("run.json", run_json)

    def put(self, relative: str, record: dict[str, Any]) -> None:
        s3.put_once(self.world.aws, bucket=self.world.buckets["evidence"], key=f"runs/{self.run_id}/{relative}",
                    body=json.dumps(record, sort_keys=True).encode())

    def exists(self, relative: str) -> bool:
        return s3.key_exists(self.world.aws, bucket=self.world.buckets["evidence"],
                             key=f"runs/{self.run_id}/{relative}")

    def env(self) -> dict[str, str]:
        w = self.world
        assert w.aws.endpoint_url is not None
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AWS_ENDPOINT_URL": w.aws.endpoint_url,
                "AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "REQUIRED_PLATFORM_RUN_ID": self.run_id, "SPINE_RUN_MANIFEST": f"{self.evidence_root}run.json",
                "SPINE_RUN_CONFIG_DIGEST": self.digest, "SPINE_IMAGE_DIGEST": IMAGE_DIGEST,
                "SPINE_EVIDENCE_ROOT": self.evidence_root, "SPINE_ORACLE_SOURCE": w.source,
                "SPINE_ORACLE_ROOT": w.oracle_root, "SPINE_SSM_KAFKA_BOOTSTRAP": w.ssm["bootstrap"],
                "SPINE_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT", "SPINE_TOPIC_TRAFFIC": w.topics["traffic"],
                "SPINE_TOPIC_RTDL": w.topics["rtdl"], "SPINE_TOPIC_DECISION": w.topics["decision"],
                "SPINE_ARCHIVE_BUCKET": w.buckets["archive"], "SPINE_SSM_DB_DSN": w.ssm["db_dsn"], **KNOBS}

    def job(self, mode: str) -> None:
        done = subprocess.run([sys.executable, "-m", "spine", mode], env=self.env(), cwd=ROOT, capture_output=True,
                              text=True, timeout=120, check=False)
        assert done.returncode == 0, f"{mode} exited {done.returncode}: {done.stderr}"

    def start(self, name: str, argv: list[str]) -> None:
        """A daemon as its own process (own log files); stopped by ``stop_all``."""
        out = self.world.logs / f"{self.run_id}-{name}"
        with out.with_suffix(".out").open("wb") as stdout, out.with_suffix(".err").open("wb") as stderr:
            proc = subprocess.Popen([sys.executable, *argv], env=self.env(), cwd=ROOT, stdout=stdout, stderr=stderr,
                                    stdin=subprocess.DEVNULL)
        self.processes.append((name, proc, out))

    def died(self) -> str | None:
        for name, proc, out in self.processes:
            if proc.poll() is not None:
                return f"{name} exited {proc.returncode}: {out.with_suffix('.err').read_text(errors='replace')}"
        return None

    def stop_all(self) -> None:
        for _name, proc, _out in reversed(self.processes):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _name, proc, _out in self.processes:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def stream(self, rows: list[dict[str, Any]]) -> list[tuple[int, int]]:
        """The stream view's rows as WSP's envelopes, published in IG's place; then IG's evidence for them.
        Returns where each record landed (partition, offset)."""
        envelopes = [events.envelope(row, platform_run_id=self.run_id, scenario_run_id=SCENARIO) for row in rows]
        placed = produce.send(self.world.conn, self.world.topics["traffic"],
                              [(str(e["payload"]["card_id"]).encode(), events.encode(e)) for e in envelopes])
        objects = []
        for n, start in enumerate(range(0, len(envelopes), RECEIPT_BATCH)):
            request_id = f"req-{n:04d}-{uuid.uuid4().hex[:8]}"
            receipts = [{"index": i, "event_id": e["event_id"], "status": "ADMITTED",
                         "payload_sha256": events.payload_sha256(e), "topic": self.world.topics["traffic"],
                         "partition": partition, "offset": offset, "reason": None, "quarantine": None}
                        for i, (e, (partition, offset)) in enumerate(zip(envelopes[start:start + RECEIPT_BATCH],
                                                                         placed[start:start + RECEIPT_BATCH],
                                                                         strict=True))]
            self.put(f"ingest/receipts/{request_id}.json",
                     {"request_id": request_id, "platform_run_id": self.run_id, "sender": "wsp-repro",
                      "received_at_ms": int(time.time() * 1000), "receipts": receipts})
            objects.append(f"ingest/receipts/{request_id}.json")
        ends: dict[int, int] = {}
        for partition, offset in placed:
            ends[partition] = max(ends.get(partition, 0), offset + 1)
        self.put("ingest/receipt_summary.json", {
            "platform_run_id": self.run_id, "scenario_run_id": SCENARIO, "requests": len(objects),
            "events": len(placed), "counts": {"ADMITTED": len(placed), "DUPLICATE": 0, "QUARANTINED": 0,
                                              "PUBLISH_AMBIGUOUS": 0},
            "receipt_objects": objects, "ambiguous_event_ids": []})
        self.put("ingest/quarantine_summary.json", {"platform_run_id": self.run_id, "count": 0, "by_reason": {},
                                                    "objects": []})
        self.put("ingest/kafka_offsets_snapshot.json", {
            "platform_run_id": self.run_id, "topic": self.world.topics["traffic"], "offsets_from": "delivery reports",
            "partitions": {str(p): {"acked_records": sum(1 for q, _ in placed if q == p), "acked_end_offset": end}
                           for p, end in sorted(ends.items())}})
        return placed

    def observe(self) -> dict[str, Any]:
        w = self.world
        return reproducibility.observe(
            w.aws, w.conn, run=self.run_id, evidence_root=self.evidence_root, topics=w.topics,
            dsn=pipeline.platform_dsn(w.aws, w.ssm["db_dsn"]),
            stream_view=reproducibility.read_stream_views(w.aws, source=w.source, oracle_root=w.oracle_root,
                                                          evidence_root=self.evidence_root))


@pytest.fixture(scope="module")
def world(moto: MotoServer, broker: TansuBroker, pg: PostgresCluster,
          tmp_path_factory: pytest.TempPathFactory) -> World:
    """The shared surfaces, and the scenario's oracle lane (engine, then the real oracle-seed and oracle-sort)."""
    made = World(AwsSession(region=REGION, endpoint_url=moto.endpoint), broker.connection(),
                 tmp_path_factory.mktemp("logs"))
    made.provision(pg.dsn)
    files = render(generate(SEED, EVENTS), seed=SEED, events=EVENTS, scenario_run_id=SCENARIO).files
    bucket, prefix = s3.split_url(made.source)
    for key in sorted(files, key=lambda k: k == "_manifest.json"):
        s3.put_once(made.aws, bucket=bucket, key=prefix + key, body=files[key])
    lane = Run(made, f"run-repro-oracle-{uuid.uuid4().hex[:6]}")
    lane.job("oracle-seed")
    lane.job("oracle-sort")
    return made


def run_through(world: World, run_id: str, *,
                lane: list[str] | None = None) -> tuple[dict[str, Any], list[tuple[int, int]]]:
    """One run of the scenario through rtdl, the decision lane (``lane``: another argv for a double) and
    case-labels; its snapshot once case-labels has written its summary, and where its traffic records landed."""
    run = Run(world, run_id)
    try:
        run.start("rtdl", ["-m", "spine", "rtdl"])
        run.start("decision-lane", lane or ["-m", "spine", "decision-lane"])
        run.start("case-labels", ["-m", "spine", "case-labels"])
        rows, _ = ingress.view_rows(world.aws, world.oracle_root)
        placed = run.stream(rows)
        wait_until(lambda: run.died() or run.exists("case_labels/summary.json"), timeout_s=60, backoff_s=0.1,
                   max_backoff_s=0.3, err_msg=f"{run_id}: case-labels wrote no summary")
        assert run.died() is None, run.died()
        return run.observe(), placed
    finally:
        run.stop_all()


@pytest.fixture(scope="module")
def first_run(world: World) -> tuple[dict[str, Any], list[tuple[int, int]]]:
    return run_through(world, f"run-repro-first-{uuid.uuid4().hex[:6]}")


def test_a_rerun_through_the_reference_daemons_compares_identical(
        world: World, first_run: tuple[dict[str, Any], list[tuple[int, int]]]) -> None:
    (first, first_placed), (rerun, placed) = first_run, run_through(world, f"run-repro-rerun-{uuid.uuid4().hex[:6]}")
    report = reproducibility.compare(first, rerun)

    assert report["differences"] == [] and report["not_compared"] == [], report
    assert report["identical"] is True
    reproducibility.check(report)
    # Something was compared: the whole scenario, every pattern flagged, with their cases and labels.
    assert len(first["admitted"]) == EVENTS and set(first["decisions"]) == set(first["admitted"])
    assert set(first["dla"]) == set(first["decisions"])
    counts = first["counts"]
    assert counts["decisions_by_outcome"]["REVIEW"] + counts["decisions_by_outcome"]["DECLINE"] == len(first["cases"])
    assert first["cases"] and first["labels"] and set(first["labels"]) <= set(first["cases"])
    assert set(first["stream_view"]) == {"card_profiles", "card_transactions", "merchant_profiles"}
    # What had to differ did: the run id behind every id, and where the records landed on the shared topics (the
    # same partition per card, later offsets).
    assert rerun["platform_run_id"] != first["platform_run_id"]
    assert [p for p, _ in placed] == [p for p, _ in first_placed]
    assert all(o > o1 for (_, o), (_, o1) in zip(placed, first_placed, strict=True))
    assert counts == rerun["counts"] and counts["traffic_records"] == EVENTS


def test_a_decision_lane_on_the_wall_clock_passes_p9_but_not_the_rerun(
        world: World, first_run: tuple[dict[str, Any], list[tuple[int, int]]]) -> None:
    run_id = f"run-repro-wallclock-{uuid.uuid4().hex[:6]}"
    (first, _), (rerun, _) = first_run, run_through(world, run_id, lane=[str(WALLCLOCK_LANE)])

    # P9's per-run policy check: the contract's features recomputed from the traffic topic, the policy on them.
    decided, shortfall = pipeline.run_records(world.conn, world.topics["decision"], run_id, identity="decision_id",
                                              expected=EVENTS)
    traffic = [p09.traffic_row(e.partition, e.offset, e.event)
               for e in ingress.topic_events(world.conn, world.topics["traffic"])
               if e.platform_run_id == run_id and e.event is not None]
    assert shortfall is None and len(traffic) == EVENTS
    assert p09.judge_policy({"traffic": traffic, "decisions": decided}) == []

    report = reproducibility.compare(first, rerun)
    assert report["identical"] is False and report["not_compared"] == []
    assert report["summary"] == {**dict.fromkeys(reproducibility.ASPECTS, 0), "decisions": EVENTS, "dla": EVENTS}
    assert {d["key"] for d in report["differences"] if d["aspect"] == "decisions"} == set(first["admitted"])
    assert all(d["fields"] == ["features.seen_at_ms_mod"] and d["first"] == {} for d in report["differences"])
    with pytest.raises(Finding) as caught:
        reproducibility.check(report)
    assert caught.value.check == "Reproducibility.semantic_drift"
    assert caught.value.details[0].startswith(f"decisions {first['admitted'][0]} (features.seen_at_ms_mod): run "
                                              f"{first['platform_run_id']} {{}}, rerun {run_id} ")
    assert caught.value.details[-1] == (f"{2 * EVENTS} difference(s) between run {first['platform_run_id']} and its "
                                        f"rerun {run_id}: decisions {EVENTS}, dla {EVENTS}; "
                                        f"{2 * EVENTS - reproducibility.CHECK_LINES} not listed here")
