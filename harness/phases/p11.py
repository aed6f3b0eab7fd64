"""P11 obs/gov closure: a single writer closes the run, and only when the harness's own recount closes too.

The reporter's `obs/*` and `run_completed.json` are claims. The harness holds the lock as a manual
closeout, starts two reporters at once, presents a stale fencing token, and recomputes the
reconciliation and the replay anchors from the receipts, the three topics and the database it reads
itself; ``judge`` is a pure function of that record.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections import Counter
from typing import Any

from harness import closeout, ingress, pipeline
from harness.aws import AwsSession, s3
from harness.compute import JobResult
from harness.compute.base import NOT_IMPLEMENTED_EXIT
from harness.errors import Finding, HarnessError, ModeNotImplemented
from harness.kafka import KafkaConnection
from harness.kafka.consume import read_all
from harness.phases import claims, p01, p10
from harness.session import Certification

OBS = ("obs/reconciliation.json", "obs/run_report.json", "obs/environment_conformance.json",
       "obs/replay_anchors.json")
COMPLETED = "run_completed.json"
FAMILIES = ("reconciliation", "replay_anchors", "run_completed", "conformance")
ROLES = ("traffic", "rtdl", "decision")
JOB_TIMEOUT_S = 240.0
MANUAL_LEASE_S = 600


def _table(cert: Certification) -> str:
    return cert.handles.tables["reporter_lock"].name


def run_reporter(cert: Certification, pins: p01.Pins, reporter_id: str, **overrides: str) -> JobResult:
    env = p01.job_env(cert, pins, SPINE_REPORTER_ID=reporter_id, **overrides)
    result = cert.compute_provider.run("reporter", env=env, timeout_s=JOB_TIMEOUT_S)
    cert.job_log(pins.platform_run_id, result)
    if result.not_implemented:
        raise ModeNotImplemented("reporter")
    return result


def reporter_outcome(cert: Certification, pins: p01.Pins, reporter_id: str, code: int | None,
                     output: str = "") -> dict[str, Any]:
    """How one reporter ended: its exit code, the tail of what it said, the conflict or refusal it wrote."""
    return {"reporter": reporter_id, "exit_code": code, "stderr": output.strip()[-800:],
            "conflict": claims.get(cert, pins, f"obs/conflict_{reporter_id}.json"),
            "refused": claims.get(cert, pins, f"obs/refused_{reporter_id}.json")}


def _obs_keys(cert: Certification, pins: p01.Pins) -> list[str]:
    """Every object under the run's obs/ (and run_completed.json), as the evidence bucket lists them."""
    bucket, prefix = s3.split_url(pins.evidence_root)
    keys = s3.list_keys(cert.aws_session, bucket=bucket, prefix=prefix + "obs/")
    return sorted(k[len(prefix):] for k in keys) + ([COMPLETED] if s3.get_optional(
        cert.aws_session, bucket=bucket, key=prefix + COMPLETED) is not None else [])


def _ran(cert: Certification, pins: p01.Pins, reporter_id: str, **overrides: str) -> dict[str, Any]:
    result = run_reporter(cert, pins, reporter_id, **overrides)
    return reporter_outcome(cert, pins, reporter_id, result.exit_code, result.stderr)


# --- the manual closeout holds the lock ------------------------------------------------------------------------


def manual_closeout(cert: Certification) -> dict[str, Any]:
    return cert.once("p11.manual", lambda: _manual(cert))


def _manual(cert: Certification) -> dict[str, Any]:
    pins = p01.ensure_pinned(cert)
    p10.ensure_cases(cert)
    aws, table, run = cert.aws_session, _table(cert), pins.platform_run_id
    holder = f"manual-closeout-{cert.cert_id}"
    taken = closeout.take(aws, table, run, holder=holder, lease_s=MANUAL_LEASE_S)
    reporter_id = f"reporter-while-held-{uuid.uuid4().hex[:8]}"
    before = _obs_keys(cert, pins)
    outcome = _ran(cert, pins, reporter_id)
    written = sorted(set(_obs_keys(cert, pins)) - set(before))
    completed = claims.get(cert, pins, COMPLETED)
    released = closeout.attempt(closeout.release, aws, table, run, holder=holder, token=int(taken["token"]))
    record = {"platform_run_id": run, "holder": holder, "token": int(taken["token"]), "taken": taken,
              "reporter": outcome, "run_completed_present": completed is not None, "released": released,
              "written_while_held": written}
    cert.evidence(f"runs/{run}/obs/p11_manual_closeout.json", record)
    return record


def check_manual_blocks(record: dict[str, Any]) -> None:
    problems = []
    reporter, conflict = record["reporter"], record["reporter"]["conflict"]
    if reporter["exit_code"] != 1:
        problems.append(f"the reporter exited {reporter['exit_code']} while {record['holder']} held the lock, not 1")
    if conflict is None:
        problems.append(f"the reporter wrote no obs/conflict_{reporter['reporter']}.json")
    elif conflict.get("holder") != record["holder"] or int(conflict.get("holder_token") or -1) != record["token"]:
        problems.append(f"the conflict evidence names {conflict.get('holder')!r} token "
                        f"{conflict.get('holder_token')!r}, the lock is held by {record['holder']!r} token "
                        f"{record['token']}")
    if record["run_completed_present"]:
        problems.append("run_completed.json was written while the manual closeout held the lock")
    extra = [k for k in record.get("written_while_held", [])
             if k != f"obs/conflict_{reporter['reporter']}.json"]
    if extra:
        problems.append(f"the reporter wrote without the lock: {extra}")
    if not record["released"]["accepted"]:
        problems.append(f"the manual closeout could not release its own lock: {record['released']}")
    if problems:
        raise Finding("P11.single_writer", problems)


# --- two reporters at once -------------------------------------------------------------------------------------


def two_reporters(cert: Certification) -> dict[str, Any]:
    return cert.once("p11.two", lambda: _two(cert))


def _two(cert: Certification) -> dict[str, Any]:
    pins = p01.ensure_pinned(cert)
    stale_token(cert)
    return race_reporters(cert, pins, evidence=f"runs/{pins.platform_run_id}/obs/p11_two_reporters.json")


def race_reporters(cert: Certification, pins: p01.Pins, *, evidence: str) -> dict[str, Any]:
    """Two reporters of the run started at the same instant; how each ended, the lock, run_completed.json."""
    run = pins.platform_run_id
    ids = [f"reporter-{side}-{uuid.uuid4().hex[:8]}" for side in ("a", "b")]
    tags = {"platform_run_id": run, "cert_id": cert.cert_id}
    started = [cert.compute_provider.start("reporter", env=p01.job_env(cert, pins, SPINE_REPORTER_ID=i), tags=tags)
               for i in ids]
    outcomes = []
    for reporter_id, process in zip(ids, started, strict=True):
        code = process.wait(timeout_s=JOB_TIMEOUT_S)
        if code is None:
            process.kill()
        if code == NOT_IMPLEMENTED_EXIT and "not implemented" in process.output():
            raise ModeNotImplemented("reporter")
        outcomes.append(reporter_outcome(cert, pins, reporter_id, code, process.output()))
    lock = closeout.current(cert.aws_session, _table(cert), run)
    record = {"platform_run_id": run, "reporters": outcomes, "lock": lock,
              "run_completed": claims.get(cert, pins, COMPLETED),
              "ran": [[p.started_at, p.ended_at] for p in started]}  # when each process ran, on the harness's clock
    cert.evidence(evidence, record)
    return record


def check_one_closes(record: dict[str, Any]) -> None:
    ran = record.get("ran") or []
    if len(ran) == 2 and all(end is not None for _, end in ran) and max(s for s, _ in ran) >= min(e for _, e in ran):
        raise HarnessError(f"the two reporters did not run at the same time ({ran}): this run shows no contention "
                           "(start them again)")
    problems = []
    winners = [r for r in record["reporters"] if r["exit_code"] == 0]
    losers = [r for r in record["reporters"] if r["exit_code"] != 0]
    completed, lock = record["run_completed"], record["lock"] or {}
    if len(winners) != 1:
        problems.append(f"{len(winners)} of two reporters started at once exited 0: "
                        f"{[(r['reporter'], r['exit_code']) for r in record['reporters']]}")
    if completed is None:
        problems.append("neither reporter wrote run_completed.json")
    if winners and completed is not None and completed.get("closed_by") != winners[0]["reporter"]:
        problems.append(f"run_completed.json names {completed.get('closed_by')!r}, the reporter that exited 0 is "
                        f"{winners[0]['reporter']!r}")
    if winners and (lock.get("state") != "CLOSED" or lock.get("holder") != winners[0]["reporter"]):
        problems.append(f"the lock table shows {lock}, not CLOSED by {winners[0]['reporter']}")
    if completed is not None and lock.get("token") is not None \
            and int(completed.get("fencing_token") or -1) != int(lock["token"]):
        problems.append(f"run_completed.json carries fencing token {completed.get('fencing_token')!r}, the lock "
                        f"{int(lock['token'])}")
    for loser in losers:
        conflict = loser["conflict"]
        if conflict is not None and conflict.get("state") != "HELD":
            raise HarnessError(f"{loser['reporter']} met the lock {conflict.get('state')!r}, not HELD: the two "
                               "reporters did not overlap, so this run shows no contention (start them again)")
        if loser["exit_code"] != 1:
            problems.append(f"{loser['reporter']} exited {loser['exit_code']}, not 1")
        if conflict is None:
            problems.append(f"{loser['reporter']} wrote no obs/conflict_{loser['reporter']}.json")
        elif winners and conflict.get("holder") != winners[0]["reporter"]:
            problems.append(f"{loser['reporter']}'s conflict evidence names {conflict.get('holder')!r}, the lock "
                            f"went to {winners[0]['reporter']!r}")
    if problems:
        raise Finding("P11.single_writer", problems)


# --- a stale fencing token ------------------------------------------------------------------------------------


def stale_token(cert: Certification) -> dict[str, Any]:
    """The manual closeout takes the lock again (a new token) and presents its old one: the table refuses it."""
    return cert.once("p11.stale", lambda: _stale(cert))


def _stale(cert: Certification) -> dict[str, Any]:
    pins = p01.ensure_pinned(cert)
    manual = manual_closeout(cert)
    aws, table, run = cert.aws_session, _table(cert), pins.platform_run_id
    holder, old = manual["holder"], manual["token"]
    taken = closeout.take(aws, table, run, holder=holder, lease_s=MANUAL_LEASE_S)
    new = int(taken["token"])
    record = {"platform_run_id": run, "holder": holder, "stale_token": old, "current_token": new,
              "fenced_with_stale": closeout.attempt(closeout.fence, aws, table, run, holder=holder, token=old),
              "fenced_with_current": closeout.attempt(closeout.fence, aws, table, run, holder=holder, token=new),
              "released": closeout.attempt(closeout.release, aws, table, run, holder=holder, token=new)}
    cert.evidence(f"runs/{run}/obs/p11_stale_token.json", record)
    return record


def check_stale_refused(record: dict[str, Any]) -> None:
    problems = []
    if record["current_token"] <= record["stale_token"]:
        problems.append(f"taking the lock again gave token {record['current_token']}, not above the earlier "
                        f"{record['stale_token']}")
    if record["fenced_with_stale"]["accepted"]:
        problems.append(f"a fenced write with the stale token {record['stale_token']} was accepted: "
                        f"{record['fenced_with_stale']}")
    if not record["fenced_with_current"]["accepted"]:
        problems.append(f"a fenced write with the current token {record['current_token']} was refused: "
                        f"{record['fenced_with_current']}")
    if not record["released"]["accepted"]:
        problems.append(f"the lock could not be released with the current token: {record['released']}")
    if problems:
        raise Finding("P11.fencing", problems)


# --- after closure ------------------------------------------------------------------------------------------


def after_close(cert: Certification) -> dict[str, Any]:
    return cert.once("p11.after", lambda: _after(cert))


def _after(cert: Certification) -> dict[str, Any]:
    """Once closed: another reporter, and the earlier holder's token, change nothing."""
    pins = p01.ensure_pinned(cert)
    stale, two = stale_token(cert), two_reporters(cert)
    aws, table, run = cert.aws_session, _table(cert), pins.platform_run_id
    bucket, prefix = s3.split_url(pins.evidence_root)
    before = s3.get_optional(aws, bucket=bucket, key=prefix + COMPLETED)
    reporter_id = f"reporter-after-close-{uuid.uuid4().hex[:8]}"
    again = _ran(cert, pins, reporter_id)
    record = {"platform_run_id": run, "reporter_after_close": again,
              # The closer's own holder and token: refused only because the run is CLOSED.
              "fenced_with_old_token": closeout.attempt(closeout.fence, aws, table, run, **_closer(before)),
              "retake": closeout.attempt(closeout.take, aws, table, run, holder=stale["holder"], lease_s=60),
              "lock": closeout.current(aws, table, run),
              "run_completed_unchanged": before is not None
              and before == s3.get_optional(aws, bucket=bucket, key=prefix + COMPLETED),
              "winner": [r["reporter"] for r in two["reporters"] if r["exit_code"] == 0]}
    cert.evidence(f"runs/{run}/obs/p11_after_close.json", record)
    return record


def _closer(completed: bytes | None) -> dict[str, Any]:
    record = _parsed(completed) or {}
    return {"holder": str(record.get("closed_by")), "token": int(record.get("fencing_token") or 0)}


def check_closed_stays_closed(record: dict[str, Any]) -> None:
    problems = []
    if record["reporter_after_close"]["exit_code"] != 1:
        problems.append(f"a reporter started after closure exited {record['reporter_after_close']['exit_code']}, "
                        "not 1")
    for attempt in ("fenced_with_old_token", "retake"):
        if record[attempt]["accepted"]:
            problems.append(f"{attempt.replace('_', ' ')} on the closed run was accepted: {record[attempt]}")
    if (record["lock"] or {}).get("state") != "CLOSED":
        problems.append(f"the lock no longer shows the run CLOSED: {record['lock']}")
    if not record["run_completed_unchanged"]:
        problems.append("run_completed.json is missing or changed after closure")
    if problems:
        raise Finding("P11.fencing", problems)


# --- the harness's own reconciliation ---------------------------------------------------------------------------


def recompute(cert: Certification) -> dict[str, Any]:
    return cert.once("p11.recompute", lambda: _recompute(cert))


def _recompute(cert: Certification) -> dict[str, Any]:
    pins = p01.ensure_pinned(cert)
    two_reporters(cert)
    obs = observe(cert, pins)
    verdict = judge(obs)
    cert.evidence(f"runs/{pins.platform_run_id}/obs/p11_recomputed.json", {"observed": obs, "judged": verdict})
    return {"observed": obs, "judged": verdict}


def observe(cert: Certification, pins: p01.Pins) -> dict[str, Any]:
    run = pins.platform_run_id
    aws = cert.aws_session
    bucket, prefix = s3.split_url(pins.evidence_root)
    raw = {rel: s3.get_optional(aws, bucket=bucket, key=prefix + rel) for rel in (*OBS, COMPLETED)}
    for rel, body in raw.items():  # the reporter's objects, as written, beside the harness's verdict on them
        if body is not None and not cert.bundle.has(f"runs/{run}/{rel}"):
            cert.evidence_bytes(f"runs/{run}/{rel}", body)
    names = {role: cert.handles.topic_roles[role] for role in ROLES}
    return {
        **gather(aws, cert.kafka(), run=run, evidence_root=pins.evidence_root, topics=names,
                 dsn=pipeline.platform_dsn(aws, cert.handles.ssm["db_dsn"])),
        "image_digest": pins.run_json["image"]["digest"],
        "run_config_digest": pins.run_config_digest,
        "topic_names": names,
        "lock": closeout.current(aws, _table(cert), run),
        "claims": {rel: _parsed(body) for rel, body in raw.items()},
        "claim_sha256": {rel: pipeline.sha256(body) for rel, body in raw.items() if body is not None},
    }


def _parsed(body: bytes | None) -> dict[str, Any] | None:
    """A claim as an object; bytes that are not a JSON object are kept as a claim that says nothing."""
    if body is None:
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return {"not_json": body[:200].decode("utf-8", "replace")}
    return value if isinstance(value, dict) else {"not_an_object": value}


def gather(aws: AwsSession, conn: KafkaConnection, *, run: str, evidence_root: str, topics: dict[str, str],
           dsn: str, timeout_s: float = 60.0) -> dict[str, Any]:
    """What the recount needs, read by the harness: receipts, the run's records of the traffic, rtdl and
    decision topics (position, digest, identity, outcome), DLA outcomes, case and label ids."""
    receipts = ingress.flat_receipts(ingress.receipt_records(aws, evidence_root))
    admitted = pipeline.admitted_events(receipts)
    acked = ingress.acked_end_offsets(receipts)
    read = {"traffic": [r for r in (pipeline.decoded(rec) for rec in
                                    read_all(conn, topics["traffic"], min_end=acked, timeout_s=timeout_s))
                        if (r["value"] or {}).get("platform_run_id") == run]}
    shortfalls = {}
    for role, identity in (("rtdl", "event_id"), ("decision", "decision_id")):
        read[role], shortfalls[role] = pipeline.run_records(conn, topics[role], run, identity=identity,
                                                            expected=len(admitted), timeout_s=timeout_s)
    return {
        "platform_run_id": run,
        "receipts": [{k: r.get(k) for k in ("event_id", "status", "partition", "offset")} for r in receipts],
        "topics": {role: [{k: r[k] for k in ("partition", "offset", "sha256")}
                          | {"identity": (r["value"] or {}).get("decision_id" if role == "decision" else "event_id"),
                             "event_id": (r["value"] or {}).get("event_id"),
                             "decision": (r["value"] or {}).get("decision"),
                             "reasons": (r["value"] or {}).get("reasons")}
                          for r in records] for role, records in read.items()},
        "read_shortfalls": {k: v for k, v in shortfalls.items() if v},
        "dla": pipeline.dla_outcomes(dsn, run),
        "cases": [c["case_id"] for c in pipeline.case_rows(dsn, run)],
        "labels": [label["label_id"] for label in pipeline.label_rows(dsn, run)],
    }


def recount(obs: dict[str, Any]) -> dict[str, Any]:
    """The contract's counts (§6) from the harness's own observations."""
    statuses = Counter(r["status"] for r in obs["receipts"])
    topics = obs["topics"]
    distinct_decisions = {r["identity"]: r for r in topics["decision"]}
    return {
        "receipts": {s: statuses.get(s, 0) for s in ("ADMITTED", "DUPLICATE", "QUARANTINED", "PUBLISH_AMBIGUOUS")},
        "admitted_events": len({r["event_id"] for r in obs["receipts"] if r["status"] == "ADMITTED"}),
        "traffic_records": len(topics["traffic"]),
        "traffic_events": len({r["identity"] for r in topics["traffic"]}),
        "enriched_records": len(topics["rtdl"]),
        "enriched_events": len({r["identity"] for r in topics["rtdl"]}),
        "decision_records": len(topics["decision"]),
        "decisions": len(distinct_decisions),
        "decisions_by_outcome": _outcomes(d["decision"] for d in distinct_decisions.values()),
        "dla_records": len(obs["dla"]),
        "dla_by_outcome": _outcomes(r["decision"] for r in obs["dla"]),
        "cases": len(obs["cases"]),
        "labels": len(obs["labels"]),
    }


def _outcomes(values: Any) -> dict[str, int]:
    counts = Counter(values)
    return {outcome: counts.get(outcome, 0) for outcome in pipeline.OUTCOMES}


def closes(counts: dict[str, Any], obs: dict[str, Any]) -> list[str]:
    """What does not close, by the contract's closes (§6)."""
    chain = ("admitted_events", "traffic_events", "traffic_records", "enriched_events", "decisions",
             "decision_records", "dla_records")
    problems = [f"{a} {counts[a]} != {b} {counts[b]}" for a, b in itertools.pairwise(chain)
                if counts[a] != counts[b]]
    if counts["decisions_by_outcome"] != counts["dla_by_outcome"]:
        problems.append(f"decisions by outcome {counts['decisions_by_outcome']} != DLA {counts['dla_by_outcome']}")
    flagged = counts["dla_by_outcome"]["REVIEW"] + counts["dla_by_outcome"]["DECLINE"]
    if counts["cases"] != flagged:
        problems.append(f"cases {counts['cases']} != DLA REVIEW + DECLINE {flagged}")
    reasons = sum(len(r["reasons"] or []) for r in {d["identity"]: d for d in obs["topics"]["decision"]}.values()
                  if r["decision"] in ("REVIEW", "DECLINE"))
    if counts["labels"] != reasons:
        problems.append(f"labels {counts['labels']} != reasons of the REVIEW and DECLINE decisions {reasons}")
    admitted = {r["event_id"] for r in obs["receipts"] if r["status"] == "ADMITTED"}
    unreconciled = sorted({r["event_id"] for r in obs["receipts"] if r["status"] == "PUBLISH_AMBIGUOUS"} - admitted,
                          key=str)
    if unreconciled:  # an ambiguous publish is reconciled by IG with an ADMITTED receipt (contract §5)
        problems.append(f"{len(unreconciled)} PUBLISH_AMBIGUOUS receipt(s) unreconciled: {unreconciled[:10]}")
    return problems


def identities(obs: dict[str, Any]) -> list[str]:
    """Equal counts of the wrong records must not close: the same event ids all the way, the same decision ids."""
    admitted = {r["event_id"] for r in obs["receipts"] if r["status"] == "ADMITTED"}
    stages = {"traffic": {r["identity"] for r in obs["topics"]["traffic"]},
              "rtdl": {r["identity"] for r in obs["topics"]["rtdl"]},
              "decision": {r.get("event_id") for r in obs["topics"]["decision"]}}
    problems = []
    for stage, ids in stages.items():
        if ids != admitted:
            problems.append(f"the {stage} topic's event ids are not the admitted ones: missing "
                            f"{sorted(admitted - ids, key=str)[:5]}, extra {sorted(ids - admitted, key=str)[:5]}")
    decided, logged = {r["identity"] for r in obs["topics"]["decision"]}, {r["decision_id"] for r in obs["dla"]}
    if decided != logged:
        problems.append(f"the decision topic's decision ids are not the DLA's: only on the topic "
                        f"{sorted(decided - logged, key=str)[:5]}, "
                        f"only in the DLA {sorted(logged - decided, key=str)[:5]}")
    return problems


def judge(obs: dict[str, Any]) -> dict[str, Any]:
    problems: dict[str, list[str]] = {f: [] for f in FAMILIES}
    counts = recount(obs)
    problems["reconciliation"] += [f"the harness's recount does not close: {p}" for p in closes(counts, obs)]
    problems["reconciliation"] += identities(obs)
    if counts["admitted_events"] == 0:
        problems["reconciliation"].append("the run has no ADMITTED receipt: an empty run closes nothing")
    problems["reconciliation"] += [f"reading the {role} topic: {why}" for role, why in obs["read_shortfalls"].items()]
    claim = obs["claims"].get(OBS[0])
    if claim is None:
        problems["reconciliation"].append(f"the reporter wrote no {OBS[0]}")
    else:
        claimed = claim.get("counts") or {}
        for name, value in counts.items():
            if claimed.get(name) != value:
                problems["reconciliation"].append(f"{name}: the reporter claims {claimed.get(name)!r}, the harness "
                                                  f"counts {value!r}")
        problems["reconciliation"] += [f"{name}: the reporter counts it, the contract does not"
                                       for name in sorted(set(claimed) - set(counts))]
        if claim.get("closed") is not True:
            problems["reconciliation"].append(f"{OBS[0]} does not claim closed: {claim.get('closed')!r}")
        problems["reconciliation"] += [f"the reporter's own close {c.get('check')!r} is not ok: {c}"
                                       for c in claim.get("closes") or [] if not c.get("ok")]
    problems["replay_anchors"] += _anchor_problems(obs)
    problems["run_completed"] += _completed_problems(obs, counts)
    problems["conformance"] += _conformance_problems(obs)
    return {"counts": counts, "problems": problems}


def _anchor_problems(obs: dict[str, Any]) -> list[str]:
    claim = obs["claims"].get(OBS[3])
    if claim is None:
        return [f"the reporter wrote no {OBS[3]}"]
    problems = []
    said_topics = claim.get("topics") or {}
    for role in ROLES:
        name = obs["topic_names"][role]
        mine = pipeline.topic_digests(obs["topics"][role])
        said = said_topics.get(name) or said_topics.get(role)
        if said is None:
            problems.append(f"the replay anchors have no entry for the {role} topic {name}")
            continue
        said_partitions = said.get("partitions", said) if isinstance(said, dict) else {}
        for partition in sorted(set(mine) | set(said_partitions)):
            a, b = mine.get(partition), said_partitions.get(partition)
            fields = ("first_offset", "last_offset", "records", "digest")
            if a is None or b is None or any(a[f] != b.get(f) for f in fields):
                problems.append(f"{role} partition {partition}: the reporter anchors {_brief(b)}, the harness "
                                f"recomputes {_brief(a)}")
    return problems


def _brief(anchor: dict[str, Any] | None) -> str:
    if anchor is None:
        return "nothing"
    return (f"{anchor.get('first_offset')}-{anchor.get('last_offset')} ({anchor.get('records')} records, digest "
            f"{str(anchor.get('digest'))[:12]}…)")


def _completed_problems(obs: dict[str, Any], counts: dict[str, Any]) -> list[str]:
    completed, lock = obs["claims"].get(COMPLETED), obs["lock"] or {}
    if completed is None:
        return [f"the reporter wrote no {COMPLETED}"]
    problems = []
    if completed.get("platform_run_id") != obs["platform_run_id"]:
        problems.append(f"{COMPLETED} names run {completed.get('platform_run_id')!r}")
    if completed.get("counts") != counts:
        problems.append(f"{COMPLETED} carries counts that differ from the harness's recount")
    if lock.get("state") != "CLOSED" or completed.get("closed_by") != lock.get("holder") \
            or int(completed.get("fencing_token") or -1) != int(lock.get("token") or -2):
        problems.append(f"{COMPLETED} says closed by {completed.get('closed_by')!r} with token "
                        f"{completed.get('fencing_token')!r}; the lock table shows {lock}")
    vouched = completed.get("obs") or {}
    for rel in OBS:
        if rel not in obs["claim_sha256"]:
            problems.append(f"{COMPLETED} exists but {rel} does not")
        elif vouched.get(rel) != obs["claim_sha256"][rel]:
            problems.append(f"{COMPLETED} vouches for {rel} with sha256 {str(vouched.get(rel))[:12]}…, the object "
                            f"hashes to {obs['claim_sha256'][rel][:12]}…")
    return problems


def _conformance_problems(obs: dict[str, Any]) -> list[str]:
    claim = obs["claims"].get(OBS[2])
    if claim is None:
        return [f"the reporter wrote no {OBS[2]}"]
    checks = claim.get("checks") or []
    problems = [f"environment conformance check {c.get('name')!r} failed: expected {c.get('expected')!r}, observed "
                f"{c.get('observed')!r}" for c in checks if not c.get("ok")]
    if not checks:
        problems.append(f"{OBS[2]} holds no check")
    problems += [f"environment conformance check {c.get('name')!r} says ok, but expected {c.get('expected')!r} is "
                 f"not observed {c.get('observed')!r}" for c in checks if c.get("ok") and c.get("expected") !=
                 c.get("observed")]
    for pin, value in (("image digest", obs["image_digest"]), ("run config digest", obs["run_config_digest"])):
        if checks and not any(c.get("expected") == value and c.get("observed") == value and c.get("ok")
                              for c in checks):
            problems.append(f"no conformance check shows the run's {pin} {value} both expected and observed")
    return problems


def check(result: dict[str, Any], *families: str) -> None:
    problems = [f"{family}: {p}" for family in families for p in result["judged"]["problems"][family]]
    if problems:
        raise Finding(f"P11.{'+'.join(families)}", problems)


# --- fault runs: closure refused -------------------------------------------------------------------------------

# The fault run's reporter waits this long on each of its three topics for a record that was never produced (the
# whole shared topic is read in well under a second; a read cut short still leaves the fault open, so it refuses).
FAULT_READ_TIMEOUT_S = "2"
FAULTS = {
    "an unreconciled PUBLISH_AMBIGUOUS receipt": "ambiguous",
    "an ADMITTED receipt whose record is not on the traffic topic": "admitted-missing",
}


def refused_closure(cert: Certification, fault: str) -> dict[str, Any]:
    """A run whose receipts cannot close (IG's durable receipts as the fault leaves them); the reporter runs."""
    label = FAULTS.get(fault)
    if label is None:
        raise HarnessError(f"unknown closure fault {fault!r}; known: {sorted(FAULTS)}")
    main = p01.ensure_pinned(cert)
    pins = p01.pin(cert, label=f"closure-{label}")
    event_id = f"evt_closure_{label.replace('-', '_')}"
    receipt = {"index": 0, "event_id": event_id, "payload_sha256": "0" * 64, "reason": None, "quarantine": None,
               "topic": cert.handles.topic_roles["traffic"], "partition": None, "offset": None,
               "status": "PUBLISH_AMBIGUOUS"}
    if label == "admitted-missing":
        receipt.update(status="ADMITTED", partition=0, offset=10**9)
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    bucket, prefix = s3.split_url(pins.evidence_root)
    s3.put_once(cert.aws_session, bucket=bucket, key=f"{prefix}{ingress.RECEIPTS}{request_id}.json",
                body=json.dumps({"request_id": request_id, "platform_run_id": pins.platform_run_id,
                                 "sender": "fault-injection", "received_at_ms": 0, "receipts": [receipt]},
                                sort_keys=True).encode())
    reporter_id = f"reporter-{label}-{uuid.uuid4().hex[:8]}"
    record = {"fault": fault, "platform_run_id": pins.platform_run_id, "event_id": event_id, "receipt": receipt,
              "reporter": _ran(cert, pins, reporter_id, SPINE_REPORTER_READ_TIMEOUT_S=FAULT_READ_TIMEOUT_S),
              "run_completed_present": claims.get(cert, pins, COMPLETED) is not None,
              "lock": closeout.current(cert.aws_session, _table(cert), pins.platform_run_id)}
    cert.evidence(f"runs/{main.platform_run_id}/obs/fault_closure_{label}.json", record)
    return record


def check_closure_refused(record: dict[str, Any]) -> None:
    problems = []
    reporter = record["reporter"]
    if reporter["exit_code"] != 1:
        problems.append(f"the reporter exited {reporter['exit_code']} for a run with {record['fault']}, not 1")
    if record["run_completed_present"]:
        problems.append(f"run_completed.json was written for a run with {record['fault']}")
    named = record["event_id"] in json.dumps(reporter["refused"]) or record["event_id"] in reporter["stderr"]
    what = "PUBLISH_AMBIGUOUS" if record["receipt"]["status"] == "PUBLISH_AMBIGUOUS" else "admitted_events = traffic"
    if reporter["refused"] is None:
        problems.append(f"the reporter wrote no obs/refused_{reporter['reporter']}.json")
    elif not (named or what in json.dumps(reporter["refused"].get("open") or [])):
        problems.append(f"the refusal does not name the fault ({record['event_id']} / {what}): {reporter['refused']}")
    if (record["lock"] or {}).get("state") not in (None, "RELEASED"):
        problems.append(f"the refusing reporter left the lock {record['lock']['state']}, not free: {record['lock']}")
    if problems:
        raise Finding("P11.closure_refused", problems)
