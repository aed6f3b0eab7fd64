"""The reporter lock protocol (contract §6), as a manual closeout operator uses it: take, fence, release.

The harness uses it to hold the lock against the platform's reporter and to present a stale fencing
token; the table's conditional writes are what refuses, not the harness.
"""

from __future__ import annotations

import time
from typing import Any

from harness.aws import AwsSession, dynamodb
from harness.errors import PreconditionFailed

NAMES = {"#state": "state"}


def take(aws: AwsSession, table: str, platform_run_id: str, *, holder: str, lease_s: float) -> dict[str, Any]:
    """Take the run's lock (free, released or expired); returns the item with the new fencing token."""
    now = time.time()
    return dynamodb.update_if(
        aws, table=table, key={"platform_run_id": platform_run_id},
        update="SET holder = :me, expires_at = :exp, #state = :held ADD #token :one",
        condition="attribute_not_exists(platform_run_id) OR #state = :released OR "
                  "(#state = :held AND expires_at < :now)",
        names={**NAMES, "#token": "token"},
        values={":me": holder, ":exp": int(now + lease_s), ":held": "HELD", ":released": "RELEASED", ":one": 1,
                ":now": int(now)})


def fence(aws: AwsSession, table: str, platform_run_id: str, *, holder: str, token: int,
          lease_s: float = 30.0) -> dict[str, Any]:
    """A fenced write: accepted only while ``holder`` holds the lock with ``token``."""
    return dynamodb.update_if(
        aws, table=table, key={"platform_run_id": platform_run_id}, update="SET expires_at = :exp",
        condition="holder = :me AND #token = :tok AND #state = :held",
        names={**NAMES, "#token": "token"},
        values={":exp": int(time.time() + lease_s), ":me": holder, ":tok": token, ":held": "HELD"})


def release(aws: AwsSession, table: str, platform_run_id: str, *, holder: str, token: int) -> dict[str, Any]:
    return dynamodb.update_if(
        aws, table=table, key={"platform_run_id": platform_run_id}, update="SET #state = :released",
        condition="holder = :me AND #token = :tok AND #state = :held",
        names={**NAMES, "#token": "token"},
        values={":released": "RELEASED", ":me": holder, ":tok": token, ":held": "HELD"})


def attempt(fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """A protocol call as an observation: accepted with the item, or refused with the table's answer."""
    try:
        return {"accepted": True, "item": fn(*args, **kwargs)}
    except PreconditionFailed as exc:
        return {"accepted": False, "refused_by": "the lock table's condition", "error": str(exc)}


def current(aws: AwsSession, table: str, platform_run_id: str) -> dict[str, Any] | None:
    return dynamodb.get_item(aws, table=table, key={"platform_run_id": platform_run_id})
