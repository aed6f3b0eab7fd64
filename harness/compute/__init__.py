"""Compute providers: run a mode of the platform artifact and report its exit code and output."""

from __future__ import annotations

from harness.compute.base import Compute, JobResult
from harness.compute.ecs import EcsCompute
from harness.compute.embedded import EmbeddedCompute, Network
from harness.compute.process import Started

__all__ = ["Compute", "EcsCompute", "EmbeddedCompute", "JobResult", "Network", "Started"]
