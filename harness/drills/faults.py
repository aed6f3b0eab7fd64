"""Fault actions the drills share: a paced WSP, a frozen broker, a rotated secret, an IG killed and restarted.

Each action touches the substrate for real and returns what it did as a record that carries no secret.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from harness import ig_client, ingress, redact
from harness.aws import s3, ssm
from harness.compute import JobResult, Started
from harness.errors import HarnessError, Timeout
from harness.phases import p01, p02
from harness.session import Certification
from harness.substrate import TansuBroker
from harness.wait import wait_until

WSP_TIMEOUT_S = 600.0
IG_READY_S = 60.0


# --- WSP --------------------------------------------------------------------------------------------------------


def wsp_env(cert: Certification, pins: p01.Pins, **extra: str) -> dict[str, str]:
    """What P6 gives WSP: the run's environment and IG's URL."""
    return p01.job_env(cert, pins, SPINE_IG_URL=p02.ig(cert).url or "", SPINE_WSP_READY_TIMEOUT_S="30", **extra)


def start_wsp(cert: Certification, pins: p01.Pins, *, batch: int, seconds: float) -> Started:
    """WSP started in the background, paced so that the run's events take about ``seconds`` to send."""
    pace = max(1, round(cert.events / seconds))
    return cert.compute_provider.start("wsp", env=wsp_env(cert, pins, SPINE_WSP_PACE_EPS=str(pace),
                                                          SPINE_WSP_BATCH_SIZE=str(batch)))


def run_wsp(cert: Certification, pins: p01.Pins) -> JobResult:
    """WSP run to its end (unpaced), its log in the bundle."""
    result = cert.compute_provider.run("wsp", env=wsp_env(cert, pins), timeout_s=WSP_TIMEOUT_S)
    cert.job_log(pins.platform_run_id, result)
    return result


def ended(cert: Certification, pins: p01.Pins, process: Started, *, timeout_s: float, label: str) -> dict[str, Any]:
    """Wait for a background job to end (killed after ``timeout_s``); its output goes to the bundle."""
    code = process.wait(timeout_s=timeout_s)
    if code is None:
        process.kill()
    output = process.output()
    cert.evidence_bytes(f"runs/{pins.platform_run_id}/compute/{label}-{process.pid}.log",
                        f"# {process.mode} {label}: exit {code}{' (killed: still running)' if code is None else ''}"
                        f"\n{output}".encode())
    return {"pid": process.pid, "exit_code": code, "timed_out": code is None, "output_tail": output[-1500:]}


def receipt_keys(cert: Certification, pins: p01.Pins) -> list[str]:
    bucket, prefix = s3.split_url(pins.evidence_root)
    return s3.list_keys(cert.aws_session, bucket=bucket, prefix=prefix + ingress.RECEIPTS)


def wait_for_receipts(cert: Certification, pins: p01.Pins, process: Started, *, timeout_s: float = 60.0) -> int:
    """Until IG has receipted the job's first request (the job is mid-stream); raises if it ended first."""
    found = wait_until(lambda: len(receipt_keys(cert, pins)) or not process.alive(), timeout_s=timeout_s,
                       backoff_s=0.02, max_backoff_s=0.1, err_msg=f"{process.mode} sent nothing IG receipted",
                       operation=f"{process.mode} mid-stream")
    if not process.alive():
        raise HarnessError(f"{process.mode} ended (exit {process.exit_code}) before the fault could be injected "
                           f"mid-stream:\n{process.output()[-800:]}")
    return int(found)


def receipts(cert: Certification, pins: p01.Pins) -> list[dict[str, Any]]:
    """Per-event receipts of the run in arrival order, each with its request's id, sender and arrival time."""
    return [{**r, "request_id": rec.get("request_id"), "sender": rec.get("sender"),
             "received_at_ms": rec.get("received_at_ms")}
            for rec in ingress.receipt_records(cert.aws_session, pins.evidence_root)
            for r in sorted(rec.get("receipts", []), key=lambda r: r.get("index", 0))]


def topic(cert: Certification, *, min_end: dict[int, int] | None = None) -> list[dict[str, Any]]:
    """Every record of the traffic topic, decoded by the harness (any run's)."""
    return [{**e.to_json(), "event": e.event}
            for e in ingress.topic_events(cert.kafka(), cert.handles.topic_roles["traffic"], min_end=min_end)]


def view_events(cert: Certification, pins: p01.Pins) -> list[dict[str, Any]]:
    """The run's stream view as the events WSP sends (the contract's envelope), read by the harness."""
    rows, _ = ingress.view_rows(cert.aws_session, pins.run_config["oracle_root"])
    return [{"event_type": "card_transaction", "platform_run_id": pins.platform_run_id,
             "scenario_run_id": pins.scenario_run_id, **ingress.expected_event(r)} for r in rows]


def mark_streamed(cert: Certification, record: dict[str, Any]) -> dict[str, Any]:
    """The drill streamed its run itself: P6's memo holds that stream, so that P7..P11, when the drill settles,
    judge it as the drill left it (and never stream the run again, which would heal a loss)."""
    kept = cert.once("p6.stream", lambda: record)
    if kept is not record:
        raise HarnessError("the drill's run was already streamed by P6 before the drill streamed it")
    return record


# --- the writer key ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rotation:
    """A SecureString given a new value. The values stay in memory (and in the redaction registry)."""

    path: str
    old: str = field(repr=False)
    new: str = field(repr=False)
    version_before: int
    version_after: int
    rotated_at_ms: int  # the harness's clock once SSM acknowledged the new value

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "version_before": self.version_before, "version_after": self.version_after,
                "rotated_at_ms": self.rotated_at_ms}


def rotate_secret(cert: Certification, role: str) -> Rotation:
    """Put a new random value at the handles' SSM path of ``role`` (a SecureString), registered as a secret first."""
    path = cert.handles.ssm[role]
    before = ssm.get(cert.aws_session, path)
    if before.type != "SecureString":
        raise HarnessError(f"ssm {role} at {path} is a {before.type}, not a SecureString: nothing to rotate")
    new = secrets.token_urlsafe(32)
    redact.register(new)
    ssm.put(cert.aws_session, path, new, secure=True)
    rotated_at_ms = int(time.time() * 1000)
    after = ssm.get(cert.aws_session, path)
    return Rotation(path, before.value, new, before.version, after.version, rotated_at_ms)


# --- the broker -------------------------------------------------------------------------------------------------


def local_broker(cert: Certification) -> TansuBroker:
    """The embedded broker the harness runs; a bring-your-own or managed bus cannot be frozen by the harness."""
    for part in cert.substrate.parts:
        if isinstance(part, TansuBroker):
            return part
    raise HarnessError(f"no broker of the harness's own in this certification (profile {cert.options.profile}"
                       f"{', --kafka-bootstrap' if cert.options.kafka_bootstrap else ''}): the broker cannot be "
                       "frozen, so this drill cannot be judged here")


def freeze(cert: Certification, broker: TansuBroker) -> dict[str, Any]:
    """SIGSTOP the broker; thawed again when the drill's scope ends, whatever happens."""

    def thaw_if_frozen() -> None:
        if broker.frozen():
            broker.thaw()

    cert.at_scope_end(thaw_if_frozen)
    at_ms = int(time.time() * 1000)
    group = broker.freeze()
    return {"process_group": group, "frozen_at_ms": at_ms, "frozen": broker.frozen()}


def thaw(broker: TansuBroker) -> dict[str, Any]:
    at_ms = int(time.time() * 1000)
    group = broker.thaw()
    return {"process_group": group, "thawed_at_ms": at_ms, "frozen": broker.frozen()}


# --- IG ---------------------------------------------------------------------------------------------------------


def wait_ig_health(url: str, *, status: int, timeout_s: float) -> list[dict[str, Any]]:
    """IG's health answers until one has ``status``; every answer is returned, the last one first met it."""
    answers: list[dict[str, Any]] = []

    def met() -> bool:
        try:
            answer = ig_client.health(url, timeout_s=5.0)
        except HarnessError as exc:
            answers.append({"at_ms": int(time.time() * 1000), "status": None, "error": str(exc)})
            return False
        answers.append({"at_ms": int(time.time() * 1000), "status": answer.status, "body": answer.body})
        return answer.status == status

    with contextlib.suppress(Timeout):  # the answers are the observation
        wait_until(met, timeout_s=timeout_s, backoff_s=0.1, max_backoff_s=0.5,
                   err_msg=f"IG never answered its health with {status}", operation="ig health")
    return answers


def wait_fresh_bus_check(url: str, *, timeout_s: float = 10.0) -> dict[str, Any]:
    """A health answer whose bus check IG made just now: for the next second IG trusts it (contract: the bus
    is checked at most once a second), so a batch sent at once is published, not refused."""

    def fresh() -> dict[str, Any] | None:
        answer = ig_client.health(url, timeout_s=5.0)
        bus = (answer.body.get("bus") if isinstance(answer.body, dict) else None) or {}
        checked = bus.get("checked_at_ms")
        if answer.status == 200 and isinstance(checked, int) and time.time() * 1000 - checked < 150:
            return {"status": answer.status, "bus": bus}
        return None

    return wait_until(fresh, timeout_s=timeout_s, backoff_s=0.05, max_backoff_s=0.1,
                      err_msg="IG never answered a bus check made just now (its health names no checked_at_ms?)",
                      operation="ig fresh bus check")


def restart_daemon(cert: Certification, pins: p01.Pins, mode: str) -> dict[str, Any]:
    """Start a daemon that is gone again as its service's task (IG on the port it served: callers keep its
    URL); wait until it is ready."""
    daemons = p02.ensure_daemons(cert)
    old = daemons[mode]
    if old.process.alive():
        raise HarnessError(f"{mode} (pid {old.process.pid}) still runs: it is restarted only once it is gone")
    overrides = {"SPINE_IG_LISTEN": (old.url or "").removeprefix("http://")} if old.url else {}
    env = p01.job_env(cert, pins, **overrides)
    tags = {"platform_run_id": pins.platform_run_id, "cert_id": cert.cert_id}
    process = cert.compute_provider.start(mode, env=env, service=old.service, tags=tags)
    daemons[mode] = p02.Daemon(mode, old.service, process, old.url)  # the run's daemon from now on
    began = time.monotonic()

    def ready() -> bool:
        if not process.alive():
            raise HarnessError(f"the restarted {mode} exited {process.exit_code}:\n{process.output()[-1500:]}")
        if old.url is None:
            return True
        try:
            return ig_client.health(old.url, timeout_s=2.0).status == 200
        except HarnessError:
            return False

    try:
        wait_until(ready, timeout_s=IG_READY_S, backoff_s=0.1, max_backoff_s=0.25,
                   err_msg=f"the restarted {mode} never answered ready", operation=f"restart {mode}")
    except Timeout as exc:
        if isinstance(exc.__cause__, HarnessError):
            raise exc.__cause__ from None
        raise
    return {"pid": process.pid, "url": old.url, "task_arn": process.task_arn,
            "ready_s": round(time.monotonic() - began, 3)}


def revive_exited(cert: Certification, pins: p01.Pins) -> dict[str, Any]:
    """Every daemon of the run that exited, started again as its service's task: an ECS service replaces a
    stopped task, the embedded compute does not, so the drill does (once, after the fault is rolled back)."""
    revived: dict[str, Any] = {}
    for mode, daemon in list(p02.ensure_daemons(cert).items()):
        if not daemon.process.alive():
            ended = {"pid": daemon.process.pid, "exit_code": daemon.process.exit_code,
                     "output_tail": daemon.process.output()[-800:]}
            revived[mode] = {"exited": ended, "restarted": restart_daemon(cert, pins, mode)}
    return revived
