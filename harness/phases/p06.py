"""P6 WSP streaming: stream views only, in stream order, deterministic identity, restarts add no record.

Shown by behaviour, not by WSP's word: the raw landed objects are removed before it streams, a
withheld stream view must stop it before it sends anything, and a WSP killed mid-stream and run
again must leave each event on the traffic topic exactly once.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from harness import ingress
from harness.aws import s3
from harness.errors import Finding, HarnessError
from harness.phases import p01, p02, p05
from harness.session import Certification
from harness.wait import wait_until

STREAM_S = 4.0  # the first attempt is paced to take about this long, so that it can be killed mid-stream
BATCH = 2


def _env(cert: Certification, pins: p01.Pins, **extra: str) -> dict[str, str]:
    return p01.job_env(cert, pins, SPINE_IG_URL=p02.ig(cert).url or "", SPINE_WSP_READY_TIMEOUT_S="30", **extra)


def _landed_keys(cert: Certification, pins: p01.Pins) -> list[str]:
    bucket, prefix = s3.split_url(pins.run_config["oracle_root"])
    return [k for k in s3.list_keys(cert.aws_session, bucket=bucket, prefix=prefix)
            if not k[len(prefix):].startswith("stream_view/")]


def _receipt_objects(cert: Certification, pins: p01.Pins) -> int:
    bucket, prefix = s3.split_url(pins.evidence_root)
    return len(s3.list_keys(cert.aws_session, bucket=bucket, prefix=prefix + ingress.RECEIPTS))


def _wsp_claims(cert: Certification, pins: p01.Pins) -> dict[str, Any]:
    bucket, prefix = s3.split_url(pins.evidence_root)
    return {key[len(prefix):]: s3.get_json(cert.aws_session, bucket=bucket, key=key)
            for key in s3.list_keys(cert.aws_session, bucket=bucket, prefix=prefix + "wsp/")}


def ensure_streamed(cert: Certification) -> dict[str, Any]:
    return cert.once("p6.stream", lambda: _stream(cert))


def _stream(cert: Certification) -> dict[str, Any]:
    pins = p01.ensure_pinned(cert)
    p05.ensure_ready(cert)
    bucket = s3.split_url(pins.run_config["oracle_root"])[0]
    removed = _landed_keys(cert, pins)
    for key in removed:  # WSP must not need them: it reads stream views only
        s3.delete(cert.aws_session, bucket=bucket, key=key)
    receipts_before = _receipt_objects(cert, pins)
    pace = max(1, round(cert.events / STREAM_S))
    first = cert.compute_provider.start("wsp", env=_env(cert, pins, SPINE_WSP_PACE_EPS=str(pace),
                                                        SPINE_WSP_BATCH_SIZE=str(BATCH)))
    wait_until(lambda: _receipt_objects(cert, pins) > receipts_before or not first.alive(), timeout_s=60,
               backoff_s=0.02, max_backoff_s=0.1, err_msg="the first WSP attempt sent nothing",
               operation="wsp mid-stream")
    receipts_at_kill = _receipt_objects(cert, pins) - receipts_before
    first_exit = first.kill()
    cert.evidence_bytes(f"runs/{pins.platform_run_id}/compute/wsp-killed-{first.pid}.log",
                        f"# killed mid-stream after {receipts_at_kill} IG request(s); exit {first_exit}\n"
                        f"{first.output()}".encode())
    second = cert.compute_provider.run("wsp", env=_env(cert, pins), timeout_s=600)
    cert.job_log(pins.platform_run_id, second)
    rows, view_objects = ingress.view_rows(cert.aws_session, pins.run_config["oracle_root"])
    receipts = ingress.flat_receipts(ingress.receipt_records(cert.aws_session, pins.evidence_root))
    topic = ingress.topic_events(cert.kafka(), cert.handles.topic_roles["traffic"],
                                 min_end=ingress.acked_end_offsets(receipts))
    record = {
        "platform_run_id": pins.platform_run_id,
        "landed_removed": [f"s3://{bucket}/{k}" for k in removed],
        "landed_remaining": [f"s3://{bucket}/{k}" for k in _landed_keys(cert, pins)],
        "first_attempt": {"pid": first.pid, "exit_code": first_exit, "requests_before_kill": receipts_at_kill,
                          "pace_eps": pace, "batch_size": BATCH},
        "second_attempt": second.to_json(),
        "view_objects": view_objects,
        "view_event_ids": [str(r["event_id"]) for r in rows],
        "receipts": [{k: r.get(k) for k in ("event_id", "status", "partition", "offset", "request_id", "sender")}
                     for r in receipts],
        "topic": [e.to_json() for e in topic if e.platform_run_id == pins.platform_run_id],
        "wsp_claims": _wsp_claims(cert, pins),
    }
    cert.evidence(f"runs/{pins.platform_run_id}/wsp/stream_observed.json", record)
    return record


def _senders(record: dict[str, Any]) -> list[str]:
    view = set(record["view_event_ids"])
    return list(dict.fromkeys(r["sender"] for r in record["receipts"] if r["event_id"] in view))


def check_streamed_from_views(record: dict[str, Any]) -> None:
    problems = []
    if not record["landed_removed"]:
        problems.append("no raw landed object was found to remove: the run's Oracle was not landed")
    if record["landed_remaining"]:
        problems.append(f"raw landed objects still present: {record['landed_remaining'][:3]}")
    second = record["second_attempt"]
    if second["exit_code"] != 0:
        problems.append(f"wsp exited {second['exit_code']} with the raw landed objects removed: "
                        f"{' '.join(second['stderr_tail'])}")
    on_topic = {e["event_id"] for e in record["topic"]}
    received = {r["event_id"] for r in record["receipts"] if r["status"] in ("ADMITTED", "DUPLICATE")}
    missing = [e for e in record["view_event_ids"] if e not in on_topic or e not in received]
    if not record["view_event_ids"]:
        problems.append("the harness found no stream view rows")
    if missing:
        problems.append(f"{len(missing)} stream view event(s) not admitted and on the topic: {missing[:5]}")
    if problems:
        raise Finding("P6.stream_views_only", problems)


def check_order(record: dict[str, Any]) -> None:
    """Per WSP attempt, the events IG received are the stream view's rows in the view's order.

    A retried batch repeats events already received: the order is that of each event's first receipt.
    """
    view = record["view_event_ids"]
    position = {e: i for i, e in enumerate(view)}
    problems = []
    for sender in _senders(record):
        got = list(dict.fromkeys(r["event_id"] for r in record["receipts"]
                                 if r["sender"] == sender and r["event_id"] in position))
        expected = view[:len(got)]
        if got != expected:
            first_bad = next(i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b)
            problems.append(f"{sender}: event #{first_bad} received was {got[first_bad]}, the stream view's is "
                            f"{expected[first_bad]}")
    if not _senders(record):
        problems.append("IG received no event of the stream view")
    if problems:
        raise Finding("P6.order", problems)


def check_restart(record: dict[str, Any]) -> None:
    first, problems = record["first_attempt"], []
    if first["exit_code"] == 0:
        raise HarnessError("the first WSP attempt finished before it could be killed mid-stream; "
                           f"the restart cannot be judged (paced at {first['pace_eps']} events/s)")
    senders = _senders(record)
    if len(senders) < 2:
        problems.append(f"expected receipts from the killed attempt and the restart, found senders {senders}")
    else:
        killed = [r for r in record["receipts"] if r["sender"] == senders[0]]
        admitted_first = {r["event_id"] for r in killed if r["status"] == "ADMITTED"}
        again = {r["event_id"]: r["status"] for r in record["receipts"] if r["sender"] == senders[1]}
        if not admitted_first or len(admitted_first) >= len(record["view_event_ids"]):
            problems.append(f"the killed attempt admitted {len(admitted_first)} of {len(record['view_event_ids'])} "
                            "events: it was not killed mid-stream")
        not_dup = sorted(e for e in admitted_first if again.get(e) != "DUPLICATE")
        if not_dup:
            problems.append(f"events admitted before the kill were not DUPLICATE on restart: {not_dup[:5]}")
    twice = sorted(e for e, n in Counter(e["event_id"] for e in record["topic"]).items() if n > 1)
    if twice:
        problems.append(f"events on the traffic topic more than once: {twice[:5]}")
    claims = record["wsp_claims"].get(f"wsp/attempts/{senders[-1]}.json") if senders else None
    if claims is not None:
        counted = Counter(r["status"] for r in record["receipts"] if r["sender"] == senders[-1])
        if claims.get("receipts") != dict(sorted(counted.items())) or claims.get("sent") != sum(counted.values()):
            problems.append(f"WSP's summary claims {claims.get('sent')} sent {claims.get('receipts')}, IG's "
                            f"receipts for {senders[-1]} show {dict(counted)}")
    else:
        problems.append(f"no wsp/attempts summary for the completing attempt {senders[-1:] or '-'}")
    if problems:
        raise Finding("P6.restart", problems)


def withheld_view(cert: Certification) -> dict[str, Any]:
    """Remove the stream view object, run WSP: it must send nothing and name the view; then restore it."""
    pins = p01.ensure_pinned(cert)
    ensure_streamed(cert)
    bucket, prefix = s3.split_url(pins.run_config["oracle_root"])
    keys = s3.list_keys(cert.aws_session, bucket=bucket, prefix=f"{prefix}stream_view/{ingress.VIEW_OUTPUT}/")
    if not keys:
        raise HarnessError(f"no stream view object under s3://{bucket}/{prefix}stream_view/{ingress.VIEW_OUTPUT}/")
    saved = {k: s3.get_bytes(cert.aws_session, bucket=bucket, key=k) for k in keys}
    receipts_before = _receipt_objects(cert, pins)
    topic_before = len(ingress.topic_events(cert.kafka(), cert.handles.topic_roles["traffic"]))
    for key in keys:
        s3.delete(cert.aws_session, bucket=bucket, key=key)
    try:
        result = cert.compute_provider.run("wsp", env=_env(cert, pins), timeout_s=300)
    finally:
        for key, body in saved.items():
            s3.overwrite(cert.aws_session, bucket=bucket, key=key, body=body)
    cert.job_log(pins.platform_run_id, result)
    record = {"platform_run_id": pins.platform_run_id, "withheld": [f"s3://{bucket}/{k}" for k in keys],
              "wsp": result.to_json(), "receipt_objects_before": receipts_before,
              "receipt_objects_after": _receipt_objects(cert, pins), "topic_records_before": topic_before,
              "topic_records_after": len(ingress.topic_events(cert.kafka(), cert.handles.topic_roles["traffic"]))}
    cert.evidence(f"runs/{pins.platform_run_id}/wsp/withheld_view_refused.json", record)
    return record


def check_withheld_refused(record: dict[str, Any]) -> None:
    problems = []
    said = " ".join(record["wsp"]["stderr_tail"])
    if record["wsp"]["exit_code"] != 1:
        problems.append(f"wsp exited {record['wsp']['exit_code']} with the stream view withheld, not 1")
    if not any(url in said for url in record["withheld"]):
        problems.append(f"wsp's refusal does not name the withheld stream view {record['withheld']}: {said}")
    if record["receipt_objects_after"] != record["receipt_objects_before"]:
        problems.append(f"IG received {record['receipt_objects_after'] - record['receipt_objects_before']} "
                        "request(s) while the stream view was withheld")
    if record["topic_records_after"] != record["topic_records_before"]:
        problems.append("the traffic topic grew while the stream view was withheld")
    if problems:
        raise Finding("P6.withheld_view", problems)
