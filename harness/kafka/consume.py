"""Read topics from the beginning without a consumer group: the harness's own history of the bus."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from harness.errors import SubstrateError, Timeout
from harness.kafka.admin import describe_topics
from harness.kafka.connection import KafkaConnection


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int

    def to_json(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset,
                "key": self.key.decode("utf-8", "replace") if self.key is not None else None,
                "timestamp_ms": self.timestamp_ms, "bytes": len(self.value)}


def read_all(conn: KafkaConnection, topic: str, *, min_end: dict[int, int] | None = None,
             timeout_s: float = 30.0) -> list[Record]:
    """Every record of every partition, from offset 0 to the end.

    The end is where the broker reports end-of-partition and, per partition, at least ``min_end``
    (the end offsets acknowledged to producers: a broker watermark alone is not trusted).
    """
    records, shortfall = _read(conn, topic, min_end=min_end, until=None, timeout_s=timeout_s)
    if shortfall:
        raise Timeout(f"reading {topic}: {shortfall}", operation=f"kafka.read {topic}")
    return records


def read_until(conn: KafkaConnection, topic: str, until: Callable[[list[Record]], bool], *,
               timeout_s: float = 30.0) -> tuple[list[Record], str | None]:
    """Every record from offset 0 until the end of every partition is reported *and* ``until`` holds.

    For topics whose end offsets no producer acknowledged to the harness (the broker's end-of-partition
    alone is not trusted): ``until`` states what must have been read (e.g. one record per admitted event).
    Returns what was read and, when ``until`` never held within ``timeout_s``, why (a finding, not an error:
    the records that are missing are the observation).
    """
    return _read(conn, topic, min_end=None, until=until, timeout_s=timeout_s)


def _read(conn: KafkaConnection, topic: str, *, min_end: dict[int, int] | None,
          until: Callable[[list[Record]], bool] | None, timeout_s: float) -> tuple[list[Record], str | None]:
    state = describe_topics(conn, [topic])[topic]
    if state.partitions is None:
        raise SubstrateError("UnknownTopic", f"topic {topic} does not exist", operation=f"kafka.read {topic}")
    consumer = Consumer({**conn.client_config(), "group.id": "spine-certify-reader", "enable.auto.commit": False,
                         "enable.partition.eof": True, "auto.offset.reset": "earliest", "log_level": 0})
    wanted = dict(min_end or {})
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(state.partitions)])
        records: list[Record] = []
        position: dict[int, int] = {}
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout_s
        checked = -1  # how many records ``until`` last saw: it is asked again only when more arrived

        def done() -> bool:
            nonlocal checked
            if len(at_end) != state.partitions or any(position.get(p, 0) < end for p, end in wanted.items()):
                return False
            if until is None:
                return True
            if checked == len(records):
                return False
            checked = len(records)
            return until(records)

        while not done():
            if time.monotonic() > deadline:
                short = {p: (position.get(p, 0), end) for p, end in wanted.items() if position.get(p, 0) < end}
                return records, (f"partitions at end {sorted(at_end)} of {state.partitions}; "
                                 + (f"below the acknowledged end (position, end): {short}" if short
                                    else f"what had to be read was not there within {timeout_s:.0f}s"))
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            error, partition = msg.error(), int(msg.partition() or 0)
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(partition)
                    continue
                raise SubstrateError(error.name(), error.str(), operation=f"kafka.read {topic}")
            offset = int(msg.offset() or 0)
            at_end.discard(partition)
            position[partition] = offset + 1
            key = msg.key()
            records.append(Record(topic, partition, offset, key.encode() if isinstance(key, str) else key,
                                  msg.value() or b"", msg.timestamp()[1]))
        return records, None
    except KafkaException as exc:
        raise SubstrateError("KafkaException", str(exc), operation=f"kafka.read {topic}") from exc
    finally:
        consumer.close()


def watermarks(conn: KafkaConnection, topic: str, *, timeout_s: float = 10.0) -> dict[int, tuple[int, int]]:
    """The broker's (low, high) watermark per partition: a cross-check, never the offset truth."""
    state = describe_topics(conn, [topic])[topic]
    consumer = Consumer({**conn.client_config(), "group.id": "spine-certify-watermarks", "log_level": 0})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
                for p in range(state.partitions or 0)}
    except KafkaException as exc:
        raise SubstrateError("KafkaException", str(exc), operation=f"kafka.watermarks {topic}") from exc
    finally:
        consumer.close()
