"""Shared by the P8 to P11 check tests: one small compliant run, the topics, DLA, cases and labels it leaves.

Seven events of the run on two traffic partitions (and one record of another run), each with the decision the
policy gives it and the Data Engine's ``fraud_pattern``. Every digest and id here is computed from the contract's
definitions (§6) by this module, not by the harness code under test.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from check_records import OTHER_RUN, RUN, SCENARIO, Record

TRAFFIC, RTDL, DECISION = "fp.bus.traffic.fraud.v1", "fp.bus.rtdl.v1", "fp.bus.decision.v1"
TOPIC_NAMES = {"traffic": TRAFFIC, "rtdl": RTDL, "decision": DECISION}
POLICY = "spine-rules/1"

# event id -> (traffic partition, offset, card, decision, reasons, the Data Engine's fraud_pattern)
EVENTS: dict[str, tuple[int, int, str, str, list[str], str]] = {
    "evt_01": (0, 0, "card_a1", "APPROVE", [], ""),
    "evt_02": (0, 1, "card_b2", "REVIEW", ["card_testing"], "card_testing"),
    "evt_03": (0, 2, "card_b2", "DECLINE", ["card_testing", "velocity"], "card_testing"),
    "evt_04": (1, 0, "card_c3", "APPROVE", [], "velocity_burst"),
    "evt_05": (1, 1, "card_c3", "REVIEW", ["velocity"], "velocity_burst"),
    "evt_06": (1, 2, "card_d4", "DECLINE", ["high_value_new_merchant"], ""),
    "evt_07": (0, 3, "card_b2", "APPROVE", [], "card_testing"),
}
FOREIGN_AT = (1, 3)  # a record of another run on the traffic topic: RTDL archives it, the run does not count it
FLAGGED = [e for e, (*_, outcome, _reasons, _truth) in EVENTS.items() if outcome != "APPROVE"]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def decision_id(event_id: str, *, run: str = RUN) -> str:
    return "dec_" + sha256(f"{run}/{event_id}".encode())[:32]


def case_id(decision: str) -> str:
    return "case_" + sha256(decision.encode())[:32]


def label_id(case: str, label: str) -> str:
    return "lbl_" + sha256(f"{case}/{label}".encode())[:32]


# --- topics -------------------------------------------------------------------------------------------------


def envelope(event_id: str, *, run: str = RUN) -> Record:
    _p, _o, card, *_ = EVENTS.get(event_id, (0, 0, "card_zz", "", [], ""))
    return {"event_id": event_id, "event_type": "card_transaction", "platform_run_id": run,
            "scenario_run_id": SCENARIO, "ts_utc": "2025-02-12T01:32:23.095614Z",
            "payload": {"amount_minor": 1423, "card_id": card, "currency": "GBP", "merchant_id": "mer_e8"}}


def traffic_value(partition: int, offset: int) -> bytes:
    """The bytes IG published at partition/offset of the traffic topic."""
    if (partition, offset) == FOREIGN_AT:
        return canonical(envelope("rogue-1", run=OTHER_RUN))
    event_id = next(e for e, (p, o, *_) in EVENTS.items() if (p, o) == (partition, offset))
    return canonical(envelope(event_id))


def enriched_value(event_id: str) -> bytes:
    partition, offset, *_ = EVENTS[event_id]
    return canonical({**envelope(event_id), "traffic": {"partition": partition, "offset": offset},
                      "features": {"card_event_index": 0, "count_10m": 1, "merchant_new_for_card": True}})


# The run's traffic as P9 reads it for the feature recomputation, in arrival order on one partition, with the
# card's earlier events (pre_*) that make each decision the policy's: (event, card, merchant, amount, seconds).
T0_US = 1_739_322_000_000_000  # 2025-02-12T01:00:00Z
P9_TRAFFIC_ROWS = [
    ("evt_01", "card_a1", "mer_a", 1423, 0),
    ("pre_b1", "card_b2", "mer_m2", 100, 0), ("pre_b2", "card_b2", "mer_m3", 100, 10),
    ("evt_02", "card_b2", "mer_m1", 100, 20),  # 3 small within 10 min: REVIEW card_testing
    ("pre_b3", "card_b2", "mer_m1", 100, 25),
    ("evt_03", "card_b2", "mer_m1", 100, 30),  # 5 small: DECLINE; 5 in 15 min at 3 merchants: velocity
    ("pre_c1", "card_c3", "mer_m4", 2000, 100), ("pre_c2", "card_c3", "mer_m5", 2000, 110),
    ("evt_04", "card_c3", "mer_m6", 2000, 120),  # 3 in 15 min: APPROVE
    ("evt_05", "card_c3", "mer_m4", 2000, 130),  # 4 in 15 min at 3 merchants: REVIEW velocity
    ("evt_06", "card_d4", "mer_m7", 200_000, 200),  # high value at a merchant new to the card: DECLINE
    ("evt_07", "card_b2", "mer_m1", 1423, 7200),  # two hours later, a known merchant: APPROVE
]


def p9_traffic() -> list[Record]:
    return [{"partition": 0, "offset": n, "event_id": e, "card_id": card, "merchant_id": merchant,
             "amount_minor": amount, "ts_us": T0_US + seconds * 1_000_000}
            for n, (e, card, merchant, amount, seconds) in enumerate(P9_TRAFFIC_ROWS)]


# The features of contract §6 for each decided event, worked out by hand from P9_TRAFFIC_ROWS.
FEATURES: dict[str, Record] = {
    "evt_01": {"card_event_index": 0, "count_10m": 1, "small_count_10m": 0, "count_15m": 1,
               "distinct_merchants_15m": 1, "amount_sum_15m": 1423, "merchant_new_for_card": True},
    "evt_02": {"card_event_index": 2, "count_10m": 3, "small_count_10m": 3, "count_15m": 3,
               "distinct_merchants_15m": 3, "amount_sum_15m": 300, "merchant_new_for_card": True},
    "evt_03": {"card_event_index": 4, "count_10m": 5, "small_count_10m": 5, "count_15m": 5,
               "distinct_merchants_15m": 3, "amount_sum_15m": 500, "merchant_new_for_card": False},
    "evt_04": {"card_event_index": 2, "count_10m": 3, "small_count_10m": 0, "count_15m": 3,
               "distinct_merchants_15m": 3, "amount_sum_15m": 6000, "merchant_new_for_card": True},
    "evt_05": {"card_event_index": 3, "count_10m": 4, "small_count_10m": 0, "count_15m": 4,
               "distinct_merchants_15m": 3, "amount_sum_15m": 8000, "merchant_new_for_card": False},
    "evt_06": {"card_event_index": 0, "count_10m": 1, "small_count_10m": 0, "count_15m": 1,
               "distinct_merchants_15m": 1, "amount_sum_15m": 200_000, "merchant_new_for_card": True},
    "evt_07": {"card_event_index": 5, "count_10m": 1, "small_count_10m": 0, "count_15m": 1,
               "distinct_merchants_15m": 1, "amount_sum_15m": 1423, "merchant_new_for_card": False},
}


def decision_value(event_id: str, **changes: Any) -> Record:
    _p, _o, card, outcome, reasons, _truth = EVENTS[event_id]
    return {"decision_id": decision_id(event_id), "event_id": event_id, "platform_run_id": RUN,
            "scenario_run_id": SCENARIO, "card_id": card, "ts_utc": "2025-02-12T01:32:23.095614Z",
            "decision": outcome, "reasons": list(reasons), "policy": POLICY, "features": dict(FEATURES[event_id]),
            **changes}


def decision_at(event_id: str) -> tuple[int, int]:
    """Where the lane published ``event_id``'s decision: three partitions, in event order."""
    n = list(EVENTS).index(event_id)
    return n % 3, n // 3


def decision_record(event_id: str, value: Record | None = None, *, at: tuple[int, int] | None = None) -> Record:
    """A decision as pipeline.decoded keeps it: position, digest of the published bytes, the JSON value."""
    value = value if value is not None else decision_value(event_id)
    partition, offset = at or decision_at(event_id)
    return {"partition": partition, "offset": offset, "sha256": sha256(canonical(value)), "key": value.get("card_id"),
            "value": value}


def dla_row(event_id: str, value: Record | None = None) -> Record:
    """The DLA row the lane inserted for the decision it published (the same bytes)."""
    value = value if value is not None else decision_value(event_id)
    return {"decision_id": value["decision_id"], "event_id": value["event_id"], "decision": value["decision"],
            "record": dict(value), "record_sha256": sha256(canonical(value))}


def case_of(event_id: str) -> Record:
    _p, _o, card, outcome, _reasons, _truth = EVENTS[event_id]
    decision = decision_id(event_id)
    return {"case_id": case_id(decision), "decision_id": decision, "event_id": event_id, "card_id": card,
            "decision": outcome}


def labels_of(event_id: str) -> list[Record]:
    case = case_id(decision_id(event_id))
    return [{"label_id": label_id(case, reason), "case_id": case, "label": reason, "source": f"decision-lane:{POLICY}"}
            for reason in EVENTS[event_id][4]]


def truth() -> dict[str, str]:
    """event_id -> fraud_pattern, as the harness reads it from the stream view."""
    return {e: pattern for e, (*_, pattern) in EVENTS.items()}
