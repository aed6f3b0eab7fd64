"""The reporter's lock: one item per run in `reporter_lock`, taken and fenced by conditional UpdateItem.

The table is the judge: a take succeeds only on a free, released or expired lock and hands out the next
fencing token; every later write of the holder is first a conditional UpdateItem that names that token,
so a holder whose lock was taken over (or closed) is refused by the table itself, whoever it is.
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

from spine import aws, log
from spine.errors import SpineError

HELD, RELEASED, CLOSED = "HELD", "RELEASED", "CLOSED"

_NAMES = {"#run": "platform_run_id", "#holder": "holder", "#expires": "expires_at", "#state": "state",
          "#token": "token"}
_TAKE_IF = "attribute_not_exists(#run) OR #state = :released OR (#state = :held AND #expires < :now)"
_MINE_IF = "#holder = :me AND #token = :token AND #state = :state"


class Held(SpineError):
    """The table refused a take or a fence: ``item`` is the lock as the table held it (None if it has none)."""

    def __init__(self, message: str, item: dict[str, Any] | None) -> None:
        super().__init__(message)
        self.item = item or {}


def _used(expressions: tuple[str, ...], table: dict[str, Any]) -> dict[str, Any]:
    """Only the placeholders an expression uses: DynamoDB refuses unused names and values."""
    found = {p for expression in expressions for p in re.findall(r"[#:]\w+", expression)}
    return {name: value for name, value in table.items() if name in found}


class Lock:
    """One reporter's view of the run's lock; ``token`` is its fencing token once taken."""

    def __init__(self, table: str, platform_run_id: str, holder: str, *, lease_s: float,
                 token: int | None = None) -> None:
        if lease_s <= 0:
            raise SpineError(f"lease_s={lease_s!r} must be > 0")
        self.table, self.platform_run_id, self.holder, self.lease_s = table, platform_run_id, holder, lease_s
        self.token = token
        self.state: str | None = HELD if token is not None else None

    @property
    def _key(self) -> dict[str, str]:
        return {"platform_run_id": self.platform_run_id}

    def _expires(self) -> int:
        return int(time.time()) + math.ceil(self.lease_s)

    def _update(self, operation: str, update: str, condition: str, values: dict[str, Any]) -> dict[str, Any]:
        if self.token is None and ":token" in condition:
            raise SpineError(f"{operation} by {self.holder}: no fencing token (the lock was never taken)")
        values = {":me": self.holder, ":token": self.token, **values}
        try:
            return aws.update_if(self.table, self._key, update=update, condition=condition,
                                 names=_used((update, condition), _NAMES),
                                 values=_used((update, condition), values))
        except aws.ConditionFailed as lost:
            held = lost.item if lost.item is not None else aws.get(self.table, self._key)
            raise Held(f"{operation} by {self.holder} refused: {describe(held)}", held) from None

    def current(self) -> dict[str, Any] | None:
        """The lock as the table holds it now (a consistent read)."""
        return aws.get(self.table, self._key)

    def take(self) -> int:
        """The conditional take of the contract (§6 Reporter step 2); returns the new fencing token."""
        now = int(time.time())
        item = self._update("lock take",
                            "SET #holder = :me, #expires = :expires, #state = :held ADD #token :one", _TAKE_IF,
                            {":expires": now + math.ceil(self.lease_s), ":held": HELD, ":released": RELEASED,
                             ":now": now, ":one": 1})
        self.token, self.state = int(item["token"]), HELD
        log.info("lock_taken", table=self.table, holder=self.holder, token=self.token,
                 expires_at=item.get("expires_at"))
        return self.token

    def fence(self, operation: str = "fence") -> None:
        """Still mine (holder, token, HELD)? The same conditional update extends the lease."""
        self._update(operation, "SET #expires = :expires", _MINE_IF, {":expires": self._expires(), ":state": HELD})

    def close(self) -> None:
        """HELD → CLOSED, fenced: nobody can take the lock of a closed run again."""
        self._update("lock close", "SET #state = :closed", _MINE_IF, {":closed": CLOSED, ":state": HELD})
        self.state = CLOSED
        log.info("lock_closed", holder=self.holder, token=self.token)

    def fence_closed(self, operation: str) -> None:
        """After the close: still the lock this holder closed with this token."""
        self._update(operation, "SET #holder = :me", _MINE_IF, {":state": CLOSED})

    def release(self) -> None:
        """HELD → RELEASED, fenced: the next reporter may take it at once."""
        self._update("lock release", "SET #state = :released", _MINE_IF, {":released": RELEASED, ":state": HELD})
        self.state = RELEASED
        log.info("lock_released", holder=self.holder, token=self.token)

    @contextlib.contextmanager
    def renewed(self) -> Iterator[None]:
        """Fence (and so extend the lease) every third of the lease while the block runs: a long read does not
        let the lease lapse. A refused renewal stops renewing; the next fenced write then fails for real."""
        done = threading.Event()

        def renew() -> None:
            while not done.wait(self.lease_s / 3):
                try:
                    self.fence("lease renewal")
                except SpineError as exc:
                    log.info("lock_renewal_refused", reason=str(exc))
                    return

        thread = threading.Thread(target=renew, name="spine-lock-renewal", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(timeout=30)


def describe(item: dict[str, Any] | None) -> str:
    """The lock as a phrase for a refusal line."""
    if not item:
        return "the lock has no item"
    return (f"held by {item.get('holder')} (token {item.get('token')}, state {item.get('state')}, "
            f"expires_at {item.get('expires_at')})")
