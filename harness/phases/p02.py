"""P2 daemon bring-up: every daemon of the run runs on the compute provider, one replica, run-scoped."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from harness import ig_client
from harness.aws import ecs
from harness.compute import Started
from harness.errors import Finding, HarnessError, SubstrateError, Timeout
from harness.phases import p01
from harness.session import Certification
from harness.substrate import free_port
from harness.wait import wait_until

READY_TIMEOUT_S = 60.0
T = TypeVar("T")


@dataclass(frozen=True)
class Daemon:
    mode: str
    service: str
    process: Started
    url: str | None  # the HTTP base URL (IG), None for daemons that expose readiness as evidence


def _implemented_daemons(cert: Certification) -> tuple[list[str], list[str]]:
    """The pinned services split by the artifact's own contract answer: implemented, not implemented."""
    built: list[str] = []
    missing: list[str] = []
    for mode in sorted(cert.handles.services):
        result = cert.compute_provider.run(mode, env={}, args=["--contract"], timeout_s=60)
        answer = json.loads(result.stdout) if result.ok else {}
        (built if answer.get("implemented") and answer.get("kind") == "daemon" else missing).append(mode)
    return built, missing


def start_daemon(cert: Certification, pins: p01.Pins, mode: str, *, service: str | None,
                 **overrides: str) -> tuple[Started, str | None]:
    """Start one daemon of ``pins``' run on the compute provider; returns it and its URL (IG)."""
    port = free_port()
    env = p01.job_env(cert, pins, SPINE_IG_LISTEN=f"127.0.0.1:{port}", **overrides)
    tags = {"platform_run_id": pins.platform_run_id, "cert_id": cert.cert_id}
    process = cert.compute_provider.start(mode, env=env, service=service, tags=tags)
    return process, f"http://127.0.0.1:{port}" if mode == "ig" else None


def wait_ready(daemon: Daemon) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        if not daemon.process.alive():
            raise HarnessError(f"{daemon.mode} exited {daemon.process.exit_code} before it was ready:\n"
                               f"{daemon.process.output()[-1500:]}")
        if daemon.url is None:
            return {"status": "running"}
        answer = ig_client.health(daemon.url, timeout_s=2.0)
        return answer.body if answer.status == 200 else None

    try:
        return wait_until(ready, timeout_s=READY_TIMEOUT_S, backoff_s=0.1, max_backoff_s=0.5,
                          err_msg=f"{daemon.mode} did not answer ready", operation=f"start {daemon.mode}")
    except Timeout as exc:
        if isinstance(exc.__cause__, HarnessError):
            raise exc.__cause__ from None
        raise


def ensure_daemons(cert: Certification) -> dict[str, Daemon]:
    """The run's daemons, started once and stopped when the certification closes."""
    return cert.once("p2.daemons", lambda: _bring_up(cert))


def _bring_up(cert: Certification) -> dict[str, Daemon]:
    pins = p01.ensure_pinned(cert)
    built, missing = _implemented_daemons(cert)
    if missing:
        cert.ledger[cert.current_gate or "P2"].notes.append(
            f"declared daemons the platform does not implement yet: {', '.join(missing)}")
    daemons: dict[str, Daemon] = {}
    cert.at_scope_end(lambda: stop_daemons(daemons))  # the run's daemons stop when its rung or drill ends
    for mode in built:
        process, url = start_daemon(cert, pins, mode, service=cert.handles.services[mode])
        daemons[mode] = Daemon(mode, cert.handles.services[mode], process, url)
        wait_ready(daemons[mode])
    return daemons


def stop_daemons(daemons: dict[str, Daemon]) -> None:
    """Stop a finished run's daemons (SIGTERM, then SIGKILL after 30 s); their output stays in the bundle."""
    for daemon in daemons.values():
        daemon.process.stop(timeout_s=30)  # safe on a process that already ended


def restart_daemon(cert: Certification, mode: str, *, while_stopped: Callable[[], T]) -> T:
    """Stop the run's ``mode`` daemon (SIGTERM, exit 0 expected), run ``while_stopped``, start it again.

    The new process replaces the old one as its service's task; returns what ``while_stopped`` returned.
    """
    pins = p01.ensure_pinned(cert)
    daemons = ensure_daemons(cert)
    if mode not in daemons:
        raise HarnessError(f"the platform has no running {mode} daemon (P2 did not start one)")
    old = daemons[mode]
    old.process.stop(timeout_s=30)
    if old.process.exit_code != 0:
        raise Finding(f"{cert.current_phase or 'P2'}.daemon_stop",
                      [f"{mode} exited {old.process.exit_code} on SIGTERM, not 0:\n{old.process.output()[-1500:]}"])
    try:
        return while_stopped()
    finally:  # the daemon runs again whatever happened while it was stopped
        process, url = start_daemon(cert, pins, mode, service=old.service)
        daemons[mode] = Daemon(mode, old.service, process, url)
        wait_ready(daemons[mode])


def ig(cert: Certification) -> Daemon:
    daemons = ensure_daemons(cert)
    if "ig" not in daemons:
        raise HarnessError("the platform has no running ig daemon (P2 did not start one)")
    return daemons["ig"]


def readiness(cert: Certification) -> dict[str, Any]:
    """Observe each daemon: its ECS service and tasks, its process, its readiness answer."""
    pins = p01.ensure_pinned(cert)
    daemons = ensure_daemons(cert)
    services = ecs.describe_services(cert.aws_session, cert.handles.ecs_cluster,
                                     [d.service for d in daemons.values()]) if daemons else {}
    observed: dict[str, Any] = {}
    for mode, daemon in daemons.items():
        tasks = ecs.service_tasks(cert.aws_session, cluster=cert.handles.ecs_cluster, service=daemon.service)
        health = ig_client.health(daemon.url).to_json() if daemon.url else None
        observed[mode] = {"service": daemon.service, "ecs_service": services.get(daemon.service),
                          "tasks": tasks, "process": daemon.process.to_json(), "health": health}
    record: dict[str, Any] = {"platform_run_id": pins.platform_run_id, "compute": cert.compute_provider.name,
              "daemons": observed,
              "waived": {"ecs_task_last_status": "moto advances a task's lastStatus on every describe and "
                         "never runs a container: a daemon's life is judged from its process and its "
                         "readiness answer; the task record's desiredStatus and tags show it is the service's"}
              if cert.options.profile == "embedded" else {}}
    cert.evidence(f"runs/{pins.platform_run_id}/daemons/readiness.json", record)
    if record["waived"]:
        cert.waive("P2.ecs_task_status", record["waived"]["ecs_task_last_status"])
    return record


def check_running(record: dict[str, Any]) -> None:
    problems = []
    if not record["daemons"]:
        problems.append("no daemon of the run is running")
    for mode, d in record["daemons"].items():
        if not d["process"]["alive"]:
            problems.append(f"{mode}: its process (pid {d['process']['pid']}) is not running")
        health = d["health"]
        body = health["body"] if health is not None and isinstance(health["body"], dict) else {}
        if health is not None and (health["status"] != 200 or body.get("platform_run_id") != record["platform_run_id"]):
            problems.append(f"{mode}: readiness answer {health}")
    if problems:
        raise Finding("P2.running", problems)


def check_single_replica(record: dict[str, Any]) -> None:
    problems = []
    for mode, d in record["daemons"].items():
        service = d["ecs_service"] or {}
        if service.get("desired") != 1:
            problems.append(f"{mode}: service {d['service']} desired count {service.get('desired')}, pinned 1")
        if len(d["tasks"]) != 1:
            problems.append(f"{mode}: {len(d['tasks'])} tasks of service {d['service']} meant to run, expected 1: "
                            f"{[t['arn'] for t in d['tasks']]}")
        elif d["process"].get("task_arn") != d["tasks"][0]["arn"]:
            problems.append(f"{mode}: the running process is task {d['process'].get('task_arn')}, the service's task "
                            f"is {d['tasks'][0]['arn']}")
    if problems:
        raise Finding("P2.replicas", problems)


def check_tagged(record: dict[str, Any]) -> None:
    problems = [f"{mode}: task {t['arn']} tagged {t['tags']}, not platform_run_id={record['platform_run_id']}"
                for mode, d in record["daemons"].items() for t in d["tasks"]
                if t["tags"].get("platform_run_id") != record["platform_run_id"]]
    if problems:
        raise Finding("P2.run_scope", problems)


def foreign_daemon(cert: Certification) -> dict[str, Any]:
    """Start IG for another run id against this run's manifest: it must refuse before serving."""
    pins = p01.ensure_pinned(cert)
    other = p01.run_id(cert, "another-run")
    process, url = start_daemon(cert, pins, "ig", service=None, REQUIRED_PLATFORM_RUN_ID=other)
    served: list[int] = []

    def ended() -> bool:
        if url is not None:
            with contextlib.suppress(SubstrateError):
                served.append(ig_client.health(url, timeout_s=0.5).status)
        return not process.alive()

    try:
        wait_until(ended, timeout_s=READY_TIMEOUT_S, backoff_s=0.05, max_backoff_s=0.25,
                   err_msg="the daemon started for another run did not stop", operation="start ig for another run")
    finally:
        process.stop()
    record = {"required_platform_run_id": other, "run_manifest_of": pins.platform_run_id,
              "exit_code": process.exit_code, "health_answers": served, "output": process.output()[-2000:]}
    cert.evidence(f"runs/{pins.platform_run_id}/daemons/foreign_run_refused.json", record)
    return record


def check_foreign_refused(record: dict[str, Any]) -> None:
    problems = []
    if record["exit_code"] != 1:
        problems.append(f"ig started for {record['required_platform_run_id']} exited {record['exit_code']}, not 1")
    if "run scope refused" not in record["output"]:
        problems.append("its output does not name the run-scope refusal")
    if record["health_answers"]:
        problems.append(f"it served health answers {record['health_answers']} before refusing")
    if problems:
        raise Finding("P2.foreign_run", problems)


def readiness_once(cert: Certification) -> dict[str, Any]:
    return cert.once("p2.readiness", lambda: readiness(cert))
