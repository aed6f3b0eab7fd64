"""P5 SR gate and READY: READY only after the Oracle PASS, once per run, never for a refused run."""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any

from harness.aws import dynamodb, s3
from harness.errors import Finding, ModeNotImplemented
from harness.kafka.consume import read_all
from harness.phases import p01, p03
from harness.session import Certification

FAULTS = {
    "a closed run": "closed-run",
    "another run's Oracle pins": "foreign-pins",
    "a run with no Oracle PASS": "no-pass",
}
# What each refusal must name (the platform's words are checked, not only its exit code).
NAMED = {"closed-run": "closed", "foreign-pins": "is of run", "no-pass": "oracle/_PASS", "lease": "held by"}
LEASE_HOLDER = "spine-certify-fault-injection"


def _run_sr(cert: Certification, pins: p01.Pins) -> dict[str, Any]:
    result = cert.compute_provider.run("sr", env=p01.job_env(cert, pins), timeout_s=120)
    cert.job_log(pins.platform_run_id, result)
    if result.not_implemented:
        raise ModeNotImplemented("sr")
    return {**result.to_json(), "ended_at": result.started_at + result.duration_s}


def control_history(cert: Certification) -> list[dict[str, Any]]:
    """Every record of the control topic, decoded by the harness."""
    records = []
    for r in read_all(cert.kafka(), cert.handles.topic_roles["control"]):
        try:
            value: Any = json.loads(r.value)
        except ValueError:
            value = None
        records.append({**r.to_json(), "value": value, "value_sha256": hashlib.sha256(r.value).hexdigest()})
    return records


def readies(history: list[dict[str, Any]], run_id: str) -> list[dict[str, Any]]:
    return [r for r in history if isinstance(r["value"], dict) and r["value"].get("type") == "READY"
            and (r["key"] == run_id or r["value"].get("platform_run_id") == run_id)]


def ensure_ready(cert: Certification) -> dict[str, Any]:
    return cert.once("p5.ready", lambda: _ready(cert))


def _ready(cert: Certification) -> dict[str, Any]:
    pins = p01.ensure_pinned(cert)
    lane = p03.ensure_lane(cert)
    job = _run_sr(cert, pins)
    history = control_history(cert)
    bucket, prefix = s3.split_url(pins.evidence_root)
    receipt = s3.get_bytes(cert.aws_session, bucket=bucket, key=f"{prefix}oracle/checker_receipt.json")
    facts_key = f"{prefix}sr/run_facts_view.json"
    facts_bytes = s3.get_optional(cert.aws_session, bucket=bucket, key=facts_key)
    facts = None if facts_bytes is None else s3.parse_json(facts_bytes, where=f"s3://{bucket}/{facts_key}")
    check_job = next((j for j in lane["jobs"] if j["mode"] == "oracle-check"), None)
    record = {
        "platform_run_id": pins.platform_run_id,
        "pins": {"scenario_run_id": pins.scenario_run_id, "run_config_digest": pins.run_config_digest,
                 "image_digest": pins.run_json["image"]["digest"], "oracle_root": pins.run_config["oracle_root"]},
        "sr_job": job,
        "oracle_pass_last_modified": s3.last_modified(cert.aws_session, bucket=bucket, key=f"{prefix}oracle/_PASS")
        if s3.key_exists(cert.aws_session, bucket=bucket, key=f"{prefix}oracle/_PASS") else None,
        "oracle_check_ended_at": (check_job["started_at"] + check_job["duration_s"]) if check_job else None,
        "checker_receipt_sha256": hashlib.sha256(receipt).hexdigest(),
        "ready_records": readies(history, pins.platform_run_id),
        "run_facts_view": facts,
    }
    if facts_bytes is not None:
        cert.evidence_bytes(f"runs/{pins.platform_run_id}/sr/run_facts_view.json", facts_bytes)
    cert.evidence(f"runs/{pins.platform_run_id}/sr/ready_observed.json", record)
    return record


def _message_id(value: dict[str, Any]) -> str:
    body = {k: v for k, v in value.items() if k != "message_id"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def check_ready_after_pass(record: dict[str, Any]) -> None:
    problems = []
    if record["sr_job"]["exit_code"] != 0:
        problems.append(f"sr exited {record['sr_job']['exit_code']}: {' '.join(record['sr_job']['stderr_tail'])}")
    distinct = {r["value_sha256"] for r in record["ready_records"]}
    if len(distinct) != 1:
        problems.append(f"{len(distinct)} distinct READY records for the run on the control topic, expected 1")
    for r in record["ready_records"]:
        value, at = r["value"], r["timestamp_ms"] / 1000
        if record["oracle_pass_last_modified"] is None or at < record["oracle_pass_last_modified"]:
            problems.append(f"READY at {r['partition']}/{r['offset']} ({at}) precedes the Oracle PASS marker "
                            f"({record['oracle_pass_last_modified']})")
        if record["oracle_check_ended_at"] is not None and at < record["oracle_check_ended_at"]:
            problems.append(f"READY at {r['partition']}/{r['offset']} precedes the end of oracle-check")
        wanted = {**record["pins"], "platform_run_id": record["platform_run_id"],
                  "checker_receipt_sha256": record["checker_receipt_sha256"]}
        wrong = {k: (value.get(k), v) for k, v in wanted.items() if value.get(k) != v}
        if wrong:
            problems.append(f"READY {r['partition']}/{r['offset']} contradicts the pins (READY, pinned): {wrong}")
        if r["key"] != record["platform_run_id"]:
            problems.append(f"READY {r['partition']}/{r['offset']} is keyed {r['key']!r}, not the run id")
        if value.get("message_id") != _message_id(value):
            problems.append(f"READY {r['partition']}/{r['offset']} message_id is not the digest of its content")
    facts = record["run_facts_view"]
    if facts is None:
        problems.append("no sr/run_facts_view.json in the run's evidence root")
    elif facts.get("checker_receipt_sha256") != record["checker_receipt_sha256"] or \
            facts.get("platform_run_id") != record["platform_run_id"]:
        problems.append(f"run_facts_view contradicts the checker receipt or the run: {facts}")
    if problems:
        raise Finding("P5.ready", problems)


def duplicate_send(cert: Certification) -> dict[str, Any]:
    """Run SR again for the run: a re-emit must leave exactly one distinct READY."""
    first = ensure_ready(cert)
    pins = p01.ensure_pinned(cert)
    job = _run_sr(cert, pins)
    after = readies(control_history(cert), pins.platform_run_id)
    record = {"platform_run_id": pins.platform_run_id, "sr_job": job, "before": first["ready_records"],
              "after": after}
    cert.evidence(f"runs/{pins.platform_run_id}/sr/duplicate_send.json", record)
    return record


def check_one_distinct_ready(record: dict[str, Any]) -> None:
    problems = []
    if record["sr_job"]["exit_code"] != 0:
        problems.append(f"the second sr exited {record['sr_job']['exit_code']}")
    distinct = {r["value_sha256"] for r in record["after"]}
    if len(distinct) != 1:
        problems.append(f"{len(distinct)} distinct READY values for the run after a re-emit, expected 1")
    if {r["value_sha256"] for r in record["before"]} != distinct:
        problems.append("the re-emitted READY differs from the first")
    if problems:
        raise Finding("P5.idempotent_ready", problems)


def held_lease(cert: Certification) -> dict[str, Any]:
    """Another holder owns the run's lease: SR must refuse and publish nothing new."""
    ensure_ready(cert)
    pins = p01.ensure_pinned(cert)
    table = cert.handles.tables["sr_lease"].name
    before = readies(control_history(cert), pins.platform_run_id)
    dynamodb.put_new(cert.aws_session, table=table, key="platform_run_id",
                     item={"platform_run_id": pins.platform_run_id, "holder": LEASE_HOLDER,
                           "expires_at": time.time() + 300})
    try:
        job = _run_sr(cert, pins)
    finally:
        dynamodb.delete_item(cert.aws_session, table=table, key={"platform_run_id": pins.platform_run_id})
    after = readies(control_history(cert), pins.platform_run_id)
    record = {"platform_run_id": pins.platform_run_id, "fault": "lease", "holder": LEASE_HOLDER, "sr_job": job,
              "ready_before": len(before), "ready_after": len(after)}
    cert.evidence(f"runs/{pins.platform_run_id}/sr/lease_refused.json", record)
    return record


def refused_run(cert: Certification, case: str) -> dict[str, Any]:
    """A separate run with one fault in front of SR: no READY, and a refusal that names the fault."""
    fault = FAULTS[case]
    main = p03.ensure_lane(cert)
    pins = p01.pin(cert, label=f"sr-{fault}")
    bucket, prefix = s3.split_url(pins.evidence_root)
    injected: dict[str, Any] = {}
    if fault == "closed-run":
        key = f"{prefix}run_completed.json"
        s3.put_once(cert.aws_session, bucket=bucket, key=key,
                    body=json.dumps({"platform_run_id": pins.platform_run_id, "closed": True}).encode())
        injected = {"written": f"s3://{bucket}/{key}"}
    elif fault == "foreign-pins":
        main_bucket, main_prefix = s3.split_url(str(main["roots"]["evidence_root"]))
        copied = []
        for source in s3.list_keys(cert.aws_session, bucket=main_bucket, prefix=f"{main_prefix}oracle/"):
            target = prefix + source[len(main_prefix):]
            s3.put_once(cert.aws_session, bucket=bucket, key=target,
                        body=s3.get_bytes(cert.aws_session, bucket=main_bucket, key=source))
            copied.append(target)
        injected = {"copied_from": main["platform_run_id"], "objects": len(copied)}
    job = _run_sr(cert, pins)
    record = {"platform_run_id": pins.platform_run_id, "fault": fault, "injected": injected, "sr_job": job,
              "ready_after": len(readies(control_history(cert), pins.platform_run_id)),
              "other_run": main["platform_run_id"]}
    cert.evidence(f"runs/{pins.platform_run_id}/sr/refused_{fault}.json", record)
    return record


def check_refused(record: dict[str, Any]) -> None:
    job, problems = record["sr_job"], []
    said = " ".join(job["stderr_tail"])
    if job["exit_code"] != 1:
        problems.append(f"sr exited {job['exit_code']} for {record['fault']}, not 1")
    named = NAMED[record["fault"]]
    if named not in said or "no READY" not in said:
        problems.append(f"sr's refusal does not name the fault ({named!r}): {said or 'no message'}")
    if record["fault"] == "foreign-pins" and not re.search(rf"{re.escape(record['other_run'])}(?![\w-])", said):
        problems.append(f"sr's refusal does not name the other run {record['other_run']}")
    if record["fault"] == "lease" and (LEASE_HOLDER not in said or record["ready_after"] != record["ready_before"]):
        problems.append(f"with the lease held: holder named {LEASE_HOLDER in said}, READY records "
                        f"{record['ready_before']} -> {record['ready_after']}")
    elif record["fault"] != "lease" and record["ready_after"]:
        problems.append(f"{record['ready_after']} READY record(s) for the refused run {record['platform_run_id']}")
    if problems:
        raise Finding(f"P5.refused_{record['fault']}", problems)
