"""The decision policy `spine-rules/1` (contract §6): a pure function of one enriched event."""

from __future__ import annotations

from typing import Any

POLICY = "spine-rules/1"
APPROVE, REVIEW, DECLINE = "APPROVE", "REVIEW", "DECLINE"
OUTCOMES = (APPROVE, REVIEW, DECLINE)  # weakest first
CARD_TESTING, VELOCITY, HIGH_VALUE_NEW_MERCHANT = "card_testing", "velocity", "high_value_new_merchant"
REASONS = (CARD_TESTING, VELOCITY, HIGH_VALUE_NEW_MERCHANT)  # the order reasons are listed in

SMALL_AMOUNT_MINOR = 500
CARD_TESTING_REVIEW, CARD_TESTING_DECLINE = 3, 5
VELOCITY_COUNT, VELOCITY_MERCHANTS = 4, 3
HIGH_VALUE_MINOR = 100_000

_INT_FEATURES = ("card_event_index", "count_10m", "small_count_10m", "count_15m", "distinct_merchants_15m",
                 "amount_sum_15m")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def problem(enriched: Any) -> str | None:
    """Why a value is not an enriched event the policy can decide on, or None."""
    if not isinstance(enriched, dict):
        return "not a JSON object"
    for name in ("event_id", "platform_run_id", "scenario_run_id", "ts_utc"):
        if not isinstance(enriched.get(name), str) or not enriched[name]:
            return f"{name} must be a non-empty string"
    payload, features = enriched.get("payload"), enriched.get("features")
    if not isinstance(payload, dict) or not isinstance(payload.get("card_id"), str) \
            or not _is_int(payload.get("amount_minor")):
        return "payload must hold card_id (string) and amount_minor (integer)"
    if not isinstance(features, dict) or not all(_is_int(features.get(name)) for name in _INT_FEATURES) \
            or not isinstance(features.get("merchant_new_for_card"), bool):
        return "features are missing or not of their types"
    return None


def decide(enriched: dict[str, Any]) -> tuple[str, list[str]]:
    """The outcome (the strongest of the reasons; APPROVE without one) and the reasons in policy order."""
    amount, features = enriched["payload"]["amount_minor"], enriched["features"]
    found: dict[str, str] = {}
    if amount < SMALL_AMOUNT_MINOR and features["small_count_10m"] >= CARD_TESTING_REVIEW:
        found[CARD_TESTING] = DECLINE if features["small_count_10m"] >= CARD_TESTING_DECLINE else REVIEW
    if features["count_15m"] >= VELOCITY_COUNT and features["distinct_merchants_15m"] >= VELOCITY_MERCHANTS:
        found[VELOCITY] = REVIEW
    if amount >= HIGH_VALUE_MINOR and features["merchant_new_for_card"]:
        found[HIGH_VALUE_NEW_MERCHANT] = DECLINE
    outcome = max(found.values(), key=OUTCOMES.index, default=APPROVE)
    return outcome, [reason for reason in REASONS if reason in found]
