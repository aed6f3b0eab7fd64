"""What every embedded substrate part shares: ports, processes, logs, ordered start/stop."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness import progress
from harness.errors import PortInUse, SubstrateError, Timeout
from harness.wait import wait_until

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A loopback port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_port_free(port: int, *, operation: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise PortInUse(port, operation=operation) from exc


def die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Ask the kernel to SIGTERM the child when the harness dies, even by SIGKILL."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def process_state(pid: int) -> str | None:
    """The kernel's one-letter state of the process (``R``, ``S``, ``T`` stopped, ``Z`` zombie...), None when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0): look at its state.
    state = process_state(pid)
    return state is not None and state != "Z"


def log_tail(path: Path | None, lines: int = 15) -> str:
    if path is None or not path.exists():
        return ""
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    return "\n".join(f"    | {line}" for line in text)


class Part(ABC):
    """One embedded substrate: ``start()`` returns only after a real API call succeeds."""

    name: str = "part"

    def __init__(self, *, workdir: Path) -> None:
        self.workdir = workdir
        self.started_at: float | None = None
        self.ready_s: float | None = None

    @property
    @abstractmethod
    def endpoint(self) -> str: ...

    @property
    def log_path(self) -> Path | None:
        return None

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    @abstractmethod
    def version(self) -> str: ...

    def pids(self) -> list[int]:
        """Processes this part owns (for leak checks and `spine-certify down`)."""
        return []

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": type(self).__name__,
            "endpoint": self.endpoint,
            "version": self.version(),
            "ready_s": self.ready_s,
            "pids": self.pids(),
            "log": str(self.log_path) if self.log_path else None,
        }


class ProcessPart(Part):
    """A part that is one long-running child process listening on a loopback port."""

    def __init__(self, *, workdir: Path, port: int | None = None, detached: bool = False,
                 ready_timeout_s: float = 30.0) -> None:
        super().__init__(workdir=workdir)
        self.port = port or free_port()
        self.detached = detached
        self.ready_timeout_s = ready_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "logs" / f"{self.name}.log"

    @abstractmethod
    def command(self) -> list[str]: ...

    @abstractmethod
    def probe(self) -> object:
        """A real API call; raises or returns falsy until the part answers."""

    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc and self.proc.poll() is None else []

    def start(self) -> None:
        operation = f"start {self.name}"
        ensure_port_free(self.port, operation=operation)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        with self.log_path.open("ab") as logfile:
            try:
                self.proc = subprocess.Popen(
                    self.command(),
                    stdout=logfile,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    preexec_fn=None if self.detached else die_with_parent,
                    env=self.environment(),
                )
            except OSError as exc:
                raise SubstrateError("SpawnFailed", f"{self.command()[0]}: {exc}", operation=operation) from exc
        proc = self.proc
        try:
            # An exited process ends the wait at once; its exit is reported below.
            wait_until(
                lambda: proc.poll() is not None or bool(self.probe()),
                timeout_s=self.ready_timeout_s,
                err_msg=f"{self.name} did not answer on 127.0.0.1:{self.port}",
                operation=operation,
            )
        except Timeout as exc:
            self.stop()
            raise SubstrateError(
                "NotReady", f"{exc.message}\n{log_tail(self.log_path)}", operation=operation
            ) from exc
        if proc.poll() is not None:
            code = proc.returncode
            self.proc = None
            raise SubstrateError(
                "Exited",
                f"{self.name} exited with code {code} before it answered; its log "
                f"({self.log_path}) ends:\n{log_tail(self.log_path)}",
                operation=operation,
            )
        self.started_at = time.time()
        self.ready_s = round(time.monotonic() - began, 3)

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        terminate_process_group(proc.pid, name=self.name)
        with contextlib.suppress(Exception):
            proc.wait(timeout=1)


def terminate_process_group(pid: int, *, name: str, timeout_s: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL it if it has not gone in ``timeout_s``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        try:
            wait_until(
                lambda: not pid_alive(pid) or _reap(pid),
                timeout_s=timeout_s if sig == signal.SIGTERM else 5.0,
                err_msg=f"{name} (pid {pid}) did not exit",
                operation=f"stop {name}",
            )
            return
        except Timeout:
            log.warning("%s (pid %s) ignored %s", name, pid, sig.name)
    raise SubstrateError("StopFailed", f"{name} (pid {pid}) survived SIGKILL", operation=f"stop {name}")


def _reap(pid: int) -> bool:
    """Collect our own exited child so it does not linger as a zombie."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return not pid_alive(pid)
    return done == pid


class Substrate:
    """The ordered set of parts of one session: start in order, stop in reverse."""

    def __init__(self, parts: Sequence[Part]) -> None:
        self.parts = list(parts)
        self._started: list[Part] = []
        self.started_pids: list[int] = []  # every process a part ran, kept after stop for leak checks

    def __getitem__(self, name: str) -> Part:
        for part in self.parts:
            if part.name == name:
                return part
        raise KeyError(f"no substrate part named {name!r}; have {[p.name for p in self.parts]}")

    def start(self, *, say: Callable[[str], None] = progress.say) -> None:
        for part in self.parts:
            with progress.step(f"start {part.name}"):
                try:
                    part.start()
                except BaseException:
                    self.stop()
                    raise
            self._started.append(part)
            self.started_pids.extend(part.pids())
            say(f"{part.name} ready at {part.endpoint} ({part.version()})")

    def stop(self) -> list[str]:
        """Stop every started part, newest first; a failing stop is logged, the rest still stop."""
        failures = []
        while self._started:
            part = self._started.pop()
            try:
                part.stop()
            except Exception as exc:
                log.error("stopping %s failed: %s", part.name, exc)
                failures.append(f"{part.name}: {exc}")
        return failures

    def pids(self) -> list[int]:
        return [pid for part in self.parts for pid in part.pids()]

    def to_json(self) -> dict[str, Any]:
        return {"parts": [part.to_json() for part in self.parts]}
