"""spine-certify: certify an event-streaming platform against its migration plan, with evidence."""

from __future__ import annotations

from harness.errors import (
    ConfigError,
    EvidenceError,
    Finding,
    HarnessError,
    NotFound,
    PhaseBlocked,
    PortInUse,
    PreconditionFailed,
    SubstrateError,
    Timeout,
    ToolMissing,
)

__version__ = "0.1.0"
__all__ = [
    "ConfigError",
    "EvidenceError",
    "Finding",
    "HarnessError",
    "NotFound",
    "PhaseBlocked",
    "PortInUse",
    "PreconditionFailed",
    "SubstrateError",
    "Timeout",
    "ToolMissing",
    "__version__",
]
