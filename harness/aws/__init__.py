"""AWS clients, one module per service; the only place boto3 is imported."""

from __future__ import annotations

from harness.aws.session import AwsSession, probe

__all__ = ["AwsSession", "probe"]
