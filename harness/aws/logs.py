"""CloudWatch Logs: log groups under a prefix."""

from __future__ import annotations

from harness.aws.session import AwsSession, converted


def list_groups(aws: AwsSession, *, prefix: str) -> list[str]:
    names: list[str] = []
    with converted(f"logs.describe_log_groups {prefix}"):
        for page in aws.client("logs").get_paginator("describe_log_groups").paginate(logGroupNamePrefix=prefix):
            names.extend(g["logGroupName"] for g in page.get("logGroups", []))
    return sorted(names)
