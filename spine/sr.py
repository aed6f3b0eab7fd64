"""`sr` job: the run-readiness authority. No Oracle PASS, no READY; one lease per run; idempotent READY."""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from spine import aws, canonical, contract, evidence, kafka, log, s3
from spine.errors import SpineError
from spine.runscope import RunScope

RUN_FACTS = "sr/run_facts_view.json"
CHECKER_RECEIPT = "oracle/checker_receipt.json"
PASS = "oracle/_PASS"
CLOSED = "run_completed.json"
LEASE_S = 120
READY = "READY"


def ready_message(facts: dict[str, Any]) -> dict[str, Any]:
    """The READY record's value: every field deterministic, the message id a digest of the rest."""
    body = {"type": READY, "platform_run_id": facts["platform_run_id"], "scenario_run_id": facts["scenario_run_id"],
            "run_config_digest": facts["run_config_digest"], "image_digest": facts["image_digest"],
            "oracle_root": facts["oracle_root"], "checker_receipt_sha256": facts["checker_receipt_sha256"]}
    return {**body, "message_id": canonical.sha256(json.dumps(body, sort_keys=True).encode())}


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, sort_keys=True, separators=(",", ":")).encode()


def _refuse(why: str) -> SpineError:
    return SpineError(f"no READY: {why}")


def _gate(scope: RunScope) -> dict[str, Any]:
    """Verify the run's Oracle lane by reference; every refusal names what is missing or contradicts."""
    root = s3.Location.parse(scope.env["SPINE_ORACLE_ROOT"], name="SPINE_ORACLE_ROOT").root
    pinned_root = (scope.run.get("run_config") or {}).get("oracle_root")
    if root.url() != pinned_root:
        raise _refuse(f"SPINE_ORACLE_ROOT={root.url()} contradicts run.json oracle_root={pinned_root}")
    if s3.exists(scope.evidence.bucket, scope.evidence.key(CLOSED)):
        raise _refuse(f"run {scope.platform_run_id} is closed ({scope.evidence.url(CLOSED)} exists): a stale run "
                      "is never made READY again")
    max_age = float(os.environ.get("SPINE_SR_MAX_RUN_AGE_S", "86400"))
    try:
        pinned_at = datetime.fromisoformat(str(scope.run.get("pinned_at")))
    except ValueError:
        pinned_at = None
    if pinned_at is None or pinned_at.tzinfo is None:  # a naive time cannot be aged against UTC
        raise _refuse(f"run.json pinned_at={scope.run.get('pinned_at')!r} is not an ISO 8601 time with a zone")
    age = (datetime.now(UTC) - pinned_at).total_seconds()
    if age > max_age:
        raise _refuse(f"run {scope.platform_run_id} is stale: pinned {age:.0f}s ago, more than "
                      f"SPINE_SR_MAX_RUN_AGE_S={max_age:.0f}")
    marker = evidence.get_json(scope.evidence, PASS)
    if marker is None:
        raise _refuse(f"no Oracle PASS: {scope.evidence.url(PASS)} does not exist")
    raw = s3.get_optional(scope.evidence.bucket, scope.evidence.key(CHECKER_RECEIPT))
    if raw is None:
        raise _refuse(f"no checker receipt at {scope.evidence.url(CHECKER_RECEIPT)}")
    receipt = json.loads(raw)
    problems = []
    if receipt.get("verdict") != "PASS":
        problems.append(f"checker verdict is {receipt.get('verdict')}")
    for name, source in (("checker receipt", receipt), ("PASS marker", marker)):
        if source.get("platform_run_id") != scope.platform_run_id:
            problems.append(f"{name} is of run {source.get('platform_run_id')}, not {scope.platform_run_id}")
        if source.get("scenario_run_id") != scope.scenario_run_id:
            problems.append(f"{name} pins scenario {source.get('scenario_run_id')}, run.json {scope.scenario_run_id}")
    if receipt.get("oracle_root") != root.url():
        problems.append(f"checker receipt closes {receipt.get('oracle_root')}, not {root.url()}")
    receipt_sha = canonical.sha256(raw)
    if marker.get("checker_receipt_sha256") != receipt_sha:
        problems.append(f"PASS marker vouches for checker receipt {marker.get('checker_receipt_sha256')}, "
                        f"the receipt is {receipt_sha}")
    outputs: dict[str, Any] = {}
    for name in contract.ORACLE_OUTPUTS:
        view = evidence.get_json(scope.evidence, f"oracle/stream_view/{name}.json")
        closed = (receipt.get("outputs") or {}).get(name, {}).get("verdict")
        if view is None or closed != "PASS":
            problems.append(f"partial lane: output {name} has {'no stream view' if view is None else 'no PASS'}")
            continue
        outputs[name] = {"row_count": view.get("row_count"), "content_hash": view.get("content_hash"),
                         "stream_view": [f.get("key") for f in view.get("files", [])]}
    if problems:
        raise _refuse("; ".join(problems))
    return {"platform_run_id": scope.platform_run_id, "scenario_run_id": scope.scenario_run_id,
            "run_config_digest": scope.run["run_config_digest"], "image_digest": scope.run["image"]["digest"],
            "oracle_root": root.url(), "checker_receipt_sha256": receipt_sha, "outputs": outputs}


def _take_lease(table: str, run_id: str) -> str:
    holder, now = f"sr-{uuid.uuid4().hex[:12]}", time.time()
    try:
        aws.put_if(table, {"platform_run_id": run_id, "holder": holder, "expires_at": now + LEASE_S},
                   condition="attribute_not_exists(#k) OR #e < :now", names={"#k": "platform_run_id",
                                                                              "#e": "expires_at"},
                   values={":now": now})
    except aws.ConditionFailed as lost:
        held = lost.item or aws.get(table, {"platform_run_id": run_id}) or {}
        raise _refuse(f"the lease for run {run_id} is held by {held.get('holder')} until "
                      f"{datetime.fromtimestamp(float(held.get('expires_at', 0)), UTC).isoformat()}") from None
    return holder


def run(scope: RunScope) -> None:
    env = scope.env
    facts = _gate(scope)
    table, topic = env["SPINE_SR_LEASE_TABLE"], env["SPINE_TOPIC_CONTROL"]
    holder = _take_lease(table, scope.platform_run_id)
    log.info("lease", holder=holder)
    try:
        message = ready_message(facts)
        facts = {**facts, "ready_message_id": message["message_id"], "control_topic": topic}
        evidence.put_json(scope.evidence, RUN_FACTS, facts)
        settings = kafka.config(env)
        key = scope.platform_run_id.encode()
        already = kafka.read(settings, topic, keep=lambda r: r.key == key and r.value == encode(message))
        if already:
            log.info("ready_exists", offset=already[0].offset, partition=already[0].partition,
                     message_id=message["message_id"])
            return
        producer = kafka.producer(settings)
        outcome: dict[str, Any] = {}
        producer.produce(topic, key=key, value=encode(message),
                         on_delivery=lambda err, msg: outcome.update(error=err, offset=msg.offset(),
                                                                     partition=msg.partition()))
        producer.flush(30)
        if outcome.get("error") is not None or "offset" not in outcome:
            raise SpineError(f"READY publish outcome unknown: {outcome.get('error') or 'no delivery report'}")
        log.info("ready", topic=topic, partition=outcome["partition"], offset=outcome["offset"],
                 message_id=message["message_id"])
    finally:
        try:
            aws.delete_if(table, {"platform_run_id": scope.platform_run_id}, field="holder", equals=holder)
        except SpineError as exc:
            log.info("lease_release_failed", reason=str(exc))
