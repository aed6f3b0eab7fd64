"""Write-once evidence under the run's evidence root (SPINE_EVIDENCE_ROOT)."""

from __future__ import annotations

import json
from typing import Any

from spine import canonical, log, s3
from spine.errors import SpineError


def put_json(root: s3.Location, relative: str, record: dict[str, Any]) -> str:
    """Write canonical JSON once; an identical record already there is accepted, another is a Conflict."""
    outcome = s3.put_once(root.bucket, root.key(relative), canonical.dumps(record))
    log.info("evidence", key=relative, outcome=outcome)
    return outcome


def get_json(root: s3.Location, relative: str) -> dict[str, Any] | None:
    raw = s3.get_optional(root.bucket, root.key(relative))
    if raw is None:
        return None
    try:
        record = json.loads(raw)
    except ValueError as exc:
        raise SpineError(f"{root.url(relative)} is not JSON: {exc}") from exc
    if not isinstance(record, dict):
        raise SpineError(f"{root.url(relative)} is not a JSON object")
    return record
