"""Poll a real condition until it holds; never sleep blindly."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from harness.errors import Timeout

T = TypeVar("T")

_sleeper = threading.Event()


def wait_until(
    condition: Callable[[], T | None],
    *,
    timeout_s: float,
    backoff_s: float = 0.05,
    max_backoff_s: float = 1.0,
    err_msg: str,
    operation: str = "wait_until",
) -> T:
    """Call ``condition`` until it returns a truthy value and return that value.

    Exceptions raised by ``condition`` count as "not yet"; the last one is chained to the
    Timeout raised when ``timeout_s`` passes.
    """
    if timeout_s <= 0:
        raise ValueError(f"timeout_s={timeout_s!r} must be > 0")
    if backoff_s <= 0:
        raise ValueError(f"backoff_s={backoff_s!r} must be > 0")
    deadline = time.monotonic() + timeout_s
    delay = backoff_s
    last_exc: BaseException | None = None
    while True:
        try:
            result = condition()
            if result:
                return result
        except Exception as exc:  # the condition is allowed to fail while not ready
            last_exc = exc
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            detail = f" (last error: {last_exc})" if last_exc else ""
            raise Timeout(f"{err_msg} after {timeout_s:.1f}s{detail}", operation=operation) from (
                last_exc
            )
        # Event.wait gives an interruptible pause between polls of the real condition.
        _sleeper.wait(min(delay, remaining))
        delay = min(delay * 2, max_backoff_s)
