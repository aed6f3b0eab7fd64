"""JSON-lines logging to stdout (the contract's log channel); stderr carries only the reason for a refusal."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

_context: dict[str, Any] = {}


def bind(**fields: Any) -> None:
    """Fields repeated on every following line (mode, run id)."""
    _context.update(fields)


def info(event: str, **fields: Any) -> None:
    record = {"ts": round(time.time(), 3), "event": event, **_context, **fields}
    sys.stdout.write(json.dumps(record, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()
