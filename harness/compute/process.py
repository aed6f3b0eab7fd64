"""A started mode of the artifact (a daemon, or a job watched while it runs): a local process group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import redact
from harness.substrate.base import pid_alive, terminate_process_group


@dataclass
class Started:
    """One process the compute started; it never outlives the certification (``stop``)."""

    mode: str
    popen: subprocess.Popen[bytes] = field(repr=False)
    log_path: Path
    run_id: str | None
    task_arn: str | None = None
    service: str | None = None
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    on_stop: list[Any] = field(default_factory=list, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def exit_code(self) -> int | None:
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None and pid_alive(self.pid)

    def wait(self, *, timeout_s: float) -> int | None:
        """The exit code, or None when it still runs after ``timeout_s``."""
        try:
            code = self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None
        self._ended()
        return code

    def kill(self) -> int | None:
        """SIGKILL the process group at once (a crash, not a stop); returns the exit code."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        return self.wait(timeout_s=10)

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL; the ECS record is stopped too. Safe to call twice."""
        if self.popen.poll() is None:
            try:
                terminate_process_group(self.pid, name=f"{self.mode} (pid {self.pid})", timeout_s=timeout_s)
            finally:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(timeout=5)
        self._ended()

    def _ended(self) -> None:
        if self.ended_at is None:
            self.ended_at = time.time()
            for hook in self.on_stop:
                hook(self)

    def output(self) -> str:
        """Everything the process wrote so far (stdout and stderr, interleaved), secrets masked."""
        if not self.log_path.exists():
            return ""
        return redact.scrub(self.log_path.read_text(encoding="utf-8", errors="replace"))

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "pid": self.pid, "service": self.service, "task_arn": self.task_arn,
                "run_id": self.run_id, "started_at": self.started_at, "ended_at": self.ended_at,
                "exit_code": self.exit_code, "alive": self.alive(), "log": str(self.log_path)}
