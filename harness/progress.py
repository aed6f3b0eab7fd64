"""Console progress for long steps: each line carries the elapsed time of the certification."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from harness import redact

_start = time.monotonic()
_writer: Callable[[str], None] | None = None


def set_writer(writer: Callable[[str], None] | None) -> None:
    """Route progress lines (pytest's terminal reporter while a session runs)."""
    global _writer, _start
    _writer = writer
    _start = time.monotonic()


def say(message: str) -> None:
    line = f"[{time.monotonic() - _start:7.1f}s] {redact.scrub(message)}"
    if _writer is not None:
        _writer(line)
    else:
        # stderr of the real process: pytest's capture must not swallow progress.
        print(line, file=sys.__stderr__, flush=True)


@contextmanager
def step(what: str) -> Iterator[None]:
    """Announce a long step and its duration, or how long it ran before failing."""
    began = time.monotonic()
    say(f"{what} ...")
    try:
        yield
    except BaseException:
        say(f"{what} failed after {time.monotonic() - began:.1f}s")
        raise
    say(f"{what} done in {time.monotonic() - began:.1f}s")
