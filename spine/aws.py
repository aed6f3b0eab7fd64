"""SSM and DynamoDB for the platform: secrets by pinned path, conditional writes for dedupe and leases.

With ``spine.s3`` the only modules of the platform that import boto3; botocore errors become
spine errors here.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

import boto3.session
import botocore.config
import botocore.exceptions

from spine.errors import NotFound, SpineError

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def client(service: str) -> Any:
    """One client per service, created under a lock: IG first asks for one from its worker threads, and
    boto3's default session is not thread-safe."""
    with _clients_lock:
        if service not in _clients:
            config = botocore.config.Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5,
                                            read_timeout=30, max_pool_connections=32)
            # The contract names AWS_REGION; botocore itself reads only AWS_DEFAULT_REGION (S3 works without).
            _clients[service] = boto3.session.Session().client(
                service, region_name=os.environ.get("AWS_REGION") or None, config=config)
        return _clients[service]


class ConditionFailed(SpineError):
    """A conditional write lost: the item exists (dedupe) or is held by another (lease).

    ``item`` is the item that made it lose, when the store returned it.
    """

    def __init__(self, message: str, item: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.item = item


@contextlib.contextmanager
def _converted(operation: str) -> Iterator[None]:
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        err = exc.response.get("Error", {})
        code = str(err.get("Code", "Unknown"))
        if code == "ConditionalCheckFailedException":
            held = exc.response.get("Item")
            raise ConditionFailed(f"{operation}: condition failed", _plain(held) if held else None) from exc
        if code in {"ParameterNotFound", "ResourceNotFoundException"}:
            raise NotFound(f"{operation}: not found ({code})") from exc
        raise SpineError(f"{operation}: {code}: {err.get('Message', exc)}") from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise SpineError(f"{operation}: {type(exc).__name__}: {exc}") from exc


def secret(path: str) -> str:
    """A SecureString (or String) parameter's value; it never reaches a log line or evidence."""
    with _converted(f"ssm get {path}"):
        return str(client("ssm").get_parameter(Name=path, WithDecryption=True)["Parameter"]["Value"])


def _wire(item: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in item.items():
        if isinstance(value, bool):
            out[name] = {"BOOL": value}
        elif isinstance(value, int | float):
            out[name] = {"N": str(value)}
        else:
            out[name] = {"S": str(value)}
    return out


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in item.items():
        if "N" in value:
            number = float(value["N"])
            out[name] = int(number) if number.is_integer() else number
        elif "BOOL" in value:
            out[name] = value["BOOL"]
        else:
            out[name] = value.get("S")
    return out


def put_new(table: str, item: dict[str, Any], *, key: str) -> None:
    """Create the item only when no item has its key; raises ConditionFailed carrying the held item otherwise."""
    put_if(table, item, condition="attribute_not_exists(#k)", names={"#k": key})


def put_all(table: str, items: list[dict[str, Any]]) -> None:
    """Unconditional puts, 25 per BatchWriteItem call; unprocessed items are sent again until none remain."""
    for start in range(0, len(items), 25):
        pending = [{"PutRequest": {"Item": _wire(item)}} for item in items[start:start + 25]]
        for _ in range(10):
            with _converted(f"dynamodb batch write {table}"):
                answer = client("dynamodb").batch_write_item(RequestItems={table: pending})
            pending = answer.get("UnprocessedItems", {}).get(table, [])
            if not pending:
                break
        if pending:
            raise SpineError(f"dynamodb batch write {table}: {len(pending)} item(s) still unprocessed")


def put_if(table: str, item: dict[str, Any], *, condition: str, names: dict[str, str],
           values: dict[str, Any] | None = None) -> None:
    """A conditional put; when the condition fails, ConditionFailed carries the item that held the key."""
    extra = {"ExpressionAttributeValues": _wire(values)} if values else {}
    with _converted(f"dynamodb conditional put {table}"):
        client("dynamodb").put_item(TableName=table, Item=_wire(item), ConditionExpression=condition,
                                    ExpressionAttributeNames=names, ReturnValuesOnConditionCheckFailure="ALL_OLD",
                                    **extra)


def update_if(table: str, key: dict[str, str], *, update: str, condition: str, names: dict[str, str],
              values: dict[str, Any]) -> dict[str, Any]:
    """A conditional UpdateItem; returns the item as written (ALL_NEW). When the condition fails,
    ConditionFailed carries the item as it was (ALL_OLD), or None when there was none."""
    with _converted(f"dynamodb conditional update {table}/{next(iter(key.values()))}"):
        answer = client("dynamodb").update_item(
            TableName=table, Key=_wire(key), UpdateExpression=update, ConditionExpression=condition,
            ExpressionAttributeNames=names, ExpressionAttributeValues=_wire(values), ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD")
    return _plain(answer.get("Attributes", {}))


def get(table: str, key: dict[str, str]) -> dict[str, Any] | None:
    with _converted(f"dynamodb get {table}/{next(iter(key.values()))}"):
        found = client("dynamodb").get_item(TableName=table, Key=_wire(key), ConsistentRead=True).get("Item")
    return _plain(found) if found else None


def delete_if(table: str, key: dict[str, str], *, field: str, equals: str) -> None:
    """Delete the item only while ``field`` still equals ``equals`` (e.g. the lease holder)."""
    with _converted(f"dynamodb delete {table}/{next(iter(key.values()))}"):
        client("dynamodb").delete_item(TableName=table, Key=_wire(key), ConditionExpression="#f = :v",
                                       ExpressionAttributeNames={"#f": field},
                                       ExpressionAttributeValues=_wire({":v": equals}))
