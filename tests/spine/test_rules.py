"""The pure parts of the decision plane: per-card features in event time and the policy `spine-rules/1`."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from spine import decision_lane, features, rules

T0 = features.event_time_us("2026-11-25T10:00:00Z")
S = features.SECOND_US


def observe(state: features.State, card: str, at_s: float, amount: int = 1000, merchant: str = "m") -> dict[str, Any]:
    return state.observe(card_id=card, ts_us=T0 + int(at_s * S), amount_minor=amount, merchant_id=merchant)


# --- features ---


def test_event_time_reads_utc_with_or_without_fraction_and_refuses_a_naive_time() -> None:
    assert features.event_time_us("1970-01-01T00:00:01Z") == S
    assert features.event_time_us("1970-01-01T00:00:00.000123Z") == 123
    assert features.event_time_us("1970-01-01T01:00:00+01:00") == 0
    for bad in ("2026-11-25T10:00:00", "yesterday", ""):
        with pytest.raises(ValueError):
            features.event_time_us(bad)


def test_windows_include_an_event_exactly_10_or_15_minutes_earlier_and_not_one_microsecond_more() -> None:
    state = features.State()
    observe(state, "c", 0, amount=100)
    observe(state, "c", 300 - 1e-6, amount=100)  # 15 min + 1 µs before the last event: outside 15m
    observe(state, "c", 300, amount=100)          # exactly 15 min before
    observe(state, "c", 600 - 1e-6, amount=100)   # 10 min + 1 µs before: in 15m, outside 10m
    observe(state, "c", 600, amount=2000)         # exactly 10 min before
    last = observe(state, "c", 1200, amount=100)
    assert last == {"card_event_index": 5, "count_10m": 2, "small_count_10m": 1, "count_15m": 4,
                    "distinct_merchants_15m": 1, "amount_sum_15m": 100 + 100 + 2000 + 100,
                    "merchant_new_for_card": False}


def test_features_count_only_the_cards_own_earlier_events() -> None:
    state = features.State()
    first = observe(state, "a", 0, amount=499, merchant="m1")
    assert first == {"card_event_index": 0, "count_10m": 1, "small_count_10m": 1, "count_15m": 1,
                     "distinct_merchants_15m": 1, "amount_sum_15m": 499, "merchant_new_for_card": True}
    observe(state, "b", 1, amount=10, merchant="m2")  # another card: invisible to a
    second = observe(state, "a", 2, amount=500, merchant="m2")
    assert second == {"card_event_index": 1, "count_10m": 2, "small_count_10m": 1, "count_15m": 2,
                      "distinct_merchants_15m": 2, "amount_sum_15m": 999, "merchant_new_for_card": True}
    assert observe(state, "a", 3, merchant="m1")["merchant_new_for_card"] is False
    assert state.cards == 2


def test_a_late_event_sees_the_earlier_arrivals_in_its_own_window_only() -> None:
    state = features.State()
    observe(state, "c", 1000, merchant="m1")
    observe(state, "c", 1100, merchant="m2")
    late = observe(state, "c", 900, merchant="m3")  # arrives third, happened first
    assert (late["card_event_index"], late["count_10m"], late["count_15m"]) == (2, 1, 1)
    after = observe(state, "c", 1200, merchant="m3")
    assert (after["count_15m"], after["distinct_merchants_15m"], after["merchant_new_for_card"]) == (4, 3, False)


def test_the_same_events_give_the_same_features_in_two_states() -> None:
    sequence = [("c1", 0, 100, "m1"), ("c2", 5, 900, "m2"), ("c1", 30, 120, "m2"), ("c1", 700, 5, "m1")]
    one, two = features.State(), features.State()
    assert [observe(one, *e) for e in sequence] == [observe(two, *e) for e in sequence]


# --- rules ---


def enriched(amount: int, **values: Any) -> dict[str, Any]:
    feats = {"card_event_index": 0, "count_10m": 1, "small_count_10m": 0, "count_15m": 1,
             "distinct_merchants_15m": 1, "amount_sum_15m": amount, "merchant_new_for_card": False, **values}
    return {"event_id": "e1", "platform_run_id": "run-1", "scenario_run_id": "scn-1",
            "ts_utc": "2026-11-25T10:00:00Z", "traffic": {"partition": 0, "offset": 7},
            "payload": {"card_id": "c1", "merchant_id": "m1", "amount_minor": amount, "currency": "GBP",
                        "channel": "ecom"}, "features": feats}


@pytest.mark.parametrize(("event", "outcome", "reasons"), [
    (enriched(1000), "APPROVE", []),
    (enriched(499, small_count_10m=2), "APPROVE", []),
    (enriched(499, small_count_10m=3), "REVIEW", ["card_testing"]),
    (enriched(499, small_count_10m=4), "REVIEW", ["card_testing"]),
    (enriched(499, small_count_10m=5), "DECLINE", ["card_testing"]),
    (enriched(500, small_count_10m=9), "APPROVE", []),  # the event itself is not small
    (enriched(1000, count_15m=4, distinct_merchants_15m=3), "REVIEW", ["velocity"]),
    (enriched(1000, count_15m=3, distinct_merchants_15m=3), "APPROVE", []),
    (enriched(1000, count_15m=9, distinct_merchants_15m=2), "APPROVE", []),
    (enriched(100_000, merchant_new_for_card=True), "DECLINE", ["high_value_new_merchant"]),
    (enriched(99_999, merchant_new_for_card=True), "APPROVE", []),
    (enriched(100_000, merchant_new_for_card=False), "APPROVE", []),
    (enriched(499, small_count_10m=3, count_15m=4, distinct_merchants_15m=3), "REVIEW", ["card_testing", "velocity"]),
    (enriched(150_000, count_15m=4, distinct_merchants_15m=4, merchant_new_for_card=True), "DECLINE",
     ["velocity", "high_value_new_merchant"]),
], ids=lambda v: None if isinstance(v, dict | list) else v)
def test_the_policy_takes_the_strongest_of_its_reasons(event: dict[str, Any], outcome: str,
                                                       reasons: list[str]) -> None:
    assert rules.decide(event) == (outcome, reasons)


def test_only_well_formed_enriched_events_are_decided() -> None:
    good = enriched(1000)
    assert rules.problem(good) is None
    assert rules.problem("text") == "not a JSON object"
    assert "event_id" in (rules.problem({**good, "event_id": ""}) or "")
    assert rules.problem({**good, "features": {**good["features"], "count_15m": True}}) is not None
    assert rules.problem({**good, "features": {**good["features"], "merchant_new_for_card": 1}}) is not None
    assert rules.problem({**good, "payload": {"card_id": "c1", "amount_minor": "1000"}}) is not None
    assert rules.problem({k: v for k, v in good.items() if k != "features"}) is not None


def test_a_decision_is_a_pure_function_of_the_enriched_event() -> None:
    event = enriched(499, small_count_10m=5)
    made = decision_lane.decision(event)
    assert made == {"decision_id": "dec_" + hashlib.sha256(b"run-1/e1").hexdigest()[:32], "event_id": "e1",
                    "platform_run_id": "run-1", "scenario_run_id": "scn-1", "card_id": "c1",
                    "ts_utc": "2026-11-25T10:00:00Z", "decision": "DECLINE", "reasons": ["card_testing"],
                    "policy": "spine-rules/1", "features": event["features"]}
    assert decision_lane.decision(enriched(499, small_count_10m=5)) == made
