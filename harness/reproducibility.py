"""Reproducibility: a rerun of the same scenario decides the same things.

A rerun is the same seed, the same events and the same ``scenario_run_id`` under a new ``platform_run_id``.
``observe`` takes the semantic snapshot of one run, cert-independent like ``p11.gather``; ``compare`` is a pure
function of two snapshots and ``check`` raises a Finding naming each difference, aspect by aspect:

| aspect | key | what is compared |
|---|---|---|
| ``stream_view`` | output | the stream view's content hash as the harness read it for the run (its own P3 recompute) |
| ``admitted`` | event id | the event identities with an ADMITTED receipt |
| ``decisions`` | event id | the decision record as published, without the fields of ``IGNORED`` |
| ``dla`` | event id | the DLA row's ``record`` (the decision as the lane logged it), without the same fields |
| ``cases`` | event id | the case row (``card_id``, ``decision``) |
| ``labels`` | event id of the case | label name -> ``source`` |
| ``counts`` | count name | ``p11.recount`` of ``p11.gather``, but for ``IGNORED_COUNTS`` |

Run-derived ids (``decision_id``, ``case_id``, ``label_id``) are replaced by the event id they stand for, read from
the record itself (a decision's and a DLA record's ``event_id``, a case row's ``event_id``, a label's case row).
Event time (``ts_utc``) and every feature are semantic: a feature the contract does not name is compared too, so a
decision that depends on the wall clock or on arrival order differs between the runs. Reasons keep their order:
the contract lists them in the policy's order, so another order in a rerun is a difference, not noise. Only the
top level of a record is stripped of ``IGNORED`` fields; what is inside ``features`` is always compared.

A comparison with nothing to compare (a run without admitted events, decisions, DLA records or stream view hashes,
a stream view "hash" that is no sha256, a read that fell short, the same run twice) is no pass: ``compare`` lists
why in ``not_compared`` and ``check`` raises.
"""

from __future__ import annotations

import json
import re
from itertools import zip_longest
from typing import Any

from harness import oracle_views, pipeline
from harness.aws import AwsSession
from harness.errors import Finding
from harness.kafka import KafkaConnection
from harness.phases import p11

ASPECTS = ("stream_view", "admitted", "decisions", "dla", "cases", "labels", "counts")
# Aspects a run must have something in, or the comparison judges nothing (a run may have no case or label).
REQUIRED = {"stream_view": "stream view hash", "admitted": "admitted event", "decisions": "decision",
            "dla": "DLA record"}
RUN_FIELDS = ("platform_run_id", "decision_id", "case_id", "label_id", "record_sha256")
POSITION_FIELDS = ("partition", "offset", "timestamp_ms")
_WHEN = re.compile(r".+_at(_(ms|us|ns|s))?")
_SHA256 = re.compile(r"[0-9a-f]{64}")
IGNORED = {
    "platform_run_id": "names the run: a rerun has a new one by definition",
    "decision_id": "sha256 of <platform_run_id>/<event_id> (contract §6): decisions and DLA records are keyed by "
                   "their event_id instead",
    "case_id": "sha256 of the decision_id, so of the run id: cases are keyed by their event_id instead",
    "label_id": "sha256 of the case_id, so of the run id: labels are keyed by their case's event_id instead",
    "record_sha256": "sha256 of the published bytes, which hold the platform_run_id and decision_id; the record "
                     "itself is compared",
    "*_at, *_at_ms (pinned_at, recorded_at, opened_at, appended_at, received_at_ms)": "when it happened on the wall "
    "clock, not what was decided; event time (ts_utc) is compared",
    "timestamp_ms": "the Kafka record time: when the broker got it",
    "partition, offset": "where a record landed: the topics are shared, a rerun's records follow the first run's",
}
IGNORED_COUNTS = {
    "receipts.DUPLICATE": "counts what senders sent again (retries, P6's kill and restart at a wall-clock moment), "
                          "not what the platform decided; the admitted event ids are compared",
    "receipts.QUARANTINED": "counts refused input, which includes the harness's own P4 probes (random event ids, as "
                            "many as the certification sends that run); an event of the scenario quarantined in one "
                            "run only is missing from its admitted ids",
}
LISTED_PER_ASPECT = 500
CHECK_LINES = 20
NO_EVENT = "(no event_id)"


# --- the snapshot ---------------------------------------------------------------------------------------------


def _ordered(value: Any) -> Any:
    """``value`` with every object's keys sorted (lists keep their order): one serialisation for one content."""
    if isinstance(value, dict):
        return {str(k): _ordered(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list):
        return [_ordered(v) for v in value]
    return value


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def ignored_field(name: str) -> bool:
    """Whether a record's top-level field must differ between runs (``IGNORED``)."""
    return name in RUN_FIELDS or name in POSITION_FIELDS or bool(_WHEN.fullmatch(name))


def semantic(record: Any) -> Any:
    """A record without its run-specific, position and wall-clock fields (top level only)."""
    if not isinstance(record, dict):
        return _ordered(record)
    return _ordered({k: v for k, v in record.items() if not ignored_field(str(k))})


def _event_of(record: Any) -> str:
    event = record.get("event_id") if isinstance(record, dict) else None
    return str(event) if event is not None else NO_EVENT


def per_event(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """(event id, record) pairs as event id -> its semantic record; an event with distinct records in one run ->
    ``{"several": [...]}`` (identical copies are one: how many records there were is in ``counts``)."""
    grouped: dict[str, dict[str, Any]] = {}
    for event, record in pairs:
        value = semantic(record)
        grouped.setdefault(event, {})[_canonical(value)] = value
    return {event: (next(iter(seen.values())) if len(seen) == 1 else {"several": [seen[k] for k in sorted(seen)]})
            for event, seen in sorted(grouped.items())}


def labels_per_event(cases: list[dict[str, Any]], labels: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Case event id -> {label: source}; a label's case is found by its case row (a label of no case of the run
    is kept under ``(case <case_id>)``: there is no event to name)."""
    event_of = {c["case_id"]: _event_of(c) for c in cases}
    found: dict[str, dict[str, Any]] = {}
    for label in labels:
        event = event_of.get(label["case_id"], f"(case {label['case_id']})")
        found.setdefault(event, {})[str(label["label"])] = label.get("source")
    return {event: dict(sorted(names.items())) for event, names in sorted(found.items())}


def stream_view_hashes(recomputed: dict[str, Any]) -> dict[str, str]:
    """Output -> content hash of its stream view, from ``oracle_views.observe`` (P3's ``recomputed.json``)."""
    outputs = recomputed.get("outputs") or {}
    return {name: str(seen["view"]["content_hash"]) for name, seen in sorted(outputs.items())
            if isinstance(seen, dict) and isinstance(seen.get("view"), dict) and seen["view"].get("content_hash")}


def read_stream_views(aws: AwsSession, *, source: str, oracle_root: str, evidence_root: str) -> dict[str, str]:
    """The harness's own reading of the run's stream views (P3's recompute), as ``stream_view`` for ``observe``."""
    return stream_view_hashes(oracle_views.observe(aws, source=source, oracle_root=oracle_root,
                                                   evidence_root=evidence_root))


def snapshot(*, run: str, stream_view: dict[str, str], admitted: list[str], counts: dict[str, Any],
             decisions: list[dict[str, Any]], dla: list[dict[str, Any]], cases: list[dict[str, Any]],
             labels: list[dict[str, Any]], read_shortfalls: dict[str, str]) -> dict[str, Any]:
    """The semantic snapshot of one run from what the harness read (pure): decision values as published, DLA rows
    (``pipeline.dla_rows``), case and label rows (``pipeline.case_rows``, ``pipeline.label_rows``)."""
    return {
        "platform_run_id": run,
        "stream_view": dict(sorted(stream_view.items())),
        "admitted": sorted(set(admitted)),
        "decisions": per_event([(_event_of(v), v) for v in decisions]),
        "dla": per_event([(str(r["event_id"]), r["record"]) for r in dla]),
        "cases": per_event([(str(r["event_id"]), {k: v for k, v in r.items() if k != "event_id"}) for r in cases]),
        "labels": labels_per_event(cases, labels),
        "counts": _ordered(counts),
        "read_shortfalls": dict(sorted(read_shortfalls.items())),
    }


def observe(aws: AwsSession, conn: KafkaConnection, *, run: str, evidence_root: str, topics: dict[str, str],
            dsn: str, stream_view: dict[str, str], timeout_s: float = 60.0) -> dict[str, Any]:
    """One run's semantic snapshot, read by the harness: P11's observation (``p11.gather``: receipts, the three
    topics, the DLA, cases and labels) for the admitted ids and ``p11.recount``; then what gather keeps only ids
    and outcomes of: the decision values (the decision topic read again), the DLA records, the case and label rows.
    ``stream_view`` is output -> content hash as the run's own P3 recompute read it (``read_stream_views``)."""
    gathered = p11.gather(aws, conn, run=run, evidence_root=evidence_root, topics=topics, dsn=dsn,
                          timeout_s=timeout_s)
    admitted = pipeline.admitted_events(gathered["receipts"])
    decided, shortfall = pipeline.run_records(conn, topics["decision"], run, identity="decision_id",
                                              expected=len(admitted), timeout_s=timeout_s)
    shortfalls = {**gathered["read_shortfalls"], **({"decision values": shortfall} if shortfall else {})}
    return snapshot(run=run, stream_view=stream_view, admitted=admitted, counts=p11.recount(gathered),
                    decisions=[d["value"] for d in decided], dla=pipeline.dla_rows(dsn, run),
                    cases=pipeline.case_rows(dsn, run), labels=pipeline.label_rows(dsn, run),
                    read_shortfalls=shortfalls)


# --- the comparison --------------------------------------------------------------------------------------------


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested objects as dotted paths (``features.count_15m``); lists and scalars are leaves."""
    if not isinstance(value, dict) or (not value and prefix):
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, item in value.items():
        out.update(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
    return out


def difference(aspect: str, key: str, first: Any, second: Any) -> dict[str, Any] | None:
    """How one key differs (None: it does not), as JSON sees it (``true`` is not ``1``). An absent key is None; for
    two objects, only the fields (dotted paths) that differ are kept on each side, and ``fields`` names them (a field
    absent on a side is left out)."""
    if _canonical(first) == _canonical(second):
        return None
    if isinstance(first, dict) and isinstance(second, dict):
        a, b = _flat(first), _flat(second)
        fields = sorted(p for p in set(a) | set(b) if p not in a or p not in b or _canonical(a[p]) != _canonical(b[p]))
        return {"aspect": aspect, "key": key, "fields": fields,
                "first": {p: a[p] for p in fields if p in a}, "second": {p: b[p] for p in fields if p in b}}
    return {"aspect": aspect, "key": key, "first": first, "second": second}


def _by_key(snap: dict[str, Any], aspect: str) -> dict[str, Any]:
    """One aspect of a snapshot as key -> value."""
    if aspect == "admitted":
        return dict.fromkeys(snap.get("admitted") or [], "ADMITTED")
    if aspect == "counts":
        return {k: v for k, v in _flat(snap.get("counts") or {}).items() if k not in IGNORED_COUNTS}
    return dict(snap.get(aspect) or {})


def aspect_differences(aspect: str, first: dict[str, Any], second: dict[str, Any]) -> list[dict[str, Any]]:
    """Every key of one aspect whose value differs, in key order."""
    found = (difference(aspect, key, first.get(key), second.get(key)) for key in sorted(set(first) | set(second)))
    return [d for d in found if d is not None]


def not_compared(first: dict[str, Any], second: dict[str, Any]) -> list[str]:
    """Why the comparison cannot vouch for a rerun: an aspect empty in a run, a stream view hash that is no sha256
    (equal placeholders would compare equal), a read that fell short, one run twice."""
    reasons = []
    if first.get("platform_run_id") == second.get("platform_run_id"):
        reasons.append(f"both snapshots are of run {first.get('platform_run_id')}: a rerun has a platform_run_id of "
                       "its own")
    for side, snap in (("first", first), ("second", second)):
        run = snap.get("platform_run_id")
        reasons += [f"the {side} run {run} has no {what}: nothing to compare"
                    for aspect, what in REQUIRED.items() if not snap.get(aspect)]
        reasons += [f"the {side} run {run}'s stream view hash of {name} is {value!r}, not a sha256: its view was "
                    "not read" for name, value in sorted((snap.get("stream_view") or {}).items())
                    if not isinstance(value, str) or not _SHA256.fullmatch(value)]
        reasons += [f"the {side} run {run}: reading {what} fell short: {why}"
                    for what, why in sorted((snap.get("read_shortfalls") or {}).items())]
    return reasons


def compare(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Two runs' snapshots, aspect by aspect (pure). At most ``LISTED_PER_ASPECT`` differences of an aspect are
    listed; ``summary`` counts them all and ``left_out`` says how many of an aspect were not listed."""
    found = {aspect: aspect_differences(aspect, _by_key(first, aspect), _by_key(second, aspect))
             for aspect in ASPECTS}
    reasons = not_compared(first, second)
    return {
        "first": first.get("platform_run_id"),
        "second": second.get("platform_run_id"),
        "identical": not reasons and not any(found.values()),
        "compared": list(ASPECTS),
        "ignored": {**IGNORED, **{f"counts.{name}": why for name, why in IGNORED_COUNTS.items()}},
        "not_compared": reasons,
        "differences": [d for aspect in ASPECTS for d in found[aspect][:LISTED_PER_ASPECT]],
        "left_out": {aspect: len(ds) - LISTED_PER_ASPECT for aspect, ds in found.items()
                     if len(ds) > LISTED_PER_ASPECT},
        "summary": {aspect: len(ds) for aspect, ds in found.items()},
    }


# --- the verdict -------------------------------------------------------------------------------------------------


def _shown(value: Any) -> str:
    return "absent" if value is None else _canonical(value)


def describe(d: dict[str, Any], first: str, second: str) -> str:
    """One difference as a line: aspect, key, and both runs' values."""
    fields = f" ({', '.join(d['fields'])})" if d.get("fields") else ""
    return (f"{d['aspect']} {d['key']}{fields}: run {first} {_shown(d['first'])}, rerun {second} "
            f"{_shown(d['second'])}")


def _first_of_each(differences: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` differences taken in turn from each aspect, so one noisy aspect does not hide the others."""
    by_aspect: dict[str, list[dict[str, Any]]] = {}
    for d in differences:
        by_aspect.setdefault(d["aspect"], []).append(d)
    turns = zip_longest(*by_aspect.values())
    return [d for turn in turns for d in turn if d is not None][:limit]


def check(report: dict[str, Any]) -> None:
    """A report that is not ``identical`` is a Finding: why nothing could be compared, then the first
    ``CHECK_LINES`` differences (each aspect in turn), then the totals per aspect and how many were not listed."""
    if report["identical"]:
        return
    first, second = str(report["first"]), str(report["second"])
    lines = [f"not compared: {why}" for why in report["not_compared"]]
    shown = _first_of_each(report["differences"], CHECK_LINES)
    lines += [describe(d, first, second) for d in shown]
    total = sum(report["summary"].values())
    if total:
        per_aspect = ", ".join(f"{aspect} {n}" for aspect, n in report["summary"].items() if n)
        untold = total - len(shown)
        lines.append(f"{total} difference(s) between run {first} and its rerun {second}: {per_aspect}"
                     + (f"; {untold} not listed here" if untold else ""))
    raise Finding("Reproducibility.semantic_drift", lines)
