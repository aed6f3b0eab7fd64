"""Kafka for the platform: the bus named by the pinned SSM surfaces; the only confluent_kafka user of spine."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from spine import aws, log
from spine.errors import SpineError

# The environment every Kafka-using mode reads (values are SSM paths, never secrets).
ENV = ("SPINE_SSM_KAFKA_BOOTSTRAP", "SPINE_KAFKA_SECURITY_PROTOCOL")
SASL_ENV = ("SPINE_SSM_KAFKA_API_KEY", "SPINE_SSM_KAFKA_API_SECRET")


class _ToLog(logging.Handler):
    """librdkafka's own log lines become JSON lines on stdout: stderr carries only the one line of a refusal."""

    def emit(self, record: logging.LogRecord) -> None:
        log.info("kafka_client", level=record.levelname, message=record.getMessage())


_client_log = logging.getLogger("spine.kafka.client")
_client_log.addHandler(_ToLog())
_client_log.setLevel(logging.DEBUG)
_client_log.propagate = False


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int


def config(env: dict[str, str]) -> dict[str, Any]:
    """librdkafka settings from the pinned SSM surfaces: plaintext locally, SASL_SSL on Confluent Cloud."""
    protocol = env["SPINE_KAFKA_SECURITY_PROTOCOL"]
    settings: dict[str, Any] = {"bootstrap.servers": aws.secret(env["SPINE_SSM_KAFKA_BOOTSTRAP"]),
                                "security.protocol": protocol, "log_level": 3, "logger": _client_log}
    if protocol == "SASL_SSL":
        for name in SASL_ENV:
            if not os.environ.get(name):
                raise SpineError(f"SPINE_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs {name}")
        settings.update({"sasl.mechanisms": "PLAIN",
                         "sasl.username": aws.secret(os.environ["SPINE_SSM_KAFKA_API_KEY"]),
                         "sasl.password": aws.secret(os.environ["SPINE_SSM_KAFKA_API_SECRET"])})
    elif protocol != "PLAINTEXT":
        raise SpineError(f"SPINE_KAFKA_SECURITY_PROTOCOL={protocol!r} must be PLAINTEXT or SASL_SSL")
    return settings


def producer(settings: dict[str, Any], *, delivery_timeout_ms: int = 10_000, linger_ms: int = 5) -> Producer:
    """Idempotent, acks=all: a retry inside the client never writes a record twice."""
    return Producer({**settings, "enable.idempotence": True, "acks": "all", "linger.ms": linger_ms,
                     "message.timeout.ms": delivery_timeout_ms})


def partitions(settings: dict[str, Any], topic: str, *, timeout_s: float = 5.0) -> int:
    """How many partitions the topic has (a real metadata request: the bus answers or this raises)."""
    try:
        meta = Producer({**settings}).list_topics(topic, timeout=timeout_s)
    except KafkaException as exc:
        raise SpineError(f"kafka metadata for {topic}: {exc}") from exc
    found = meta.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise SpineError(f"topic {topic} is not available: {found.error if found else 'missing'}")
    return len(found.partitions)


def read(settings: dict[str, Any], topic: str, *, keep: Callable[[Record], bool] = lambda r: True,
         until: Callable[[list[Record]], bool] | None = None, timeout_s: float = 10.0) -> list[Record]:
    """Every record of ``topic`` from the beginning to the end of each partition (no consumer group).

    With ``until``, keeps reading past the end (new records arrive) until it holds or ``timeout_s``
    passes; without it, stops once every partition reported its end.
    """
    count = partitions(settings, topic)
    consumer = Consumer({**settings, "group.id": "spine-reader", "enable.auto.commit": False,
                         "enable.partition.eof": True, "auto.offset.reset": "earliest"})
    try:
        # From each partition's low watermark: where OFFSET_BEGINNING starts, without librdkafka's offset query
        # (about half a second per read on every job start).
        try:
            lows = [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5.0)[0] for p in range(count)]
        except KafkaException as exc:
            raise SpineError(f"reading {topic}: {exc}") from exc
        consumer.assign([TopicPartition(topic, p, lows[p]) for p in range(count)])
        found: list[Record] = []
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if until is None and len(at_end) == count:
                break
            if until is not None and until(found):
                break
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            error, partition = msg.error(), int(msg.partition() or 0)
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(partition)
                    continue
                raise SpineError(f"reading {topic}: {error}")
            at_end.discard(partition)
            record = Record(topic, partition, int(msg.offset() or 0), msg.key(), msg.value() or b"",
                            msg.timestamp()[1])
            if keep(record):
                found.append(record)
        if until is None and len(at_end) < count:
            raise SpineError(f"reading {topic}: the end of every partition was not reached within {timeout_s:.0f}s")
        return found
    finally:
        consumer.close()


def watermarks(settings: dict[str, Any], topic: str, *, timeout_s: float = 5.0) -> dict[int, tuple[int, int]]:
    """The broker's low and high watermark per partition (a cross-check: offsets come from delivery reports)."""
    consumer = Consumer({**settings, "group.id": "spine-watermarks", "enable.auto.commit": False})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
                for p in range(partitions(settings, topic))}
    finally:
        consumer.close()
