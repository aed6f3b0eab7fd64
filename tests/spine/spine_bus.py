"""Helpers for the ingress tests: the bus surfaces the modes read (SSM, tables, topics), the topics as read by
the test itself, and the `ig` daemon as a real subprocess."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import requests
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from spine_lane import REGION, ROOT, Lane

from harness.substrate import free_port
from harness.wait import wait_until

CONTROL = "fp.bus.control.v1"


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes

    def json(self) -> Any:
        return json.loads(self.value)


def _aws(service: str, endpoint: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def _table(ddb: Any, name: str, key: str) -> None:
    ddb.create_table(TableName=name, KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")


@dataclass
class Bus:
    """What sr, wsp and ig read besides the run: SSM surfaces, the dedupe and lease tables, the quarantine
    bucket and the topics, on one moto server and one Kafka broker."""

    aws_endpoint: str
    bootstrap: str
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:8]}")

    def __post_init__(self) -> None:
        self.ssm, self.ddb, self.s3 = (_aws(s, self.aws_endpoint) for s in ("ssm", "dynamodb", "s3"))
        self.writer_key = secrets.token_urlsafe(24)
        self.ssm_bootstrap = self.put_bootstrap("main", self.bootstrap)
        self.ssm_ig_key = f"/{self.prefix}/ig/api_key"
        self.ssm.put_parameter(Name=self.ssm_ig_key, Value=self.writer_key, Type="SecureString")
        self.dedupe_table, self.lease_table = f"{self.prefix}-ig-dedupe", f"{self.prefix}-sr-lease"
        _table(self.ddb, self.dedupe_table, "dedupe_key")
        _table(self.ddb, self.lease_table, "platform_run_id")
        self.quarantine_bucket = f"{self.prefix}-quarantine"
        self.s3.create_bucket(Bucket=self.quarantine_bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        self.create_topics({CONTROL: 1})

    def put_bootstrap(self, name: str, value: str) -> str:
        """A String parameter holding a bootstrap (the contract's `ssm.confluent_bootstrap`); returns its path."""
        path = f"/{self.prefix}/kafka/{name}/bootstrap"
        self.ssm.put_parameter(Name=path, Value=value, Type="String", Overwrite=True)
        return path

    def env(self, *, traffic: str | None = None, ssm_bootstrap: str | None = None, **extra: str) -> dict[str, str]:
        """Every variable the bus-using modes read besides the common ones (spine.contract)."""
        env = {"SPINE_SSM_KAFKA_BOOTSTRAP": ssm_bootstrap or self.ssm_bootstrap,
               "SPINE_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT", "SPINE_TOPIC_CONTROL": CONTROL,
               "SPINE_SSM_IG_API_KEY": self.ssm_ig_key, "SPINE_IG_DEDUPE_TABLE": self.dedupe_table,
               "SPINE_SR_LEASE_TABLE": self.lease_table, "SPINE_QUARANTINE_BUCKET": self.quarantine_bucket, **extra}
        if traffic is not None:
            env["SPINE_TOPIC_TRAFFIC"] = traffic
        return env

    # --- topics, read by the test itself ---

    def create_topics(self, topics: dict[str, int], *, bootstrap: str | None = None) -> None:
        admin = AdminClient({"bootstrap.servers": bootstrap or self.bootstrap, "log_level": 0})
        futures = admin.create_topics([NewTopic(name, num_partitions=n, replication_factor=1)
                                       for name, n in topics.items()], request_timeout=15)
        for future in futures.values():
            future.result(timeout=15)
        wait_until(lambda: all(len(self.partitions(name, bootstrap=bootstrap)) == n for name, n in topics.items()),
                   timeout_s=15, err_msg=f"topics {topics} not visible")

    def traffic_topic(self, label: str, *, partitions: int = 3) -> str:
        name = f"fp.bus.traffic.{self.prefix}.{label}"
        self.create_topics({name: partitions})
        return name

    def _consumer(self, bootstrap: str | None) -> Consumer:
        return Consumer({"bootstrap.servers": bootstrap or self.bootstrap, "group.id": f"test-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest", "log_level": 0})

    def partitions(self, topic: str, *, bootstrap: str | None = None) -> list[int]:
        consumer = self._consumer(bootstrap)
        try:
            found = consumer.list_topics(topic, timeout=5).topics.get(topic)
            return sorted(found.partitions) if found is not None and found.error is None else []
        finally:
            consumer.close()

    def high_watermarks(self, topic: str) -> dict[int, int]:
        consumer = self._consumer(None)
        try:
            return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1]
                    for p in self.partitions(topic)}
        finally:
            consumer.close()

    def records(self, topic: str, *, min_end: dict[int, int] | None = None, timeout_s: float = 20.0,
                bootstrap: str | None = None) -> list[Record]:
        """Every record of ``topic``: each partition read from its first offset to where the broker reports its end
        and, per partition, at least ``min_end`` (acknowledged end offsets). Tansu's high watermark is wrong for
        multi-record batches (docs/architecture.md), so neither it nor a count derived from it is trusted."""
        partitions = self.partitions(topic, bootstrap=bootstrap)
        assert partitions, f"topic {topic} does not exist"
        consumer = Consumer({"bootstrap.servers": bootstrap or self.bootstrap, "group.id": f"test-{uuid.uuid4().hex}",
                             "enable.auto.commit": False, "enable.partition.eof": True, "fetch.wait.max.ms": 20,
                             "auto.offset.reset": "earliest", "log_level": 0})
        found: list[Record] = []
        position: dict[int, int] = {}
        at_end: set[int] = set()
        wanted = dict(min_end or {})
        try:
            # From each low watermark: the same start as OFFSET_BEGINNING without librdkafka's slow offset query.
            lows = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[0] for p in partitions}
            consumer.assign([TopicPartition(topic, p, lows[p]) for p in partitions])
            deadline = time.monotonic() + timeout_s
            while len(at_end) < len(partitions) or any(position.get(p, 0) < end for p, end in wanted.items()):
                assert time.monotonic() < deadline, (
                    f"{topic}: at the end of {sorted(at_end)} of {partitions}; positions {position}, wanted {wanted}")
                msg = consumer.poll(0.2)
                if msg is None:
                    continue
                error, partition = msg.error(), int(msg.partition() or 0)
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        raise KafkaException(error)
                    at_end.add(partition)
                    continue
                offset = int(msg.offset() or 0)
                at_end.discard(partition)
                position[partition] = offset + 1
                found.append(Record(partition, offset, msg.key(), msg.value() or b""))
        finally:
            consumer.close()
        return sorted(found, key=lambda r: (r.partition, r.offset))

    def produce(self, topic: str, records: list[tuple[bytes, bytes]]) -> None:
        """Write (key, value) records as some other writer would (acks=all, every delivery confirmed)."""
        producer = Producer({"bootstrap.servers": self.bootstrap, "acks": "all", "log_level": 0})
        errors: list[Any] = []
        for key, value in records:
            producer.produce(topic, key=key, value=value, on_delivery=lambda err, _msg: errors.append(err))
        assert producer.flush(15) == 0 and errors == [None] * len(records), errors

    def ready_records(self, run_id: str) -> list[Record]:
        """The control topic's records keyed by ``run_id`` (READY is keyed by platform_run_id)."""
        return [r for r in self.records(CONTROL) if r.key == run_id.encode()]

    # --- AWS state the modes leave behind ---

    def quarantined(self, url: str) -> dict[str, Any]:
        bucket, _, key = url.removeprefix("s3://").partition("/")
        assert bucket == self.quarantine_bucket, url
        record: dict[str, Any] = json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        return record

    def dedupe_item(self, run_id: str, event_id: str) -> dict[str, Any] | None:
        item = self.ddb.get_item(TableName=self.dedupe_table, Key={"dedupe_key": {"S": f"{run_id}/{event_id}"}},
                                 ConsistentRead=True).get("Item")
        return {name: next(iter(value.values())) for name, value in item.items()} if item else None

    def lease(self, run_id: str) -> dict[str, Any] | None:
        item = self.ddb.get_item(TableName=self.lease_table, Key={"platform_run_id": {"S": run_id}},
                                 ConsistentRead=True).get("Item")
        return {name: next(iter(value.values())) for name, value in item.items()} if item else None

    def put_lease(self, run_id: str, *, holder: str, expires_at: float) -> None:
        self.ddb.put_item(TableName=self.lease_table, Item={"platform_run_id": {"S": run_id}, "holder": {"S": holder},
                                                            "expires_at": {"N": str(expires_at)}})


class ModeProcess:
    """`python -m spine <mode>` as a real process, its stdout and stderr in files under ``logs``."""

    def __init__(self, mode: str, env: dict[str, str], *, logs: Path, tag: str) -> None:
        self.mode, self.env = mode, env
        logs.mkdir(parents=True, exist_ok=True)
        self.stdout_path, self.stderr_path = logs / f"{mode}-{tag}.out", logs / f"{mode}-{tag}.err"
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> subprocess.Popen[bytes]:
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "spine", self.mode], env=self.env, cwd=ROOT,
                                         stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        return self.proc

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def lines(self, event: str | None = None) -> list[dict[str, Any]]:
        found = [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]
        return [line for line in found if event is None or line.get("event") == event]

    def logged(self, event: str) -> list[dict[str, Any]]:
        """The log lines of ``event`` (empty: not logged)."""
        return self.lines(event)

    def stop(self, *, timeout_s: float = 20.0) -> int | None:
        """SIGTERM (by pid) and the exit code; SIGKILL only if it ignores SIGTERM."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
                raise AssertionError(f"{self.mode} ignored SIGTERM for {timeout_s:.0f}s: {self.stderr}") from None
        return proc.returncode


class Ig(ModeProcess):
    """`python -m spine ig` for one lane, as a real process listening on a free loopback port."""

    def __init__(self, lane: Lane, env: dict[str, str], *, logs: Path) -> None:
        self.lane, self.port = lane, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__("ig", lane.env(**env, SPINE_IG_LISTEN=f"127.0.0.1:{self.port}"), logs=logs,
                         tag=str(self.port))

    def start(self, *, timeout_s: float = 30.0) -> Ig:
        """Returns once the health endpoint answers 200, or raises naming the exit and stderr."""
        proc = self.spawn()
        wait_until(lambda: proc.poll() is not None or self._healthy(), timeout_s=timeout_s, max_backoff_s=0.1,
                   err_msg=f"ig did not answer on {self.url}")
        if proc.poll() is not None:
            raise AssertionError(f"ig exited {proc.returncode} before serving: {self.stderr}")
        return self

    def _healthy(self) -> bool:
        try:
            return self.health().status_code == 200
        except requests.ConnectionError:
            return False

    def health(self) -> requests.Response:
        return requests.get(f"{self.url}/v1/ops/health", timeout=10)

    def post(self, batch: Any, *, key: str | None, authorization: str | None = None,
             sender: str = "test") -> requests.Response:
        """POST /v1/ingest with the writer key as a bearer token, or with a raw Authorization header."""
        headers = {"X-Spine-Sender": sender}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        if authorization is not None:
            headers["Authorization"] = authorization
        return requests.post(f"{self.url}/v1/ingest", json={"events": batch}, headers=headers, timeout=60)

    def commit(self, *, key: str | None) -> requests.Response:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        return requests.post(f"{self.url}/v1/ops/commit", headers=headers, timeout=60)
