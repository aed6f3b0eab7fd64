"""S3 for the platform: write-once puts and copies, reads that hash what they read.

With `spine.aws` the only modules of the platform that import boto3; botocore errors become spine errors here.
boto3 itself reads AWS_REGION, AWS_ENDPOINT_URL and the credentials.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from spine.errors import Conflict, NotFound, SpineError, UsageError

_NOT_FOUND = {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}
_PRECONDITION = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Location:
    """An ``s3://bucket/prefix/`` root; keys below it are joined, never reshaped."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str, *, name: str) -> Location:
        """``name`` is the variable or option the URL came from, for the error message."""
        if not url.startswith("s3://"):
            raise UsageError(f"{name}={url!r} must be an s3:// URL")
        bucket, _, prefix = url[len("s3://"):].partition("/")
        if not bucket:
            raise UsageError(f"{name}={url!r} names no bucket")
        return cls(bucket=bucket, prefix=prefix)

    @property
    def root(self) -> Location:
        """This location as a folder (prefix ending in ``/``)."""
        if not self.prefix or self.prefix.endswith("/"):
            return self
        return Location(self.bucket, self.prefix + "/")

    def key(self, relative: str) -> str:
        return self.root.prefix + relative

    def url(self, relative: str = "") -> str:
        return f"s3://{self.bucket}/{self.key(relative)}"


@dataclass(frozen=True)
class Digest:
    sha256: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size}


@functools.cache
def client() -> Any:
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    config = botocore.config.Config(
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=5,
        read_timeout=120,
        s3={"addressing_style": "path"} if endpoint else {},
    )
    return boto3.client("s3", config=config)


@contextlib.contextmanager
def _converted(operation: str) -> Iterator[None]:
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        err = exc.response.get("Error", {})
        code = str(err.get("Code", "Unknown"))
        if code in _NOT_FOUND:
            raise NotFound(f"{operation}: not found ({code})") from exc
        raise SpineError(f"{operation}: {code}: {err.get('Message', exc)}") from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise SpineError(f"{operation}: {type(exc).__name__}: {exc}") from exc


def _is_precondition(exc: botocore.exceptions.ClientError) -> bool:
    err = exc.response.get("Error", {})
    status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    return str(err.get("Code", "")) in _PRECONDITION or status in {"412", "409"}


def get_bytes(bucket: str, key: str) -> bytes:
    """The object's bytes; hash these, not a second read, so what is checked is what is used."""
    with _converted(f"get s3://{bucket}/{key}"):
        return bytes(client().get_object(Bucket=bucket, Key=key)["Body"].read())


def get_optional(bucket: str, key: str) -> bytes | None:
    try:
        return get_bytes(bucket, key)
    except NotFound:
        return None


def digest(bucket: str, key: str) -> tuple[Digest, str]:
    """Stream the object through sha256; returns its digest and the ETag of the bytes read."""
    h = hashlib.sha256()
    size = 0
    with _converted(f"get s3://{bucket}/{key}"):
        response = client().get_object(Bucket=bucket, Key=key)
        for chunk in response["Body"].iter_chunks(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return Digest(h.hexdigest(), size), str(response.get("ETag", ""))


def put_once(bucket: str, key: str, body: bytes) -> str:
    """Create ``key`` write-once (``If-None-Match: *``); an identical existing object is accepted.

    Returns ``created`` or ``identical``; raises Conflict when the key holds other bytes.
    """
    try:
        client().put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
        return "created"
    except botocore.exceptions.ClientError as exc:
        if not _is_precondition(exc):
            err = exc.response.get("Error", {})
            raise SpineError(f"put s3://{bucket}/{key}: {err.get('Code')}: {err.get('Message', exc)}") from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise SpineError(f"put s3://{bucket}/{key}: {type(exc).__name__}: {exc}") from exc
    existing = get_bytes(bucket, key)
    if existing != body:
        raise Conflict(
            f"s3://{bucket}/{key} already exists with other bytes (sha256 {hashlib.sha256(existing).hexdigest()}, "
            f"this write {hashlib.sha256(body).hexdigest()}); it is write-once and is not overwritten"
        )
    return "identical"


def copy(*, source: tuple[str, str], source_etag: str, destination: tuple[str, str]) -> None:
    """Server-side copy of exactly the source version that was hashed (``CopySourceIfMatch``).

    ``IfNoneMatch`` makes the copy write-once where the store enforces it; callers check the
    destination first and hash it afterwards, so a store that ignores it is still caught.
    """
    (src_bucket, src_key), (dst_bucket, dst_key) = source, destination
    with _converted(f"copy s3://{src_bucket}/{src_key} to s3://{dst_bucket}/{dst_key}"):
        client().copy_object(
            Bucket=dst_bucket,
            Key=dst_key,
            CopySource={"Bucket": src_bucket, "Key": src_key},
            CopySourceIfMatch=source_etag,
            IfNoneMatch="*",
            MetadataDirective="COPY",
        )


def list_keys(bucket: str, prefix: str) -> list[str]:
    """Every key under ``prefix``, in key order."""
    keys: list[str] = []
    with _converted(f"list s3://{bucket}/{prefix}"):
        for page in client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return keys


def exists(bucket: str, key: str) -> bool:
    try:
        with _converted(f"head s3://{bucket}/{key}"):
            client().head_object(Bucket=bucket, Key=key)
        return True
    except NotFound:
        return False
