"""S3: write-once puts, reads, listings and a bucket's protections."""

from __future__ import annotations

import json
from typing import Any

from harness.aws.session import AwsSession, converted
from harness.errors import EvidenceError, NotFound


def put_once(aws: AwsSession, *, bucket: str, key: str, body: bytes) -> str:
    """Create ``key`` only if it does not exist (``If-None-Match: *``); returns the ETag."""
    with converted(f"s3.put_once s3://{bucket}/{key}"):
        response = aws.client("s3").put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
    return str(response.get("ETag", "")).strip('"')


def get_bytes(aws: AwsSession, *, bucket: str, key: str) -> bytes:
    with converted(f"s3.get_object s3://{bucket}/{key}"):
        return bytes(aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def list_keys(aws: AwsSession, *, bucket: str, prefix: str = "") -> list[str]:
    keys: list[str] = []
    with converted(f"s3.list_objects_v2 s3://{bucket}/{prefix}"):
        for page in aws.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return keys


def exists(aws: AwsSession, *, bucket: str) -> bool:
    try:
        with converted(f"s3.head_bucket {bucket}"):
            aws.client("s3").head_bucket(Bucket=bucket)
    except NotFound:
        return False
    return True


def protections(aws: AwsSession, *, bucket: str) -> dict[str, Any]:
    """What a bucket actually enforces: versioning, public access block, default encryption."""
    client = aws.client("s3")
    with converted(f"s3.get_bucket_versioning {bucket}"):
        versioning = client.get_bucket_versioning(Bucket=bucket).get("Status", "Disabled")
    try:
        with converted(f"s3.get_public_access_block {bucket}"):
            pab = client.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    except NotFound:
        pab = {}
    try:
        with converted(f"s3.get_bucket_encryption {bucket}"):
            rules = client.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        algorithms = sorted(r["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in rules)
    except NotFound:
        algorithms = []
    return {"versioning": versioning, "public_access_block": dict(pab), "encryption": algorithms}


def policy(aws: AwsSession, *, bucket: str) -> dict[str, Any]:
    """The bucket policy as S3 returns it: ``{"policy": <document> | None}`` (None: the bucket has none)."""
    try:
        with converted(f"s3.get_bucket_policy {bucket}"):
            document = aws.client("s3").get_bucket_policy(Bucket=bucket)["Policy"]
    except NotFound:
        return {"policy": None}
    return {"policy": parse_json(document.encode() if isinstance(document, str) else document,
                                 where=f"the bucket policy of {bucket}")}


def put_policy(aws: AwsSession, *, bucket: str, document: dict[str, Any]) -> None:
    """Replace the bucket policy (out of band: only drills use it; no stack manages a bucket policy)."""
    with converted(f"s3.put_bucket_policy {bucket}"):
        aws.client("s3").put_bucket_policy(Bucket=bucket, Policy=json.dumps(document))


def delete_policy(aws: AwsSession, *, bucket: str) -> None:
    with converted(f"s3.delete_bucket_policy {bucket}"):
        aws.client("s3").delete_bucket_policy(Bucket=bucket)


def get_optional(aws: AwsSession, *, bucket: str, key: str) -> bytes | None:
    """The object's bytes, or None when it does not exist (one request, not a HEAD then a GET)."""
    try:
        return get_bytes(aws, bucket=bucket, key=key)
    except NotFound:
        return None


def key_exists(aws: AwsSession, *, bucket: str, key: str) -> bool:
    try:
        with converted(f"s3.head_object s3://{bucket}/{key}"):
            aws.client("s3").head_object(Bucket=bucket, Key=key)
    except NotFound:
        return False
    return True


def overwrite(aws: AwsSession, *, bucket: str, key: str, body: bytes) -> None:
    """An unconditional put: only fault injection uses it (evidence always goes through put_once)."""
    with converted(f"s3.put_object s3://{bucket}/{key}"):
        aws.client("s3").put_object(Bucket=bucket, Key=key, Body=body)


def delete(aws: AwsSession, *, bucket: str, key: str) -> None:
    with converted(f"s3.delete_object s3://{bucket}/{key}"):
        aws.client("s3").delete_object(Bucket=bucket, Key=key)


def split_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix)."""
    if not url.startswith("s3://"):
        raise ValueError(f"{url!r} is not an s3:// URL")
    bucket, _, prefix = url[5:].partition("/")
    return bucket, prefix


def last_modified(aws: AwsSession, *, bucket: str, key: str) -> float:
    """The object's LastModified (epoch seconds; S3 keeps whole seconds)."""
    with converted(f"s3.head_object s3://{bucket}/{key}"):
        return float(aws.client("s3").head_object(Bucket=bucket, Key=key)["LastModified"].timestamp())


def get_json(aws: AwsSession, *, bucket: str, key: str) -> Any:
    """An object parsed as JSON; a non-JSON object is an EvidenceError naming it."""
    return parse_json(get_bytes(aws, bucket=bucket, key=key), where=f"s3://{bucket}/{key}")


def get_json_optional(aws: AwsSession, *, bucket: str, key: str) -> Any:
    """Like ``get_json``, or None when the object does not exist."""
    raw = get_optional(aws, bucket=bucket, key=key)
    return None if raw is None else parse_json(raw, where=f"s3://{bucket}/{key}")


def parse_json(raw: bytes, *, where: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise EvidenceError(f"{where} is not JSON: {exc}") from exc
