"""Canonical JSON and digests: the same record always serialises to the same bytes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any


def _default(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable: {obj!r}")


def dumps(obj: Any) -> bytes:
    """Canonical JSON: sorted keys, no insignificant whitespace variation, UTF-8, newline."""
    text = json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False, default=_default)
    return (text + "\n").encode("utf-8")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def digest_of(obj: Any) -> str:
    """sha256 of an object's canonical JSON."""
    return sha256_bytes(dumps(obj))
