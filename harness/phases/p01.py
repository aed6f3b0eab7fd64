"""P1 run pinning: run.json, write-once, before any job; jobs refuse a run they were not pinned for."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from harness import canonical
from harness.aws import s3
from harness.aws.session import EMULATOR_CREDENTIALS
from harness.errors import EvidenceError, Finding, PreconditionFailed
from harness.phases import pm1
from harness.session import Certification

MAIN = "main"


@dataclass(frozen=True)
class Pins:
    platform_run_id: str
    scenario_run_id: str
    run_config: dict[str, Any]
    run_config_digest: str
    run_json: dict[str, Any]

    @property
    def evidence_root(self) -> str:
        return str(self.run_config["evidence_root"])

    @property
    def manifest_url(self) -> str:
        return self.evidence_root + "run.json"


def config_digest(config: dict[str, Any]) -> str:
    """sha256 of the canonical compact JSON of the run config (the contract's definition)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def run_id(cert: Certification, label: str) -> str:
    """run-<cert stamp>, then the rung or drill (n20, n200-rerun, d3), then a fault run's label."""
    parts = [re.sub(r"^cert-", "run-", cert.cert_id).lower(), cert.run_slug, None if label == MAIN else label]
    return "-".join(p for p in parts if p)


def pin(cert: Certification, *, label: str = MAIN) -> Pins:
    """Write run.json for a new run (write-once in S3 and in the bundle)."""
    provenance = pm1.ensure_packaged(cert)
    h, opts = cert.handles, cert.options
    platform_run_id = run_id(cert, label)
    scenario = f"scn-seed{opts.seed}-n{cert.events}" + ("" if label == MAIN else f"-{label}")
    oracle_root = h.oracle_root
    config = {
        "platform_run_id": platform_run_id,
        "scenario_run_id": scenario,
        "profile": opts.profile,
        "seed": opts.seed,
        "events": cert.events,
        "oracle_source": f"s3://{h.bucket('oracle_source').name}/{oracle_root}{scenario}/",
        "oracle_root": f"s3://{h.bucket('oracle').name}/{oracle_root}{scenario}/",
        "evidence_root": f"s3://{h.bucket('evidence').name}/runs/{platform_run_id}/",
        "topics": h.topics,
        "rtdl_caught_up_lag_max": h.thresholds["rtdl_caught_up_lag_max"],
    }
    digest = config_digest(config)
    started = [j for j in _history(cert) if j.run_id == platform_run_id]
    run_json = {
        "platform_run_id": platform_run_id,
        "scenario_run_id": scenario,
        "run_config_digest": digest,
        "run_config": config,
        "image": {"tag": provenance["tag"], "digest": provenance["digest"], "source_sha": provenance["source_sha"]},
        "events": cert.events,
        "handles_digest": h.digest,
        "pinned_at": datetime.now(UTC).isoformat(),
        "jobs_started_before_pin": len(started),
    }
    bucket, key = s3.split_url(f"{config['evidence_root']}run.json")
    try:
        s3.put_once(cert.aws_session, bucket=bucket, key=key, body=canonical.dumps(run_json))
    except PreconditionFailed as exc:
        raise EvidenceError(f"run {platform_run_id} is already pinned at s3://{bucket}/{key}; "
                            "a run id is pinned once and run.json is never overwritten") from exc
    cert.evidence(f"runs/{platform_run_id}/run.json", run_json)
    return Pins(platform_run_id, scenario, config, digest, run_json)


def _history(cert: Certification) -> list[Any]:
    return list(getattr(cert.compute, "history", []))


def ensure_pinned(cert: Certification) -> Pins:
    return cert.once("p1.pin", lambda: pin(cert))


def job_env(cert: Certification, pins: Pins, **overrides: str) -> dict[str, str]:
    """The environment the contract gives every mode of this run."""
    env = {
        "REQUIRED_PLATFORM_RUN_ID": pins.platform_run_id,
        "SPINE_RUN_MANIFEST": pins.manifest_url,
        "SPINE_RUN_CONFIG_DIGEST": pins.run_config_digest,
        "SPINE_IMAGE_DIGEST": pins.run_json["image"]["digest"],
        "SPINE_EVIDENCE_ROOT": pins.evidence_root,
        "SPINE_ORACLE_SOURCE": pins.run_config["oracle_source"],
        "SPINE_ORACLE_ROOT": pins.run_config["oracle_root"],
        "AWS_REGION": cert.handles.region,
        "AWS_DEFAULT_REGION": cert.handles.region,
        **bus_env(cert),
    }
    endpoint = cert.aws_session.endpoint_url
    if endpoint:
        env.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": EMULATOR_CREDENTIALS["aws_access_key_id"],
                    "AWS_SECRET_ACCESS_KEY": EMULATOR_CREDENTIALS["aws_secret_access_key"]})
    env.update(overrides)
    return env


def bus_env(cert: Certification) -> dict[str, str]:
    """Where the streaming modes find the bus, topics, tables and the writer key: pinned names, no secrets."""
    h = cert.handles
    env = {
        "SPINE_SSM_KAFKA_BOOTSTRAP": h.ssm["confluent_bootstrap"],
        "SPINE_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT" if cert.options.profile == "embedded" else "SASL_SSL",
        "SPINE_TOPIC_CONTROL": h.topic_roles["control"],
        "SPINE_TOPIC_TRAFFIC": h.topic_roles["traffic"],
        "SPINE_SSM_IG_API_KEY": h.ssm["ig_api_key"],
        "SPINE_IG_DEDUPE_TABLE": h.tables["ig_dedupe"].name,
        "SPINE_SR_LEASE_TABLE": h.tables["sr_lease"].name,
        "SPINE_QUARANTINE_BUCKET": h.bucket("quarantine").name,
        "SPINE_TOPIC_RTDL": h.topic_roles["rtdl"],
        "SPINE_TOPIC_DECISION": h.topic_roles["decision"],
        "SPINE_ARCHIVE_BUCKET": h.bucket("archive").name,
        "SPINE_SSM_DB_DSN": h.ssm["db_dsn"],
        "SPINE_REPORTER_LOCK_TABLE": h.tables["reporter_lock"].name,
    }
    if cert.options.profile == "embedded":
        # The embedded broker joins a consumer group in half the session timeout: keep daemon joins short.
        env.update({"SPINE_KAFKA_SESSION_TIMEOUT_MS": "2000", "SPINE_KAFKA_HEARTBEAT_MS": "500"})
    if cert.options.profile != "embedded":
        env.update({"SPINE_SSM_KAFKA_API_KEY": h.ssm["confluent_api_key"],
                    "SPINE_SSM_KAFKA_API_SECRET": h.ssm["confluent_api_secret"]})
    return env


def check_pinned(cert: Certification, pins: Pins) -> None:
    bucket, key = s3.split_url(pins.manifest_url)
    stored = json.loads(s3.get_bytes(cert.aws_session, bucket=bucket, key=key))
    problems = []
    for field in ("platform_run_id", "scenario_run_id", "run_config_digest", "image", "events", "handles_digest"):
        if stored.get(field) != pins.run_json[field] or stored.get(field) in (None, ""):
            problems.append(f"run.json {field}: stored {stored.get(field)!r}, pinned {pins.run_json[field]!r}")
    if stored["run_config_digest"] != config_digest(stored["run_config"]):
        problems.append("run.json run_config_digest does not match its run_config")
    if stored.get("jobs_started_before_pin") != 0:
        problems.append(f"{stored.get('jobs_started_before_pin')} job(s) of this run started before it was pinned")
    cert.bundle.require(f"runs/{pins.platform_run_id}/run.json")
    if problems:
        raise Finding("P1.run_manifest", problems)


def repin(cert: Certification, pins: Pins) -> dict[str, Any]:
    """Pin the same run id again through the same path; it must be refused and change nothing."""
    bucket, key = s3.split_url(pins.manifest_url)
    before = s3.get_bytes(cert.aws_session, bucket=bucket, key=key)
    label = pins.platform_run_id.removeprefix(run_id(cert, MAIN)).lstrip("-") or MAIN
    try:
        pin(cert, label=label)
        refused, error = False, None
    except EvidenceError as exc:
        refused, error = True, str(exc)
    after = s3.get_bytes(cert.aws_session, bucket=bucket, key=key)
    record = {"refused": refused, "error": error, "unchanged": before == after}
    cert.evidence(f"runs/{pins.platform_run_id}/repin_refused.json", record)
    return record


def check_repin_refused(record: dict[str, Any]) -> None:
    if not (record["refused"] and record["unchanged"] and "is already pinned" in (record["error"] or "")):
        raise Finding("P1.write_once", [f"pinning the run again was not refused cleanly: {record}"])


def mismatched_job(cert: Certification, pins: Pins, field: str) -> dict[str, Any]:
    """Start a job whose launcher pinned another config or image digest; it must refuse."""
    variable = {"config": "SPINE_RUN_CONFIG_DIGEST", "image": "SPINE_IMAGE_DIGEST"}[field]
    wrong = ("sha256:" if field == "image" else "") + "0" * 64
    result = cert.compute_provider.run("oracle-check", env=job_env(cert, pins, **{variable: wrong}), timeout_s=120)
    cert.job_log(pins.platform_run_id, result)
    record = {"variable": variable, "given": wrong, **result.to_json()}
    cert.evidence(f"runs/{pins.platform_run_id}/refusal_{field}_digest.json", record)
    return record


def check_refused(record: dict[str, Any], field: str) -> None:
    named = {"config": "SPINE_RUN_CONFIG_DIGEST", "image": "SPINE_IMAGE_DIGEST"}[field]
    stderr = " ".join(record["stderr_tail"])
    if record["exit_code"] != 1 or named not in stderr:
        raise Finding("P1.run_scope", [f"a job with a different {field} digest was not refused "
                                       f"(exit {record['exit_code']}: {stderr or 'no message'})"])


def require_run_evidence(cert: Certification, relpath: str) -> None:
    """A bundle file of the run, ``<platform_run_id>`` standing for the run's id."""
    cert.bundle.require(relpath.replace("<platform_run_id>", ensure_pinned(cert).platform_run_id))
