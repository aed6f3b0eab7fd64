"""The platform's errors: each carries the exit code the contract gives it.

    SpineError            exit 1 — a fail-closed refusal or a failed check
    ├── NotFound          an object the work needs is absent
    └── Conflict          a write-once object exists with other bytes
    UsageError            exit 2 — bad arguments or a missing environment variable
"""

from __future__ import annotations


class SpineError(Exception):
    """A refusal: the process stops with exit code 1 and one line on stderr."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFound(SpineError):
    pass


class Conflict(SpineError):
    pass


class UsageError(SpineError):
    exit_code = 2
