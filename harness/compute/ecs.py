"""ECS compute (dev_min): RunTask on Fargate, wait for STOPPED, read the exit code and the logs."""

from __future__ import annotations

import time

from harness import redact
from harness.aws import AwsSession, ecs, logs
from harness.compute.base import JobResult
from harness.compute.embedded import ENGINE
from harness.compute.process import Started
from harness.errors import ConfigError, HarnessError, Timeout
from harness.wait import wait_until


class EcsCompute:
    """Runs a mode as a Fargate task of its pinned family in the demo cluster."""

    name = "ecs"

    def __init__(self, *, aws: AwsSession, cluster: str, task_families: dict[str, str], subnets: list[str],
                 security_groups: list[str], log_group_prefix: str, image: str, poll_s: float = 2.0) -> None:
        self.aws = aws
        self.image = image  # the pinned artifact (repository:git-<sha>); each family gets a revision with it
        self._revisions: dict[str, str] = {}
        self.cluster = cluster
        self.task_families = task_families
        self.subnets = subnets
        self.security_groups = security_groups
        self.log_group_prefix = log_group_prefix
        self.poll_s = poll_s
        self.started: list[Started] = []

    def start(self, mode: str, *, env: dict[str, str], service: str | None = None,
              tags: dict[str, str] | None = None) -> Started:
        raise HarnessError(f"starting {mode} as an ECS service is not wired yet: dev_min daemons come with the "
                           "runnable image (see the README's dev_min notes)")

    def stop_all(self) -> list[str]:
        return []

    def run(self, mode: str, *, env: dict[str, str], args: list[str] | None = None,
            timeout_s: float = 600.0) -> JobResult:
        if mode == ENGINE or mode not in self.task_families:
            raise ConfigError(f"no ECS task family for {mode!r}; the handles pin {sorted(self.task_families)}")
        family = self.task_families[mode]
        if family not in self._revisions:
            self._revisions[family] = ecs.register_revision(self.aws, family=family, image=self.image)
        command = [mode, *(args or [])]
        began, started_at = time.monotonic(), time.time()
        task_arn = ecs.run_task(self.aws, cluster=self.cluster, family=self._revisions[family], subnets=self.subnets,
                                security_groups=self.security_groups, command=command, environment=env,
                                started_by="spine-certify")
        try:
            final = wait_until(
                lambda: (d := ecs.describe_task(self.aws, cluster=self.cluster, task_arn=task_arn))["status"]
                == "STOPPED" and d,
                timeout_s=timeout_s, backoff_s=self.poll_s, max_backoff_s=10.0,
                err_msg=f"ECS task {task_arn} ({mode}) did not stop", operation=f"ecs run {mode}",
            )
        except Timeout:
            final = {"exit_code": None, "stopped_reason": "timed out waiting for STOPPED"}
        task_id = task_arn.rsplit("/", 1)[-1]
        output = logs.read_stream(self.aws, group=f"{self.log_group_prefix}/{mode}", stream=f"spine/spine/{task_id}")
        stderr = "" if final.get("exit_code") is not None else f"exit code unknown: {final.get('stopped_reason')}"
        return JobResult(mode=mode, argv=command, exit_code=final.get("exit_code"),
                         duration_s=round(time.monotonic() - began, 3), stdout=redact.scrub(output),
                         stderr=stderr, task_arn=task_arn, provider=self.name,
                         run_id=env.get("REQUIRED_PLATFORM_RUN_ID"), started_at=started_at)
