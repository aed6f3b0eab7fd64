"""Per-card features in event time (contract §6): pure state, no I/O, the same code for live events and warm-up."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

SECOND_US = 1_000_000
WINDOW_10M_US = 600 * SECOND_US
WINDOW_15M_US = 900 * SECOND_US
SMALL_AMOUNT_MINOR = 500
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def event_time_us(ts_utc: str) -> int:
    """An envelope's ``ts_utc`` as microseconds since the epoch; ValueError when it is not ISO 8601 with a zone."""
    moment = datetime.fromisoformat(ts_utc)
    if moment.tzinfo is None:
        raise ValueError(f"ts_utc {ts_utc!r} has no zone")
    return (moment - _EPOCH) // _US


def _ts(entry: tuple[int, int, str]) -> int:
    return entry[0]


@dataclass
class _Card:
    # (event time µs, amount_minor, merchant_id) of every event seen, sorted by event time (ties in arrival
    # order). Nothing is pruned: a window is exact whatever order the events arrive in.
    events: list[tuple[int, int, str]] = field(default_factory=list)
    merchants: set[str] = field(default_factory=set)


class State:
    """The card history of one run. ``observe`` every event of the run in arrival order, exactly once."""

    def __init__(self) -> None:
        self._cards: dict[str, _Card] = {}

    @property
    def cards(self) -> int:
        return len(self._cards)

    def observe(self, *, card_id: str, ts_us: int, amount_minor: int, merchant_id: str) -> dict[str, Any]:
        """Add one event and return its features over the card's events up to and including it."""
        card = self._cards.setdefault(card_id, _Card())
        index = len(card.events)
        merchant_new = merchant_id not in card.merchants
        card.merchants.add(merchant_id)
        bisect.insort_right(card.events, (ts_us, amount_minor, merchant_id), key=_ts)
        end = bisect.bisect_right(card.events, ts_us, key=_ts)  # [ts - window, ts], both ends included
        last_15m = card.events[bisect.bisect_left(card.events, ts_us - WINDOW_15M_US, key=_ts):end]
        last_10m = card.events[bisect.bisect_left(card.events, ts_us - WINDOW_10M_US, key=_ts):end]
        return {
            "card_event_index": index,
            "count_10m": len(last_10m),
            "small_count_10m": sum(1 for _, amount, _ in last_10m if amount < SMALL_AMOUNT_MINOR),
            "count_15m": len(last_15m),
            "distinct_merchants_15m": len({merchant for _, _, merchant in last_15m}),
            "amount_sum_15m": sum(amount for _, amount, _ in last_15m),
            "merchant_new_for_card": merchant_new,
        }

    def observe_event(self, event: dict[str, Any], ts_us: int) -> dict[str, Any]:
        """``observe`` for a valid envelope whose ``ts_utc`` is ``ts_us`` (parsed by the caller, before any change)."""
        payload = event["payload"]
        return self.observe(card_id=payload["card_id"], ts_us=ts_us, amount_minor=payload["amount_minor"],
                            merchant_id=payload["merchant_id"])
