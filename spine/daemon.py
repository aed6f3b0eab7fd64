"""What the consuming daemons share: a stop on SIGTERM/SIGINT, an interruptible idle wait, a group consumer."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from spine import ids, kafka, log, runscope
from spine.errors import SpineError

_stop = threading.Event()


def install_stop() -> threading.Event:
    """SIGTERM and SIGINT end the loop after the batch in hand (offsets of a half-done batch are not committed)."""

    def stop(signum: int, frame: object) -> None:
        log.info("stopping", signal=signum)
        _stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return _stop


def poll_s() -> float:
    return runscope.seconds("SPINE_DAEMON_POLL_S", 1.0)


def consumer(settings: dict[str, Any], mode: str, platform_run_id: str, **extra: Any) -> Consumer:
    """The mode's group consumer: earliest on a new group, offsets committed only by the daemon."""
    return Consumer({**settings, "group.id": ids.group(mode, platform_run_id), "enable.auto.commit": False,
                     "auto.offset.reset": "earliest", "enable.partition.eof": False,
                     "session.timeout.ms": int(os.environ.get("SPINE_KAFKA_SESSION_TIMEOUT_MS", "6000")),
                     "heartbeat.interval.ms": int(os.environ.get("SPINE_KAFKA_HEARTBEAT_MS", "1000")),
                     **extra})


def committed(consumer: Consumer, topic: str, partitions: int, *, timeout_s: float = 10.0) -> dict[int, int]:
    """The group's committed offset per partition (-1 when none)."""
    found = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=timeout_s)
    return {int(tp.partition): int(tp.offset) for tp in found}


def consume(consumer: Consumer, topic: str, *, max_records: int, timeout_s: float) -> list[kafka.Record]:
    """One batch of at most ``max_records``; a transient client error is logged (the client recovers), a fatal
    one raises."""
    try:
        messages = consumer.consume(num_messages=max_records, timeout=timeout_s)
    except KafkaException as exc:
        raise SpineError(f"kafka consume {topic}: {exc}") from exc
    records: list[kafka.Record] = []
    for msg in messages:
        error = msg.error()
        if error is not None:
            if error.fatal():
                raise SpineError(f"kafka consume {topic}: {error}")
            log.info("kafka_error", topic=topic, error=str(error))
            continue
        records.append(kafka.Record(str(msg.topic()), int(msg.partition() or 0), int(msg.offset() or 0), msg.key(),
                                    msg.value() or b"", int(msg.timestamp()[1])))
    return records


def commit(consumer: Consumer, topic: str, ends: dict[int, int]) -> None:
    """Commit ``ends`` (partition → next offset to read) synchronously; a refused commit raises."""
    try:
        answer = consumer.commit(offsets=[TopicPartition(topic, p, offset) for p, offset in sorted(ends.items())],
                                 asynchronous=False)
    except KafkaException as exc:
        raise SpineError(f"kafka commit of group offsets on {topic}: {exc}") from exc
    refused = [f"{tp.partition}: {tp.error}" for tp in answer or [] if tp.error is not None]
    if refused:
        raise SpineError(f"kafka commit of group offsets on {topic} refused: {'; '.join(refused)}")
