"""Kafka clients; the only place confluent_kafka is imported."""

from __future__ import annotations

from harness.kafka.connection import KafkaConnection

__all__ = ["KafkaConnection"]
