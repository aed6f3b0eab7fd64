"""CloudWatch Logs: log groups under a prefix."""

from __future__ import annotations

from harness.aws.session import AwsSession, converted


def list_groups(aws: AwsSession, *, prefix: str) -> list[str]:
    names: list[str] = []
    with converted(f"logs.describe_log_groups {prefix}"):
        for page in aws.client("logs").get_paginator("describe_log_groups").paginate(logGroupNamePrefix=prefix):
            names.extend(g["logGroupName"] for g in page.get("logGroups", []))
    return sorted(names)


def read_stream(aws: AwsSession, *, group: str, stream: str) -> str:
    """Every message of one log stream, oldest first ('' when the stream does not exist)."""
    from harness.errors import NotFound

    lines: list[str] = []
    token: str | None = None
    try:
        with converted(f"logs.get_log_events {group}/{stream}"):
            while True:
                kwargs = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
                if token:
                    kwargs["nextToken"] = token
                page = aws.client("logs").get_log_events(**kwargs)
                lines.extend(e["message"] for e in page.get("events", []))
                if not page.get("events") or page.get("nextForwardToken") == token:
                    break
                token = page.get("nextForwardToken")
    except NotFound:
        return ""
    return "\n".join(lines)
