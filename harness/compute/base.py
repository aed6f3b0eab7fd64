"""What every compute provider returns, and the interface the phases use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from harness.compute.process import Started

NOT_IMPLEMENTED_EXIT = 3


@dataclass(frozen=True)
class JobResult:
    """One run of a mode. ``exit_code`` None means the provider could not learn it (fail closed)."""

    mode: str
    argv: list[str]
    exit_code: int | None
    duration_s: float
    stdout: str = field(repr=False)
    stderr: str = field(repr=False)
    task_arn: str | None = None
    provider: str = ""
    run_id: str | None = None
    started_at: float = 0.0  # epoch seconds, the harness's clock

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def not_implemented(self) -> bool:
        """The contract's answer of a mode that is declared but not built (exit 3)."""
        return self.exit_code == NOT_IMPLEMENTED_EXIT and "not implemented" in self.stderr

    def last_error(self) -> str:
        lines = [ln for ln in self.stderr.strip().splitlines() if ln.strip()]
        return lines[-1] if lines else f"exit code {self.exit_code}"

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "argv": self.argv, "exit_code": self.exit_code, "duration_s": self.duration_s,
                "task_arn": self.task_arn, "provider": self.provider, "run_id": self.run_id,
                "started_at": self.started_at,
                "stderr_tail": self.stderr.strip().splitlines()[-5:]}


class Compute(Protocol):
    """Runs the platform artifact: a mode (`python -m spine <mode>`) or the data engine."""

    name: str

    def run(self, mode: str, *, env: dict[str, str], args: list[str] | None = None,
            timeout_s: float = 600.0) -> JobResult: ...

    def start(self, mode: str, *, env: dict[str, str], service: str | None = None,
              tags: dict[str, str] | None = None) -> Started: ...

    def stop_all(self) -> list[str]: ...

    @property
    def started(self) -> list[Started]: ...
