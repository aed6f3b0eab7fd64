"""Cluster metadata and topic administration from the handles registry."""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from harness.errors import SubstrateError
from harness.kafka.connection import KafkaConnection


@dataclass(frozen=True)
class TopicState:
    name: str
    partitions: int | None  # None: the topic does not exist


def _admin(conn: KafkaConnection) -> AdminClient:
    config = conn.client_config()
    # librdkafka logs connection refusals to stderr while a broker boots; keep them quiet.
    config["log_level"] = 0
    return AdminClient(config)


def _error(exc: KafkaException, operation: str) -> SubstrateError:
    err = exc.args[0] if exc.args else None
    if isinstance(err, KafkaError):
        return SubstrateError(err.name(), err.str(), operation=operation)
    return SubstrateError("KafkaException", str(exc), operation=operation)


def probe(conn: KafkaConnection, *, timeout_s: float = 5.0) -> dict[str, Any]:
    """A real metadata request; returns the cluster id and broker count."""
    try:
        meta = _admin(conn).list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise _error(exc, "kafka.list_topics") from exc
    return {"cluster_id": meta.cluster_id, "brokers": len(meta.brokers)}


def describe_topics(conn: KafkaConnection, names: list[str], *, timeout_s: float = 10.0) -> dict[str, TopicState]:
    try:
        meta = _admin(conn).list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise _error(exc, "kafka.list_topics") from exc
    states = {}
    for name in names:
        topic = meta.topics.get(name)
        exists = topic is not None and topic.error is None
        states[name] = TopicState(name=name, partitions=len(topic.partitions) if exists and topic else None)
    return states


def ensure_topics(
    conn: KafkaConnection, topics: dict[str, int], *, replication_factor: int, timeout_s: float = 30.0
) -> dict[str, str]:
    """Create every missing topic; returns name -> "created" | "exists"."""
    admin = _admin(conn)
    new = [NewTopic(name, num_partitions=n, replication_factor=replication_factor) for name, n in topics.items()]
    outcome: dict[str, str] = {}
    for name, future in admin.create_topics(new, request_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
            outcome[name] = "created"
        except concurrent.futures.TimeoutError as exc:
            raise SubstrateError("Timeout", f"topic {name} not created within {timeout_s:.0f}s",
                                 operation="kafka.create_topics") from exc
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                outcome[name] = "exists"
            else:
                raise _error(exc, f"kafka.create_topics({name})") from exc
    return outcome



def _group_client(conn: KafkaConnection, group: str) -> Consumer:
    """A client of ``group`` that never joins it (no subscribe): OffsetFetch and OffsetCommit only."""
    return Consumer({**conn.client_config(), "group.id": group, "enable.auto.commit": False, "log_level": 0})


def committed_offsets(conn: KafkaConnection, group: str, topic: str, partitions: int, *,
                      timeout_s: float = 10.0) -> dict[int, int | None]:
    """A consumer group's committed offset per partition as the broker holds it (None: nothing committed)."""
    client = _group_client(conn, group)
    try:
        found = client.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=timeout_s)
    except KafkaException as exc:
        raise _error(exc, f"kafka.offset_fetch {group}") from exc
    finally:
        client.close()
    return {int(tp.partition): int(tp.offset) if tp.offset >= 0 else None for tp in found}


def set_group_offsets(conn: KafkaConnection, group: str, topic: str, offsets: dict[int, int], *,
                      timeout_s: float = 10.0) -> None:
    """Move an idle consumer group's committed offsets, as an operator's offset reset does."""
    client = _group_client(conn, group)
    try:
        client.commit(offsets=[TopicPartition(topic, p, o) for p, o in sorted(offsets.items())], asynchronous=False)
    except KafkaException as exc:
        raise _error(exc, f"kafka.offset_commit {group}") from exc
    finally:
        client.close()
