"""P7 ingest commit: IG's summaries are claims; the harness reconciles its receipts with the topic itself.

History first: ``observe`` reads the receipts, the whole traffic topic, the stream view and IG's
summaries; ``judge`` is a pure function of that record, so the verdict can be recomputed offline.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import Any

from harness import ig_client, ingress
from harness.aws import s3
from harness.errors import Finding
from harness.kafka import produce
from harness.kafka.consume import watermarks
from harness.phases import p01, p02, p04, p06
from harness.session import Certification

SUMMARIES = ("ingest/receipt_summary.json", "ingest/quarantine_summary.json", "ingest/kafka_offsets_snapshot.json")
STATUSES = ("ADMITTED", "DUPLICATE", "QUARANTINED", "PUBLISH_AMBIGUOUS")
FAMILIES = ("summaries", "receipts_to_records", "unreceipted_records", "refused_not_published", "stream_view",
            "ambiguous", "offsets")
TANSU_WATERMARK = ("the embedded broker (Tansu) reports the high watermark of a multi-record batch as its base "
                   "offset + 1, so the broker's answer cannot be compared with the delivery reports here; it is "
                   "recorded beside them")


def ensure_committed(cert: Certification) -> dict[str, Any]:
    return cert.once("p7.commit", lambda: _commit(cert))


def _commit(cert: Certification) -> dict[str, Any]:
    pins = p01.ensure_pinned(cert)
    p06.ensure_streamed(cert)
    answer = ig_client.commit(p02.ig(cert).url or "", key=p04.writer_key(cert))
    bucket, prefix = s3.split_url(pins.evidence_root)
    claims: dict[str, Any] = {}
    for relative in SUMMARIES:
        body = s3.get_optional(cert.aws_session, bucket=bucket, key=prefix + relative)
        if body is not None:
            cert.evidence_bytes(f"runs/{pins.platform_run_id}/{relative}", body)
            claims[relative] = s3.parse_json(body, where=f"s3://{bucket}/{prefix}{relative}")
    record = {"platform_run_id": pins.platform_run_id, "answer": answer.to_json(), "claims": claims}
    cert.evidence(f"runs/{pins.platform_run_id}/ingest/commit_observed.json", record)
    return record


def observe(cert: Certification, run_id: str, *, scenario_run_id: str, evidence_root: str, oracle_root: str | None,
            claims: dict[str, Any]) -> dict[str, Any]:
    """Everything P7 judges, read by the harness: receipts, the whole traffic topic, the stream view."""
    receipts = ingress.flat_receipts(ingress.receipt_records(cert.aws_session, evidence_root))
    topic_name = cert.handles.topic_roles["traffic"]
    topic = ingress.topic_events(cert.kafka(), topic_name, min_end=ingress.acked_end_offsets(receipts))
    rows = ingress.view_rows(cert.aws_session, oracle_root)[0] if oracle_root else []
    return {
        "platform_run_id": run_id,
        "scenario_run_id": scenario_run_id,
        "profile": cert.options.profile,
        "receipts": [{k: r.get(k) for k in ("event_id", "status", "partition", "offset", "reason", "request_id")}
                     for r in receipts],
        "topic": [{**e.to_json(), "event": e.event} for e in topic],
        "expected": [ingress.expected_event(r) for r in rows],
        "claims": claims,
        "broker_watermarks": {str(p): list(w) for p, w in watermarks(cert.kafka(), topic_name).items()},
    }


def judge(obs: dict[str, Any]) -> dict[str, Any]:
    """The verdict from the observation alone: problems per family, waivers, the harness's recount."""
    run = obs["platform_run_id"]
    problems: dict[str, list[str]] = {family: [] for family in FAMILIES}
    waived: dict[str, str] = {}
    receipts = obs["receipts"]
    topic = obs["topic"]
    run_topic = [e for e in topic if e["platform_run_id"] == run]
    at = {(e["partition"], e["offset"]): e for e in topic}
    counts = Counter(r["status"] for r in receipts)
    admitted = [r for r in receipts if r["status"] == "ADMITTED"]
    ambiguous = {r["event_id"] for r in receipts if r["status"] == "PUBLISH_AMBIGUOUS"}
    occurrences = Counter(e["event_id"] for e in run_topic)
    anywhere = Counter(e["event_id"] for e in topic)  # refused events must be on no run's records

    # Claims: IG's summaries against the harness's own recount of the durable receipts.
    summary = obs["claims"].get(SUMMARIES[0])
    if summary is None:
        problems["summaries"].append(f"IG wrote no {SUMMARIES[0]}")
    else:
        recount = {s: counts.get(s, 0) for s in STATUSES}
        if summary.get("counts") != recount or summary.get("events") != len(receipts):
            problems["summaries"].append(f"IG's receipt summary claims {summary.get('events')} events "
                                         f"{summary.get('counts')}, its receipts show {len(receipts)} {recount}")
        if sorted(summary.get("ambiguous_event_ids") or []) != sorted(ambiguous):
            problems["summaries"].append(f"IG's receipt summary names ambiguous events "
                                         f"{summary.get('ambiguous_event_ids')}, its receipts {sorted(ambiguous)}")
    quarantine = obs["claims"].get(SUMMARIES[1])
    if quarantine is None or quarantine.get("count") != counts.get("QUARANTINED", 0):
        problems["summaries"].append(f"IG's quarantine summary claims {quarantine and quarantine.get('count')} "
                                     f"quarantined, its receipts show {counts.get('QUARANTINED', 0)}")

    for r in admitted:
        e = at.get((r["partition"], r["offset"]))
        if e is None:
            problems["receipts_to_records"].append(f"ADMITTED {r['event_id']} names {r['partition']}/{r['offset']}: "
                                                   "no record there")
        elif e["event_id"] != r["event_id"]:
            problems["receipts_to_records"].append(f"ADMITTED {r['event_id']} names {r['partition']}/{r['offset']}, "
                                                   f"which holds {e['event_id']}")
    for r in receipts:  # a DUPLICATE names the original's position: it must hold the same event
        if r["status"] == "DUPLICATE" and r.get("partition") is not None:
            e = at.get((r["partition"], r["offset"]))
            if e is None or e["event_id"] != r["event_id"]:
                problems["receipts_to_records"].append(
                    f"DUPLICATE {r['event_id']} names {r['partition']}/{r['offset']}, which holds "
                    f"{e['event_id'] if e else 'no record'}")
    problems["receipts_to_records"] += [f"{event_id} has {n} ADMITTED receipts" for event_id, n in
                                        Counter(r["event_id"] for r in admitted).items() if n > 1]
    receipted = {(r["partition"], r["offset"]) for r in admitted}
    problems["unreceipted_records"] += [
        f"record at {e['partition']}/{e['offset']} (event {e['event_id']}) has no receipt"
        for e in run_topic if (e["partition"], e["offset"]) not in receipted and e["event_id"] not in ambiguous]
    problems["unreceipted_records"] += [f"record at {e['partition']}/{e['offset']} is not an event envelope"
                                        for e in topic if e["event_id"] is None]

    admitted_ids = Counter(r["event_id"] for r in admitted)
    for r in receipts:
        if r["status"] == "QUARANTINED" and anywhere.get(r["event_id"], 0) > admitted_ids.get(r["event_id"], 0):
            problems["refused_not_published"].append(f"QUARANTINED {r['event_id']} is on the traffic topic")
    problems["refused_not_published"] += [f"event {event_id} is on the traffic topic {n} times"
                                          for event_id, n in occurrences.items() if n > 1]

    by_id = {e["event_id"]: e for e in run_topic}
    expected_ids = [e["event_id"] for e in obs["expected"]]
    missing = [e for e in expected_ids if e not in by_id]
    extra = sorted(set(by_id) - set(expected_ids))
    if not expected_ids:
        problems["stream_view"].append("the harness read no stream view rows for the run")
    if missing:
        problems["stream_view"].append(f"{len(missing)} stream view event(s) not on the topic: {missing[:5]}")
    if extra:
        problems["stream_view"].append(f"{len(extra)} event(s) on the topic that the stream view lacks: {extra[:5]}")
    for want in obs["expected"]:
        got = (by_id.get(want["event_id"]) or {}).get("event") or {}
        fields = ("ts_utc", "payload", "event_type", "scenario_run_id")
        wanted = {"event_type": "card_transaction", "scenario_run_id": obs.get("scenario_run_id"), **want}
        differs = {k: (got.get(k), wanted[k]) for k in fields if wanted[k] is not None and got.get(k) != wanted[k]}
        if got and differs:
            problems["stream_view"].append(f"event {want['event_id']} on the topic differs from its stream view row "
                                           f"(topic, stream view): {differs}")

    unreconciled = sorted(e for e in ambiguous if occurrences.get(e, 0) != 1)
    if unreconciled:
        problems["ambiguous"].append(f"{len(unreconciled)} PUBLISH_AMBIGUOUS event(s) not reconciled with the topic "
                                     f"(on it not exactly once): {unreconciled[:10]}")

    acked = ingress.acked_end_offsets(receipts)
    snapshot = (obs["claims"].get(SUMMARIES[2]) or {}).get("partitions")
    if snapshot is None:
        problems["offsets"].append(f"IG wrote no {SUMMARIES[2]}")
    else:
        claimed = {int(p): v.get("acked_end_offset") for p, v in snapshot.items() if v.get("acked_end_offset")
                   is not None}
        if claimed != acked:
            problems["offsets"].append(f"IG's offsets snapshot claims acknowledged ends {claimed}, the delivery "
                                       f"reports in its receipts give {acked}")
    broker = {int(p): w[1] for p, w in obs["broker_watermarks"].items()}
    if obs["profile"] == "embedded":
        waived["P7.broker_watermark"] = TANSU_WATERMARK
    else:
        problems["offsets"] += [f"partition {p}: the broker's high watermark {broker.get(p)} is below the "
                                f"acknowledged end {end}" for p, end in acked.items() if broker.get(p, -1) < end]
    return {"platform_run_id": run, "counts": {s: counts.get(s, 0) for s in STATUSES}, "acked_end_offsets": acked,
            "broker_high_watermarks": broker, "problems": problems, "waived": waived}


def reconcile(cert: Certification) -> dict[str, Any]:
    return cert.once("p7.reconcile", lambda: _reconcile(cert))


def _reconcile(cert: Certification) -> dict[str, Any]:
    pins = p01.ensure_pinned(cert)
    commit = ensure_committed(cert)
    obs = observe(cert, pins.platform_run_id, scenario_run_id=pins.scenario_run_id, evidence_root=pins.evidence_root,
                  oracle_root=pins.run_config["oracle_root"], claims=commit["claims"])
    verdict = judge(obs)
    cert.evidence(f"runs/{pins.platform_run_id}/ingest/reconciliation.json", {"observed": obs, "judged": verdict})
    for check, reason in verdict["waived"].items():
        cert.waive(check, reason)
    return verdict


def check(verdict: dict[str, Any], *families: str) -> None:
    problems = [f"{family}: {p}" for family in families for p in verdict["problems"][family]]
    if problems:
        raise Finding(f"P7.{'+'.join(families)}", problems)


def check_committed(commit: dict[str, Any]) -> None:
    missing = [s for s in SUMMARIES if s not in commit["claims"]]
    if commit["answer"]["status"] != 200 or missing:
        raise Finding("P7.commit", [f"IG commit answered {commit['answer']['status']}: {commit['answer']['body']}; "
                                    f"missing {missing}"])


def rogue_record(cert: Certification) -> dict[str, Any]:
    """Write a well-formed event of a separate run straight to the traffic topic, around IG; reconcile that run."""
    pins = p01.ensure_pinned(cert)
    reconcile(cert)  # the run's own verdict is taken before the topic is touched
    rogue_run = p01.run_id(cert, "written-around-ig")
    event_id = f"rogue-{uuid.uuid4().hex[:8]}"
    event = {"event_id": event_id, "event_type": "card_transaction", "platform_run_id": rogue_run,
             "scenario_run_id": pins.scenario_run_id, "ts_utc": "2026-01-01T00:00:00Z",
             "payload": {"card_id": "card-rogue", "merchant_id": "m-rogue", "amount_minor": 1, "currency": "EUR",
                         "channel": "ecom"}}
    (partition, offset), = produce.send(cert.kafka(), cert.handles.topic_roles["traffic"],
                                        [(b"card-rogue", json.dumps(event, sort_keys=True).encode())])
    evidence_root = f"s3://{cert.handles.bucket('evidence').name}/runs/{rogue_run}/"
    obs = observe(cert, rogue_run, scenario_run_id=pins.scenario_run_id, evidence_root=evidence_root,
                  oracle_root=None, claims={})
    verdict = judge(obs)
    record = {"written": {"platform_run_id": rogue_run, "event_id": event_id, "partition": partition,
                          "offset": offset}, "judged": verdict}
    cert.evidence(f"runs/{pins.platform_run_id}/ingest/fault_record_around_ig.json", record)
    return record


def check_rogue_found(record: dict[str, Any]) -> None:
    w = record["written"]
    named = f"record at {w['partition']}/{w['offset']} (event {w['event_id']}) has no receipt"
    if named not in record["judged"]["problems"]["unreceipted_records"]:
        raise Finding("P7.fail_closed", [f"the reconciliation did not find the record written around IG ({named}): "
                                          f"{record['judged']['problems']['unreceipted_records']}"])
