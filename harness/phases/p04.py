"""P4 IG auth and health: health answers for the run; no key 401, wrong key 403, and nothing published."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from harness import ig_client, ingress
from harness.aws import dynamodb, s3, ssm
from harness.errors import Finding
from harness.phases import p01, p02
from harness.session import Certification


def writer_key(cert: Certification) -> str:
    """The IG writer key from its pinned SSM path (registered as a secret on read)."""
    return ssm.get(cert.aws_session, cert.handles.ssm["ig_api_key"]).value


def health(cert: Certification) -> dict[str, Any]:
    pins = p01.ensure_pinned(cert)
    answer = ig_client.health(p02.ig(cert).url or "")
    record = {"platform_run_id": pins.platform_run_id, "answer": answer.to_json()}
    cert.evidence(f"runs/{pins.platform_run_id}/ingest/p4_health.json", record)
    return record


def check_health(record: dict[str, Any]) -> None:
    answer, problems = record["answer"], []
    body = answer["body"] if isinstance(answer["body"], dict) else {}
    if answer["status"] != 200:
        problems.append(f"GET /v1/ops/health answered {answer['status']}")
    if body.get("platform_run_id") != record["platform_run_id"]:
        problems.append(f"health names run {body.get('platform_run_id')}, not {record['platform_run_id']}")
    if not body.get("version"):
        problems.append("health names no version")
    if not (body.get("bus") or {}).get("connected"):
        problems.append(f"health reports the bus not connected: {body.get('bus')}")
    if problems:
        raise Finding("P4.health", problems)


def _event(pins: p01.Pins, event_id: str, *, run_id: str | None = None) -> dict[str, Any]:
    return {"event_id": event_id, "event_type": "card_transaction", "platform_run_id": run_id or pins.platform_run_id,
            "scenario_run_id": pins.scenario_run_id, "ts_utc": "2026-01-01T00:00:00Z",
            "payload": {"card_id": "card-probe", "merchant_id": "merchant-probe", "amount_minor": 100,
                        "currency": "EUR", "channel": "ecom"}}


def auth_probes(cert: Certification) -> dict[str, Any]:
    return cert.once("p4.probes", lambda: _probe(cert))


def _probe(cert: Certification) -> dict[str, Any]:
    """Three requests: no key, a wrong key, the writer key; then the harness looks at what they left."""
    pins = p01.ensure_pinned(cert)
    url = p02.ig(cert).url or ""
    tag = uuid.uuid4().hex[:8]
    ids = {name: f"p4-{name}-{tag}" for name in ("no-key", "wrong-key", "invalid", "other-run")}
    no_key = ig_client.ingest(url, [_event(pins, ids["no-key"])], key=None)
    wrong_key = ig_client.ingest(url, [_event(pins, ids["wrong-key"])], key=secrets.token_urlsafe(24))
    invalid = {k: v for k, v in _event(pins, ids["invalid"]).items() if k != "payload"}
    right = ig_client.ingest(url, [invalid, _event(pins, ids["other-run"], run_id=p01.run_id(cert, "another-run"))],
                             key=writer_key(cert))
    # History: what reached the topic, the dedupe table, the receipts and the quarantine bucket.
    topic = [e for e in ingress.topic_events(cert.kafka(), cert.handles.topic_roles["traffic"])
             if e.event_id in ids.values()]
    table = cert.handles.tables["ig_dedupe"].name
    deduped = {name: dynamodb.get_item(cert.aws_session, table=table,
                                       key={"dedupe_key": f"{pins.platform_run_id}/{event_id}"}) is not None
               for name, event_id in ids.items()}
    receipts = ingress.flat_receipts(ingress.receipt_records(cert.aws_session, pins.evidence_root))
    quarantined = {}
    for r in right.body.get("receipts", []) if isinstance(right.body, dict) else []:
        url_q = r.get("quarantine")
        if url_q:
            bucket, key = s3.split_url(url_q)
            quarantined[url_q] = s3.get_json_optional(cert.aws_session, bucket=bucket, key=key)
    record = {
        "platform_run_id": pins.platform_run_id, "event_ids": ids,
        "answers": {"no_key": no_key.to_json(), "wrong_key": wrong_key.to_json(), "writer_key": right.to_json()},
        "on_topic": [e.to_json() for e in topic],
        "dedupe_items": deduped,
        "receipts_naming_probes": [r for r in receipts if r.get("event_id") in ids.values()],
        "quarantine_objects": quarantined,
    }
    cert.evidence(f"runs/{pins.platform_run_id}/ingest/p4_auth_probes.json", record)
    return record


def check_refused_status(record: dict[str, Any]) -> None:
    answers, problems = record["answers"], []
    if answers["no_key"]["status"] != 401:
        problems.append(f"a batch without a writer key was answered {answers['no_key']['status']}, not 401")
    if answers["wrong_key"]["status"] != 403:
        problems.append(f"a batch with a wrong writer key was answered {answers['wrong_key']['status']}, not 403")
    if problems:
        raise Finding("P4.auth", problems)


def check_refused_left_nothing(record: dict[str, Any]) -> None:
    ids = record["event_ids"]
    refused = {ids["no-key"], ids["wrong-key"]}
    problems = [f"refused event {e['event_id']} is on the traffic topic at {e['partition']}/{e['offset']}"
                for e in record["on_topic"] if e["event_id"] in refused]
    problems += [f"refused event {ids[name]} has a dedupe item" for name in ("no-key", "wrong-key")
                 if record["dedupe_items"][name]]
    problems += [f"refused event {r['event_id']} has a receipt ({r['status']})"
                 for r in record["receipts_naming_probes"] if r["event_id"] in refused]
    if problems:
        raise Finding("P4.auth", problems)


def check_refused(record: dict[str, Any]) -> None:
    """Both: 401/403, and nothing of the refused batches anywhere."""
    check_refused_status(record)
    check_refused_left_nothing(record)


def check_quarantined(record: dict[str, Any]) -> None:
    answer, ids, problems = record["answers"]["writer_key"], record["event_ids"], []
    receipts = answer["body"].get("receipts", []) if isinstance(answer["body"], dict) else []
    if answer["status"] != 200:
        problems.append(f"a batch with the writer key was answered {answer['status']}, not 200")
    by_id = {r.get("event_id"): r for r in receipts}
    for name in ("invalid", "other-run"):
        receipt = by_id.get(ids[name])
        if receipt is None or receipt.get("status") != "QUARANTINED":
            problems.append(f"{name} event {ids[name]}: receipt {receipt}, not QUARANTINED")
            continue
        stored = record["quarantine_objects"].get(receipt.get("quarantine") or "")
        if not stored or (stored.get("event") or {}).get("event_id") != ids[name] or not stored.get("reason"):
            problems.append(f"{name} event {ids[name]}: no quarantine object with the event and its reason "
                            f"({receipt.get('quarantine')})")
    problems += [f"quarantined event {e['event_id']} is on the traffic topic at {e['partition']}/{e['offset']}"
                 for e in record["on_topic"] if e["event_id"] in (ids["invalid"], ids["other-run"])]
    if problems:
        raise Finding("P4.quarantine", problems)
