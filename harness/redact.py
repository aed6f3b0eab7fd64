"""Secret registry: every secret value the harness learns is scrubbed from what it writes.

Values read from SSM SecureStrings, generated credentials and DSN passwords are
registered here; the evidence bundle, captured logs, the logging module and the Allure
results all pass through :func:`scrub` before they reach disk.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path

MASK = "***REDACTED***"
_MIN_LEN = 6  # shorter values would mask ordinary words; secrets here are long and random

_lock = threading.Lock()
_secrets: set[str] = set()


def register(value: str | None) -> bool:
    """Remember a secret value so that it never appears in anything the harness writes.

    Returns False for a value too short to mask without mangling ordinary text: callers
    report such a secret as weak instead of relying on masking.
    """
    if value is None or len(value) < _MIN_LEN:
        return False
    with _lock:
        _secrets.add(value)
    return True


def registered() -> frozenset[str]:
    with _lock:
        return frozenset(_secrets)


def clear() -> None:
    """Forget every secret (tests only; a certification keeps them for its whole life)."""
    with _lock:
        _secrets.clear()


def scrub(text: str) -> str:
    """Replace every registered secret in ``text`` with the mask (longest first)."""
    for secret in sorted(registered(), key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def scrub_bytes(data: bytes) -> bytes:
    for secret in sorted(registered(), key=len, reverse=True):
        raw = secret.encode("utf-8")
        if raw in data:
            data = data.replace(raw, MASK.encode("utf-8"))
    return data


def scrub_tree(root: Path) -> list[Path]:
    """Scrub every file below ``root`` in place; returns the files that held a secret."""
    changed: list[Path] = []
    if not root.exists():
        return changed
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        clean = scrub_bytes(data)
        if clean != data:
            path.write_bytes(clean)
            changed.append(path)
    return changed


def find_in_tree(root: Path, secret: str) -> list[Path]:
    """Files below ``root`` whose bytes contain ``secret`` (used by the leak tests)."""
    raw = secret.encode("utf-8")
    return sorted(p for p in root.rglob("*") if p.is_file() and raw in p.read_bytes())


class ScrubFilter(logging.Filter):
    """A logging filter that masks registered secrets in every record it passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message)
        if clean != message:
            record.msg = clean
            record.args = None
        return True


_factory_installed = False


def install_log_scrubbing() -> None:
    """Mask registered secrets in every log record, whichever logger or handler it reaches."""
    global _factory_installed
    if _factory_installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        # A malformed format is logging's to report, when a handler formats the record.
        with contextlib.suppress(TypeError, ValueError):
            ScrubFilter().filter(record)
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True
