"""The platform's own evidence objects (claims): waited for, copied into the bundle as written, parsed."""

from __future__ import annotations

from typing import Any

from harness import progress
from harness.aws import s3
from harness.errors import Timeout
from harness.phases import p01
from harness.session import Certification
from harness.wait import wait_until


def get(cert: Certification, pins: p01.Pins, relative: str) -> dict[str, Any] | None:
    """One claim as it is now (None when absent), copied into the bundle when present."""
    bucket, prefix = s3.split_url(pins.evidence_root)
    body = s3.get_optional(cert.aws_session, bucket=bucket, key=prefix + relative)
    if body is None:
        return None
    bundle_path = f"runs/{pins.platform_run_id}/{relative}"
    if not cert.bundle.has(bundle_path):
        cert.evidence_bytes(bundle_path, body)
    parsed = s3.parse_json(body, where=f"s3://{bucket}/{prefix}{relative}")
    return parsed if isinstance(parsed, dict) else {"not_an_object": parsed}


def wait(cert: Certification, pins: p01.Pins, relative: str, *, timeout_s: float, who: str) -> dict[str, Any] | None:
    """Poll for a claim the platform writes when it is done; None (and a progress line) when it never came."""
    progress.say(f"waiting up to {timeout_s:.0f}s for {who} to write {relative}")
    try:
        return wait_until(lambda: get(cert, pins, relative), timeout_s=timeout_s, backoff_s=0.2, max_backoff_s=1.0,
                          err_msg=f"{who} wrote no {relative}", operation=f"wait for {relative}")
    except Timeout:
        return None
