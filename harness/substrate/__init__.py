"""Embedded substrate parts (moto, Tansu, PostgreSQL) and bring-your-own stand-ins."""

from __future__ import annotations

from harness.substrate.base import Part, ProcessPart, Substrate, free_port, pid_alive
from harness.substrate.external import ExternalAws, ExternalKafka
from harness.substrate.moto_server import MotoServer
from harness.substrate.postgres import PostgresCluster
from harness.substrate.tansu import TansuBroker

__all__ = [
    "ExternalAws",
    "ExternalKafka",
    "MotoServer",
    "Part",
    "PostgresCluster",
    "ProcessPart",
    "Substrate",
    "TansuBroker",
    "free_port",
    "pid_alive",
]
