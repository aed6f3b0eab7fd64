"""Reproducibility: a rerun of the same scenario under a new platform_run_id must decide the same things.

Two runs of one hand-worked scenario (four events, contract §6 policy worked out by hand below) are read the way
``reproducibility.observe`` reads them (decision values, DLA rows, case and label rows with the contract's ids
computed here from their definitions, P11's counts); ``compare`` must find them identical, and each mutation a
platform could bring into a rerun must make ``check`` raise a Finding naming the aspect and the event.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections import Counter
from typing import Any

import pytest

from harness import reproducibility
from harness.errors import Finding

RUN, RERUN = "run-20261123t101500z-3f9a1c", "run-20261123t104210z-77b0e2"
SCENARIO = "scn-seed42-n4"
POLICY = "spine-rules/1"
SOURCE = f"decision-lane:{POLICY}"
VIEWS = {"card_profiles": "c7" * 32, "card_transactions": "a1" * 32, "merchant_profiles": "5e" * 32}
FEATURES = ("card_event_index", "count_10m", "small_count_10m", "count_15m", "distinct_merchants_15m",
            "amount_sum_15m", "merchant_new_for_card")

# event id -> (card, ts_utc, amount_minor, merchant, decision, reasons, features in FEATURES order), in stream order.
# card-a tests the card with three small amounts in two minutes: the third has small_count_10m 3 (card_testing,
# REVIEW); card-b's 150000 at a merchant it never used is high_value_new_merchant (DECLINE).
EVENTS: dict[str, tuple[str, str, int, str, str, list[str], tuple[Any, ...]]] = {
    "evt-001": ("card-a", "2026-03-02T10:00:00.000000Z", 120, "m-1", "APPROVE", [], (0, 1, 1, 1, 1, 120, True)),
    "evt-002": ("card-a", "2026-03-02T10:01:00.000000Z", 130, "m-1", "APPROVE", [], (1, 2, 2, 2, 1, 250, False)),
    "evt-003": ("card-a", "2026-03-02T10:02:00.000000Z", 140, "m-1", "REVIEW", ["card_testing"],
                (2, 3, 3, 3, 1, 390, False)),
    "evt-004": ("card-b", "2026-03-02T10:03:00.000000Z", 150_000, "m-lux", "DECLINE", ["high_value_new_merchant"],
                (0, 1, 0, 1, 1, 150_000, True)),
}
# The same events, evt-003 arriving before evt-002 (same card). evt-003 then sees only evt-001 before it:
# small_count_10m 2, APPROVE; evt-002 sees evt-001 and evt-003 before it, but evt-003 (10:02) is outside its
# window [09:51, 10:01]: small_count_10m 2 again, card_event_index 2. The case of evt-003 is never opened.
REORDERED = {
    **EVENTS,
    "evt-002": ("card-a", "2026-03-02T10:01:00.000000Z", 130, "m-1", "APPROVE", [], (2, 2, 2, 2, 1, 250, False)),
    "evt-003": ("card-a", "2026-03-02T10:02:00.000000Z", 140, "m-1", "APPROVE", [], (1, 2, 2, 2, 1, 260, False)),
}
# P11's recount of the first run, by hand.
COUNTS = {
    "receipts": {"ADMITTED": 4, "DUPLICATE": 0, "QUARANTINED": 0, "PUBLISH_AMBIGUOUS": 0},
    "admitted_events": 4, "traffic_records": 4, "traffic_events": 4, "enriched_records": 4, "enriched_events": 4,
    "decision_records": 4, "decisions": 4, "decisions_by_outcome": {"APPROVE": 2, "REVIEW": 1, "DECLINE": 1},
    "dla_records": 4, "dla_by_outcome": {"APPROVE": 2, "REVIEW": 1, "DECLINE": 1}, "cases": 2, "labels": 2,
}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def decision_id(run: str, event_id: str) -> str:
    return "dec_" + sha256(f"{run}/{event_id}")[:32]


def case_id(decision: str) -> str:
    return "case_" + sha256(decision)[:32]


def label_id(case: str, label: str) -> str:
    return "lbl_" + sha256(f"{case}/{label}")[:32]


def decision_value(run: str, event_id: str, events: dict[str, Any]) -> dict[str, Any]:
    card, ts, _amount, _merchant, outcome, reasons, values = events[event_id]
    return {"decision_id": decision_id(run, event_id), "event_id": event_id, "platform_run_id": run,
            "scenario_run_id": SCENARIO, "card_id": card, "ts_utc": ts, "decision": outcome,
            "reasons": list(reasons), "policy": POLICY, "features": dict(zip(FEATURES, values, strict=True))}


def counts_of(events: dict[str, Any], **receipts: int) -> dict[str, Any]:
    outcomes = Counter(e[4] for e in events.values())
    by_outcome = {o: outcomes.get(o, 0) for o in ("APPROVE", "REVIEW", "DECLINE")}
    n = len(events)
    return {"receipts": {"ADMITTED": n, "DUPLICATE": 0, "QUARANTINED": 0, "PUBLISH_AMBIGUOUS": 0, **receipts},
            "admitted_events": n, "traffic_records": n, "traffic_events": n, "enriched_records": n,
            "enriched_events": n, "decision_records": n, "decisions": n, "decisions_by_outcome": by_outcome,
            "dla_records": n, "dla_by_outcome": dict(by_outcome), "cases": by_outcome["REVIEW"] + by_outcome["DECLINE"],
            "labels": sum(len(e[5]) for e in events.values() if e[4] != "APPROVE")}


def observed(run: str, events: dict[str, Any] = EVENTS, *, stamp: int = 0, **receipts: int) -> dict[str, Any]:
    """What ``observe`` hands ``snapshot`` for one run: the decision topic's values, the DLA rows (``record`` the
    decision as published, run-derived ids), case and label rows, P11's counts. ``stamp`` fills wall-clock fields a
    platform may add to its records (``decided_at_ms``, ``recorded_at``)."""
    decisions = [decision_value(run, e, events) for e in events]
    for value in decisions:
        if stamp:
            value["decided_at_ms"] = 1_790_000_000_000 + stamp
    dla = []
    for value in decisions:
        record = {**value, "recorded_at": f"2026-11-23T10:{stamp % 60:02d}:00Z"} if stamp else value
        body = json.dumps(record, sort_keys=True, separators=(",", ":"))
        dla.append({"decision_id": value["decision_id"], "event_id": value["event_id"], "decision": value["decision"],
                    "record": record, "record_sha256": sha256(body)})
    flagged = [v for v in decisions if v["decision"] != "APPROVE"]
    cases = [{"case_id": case_id(v["decision_id"]), "decision_id": v["decision_id"], "event_id": v["event_id"],
              "card_id": v["card_id"], "decision": v["decision"]} for v in flagged]
    labels = [{"label_id": label_id(case_id(v["decision_id"]), reason), "case_id": case_id(v["decision_id"]),
               "label": reason, "source": SOURCE} for v in flagged for reason in v["reasons"]]
    return {"run": run, "stream_view": dict(VIEWS), "admitted": sorted(events), "counts": counts_of(events, **receipts),
            "decisions": decisions, "dla": dla, "cases": cases, "labels": labels, "read_shortfalls": {}}


def snap(run: str, events: dict[str, Any] = EVENTS, *, stamp: int = 0, **receipts: int) -> dict[str, Any]:
    return reproducibility.snapshot(**observed(run, events, stamp=stamp, **receipts))


def changed(events: dict[str, Any], event_id: str, **fields: Any) -> dict[str, Any]:
    """``events`` with one event's decision fields replaced (decision, reasons, features: a dict of changes)."""
    card, ts, amount, merchant, outcome, reasons, values = events[event_id]
    features = dict(zip(FEATURES, values, strict=True)) | fields.get("features", {})
    out = dict(events)
    out[event_id] = (card, ts, amount, merchant, fields.get("decision", outcome), fields.get("reasons", reasons),
                     tuple(features[f] for f in FEATURES))
    return out


def drift(first: dict[str, Any], second: dict[str, Any]) -> Finding:
    report = reproducibility.compare(first, second)
    assert report["identical"] is False
    with pytest.raises(Finding) as caught:
        reproducibility.check(report)
    assert caught.value.check == "Reproducibility.semantic_drift"
    return caught.value


def named(finding: Finding, aspect: str, key: str) -> list[str]:
    """The Finding's lines about ``aspect`` and ``key``; at least one, or the test fails."""
    lines = [line for line in finding.details if line.startswith(f"{aspect} {key}")]
    assert lines, f"no line names {aspect} {key}: {finding.details}"
    return lines


# --- identical ---------------------------------------------------------------------------------------------------


def test_the_counts_are_the_hand_worked_ones() -> None:
    assert counts_of(EVENTS) == COUNTS


def test_a_rerun_with_other_run_ids_and_wall_clock_stamps_is_identical() -> None:
    first, second = observed(RUN), observed(RERUN, stamp=37, DUPLICATE=3, QUARANTINED=2)
    # What must differ does: every id and digest derived from the run, the wall-clock stamps, two counts.
    assert {d["decision_id"] for d in first["decisions"]}.isdisjoint(d["decision_id"] for d in second["decisions"])
    assert {c["case_id"] for c in first["cases"]}.isdisjoint(c["case_id"] for c in second["cases"])
    assert {r["record_sha256"] for r in first["dla"]}.isdisjoint(r["record_sha256"] for r in second["dla"])
    report = reproducibility.compare(reproducibility.snapshot(**first), reproducibility.snapshot(**second))
    assert report == {
        "first": RUN, "second": RERUN, "identical": True, "compared": list(reproducibility.ASPECTS),
        "ignored": report["ignored"], "not_compared": [], "differences": [], "left_out": {},
        "summary": dict.fromkeys(reproducibility.ASPECTS, 0)}
    assert {"platform_run_id", "decision_id", "case_id", "label_id", "timestamp_ms", "partition, offset",
            "counts.receipts.DUPLICATE", "counts.receipts.QUARANTINED"} <= set(report["ignored"])
    reproducibility.check(report)


def test_the_snapshot_keys_everything_by_event_and_keeps_what_is_semantic() -> None:
    shot = snap(RUN, stamp=5)
    assert shot["admitted"] == ["evt-001", "evt-002", "evt-003", "evt-004"]
    assert shot["decisions"]["evt-003"] == {
        "card_id": "card-a", "decision": "REVIEW", "event_id": "evt-003", "features": {
            "amount_sum_15m": 390, "card_event_index": 2, "count_10m": 3, "count_15m": 3,
            "distinct_merchants_15m": 1, "merchant_new_for_card": False, "small_count_10m": 3},
        "policy": POLICY, "reasons": ["card_testing"], "scenario_run_id": SCENARIO,
        "ts_utc": "2026-03-02T10:02:00.000000Z"}
    assert shot["dla"] == shot["decisions"]
    assert shot["cases"] == {"evt-003": {"card_id": "card-a", "decision": "REVIEW"},
                             "evt-004": {"card_id": "card-b", "decision": "DECLINE"}}
    assert shot["labels"] == {"evt-003": {"card_testing": SOURCE}, "evt-004": {"high_value_new_merchant": SOURCE}}
    assert shot["counts"] == COUNTS and shot["stream_view"] == VIEWS
    # JSON as it is, and the same bytes whatever order the rows were read in.
    shuffled = observed(RUN, stamp=5)
    for rows in ("decisions", "dla", "cases", "labels"):
        shuffled[rows].reverse()
    assert json.dumps(reproducibility.snapshot(**shuffled)) == json.dumps(shot)


def test_only_the_top_level_of_a_record_is_stripped() -> None:
    record = {"decision_id": "dec_x", "platform_run_id": RUN, "partition": 2, "offset": 17, "timestamp_ms": 1,
              "opened_at": "2026-11-23T10:00:00Z", "received_at_ms": 1, "ts_utc": "2026-03-02T10:00:00Z",
              "format": "v1", "features": {"seen_at": 3, "offset": 4}}
    assert reproducibility.semantic(record) == {"features": {"offset": 4, "seen_at": 3}, "format": "v1",
                                                "ts_utc": "2026-03-02T10:00:00Z"}


# --- one mutation each --------------------------------------------------------------------------------------------


def test_a_decision_taken_on_the_wall_clock_is_named() -> None:
    # The rerun happened at another time of day, and a rule keyed on it reviewed evt-002.
    rerun = changed(EVENTS, "evt-002", decision="REVIEW", reasons=["card_testing"])
    found = drift(snap(RUN), snap(RERUN, rerun))
    line, = named(found, "decisions", "evt-002")
    assert line == (f'decisions evt-002 (decision, reasons): run {RUN} {{"decision":"APPROVE","reasons":[]}}, '
                    f'rerun {RERUN} {{"decision":"REVIEW","reasons":["card_testing"]}}')
    named(found, "dla", "evt-002")
    assert "absent" in named(found, "cases", "evt-002")[0]
    named(found, "labels", "evt-002")
    named(found, "counts", "decisions_by_outcome.APPROVE")
    assert found.details[-1] == (f"10 difference(s) between run {RUN} and its rerun {RERUN}: decisions 1, dla 1, "
                                 "cases 1, labels 1, counts 6")


def test_a_feature_that_differs_is_named_with_both_values() -> None:
    found = drift(snap(RUN), snap(RERUN, changed(EVENTS, "evt-001", features={"amount_sum_15m": 121})))
    line, = named(found, "decisions", "evt-001")
    assert line == (f'decisions evt-001 (features.amount_sum_15m): run {RUN} {{"features.amount_sum_15m":120}}, '
                    f'rerun {RERUN} {{"features.amount_sum_15m":121}}')


def test_a_wall_clock_feature_the_contract_does_not_name_is_named() -> None:
    # P9 recomputes only the contract's features: a lane adding one of its own from time.time_ns() passes it.
    second = observed(RERUN)
    for value in second["decisions"]:  # the DLA rows hold the same records: the lane logs what it publishes
        value["features"]["seen_at_ms_mod"] = 417
    found = drift(snap(RUN), reproducibility.snapshot(**second))
    for event in EVENTS:
        line, = named(found, "decisions", event)
        assert line.endswith(f'run {RUN} {{}}, rerun {RERUN} {{"features.seen_at_ms_mod":417}}')
    report = reproducibility.compare(snap(RUN), reproducibility.snapshot(**second))
    assert report["summary"] == {**dict.fromkeys(reproducibility.ASPECTS, 0), "decisions": 4, "dla": 4}
    assert report["differences"][0]["fields"] == ["features.seen_at_ms_mod"]


def test_a_feature_of_another_json_type_is_a_difference() -> None:
    found = drift(snap(RUN), snap(RERUN, changed(EVENTS, "evt-004", features={"merchant_new_for_card": 1})))
    line, = named(found, "decisions", "evt-004")
    assert line.endswith('{"features.merchant_new_for_card":true}, '
                         f'rerun {RERUN} {{"features.merchant_new_for_card":1}}')


def test_reasons_in_another_order_are_a_difference() -> None:
    # The contract lists reasons in the policy's order, so the snapshot keeps their order.
    both = ["velocity", "high_value_new_merchant"]
    first = changed(EVENTS, "evt-004", reasons=both)
    second = changed(EVENTS, "evt-004", reasons=list(reversed(both)))
    found = drift(snap(RUN, first), snap(RERUN, second))
    line, = named(found, "decisions", "evt-004")
    assert '"reasons":["velocity","high_value_new_merchant"]' in line
    assert '"reasons":["high_value_new_merchant","velocity"]' in line


def test_an_event_admitted_in_one_run_only_is_named() -> None:
    extra = {**EVENTS, "evt-005": ("card-c", "2026-03-02T10:04:00.000000Z", 900, "m-2", "APPROVE", [],
                                   (0, 1, 0, 1, 1, 900, True))}
    found = drift(snap(RUN), snap(RERUN, extra))
    assert named(found, "admitted", "evt-005") == [f'admitted evt-005: run {RUN} absent, rerun {RERUN} "ADMITTED"']
    named(found, "decisions", "evt-005")
    named(found, "counts", "admitted_events")


def test_an_event_missing_from_the_rerun_is_named() -> None:
    missing = {k: v for k, v in EVENTS.items() if k != "evt-004"}
    found = drift(snap(RUN), snap(RERUN, missing))
    assert named(found, "admitted", "evt-004") == [f'admitted evt-004: run {RUN} "ADMITTED", rerun {RERUN} absent']
    for aspect in ("decisions", "dla", "cases", "labels"):
        named(found, aspect, "evt-004")


def test_a_dla_record_that_differs_is_named() -> None:
    second = observed(RERUN)
    row = next(r for r in second["dla"] if r["event_id"] == "evt-003")
    row["record"] = {**row["record"], "decision": "APPROVE", "reasons": []}
    found = drift(snap(RUN), reproducibility.snapshot(**second))
    line, = named(found, "dla", "evt-003")
    assert line.startswith("dla evt-003 (decision, reasons)")
    assert not [line for line in found.details if line.startswith("decisions ")]


def test_a_missing_case_is_named_and_its_labels_still_find_their_event() -> None:
    second = observed(RERUN)
    second["cases"] = [c for c in second["cases"] if c["event_id"] != "evt-003"]
    second["labels"] = [label for label in second["labels"] if label["label"] != "card_testing"]
    second["counts"]["cases"], second["counts"]["labels"] = 1, 1
    found = drift(snap(RUN), reproducibility.snapshot(**second))
    assert named(found, "cases", "evt-003") == [
        f'cases evt-003: run {RUN} {{"card_id":"card-a","decision":"REVIEW"}}, rerun {RERUN} absent']
    named(found, "labels", "evt-003")
    named(found, "counts", "cases")


def test_a_label_that_differs_is_named() -> None:
    second = observed(RERUN)
    second["labels"][0]["source"] = "decision-lane:spine-rules/2"
    found = drift(snap(RUN), reproducibility.snapshot(**second))
    assert named(found, "labels", "evt-003") == [
        f'labels evt-003 (card_testing): run {RUN} {{"card_testing":"{SOURCE}"}}, rerun {RERUN} '
        '{"card_testing":"decision-lane:spine-rules/2"}']


def test_a_label_of_no_case_of_the_run_is_kept_under_its_case() -> None:
    second = observed(RERUN)
    second["labels"].append({"label_id": "lbl_orphan", "case_id": "case_orphan", "label": "velocity",
                             "source": SOURCE})
    found = drift(snap(RUN), reproducibility.snapshot(**second))
    named(found, "labels", "(case case_orphan)")


def test_counts_that_differ_are_named() -> None:
    second = observed(RERUN)
    second["counts"]["decision_records"] = 5  # one decision published twice
    found = drift(snap(RUN), reproducibility.snapshot(**second))
    assert named(found, "counts", "decision_records") == [f"counts decision_records: run {RUN} 4, rerun {RERUN} 5"]


def test_a_stream_view_hash_that_differs_is_named() -> None:
    second = observed(RERUN)
    second["stream_view"]["card_transactions"] = "0f" * 32
    found = drift(snap(RUN), reproducibility.snapshot(**second))
    assert named(found, "stream_view", "card_transactions") == [
        f'stream_view card_transactions: run {RUN} "{"a1" * 32}", rerun {RERUN} "{"0f" * 32}"']


def test_an_event_decided_otherwise_because_of_arrival_order_is_named() -> None:
    found = drift(snap(RUN), snap(RERUN, REORDERED))
    assert named(found, "decisions", "evt-003")[0].startswith(
        "decisions evt-003 (decision, features.amount_sum_15m, features.card_event_index, features.count_10m, "
        "features.count_15m, features.small_count_10m, reasons)")
    assert named(found, "decisions", "evt-002") == [
        f'decisions evt-002 (features.card_event_index): run {RUN} {{"features.card_event_index":1}}, '
        f'rerun {RERUN} {{"features.card_event_index":2}}']
    named(found, "cases", "evt-003")
    named(found, "labels", "evt-003")
    report = reproducibility.compare(snap(RUN), snap(RERUN, REORDERED))
    assert report["summary"] == {"stream_view": 0, "admitted": 0, "decisions": 2, "dla": 2, "cases": 1, "labels": 1,
                                 "counts": 6}


# --- what the comparison is, whatever the runs -------------------------------------------------------------------


def test_compare_reports_the_same_differences_either_way() -> None:
    a, b = snap(RUN), snap(RERUN, REORDERED)
    forth, back = reproducibility.compare(a, b), reproducibility.compare(b, a)
    assert (forth["first"], forth["second"]) == (back["second"], back["first"]) == (RUN, RERUN)
    assert forth["summary"] == back["summary"]
    swapped = [{**d, "first": d["second"], "second": d["first"]} for d in back["differences"]]
    assert forth["differences"] == swapped


def test_an_empty_run_against_an_empty_run_is_no_pass() -> None:
    empty = reproducibility.snapshot(run=RUN, stream_view={}, admitted=[], counts=counts_of({}), decisions=[],
                                     dla=[], cases=[], labels=[], read_shortfalls={})
    report = reproducibility.compare(empty, {**copy.deepcopy(empty), "platform_run_id": RERUN})
    assert report["differences"] == [] and report["identical"] is False
    with pytest.raises(Finding) as caught:
        reproducibility.check(report)
    assert caught.value.check == "Reproducibility.semantic_drift"
    assert f"not compared: the first run {RUN} has no admitted event: nothing to compare" in caught.value.details
    assert f"not compared: the second run {RERUN} has no decision: nothing to compare" in caught.value.details
    assert f"not compared: the first run {RUN} has no stream view hash: nothing to compare" in caught.value.details


def test_a_run_compared_with_itself_or_read_short_is_no_pass() -> None:
    with pytest.raises(Finding, match=f"both snapshots are of run {RUN}"):
        reproducibility.check(reproducibility.compare(snap(RUN), snap(RUN)))
    short = observed(RERUN)
    short["read_shortfalls"] = {"decision": "3 distinct decision_id of 4 expected on fp.bus.decision.v1: ..."}
    with pytest.raises(Finding, match=f"the second run {RERUN}: reading decision fell short: 3 distinct"):
        reproducibility.check(reproducibility.compare(snap(RUN), reproducibility.snapshot(**short)))


def test_a_stream_view_hash_that_is_no_sha256_is_no_pass() -> None:
    # Equal placeholders on both sides (a view the harness did not read) must not compare equal.
    first, second = observed(RUN), observed(RERUN)
    for run in (first, second):
        run["stream_view"]["card_transactions"] = "None"
    report = reproducibility.compare(reproducibility.snapshot(**first), reproducibility.snapshot(**second))
    assert report["differences"] == [] and report["identical"] is False
    with pytest.raises(Finding, match=f"the second run {RERUN}'s stream view hash of card_transactions is 'None', "
                                      "not a sha256"):
        reproducibility.check(report)


def test_the_finding_lists_each_aspect_in_turn_and_says_how_many_it_left_out() -> None:
    # 40 events decided with a wall-clock feature, and one stream view hash: 40 + 40 + 1 differences.
    many: dict[str, Any] = {f"evt-{i:03d}": ("card-z", "2026-03-02T10:00:00.000000Z", 700, "m-9", "APPROVE", [],
                                             (i, 1, 0, 1, 1, 700, i == 0)) for i in range(40)}
    second = observed(RERUN, many)
    second["stream_view"]["card_profiles"] = "00" * 32
    for value in second["decisions"]:
        value["features"]["seen_at_ms_mod"] = 3
    for row in second["dla"]:
        row["record"]["features"]["seen_at_ms_mod"] = 3
    found = drift(snap(RUN, many), reproducibility.snapshot(**second))
    listed = found.details[:-1]
    assert len(listed) == reproducibility.CHECK_LINES
    assert [line.split()[0] for line in listed[:3]] == ["stream_view", "decisions", "dla"]
    assert found.details[-1] == (f"81 difference(s) between run {RUN} and its rerun {RERUN}: stream_view 1, "
                                 "decisions 40, dla 40; 61 not listed here")


def test_the_report_lists_at_most_so_many_differences_of_an_aspect_and_says_how_many_more(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reproducibility, "LISTED_PER_ASPECT", 2)
    report = reproducibility.compare(snap(RUN), snap(RERUN, {}))
    assert report["summary"]["admitted"] == 4 and report["left_out"]["admitted"] == 2
    assert [d["key"] for d in report["differences"] if d["aspect"] == "admitted"] == ["evt-001", "evt-002"]
