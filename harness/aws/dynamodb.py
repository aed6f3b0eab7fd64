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


def _wire(item: dict[str, Any]) -> dict[str, Any]:
    return {k: {"N": str(v)} if isinstance(v, int | float) and not isinstance(v, bool) else {"S": str(v)}
            for k, v in item.items()}


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: (float(v["N"]) if "N" in v else v.get("S")) for k, v in item.items()}


def get_item(aws: AwsSession, *, table: str, key: dict[str, str]) -> dict[str, Any] | None:
    with converted(f"dynamodb.get_item {table}"):
        found = aws.client("dynamodb").get_item(TableName=table, Key=_wire(key), ConsistentRead=True).get("Item")
    return _plain(found) if found else None


def put_new(aws: AwsSession, *, table: str, item: dict[str, Any], key: str) -> None:
    """Create the item only when its key is free (raises PreconditionFailed otherwise)."""
    with converted(f"dynamodb.put_item {table}"):
        aws.client("dynamodb").put_item(TableName=table, Item=_wire(item),
                                        ConditionExpression="attribute_not_exists(#k)",
                                        ExpressionAttributeNames={"#k": key})


def delete_item(aws: AwsSession, *, table: str, key: dict[str, str]) -> None:
    with converted(f"dynamodb.delete_item {table}"):
        aws.client("dynamodb").delete_item(TableName=table, Key=_wire(key))


def update_if(aws: AwsSession, *, table: str, key: dict[str, str], update: str, condition: str,
              names: dict[str, str] | None = None, values: dict[str, Any] | None = None) -> dict[str, Any]:
    """One conditional UpdateItem; returns the item as written (raises PreconditionFailed when the condition fails)."""
    request: dict[str, Any] = {"TableName": table, "Key": _wire(key), "UpdateExpression": update,
                               "ConditionExpression": condition, "ReturnValues": "ALL_NEW"}
    if names:
        request["ExpressionAttributeNames"] = names
    if values:
        request["ExpressionAttributeValues"] = _wire(values)
    with converted(f"dynamodb.update_item {table}"):
        return _plain(aws.client("dynamodb").update_item(**request)["Attributes"])
