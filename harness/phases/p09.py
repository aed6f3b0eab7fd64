"""P9 decision lane + DLA: one decision and one append-only DLA record per admitted event, idempotent under
redelivery, scored against the Data Engine's ground truth.

`decision_lane/summary.json` is a claim. The harness consumes the decision topic, reads the DLA rows
from the database at the DSN in SSM, and reads `fraud_pattern` from the stream view itself;
``judge`` is a pure function of that record.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from harness import db, ingress, pipeline
from harness.errors import Finding, HarnessError, Timeout
from harness.kafka import admin
from harness.phases import claims, p01, p02, p08
from harness.session import Certification
from harness.wait import wait_until

SUMMARY = "decision_lane/summary.json"
FAMILIES = ("decisions", "policy", "dla", "ground_truth", "summary")
CLAIM_TIMEOUT_S = 180.0


def ensure_decided(cert: Certification) -> dict[str, Any]:
    return cert.once("p9.decided", lambda: _decided(cert))


def _decided(cert: Certification) -> dict[str, Any]:
    pins = p01.ensure_pinned(cert)
    p08.ensure_caught_up(cert)
    claim = claims.wait(cert, pins, SUMMARY, timeout_s=CLAIM_TIMEOUT_S, who="the decision lane")
    obs = observe(cert, pins, claim=claim)
    verdict = judge(obs)
    cert.evidence(f"runs/{pins.platform_run_id}/decision_lane/decisions_observed.json", obs)
    cert.evidence(f"runs/{pins.platform_run_id}/decision_lane/scores.json",
                  {"platform_run_id": pins.platform_run_id, "scores": verdict["scores"]})
    return {"observed": obs, "judged": verdict}


def dsn(cert: Certification) -> str:
    return pipeline.platform_dsn(cert.aws_session, cert.handles.ssm["db_dsn"])


def observe(cert: Certification, pins: p01.Pins, *, claim: dict[str, Any] | None) -> dict[str, Any]:
    run = pins.platform_run_id
    receipts = ingress.flat_receipts(ingress.receipt_records(cert.aws_session, pins.evidence_root))
    admitted = pipeline.admitted_events(receipts)
    topic = cert.handles.topic_roles["decision"]
    decisions, shortfall = pipeline.run_records(cert.kafka(), topic, run, identity="decision_id",
                                                expected=len(admitted))
    traffic = ingress.topic_events(cert.kafka(), cert.handles.topic_roles["traffic"],
                                   min_end=ingress.acked_end_offsets(receipts))
    return {
        "platform_run_id": run,
        "topic": topic,
        "admitted": admitted,
        "traffic": [traffic_row(e.partition, e.offset, e.event) for e in traffic
                    if e.platform_run_id == run and e.event is not None],
        "decisions": decisions,
        "read_shortfall": shortfall,
        "dla": pipeline.dla_rows(dsn(cert), run),
        "truth": pipeline.ground_truth(cert.aws_session, pins.run_config["oracle_root"]),
        "claim": claim,
    }


def traffic_row(partition: int, offset: int, event: dict[str, Any]) -> dict[str, Any]:
    """What the feature recomputation needs of one traffic record (None fields: not an envelope)."""
    raw = event.get("payload")
    payload: dict[str, Any] = raw if isinstance(raw, dict) else {}
    try:
        ts = pipeline.ts_us(str(event.get("ts_utc")))
    except ValueError:
        ts = None
    return {"partition": partition, "offset": offset, "event_id": event.get("event_id"), "ts_us": ts,
            "card_id": payload.get("card_id"), "merchant_id": payload.get("merchant_id"),
            "amount_minor": payload.get("amount_minor")}


def judge_policy(obs: dict[str, Any]) -> list[str]:
    """Each decision's features against the harness's recomputation from the traffic topic, and its outcome
    and reasons against the contract's policy applied to them."""
    rows = [r for r in obs["traffic"] if r["ts_us"] is not None and isinstance(r["amount_minor"], int)]
    recomputed = pipeline.features(rows)
    amounts = {r["event_id"]: r["amount_minor"] for r in rows}
    problems = []
    for d in obs["decisions"]:
        v, event = d["value"], str(d["value"].get("event_id"))
        if event not in recomputed:
            problems.append(f"decision {v.get('decision_id')} is for {event}, which is not a record of the run on "
                            "the traffic topic")
            continue
        claimed = v.get("features") if isinstance(v.get("features"), dict) else {}
        differs = {k: (claimed.get(k), recomputed[event][k]) for k in pipeline.FEATURE_NAMES
                   if claimed.get(k) != recomputed[event][k]}
        if differs:
            problems.append(f"decision for {event}: features (decision, recomputed from the traffic topic) "
                            f"{differs}")
        outcome, reasons = pipeline.policy(recomputed[event], amounts[event])
        if (v.get("decision"), v.get("reasons")) != (outcome, reasons):
            problems.append(f"decision for {event}: {v.get('decision')} {v.get('reasons')}; the policy on the "
                            f"recomputed features gives {outcome} {reasons}")
    return problems


def judge(obs: dict[str, Any]) -> dict[str, Any]:
    run = obs["platform_run_id"]
    problems: dict[str, list[str]] = {f: [] for f in FAMILIES}
    admitted = set(obs["admitted"])
    values = [d["value"] for d in obs["decisions"]]
    per_event = Counter(v.get("event_id") for v in values)
    per_id = Counter(v.get("decision_id") for v in values)
    if obs["read_shortfall"]:
        problems["decisions"].append(obs["read_shortfall"])
    if not admitted:
        problems["decisions"].append("the run has no ADMITTED receipt: there is nothing to decide")
    missing = sorted(admitted - set(per_event), key=str)
    if missing:
        problems["decisions"].append(f"{len(missing)} admitted event(s) have no decision: {missing[:10]}")
    problems["decisions"] += [f"event {e} has {n} decision records"
                              for e, n in sorted(per_event.items(), key=str) if n > 1]
    problems["decisions"] += [f"decision {i} is on the topic {n} times"
                              for i, n in sorted(per_id.items(), key=str) if n > 1]
    problems["decisions"] += [f"decision for {e}, which has no ADMITTED receipt"
                              for e in sorted(set(per_event) - admitted, key=str)]
    for d in obs["decisions"]:
        v = d["value"]
        where = f"decision at {d['partition']}/{d['offset']}"
        want = pipeline.decision_id(run, str(v.get("event_id")))
        if v.get("decision_id") != want:
            problems["decisions"].append(f"{where} has decision_id {v.get('decision_id')!r}, the contract's id "
                                         f"for {v.get('event_id')} is {want}")
        outcome, reasons = v.get("decision"), v.get("reasons")
        if outcome not in pipeline.OUTCOMES:
            problems["decisions"].append(f"{where} has decision {outcome!r}")
        if not isinstance(reasons, list) or (outcome == "APPROVE") != (len(reasons) == 0):
            problems["decisions"].append(f"{where}: {outcome} with reasons {reasons!r} (APPROVE has none, "
                                         "REVIEW and DECLINE at least one)")
        elif unknown := sorted(set(reasons) - set(pipeline.REASON_PATTERN)):
            problems["decisions"].append(f"{where} gives reasons outside the policy: {unknown}")

    topic_by_id = {d["value"].get("decision_id"): d for d in obs["decisions"]}
    dla_by_id = {r["decision_id"]: r for r in obs["dla"]}
    for decision, d in sorted(topic_by_id.items(), key=lambda kv: str(kv[0])):
        row = dla_by_id.get(decision)
        if row is None:
            problems["dla"].append(f"decision {decision} (event {d['value'].get('event_id')}) has no DLA record")
            continue
        if row["record"] != d["value"]:
            problems["dla"].append(f"DLA record {decision} differs from the decision on the topic")
        if row["record_sha256"] != d["sha256"]:
            problems["dla"].append(f"DLA record {decision} has record_sha256 {row['record_sha256'][:12]}…, the "
                                   f"published bytes hash to {d['sha256'][:12]}…")
        if row["decision"] != d["value"].get("decision") or row["event_id"] != d["value"].get("event_id"):
            problems["dla"].append(f"DLA record {decision} says {row['event_id']} {row['decision']}, the topic "
                                   f"{d['value'].get('event_id')} {d['value'].get('decision')}")
    problems["dla"] += [f"DLA record {i} (event {dla_by_id[i]['event_id']}) has no decision on the topic"
                        for i in sorted(set(dla_by_id) - set(topic_by_id))]

    problems["policy"] += judge_policy(obs)
    scores = score(obs["truth"], values)
    if not any(s["injected"] for s in scores["patterns"].values()):
        problems["ground_truth"].append("the stream view holds no injected fraud pattern: there is nothing to "
                                        "score the decisions against")
    for pattern, s in scores["patterns"].items():
        if s["injected"] and not s["flagged"]:
            problems["ground_truth"].append(f"pattern {pattern}: {s['injected']} injected event(s), none flagged "
                                            f"(REVIEW or DECLINE): {s['missed'][:5]}")
    unknown = sorted({str(v.get("event_id")) for v in values} - set(obs["truth"]))
    if unknown:
        problems["ground_truth"].append(f"{len(unknown)} decided event(s) are not in the stream view: {unknown[:5]}")

    claim = obs["claim"]
    outcomes = Counter(v.get("decision") for v in values)
    if claim is None:
        problems["summary"].append(f"the decision lane wrote no {SUMMARY}")
    else:
        if claim.get("decisions") != len(obs["dla"]) or claim.get("decisions") != len(values):
            problems["summary"].append(f"the lane's summary claims {claim.get('decisions')} decisions; the DLA has "
                                       f"{len(obs['dla'])} rows and the topic {len(values)} records")
        claimed = {k: v for k, v in (claim.get("by_outcome") or {}).items() if v}
        if claimed != {k: v for k, v in outcomes.items() if v}:
            problems["summary"].append(f"the lane's summary claims {claim.get('by_outcome')}, the topic shows "
                                       f"{dict(outcomes)}")
    return {"problems": problems, "scores": scores, "by_outcome": dict(sorted(outcomes.items()))}


def score(truth: dict[str, str], decisions: list[dict[str, Any]]) -> dict[str, Any]:
    """Recall per injected pattern (flagged = REVIEW or DECLINE); precision per reason against its pattern."""
    flagged = {str(v.get("event_id")): v for v in decisions if v.get("decision") in ("REVIEW", "DECLINE")}
    patterns = {}
    for pattern in pipeline.PATTERNS:
        injected = sorted(e for e, p in truth.items() if p == pattern)
        hit = [e for e in injected if e in flagged]
        patterns[pattern] = {"injected": len(injected), "flagged": len(hit),
                             "recall": round(len(hit) / len(injected), 4) if injected else None,
                             "missed": [e for e in injected if e not in flagged]}
    reasons = {}
    for reason, pattern in pipeline.REASON_PATTERN.items():
        given = [e for e, v in flagged.items() if reason in (v.get("reasons") or [])]
        right = [e for e in given if truth.get(e) == pattern]
        reasons[reason] = {"pattern": pattern, "flagged": len(given), "true_positive": len(right),
                           "precision": round(len(right) / len(given), 4) if given else None}
    fraud = {e for e, p in truth.items() if p}
    overall = {"events": len(truth), "fraud": len(fraud), "flagged": len(flagged),
               "flagged_fraud": len(fraud & set(flagged)),
               "precision": round(len(fraud & set(flagged)) / len(flagged), 4) if flagged else None,
               "recall": round(len(fraud & set(flagged)) / len(fraud), 4) if fraud else None}
    return {"patterns": patterns, "reasons": reasons, "overall": overall}


def check(result: dict[str, Any], *families: str) -> None:
    problems = [f"{family}: {p}" for family in families for p in result["judged"]["problems"][family]]
    if problems:
        raise Finding(f"P9.{'+'.join(families)}", problems)


# --- redelivery: the lane's group rewound to offset 0 ----------------------------------------------------------


def redeliver(cert: Certification) -> dict[str, Any]:
    return cert.once("p9.redeliver", lambda: _redeliver(cert))


def _redeliver(cert: Certification) -> dict[str, Any]:
    pins = p01.ensure_pinned(cert)
    run = pins.platform_run_id
    before = ensure_decided(cert)
    topic = cert.handles.topic_roles["rtdl"]
    group = pipeline.group("decision-lane", run)
    admitted = len(before["observed"]["admitted"])
    ends = _ends(cert, topic, run, admitted)
    committed_before = pipeline.committed(cert.kafka(), "decision-lane", run, topic)

    def rewind() -> dict[str, Any]:
        admin.set_group_offsets(cert.kafka(), group, topic, {p: 0 for p in ends})
        return pipeline.committed(cert.kafka(), "decision-lane", run, topic)

    rewound = p02.restart_daemon(cert, "decision-lane", while_stopped=rewind)

    def reached() -> dict[str, Any] | None:
        now = pipeline.committed(cert.kafka(), "decision-lane", run, topic)
        return now if all((now.get(str(p)) or 0) >= end for p, end in ends.items()) else None

    try:
        after_commit = wait_until(reached, timeout_s=90, backoff_s=0.2, max_backoff_s=1.0,
                                  err_msg="the restarted lane did not consume back to the end",
                                  operation="P9 redelivery")
    except Timeout:
        after_commit = pipeline.committed(cert.kafka(), "decision-lane", run, topic)
    after = observe(cert, pins, claim=before["observed"]["claim"])
    record = {
        "platform_run_id": run, "group": group, "topic": topic, "ends": {str(p): e for p, e in ends.items()},
        "committed_before": committed_before, "committed_after_rewind": rewound,
        "committed_after_restart": after_commit,
        "before": {"decision_records": len(before["observed"]["decisions"]), "dla": len(before["observed"]["dla"])},
        "after": {"decision_records": len(after["decisions"]), "dla": len(after["dla"])},
        "judged_after": judge(after)["problems"],
    }
    cert.evidence(f"runs/{run}/decision_lane/redelivery.json", record)
    return record


def _ends(cert: Certification, topic: str, run: str, expected: int) -> dict[int, int]:
    """Per partition of the rtdl topic, one past the last record (any run's) read once the run's events are in."""
    records, shortfall = pipeline.read_run(cert.kafka(), topic, run, identity="event_id", expected=expected)
    if shortfall:
        raise Finding("P9.redelivery", [f"the rtdl topic does not hold the run's enriched events: {shortfall}"])
    ends: dict[int, int] = {}
    for r in records:
        ends[r.partition] = max(ends.get(r.partition, 0), r.offset + 1)
    return ends


def check_redelivery(record: dict[str, Any]) -> None:
    problems = []
    if any(record["committed_after_rewind"].get(p) not in (0, None) for p in record["ends"]):
        problems.append(f"the lane's group was not rewound to 0: {record['committed_after_rewind']}")
    short = {p: (record["committed_after_restart"].get(p), e) for p, e in record["ends"].items()
             if (record["committed_after_restart"].get(p) or 0) < e}
    if short:
        problems.append(f"the restarted lane did not consume the redelivered events (committed, end): {short}")
    for what in ("decision_records", "dla"):
        if record["after"][what] != record["before"][what]:
            problems.append(f"redelivery changed the {what.replace('_', ' ')}: {record['before'][what]} before, "
                            f"{record['after'][what]} after")
    problems += [f"after redelivery, {f}: {p}" for f, ps in record["judged_after"].items() for p in ps]
    if problems:
        raise Finding("P9.redelivery", problems)


# --- an attempt to overwrite a DLA record ----------------------------------------------------------------------


def overwrite_dla(cert: Certification) -> dict[str, Any]:
    """As the platform role (the DSN in SSM): UPDATE, DELETE and a second INSERT of one DLA record."""
    pins = p01.ensure_pinned(cert)
    result = ensure_decided(cert)
    rows = result["observed"]["dla"]
    if not rows:
        raise HarnessError("the DLA holds no record of the run to try to overwrite")
    target = rows[0]
    url = dsn(cert)
    forged = dict(target["record"], decision="APPROVE", reasons=[])
    attempts = {
        "update": db.sqlstate_of(url, "update dla_records set decision = 'APPROVE', record = %s::jsonb "
                                      "where decision_id = %s", (_json(forged), target["decision_id"])),
        "delete": db.sqlstate_of(url, "delete from dla_records where decision_id = %s", (target["decision_id"],)),
        "insert_again": db.sqlstate_of(
            url, "insert into dla_records (decision_id, platform_run_id, event_id, decision, record, record_sha256) "
                 "values (%s, %s, %s, 'APPROVE', %s::jsonb, %s)",
            (target["decision_id"], pins.platform_run_id, target["event_id"], _json(forged), "0" * 64)),
    }
    after = next((r for r in pipeline.dla_rows(url, pins.platform_run_id)
                  if r["decision_id"] == target["decision_id"]), None)
    record = {"decision_id": target["decision_id"], "as_role": pipeline.database_facts(url)["role"],
              "attempts": attempts, "before": target, "after": after}
    cert.evidence(f"runs/{pins.platform_run_id}/decision_lane/dla_overwrite_refused.json", record)
    return record


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def check_overwrite_refused(record: dict[str, Any]) -> None:
    expected = {"update": "42501", "delete": "42501", "insert_again": "23505"}  # privilege; unique violation
    problems = [f"{name} of DLA record {record['decision_id']} as {record['as_role']} was not refused by the "
                f"database: {outcome}" for name, outcome in record["attempts"].items() if not outcome["refused"]]
    problems += [f"{name} of DLA record {record['decision_id']} was refused with SQLSTATE {outcome['sqlstate']}, "
                 f"not {expected[name]}: {outcome.get('message')}" for name, outcome in record["attempts"].items()
                 if outcome["refused"] and outcome["sqlstate"] != expected.get(name)]
    if record["after"] != record["before"]:
        problems.append(f"DLA record {record['decision_id']} changed: {record['before']} → {record['after']}")
    if problems:
        raise Finding("P9.dla_append_only", problems)
