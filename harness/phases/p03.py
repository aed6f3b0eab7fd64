"""P3 oracle lane: engine → seed → sort → check through the compute provider, closed by receipts."""

from __future__ import annotations

import io
import json
from datetime import datetime
from typing import Any

from harness import oracle_views
from harness.aws import s3
from harness.compute.embedded import ENGINE
from harness.errors import Finding, ModeNotImplemented
from harness.phases import p01
from harness.session import Certification

FAULTS = ("removed-source-object", "row-changed-after-landing", "local-source")
_TRANSACTIONS = "card_transactions"


def ensure_lane(cert: Certification) -> dict[str, Any]:
    """The run's own oracle lane (once), and the harness's own reading of what it left, recorded before any verdict."""
    record = cert.once("p3.lane", lambda: run_lane(cert, p01.ensure_pinned(cert)))
    recompute_views(cert, record)
    return record


def fault_lane(cert: Certification, fault: str) -> dict[str, Any]:
    """The lane of a separate run with one fault injected; its evidence sits under that run."""
    if fault not in FAULTS:
        raise ValueError(f"fault={fault!r} must be one of {FAULTS}")
    return cert.once(f"p3.fault.{fault}", lambda: run_lane(cert, p01.pin(cert, label=fault), fault=fault))


def run_lane(cert: Certification, pins: p01.Pins, *, fault: str | None = None) -> dict[str, Any]:
    compute, aws = cert.compute_provider, cert.aws_session
    env = p01.job_env(cert, pins)
    source = pins.run_config["oracle_source"]
    jobs: list[dict[str, Any]] = []
    injected: dict[str, Any] = {}

    def run(mode: str, args: list[str] | None = None, **overrides: str) -> int | None:
        result = compute.run(mode, env={**env, **overrides}, args=args, timeout_s=900)
        jobs.append(result.to_json())
        cert.job_log(pins.platform_run_id, result)
        if result.not_implemented:
            raise ModeNotImplemented(mode)
        return result.exit_code

    run(ENGINE, ["--seed", str(cert.options.seed), "--events", str(cert.events), "--out", source,
                 "--scenario-run-id", pins.scenario_run_id])
    if fault == "removed-source-object":
        injected = _remove_one_part(cert, source)
    if fault == "local-source":
        local = str(cert.workdir / "local-oracle" / pins.scenario_run_id)
        injected = {"SPINE_ORACLE_SOURCE": local}
        run("oracle-seed", SPINE_ORACLE_SOURCE=local)
    else:
        run("oracle-seed")
    if fault == "row-changed-after-landing":
        injected = _change_one_row(cert, pins.run_config["oracle_root"])
    if fault != "local-source":
        run("oracle-sort")
        run("oracle-check")
    evidence = _collect(cert, pins)
    bucket, prefix = s3.split_url(pins.evidence_root)
    record = {
        "platform_run_id": pins.platform_run_id,
        "pinned_at": pins.run_json["pinned_at"],
        "fault": fault,
        "injected": injected,
        "roots": {"source": source, "oracle_root": pins.run_config["oracle_root"], "evidence_root": pins.evidence_root},
        "jobs": jobs,
        "evidence": evidence,
        "pass_marker": s3.key_exists(aws, bucket=bucket, key=f"{prefix}oracle/_PASS"),
    }
    cert.evidence(f"runs/{pins.platform_run_id}/oracle/lane.json", record)
    return record


def _collect(cert: Certification, pins: p01.Pins) -> dict[str, Any]:
    """Copy the lane's evidence objects from the run's evidence root into the bundle."""
    bucket, prefix = s3.split_url(pins.evidence_root)
    found: dict[str, Any] = {}
    for key in s3.list_keys(cert.aws_session, bucket=bucket, prefix=f"{prefix}oracle/"):
        rel = key[len(prefix):]
        body = s3.get_bytes(cert.aws_session, bucket=bucket, key=key)
        try:
            found[rel] = json.loads(body)
        except ValueError:
            found[rel] = {"non_json_bytes": len(body)}
        cert.evidence_bytes(f"runs/{pins.platform_run_id}/{rel}", body)
    return found


def _manifest(cert: Certification, root: str) -> dict[str, Any]:
    bucket, prefix = s3.split_url(root)
    return dict(json.loads(s3.get_bytes(cert.aws_session, bucket=bucket, key=f"{prefix}_manifest.json")))


def _remove_one_part(cert: Certification, source: str) -> dict[str, Any]:
    bucket, prefix = s3.split_url(source)
    victim = _manifest(cert, source)["outputs"][_TRANSACTIONS]["files"][-1]["key"]
    s3.delete(cert.aws_session, bucket=bucket, key=prefix + victim)
    return {"removed": f"s3://{bucket}/{prefix}{victim}"}


def _change_one_row(cert: Certification, root: str) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    bucket, prefix = s3.split_url(root)
    victim = _manifest(cert, root)["outputs"][_TRANSACTIONS]["files"][0]["key"]
    table = pq.read_table(io.BytesIO(s3.get_bytes(cert.aws_session, bucket=bucket, key=prefix + victim)))
    amounts = table.column("amount_minor").combine_chunks()
    changed = pc.if_else(pa.array([i == 0 for i in range(len(amounts))]), pc.add(amounts, 1), amounts)
    table = table.set_column(table.schema.get_field_index("amount_minor"), "amount_minor", changed)
    out = io.BytesIO()
    pq.write_table(table, out)
    s3.overwrite(cert.aws_session, bucket=bucket, key=prefix + victim, body=out.getvalue())
    return {"changed": f"s3://{bucket}/{prefix}{victim}", "row": 0, "column": "amount_minor", "delta": 1}


def check_jobs_succeeded(record: dict[str, Any]) -> None:
    failed = [f"{j['mode']} exited {j['exit_code']}: {' '.join(j['stderr_tail'][-1:])}"
              for j in record["jobs"] if j["exit_code"] != 0]
    pinned = datetime.fromisoformat(record["pinned_at"]).timestamp()
    failed += [f"{j['mode']} started before run.json was pinned" for j in record["jobs"] if j["started_at"] < pinned]
    if failed:
        raise Finding("P3.jobs", failed)


def check_closed(record: dict[str, Any]) -> None:
    receipt = record["evidence"].get("oracle/checker_receipt.json")
    problems = []
    if receipt is None:
        problems.append("no checker receipt")
    elif receipt.get("verdict") != "PASS":
        problems.append(f"checker verdict {receipt.get('verdict')}: {json.dumps(receipt)[:500]}")
    if not record["pass_marker"]:
        problems.append("no oracle/_PASS marker")
    if problems:
        raise Finding("P3.closure", problems)


def recompute_views(cert: Certification, record: dict[str, Any]) -> dict[str, Any]:
    """The harness's own reading of every stream view and the source it came from, recorded before any verdict."""

    def observe() -> dict[str, Any]:
        observed = oracle_views.observe(cert.aws_session, **record["roots"])
        cert.evidence(f"runs/{record['platform_run_id']}/oracle/recomputed.json", observed)
        return observed

    return cert.once(f"p3.recomputed.{record['platform_run_id']}", observe)


def check_recomputed(cert: Certification, record: dict[str, Any]) -> None:
    """Receipts and _PASS are claims: the lane closes only when the harness's own reading agrees with the source."""
    oracle_views.check(recompute_views(cert, record))


def check_continuity(record: dict[str, Any]) -> None:
    landing = record["evidence"].get("oracle/landing_manifest.json")
    if landing is None or landing.get("continuity") is not True:
        raise Finding("P3.landing", [f"landing manifest does not prove byte continuity: {landing}"])


def check_views(record: dict[str, Any]) -> None:
    evidence = record["evidence"]
    landing = evidence.get("oracle/landing_manifest.json") or {}
    outputs = sorted({f.get("output") for f in landing.get("files", []) if f.get("output")}) or sorted(
        k.split("/")[-1].removesuffix(".json") for k in evidence if k.startswith("oracle/sort_receipts/")
    )
    problems = [f"{name}: no {kind}" for name in outputs
                for kind, key in (("stream_view manifest", f"oracle/stream_view/{name}.json"),
                                  ("sort receipt", f"oracle/sort_receipts/{name}.json")) if key not in evidence]
    if len(outputs) < 3:
        problems.append(f"expected every output (at least 3) to be closed, found {outputs}")
    if problems:
        raise Finding("P3.stream_views", problems)


def check_fault_detected(record: dict[str, Any]) -> None:
    """The lane must fail closed: no PASS marker, and the failing step says why."""
    problems = []
    if record["pass_marker"]:
        problems.append(f"fault {record['fault']} ({record['injected']}) produced an oracle/_PASS marker")
    receipt = record["evidence"].get("oracle/checker_receipt.json")
    if record["fault"] == "local-source":
        seed = next(j for j in record["jobs"] if j["mode"] == "oracle-seed")
        if seed["exit_code"] != 1 or "local source refused" not in " ".join(seed["stderr_tail"]):
            problems.append(f"oracle-seed did not refuse the local source: {seed}")
    else:
        if receipt is None or receipt.get("verdict") != "FAIL":
            problems.append(f"checker did not FAIL for {record['fault']}: {receipt and receipt.get('verdict')}")
        # Failing is not enough: the lane must fail because of the injected object, and say so.
        victim = record["injected"].get("removed") or record["injected"].get("changed")
        said = " ".join(line for job in record["jobs"] for line in job["stderr_tail"])
        if not victim or victim not in said:
            problems.append(f"no step of the lane named the faulty object {victim}")
    if problems:
        raise Finding("P3.fail_closed", problems)
