"""Produce records as a writer other than the platform (fault injection, the raw-rate benchmark)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterable, Iterator

from confluent_kafka import KafkaError, Message, Producer

from harness.errors import SubstrateError
from harness.kafka.connection import KafkaConnection


def send(conn: KafkaConnection, topic: str, records: Iterable[tuple[bytes | None, bytes]], *,
         timeout_s: float = 30.0, linger_ms: int = 5) -> list[tuple[int, int]]:
    """Produce (key, value) pairs idempotently with acks=all; returns (partition, offset) of each."""
    producer = Producer({**conn.client_config(), "enable.idempotence": True, "acks": "all",
                         "linger.ms": linger_ms, "log_level": 0})
    acked: list[tuple[int, int] | None] = []
    errors: list[str] = []

    def report(index: int) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                errors.append(f"record {index}: {err.str()}")
            else:
                acked[index] = (int(msg.partition() or 0), int(msg.offset() or 0))
        return on_delivery

    for i, (key, value) in enumerate(records):
        acked.append(None)
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=report(i))
                break
            except BufferError:
                producer.poll(0.1)  # the local queue is full: let deliveries drain it
        producer.poll(0)
    with _interrupts_deferred():
        remaining = producer.flush(timeout_s)
    if remaining or errors or any(a is None for a in acked):
        raise SubstrateError("ProduceFailed", f"{remaining} undelivered; {'; '.join(errors[:3])}",
                             operation=f"kafka.produce {topic}")
    return [a for a in acked if a is not None]


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Ctrl-C during ``flush`` is raised once it returns.

    flush runs the delivery callbacks from C; a KeyboardInterrupt raised inside one is lost by
    confluent-kafka, which then returns "SystemError: ... returned NULL without setting an
    exception", and the certification would carry on as if nothing had been asked of it.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            raise KeyboardInterrupt("interrupted while the harness's records were being delivered")
