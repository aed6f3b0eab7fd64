"""Embedded compute: the artifact's modes as local processes, each registered as an ECS task."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness import packaging, redact
from harness.aws import AwsSession, ecs
from harness.compute.base import JobResult
from harness.compute.process import Started
from harness.errors import EvidenceError
from harness.substrate.base import die_with_parent

ENGINE = "engine"  # the Data Engine: upstream of the platform, shipped in the same artifact


def _libraries() -> list[str]:
    """This interpreter's site-packages, without the .pth hooks that would run under site."""
    paths = sysconfig.get_paths()
    return sorted({paths["purelib"], paths["platlib"]})


@dataclass(frozen=True)
class Network:
    """Where a Fargate task of the demo stack runs."""

    subnets: list[str]
    security_groups: list[str]


class EmbeddedCompute:
    """Runs exactly the recorded artifact; one whose digest differs is refused before it starts."""

    name = "embedded"

    def __init__(self, *, artifact: packaging.Artifact, recorded_digest: str, workdir: Path,
                 aws: AwsSession | None = None, cluster: str | None = None,
                 task_families: dict[str, str] | None = None,
                 network: Callable[[], Network | None] = lambda: None) -> None:
        self.artifact = artifact
        self.recorded_digest = recorded_digest
        self.workdir = workdir
        self.aws = aws
        self.cluster = cluster
        self.task_families = task_families or {}
        self.network = network
        self._wheel: Path | None = None
        self.history: list[JobResult] = []
        self.started: list[Started] = []

    def _verified_wheel(self) -> Path:
        actual = packaging.layout_digest(self.artifact.layout)
        if actual != self.recorded_digest:
            raise EvidenceError(
                f"refusing to run artifact {self.artifact.layout}: its digest is {actual}, "
                f"but the recorded provenance pins {self.recorded_digest}"
            )
        if self._wheel is None:
            self._wheel = packaging.extract_wheel(self.artifact, self.workdir / "image" / actual.split(":")[1])
        return self._wheel

    def _register(self, mode: str, command: list[str], env: dict[str, str], *, service: str | None = None,
                  tags: dict[str, str] | None = None) -> str | None:
        """Record the run as an ECS task of the mode's family (a service's task) once the demo cluster exists."""
        family = self.task_families.get(mode)
        network = self.network()
        if self.aws is None or not self.cluster or family is None or network is None:
            return None  # before the demo stack (packaging): a plain, unregistered process
        return ecs.run_task(self.aws, cluster=self.cluster, family=family, subnets=network.subnets,
                            security_groups=network.security_groups, command=command, environment=env,
                            started_by="spine-certify-embedded", group=f"service:{service}" if service else None,
                            tags=tags)

    def _launch(self, mode: str, env: dict[str, str], args: list[str] | None) -> tuple[list[str], dict[str, str],
                                                                                      Path]:
        """argv, environment and cwd of a child that runs the verified artifact and nothing else."""
        wheel = self._verified_wheel()
        module = ["-m", "spine.engine"] if mode == ENGINE else ["-m", "spine", mode]
        # -S -P and a neutral cwd: no site hooks (the harness's editable install maps the checkout's
        # spine/), no script dir. The artifact's code comes only from its wheel; its third-party
        # libraries from this interpreter's site-packages (a recorded gap of local compute).
        argv = [sys.executable, "-S", "-P", *module, *(args or [])]
        # The platform sees only its contract: the wheel, the run scope and the AWS account.
        child_env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.pathsep.join([str(wheel), *_libraries()]),
                     "PYTHONDONTWRITEBYTECODE": "1", **env}
        return argv, child_env, wheel.parent

    def start(self, mode: str, *, env: dict[str, str], service: str | None = None,
              tags: dict[str, str] | None = None) -> Started:
        """Start a mode in the background (a daemon as its service's task); ``stop_all`` ends it."""
        argv, child_env, cwd = self._launch(mode, env, None)
        task_arn = self._register(mode, [mode], env, service=service, tags=tags)
        logs = self.workdir / "processes"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{len(self.started) + 1:03d}-{mode}.log"
        with log_path.open("wb") as out:
            popen = subprocess.Popen(argv, env=child_env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent)
        started = Started(mode=mode, popen=popen, log_path=log_path, run_id=env.get("REQUIRED_PLATFORM_RUN_ID"),
                          task_arn=task_arn, service=service)
        if task_arn is not None and self.aws is not None and self.cluster:
            aws, cluster = self.aws, self.cluster
            started.on_stop.append(lambda s: ecs.stop_task_record(aws, cluster=cluster, task_arn=task_arn,
                                                                  reason=f"exit {s.exit_code}"))
        self.started.append(started)
        return started

    def stop_all(self) -> list[str]:
        """Stop every process this compute started, newest first; returns problems, never raises."""
        problems = []
        for started in reversed(self.started):
            try:
                started.stop()
            except Exception as exc:  # one failing stop must not keep the others running
                problems.append(f"{started.mode} (pid {started.pid}): {exc}")
        return problems

    def run(self, mode: str, *, env: dict[str, str], args: list[str] | None = None,
            timeout_s: float = 600.0) -> JobResult:
        argv, child_env, cwd = self._launch(mode, env, args)
        task_arn = self._register(mode, [mode, *(args or [])], env)
        began, started_at = time.monotonic(), time.time()
        try:
            proc = subprocess.run(argv, env=child_env, capture_output=True, text=True, timeout=timeout_s,
                                  stdin=subprocess.DEVNULL, check=False, cwd=cwd)
            code: int | None = proc.returncode
            stdout, stderr = proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as exc:
            code = None
            stdout = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            stderr = f"timed out after {timeout_s:.0f}s"
        duration = round(time.monotonic() - began, 3)
        if task_arn is not None and self.aws is not None and self.cluster:
            ecs.stop_task_record(self.aws, cluster=self.cluster, task_arn=task_arn, reason=f"exit {code}")
        result = JobResult(mode=mode, argv=[Path(argv[0]).name, *argv[1:]], exit_code=code, duration_s=duration,
                           stdout=redact.scrub(stdout), stderr=redact.scrub(stderr), task_arn=task_arn,
                           provider=self.name, run_id=env.get("REQUIRED_PLATFORM_RUN_ID"), started_at=started_at)
        self.history.append(result)
        return result
