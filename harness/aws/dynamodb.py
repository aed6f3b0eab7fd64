"""DynamoDB: the pinned lock and dedupe tables."""

from __future__ import annotations

from typing import Any

from harness.aws.session import AwsSession, converted
from harness.errors import NotFound


def describe_table(aws: AwsSession, name: str) -> dict[str, Any] | None:
    try:
        with converted(f"dynamodb.describe_table {name}"):
            table = aws.client("dynamodb").describe_table(TableName=name)["Table"]
    except NotFound:
        return None
    hash_key = next((k["AttributeName"] for k in table["KeySchema"] if k["KeyType"] == "HASH"), None)
    return {"name": table["TableName"], "status": table["TableStatus"], "hash_key": hash_key}
