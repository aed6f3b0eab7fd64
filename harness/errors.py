"""The harness's error tree; third-party errors are converted at the module edge.

    HarnessError                      anything the harness raises on purpose
    ├── ConfigError                   a bad handles file, option or argument (fix the input)
    ├── SubstrateError                a substrate call failed (code, operation)
    │   ├── NotFound                  the resource a handle names does not exist
    │   ├── PreconditionFailed        a conditional write lost (write-once key exists)
    │   ├── PortInUse                 a loopback port is already taken
    │   └── Timeout                   a polled condition did not hold in time
    ├── ToolMissing                   a binary the run needs (terraform, initdb, tansu) is absent
    ├── EvidenceError                 the bundle is missing, tampered or would be overwritten
    ├── PhaseBlocked                  a predecessor phase is FAILED, ERROR or BLOCKED
    ├── ModeNotImplemented            the platform answers "not implemented" for a mode
    └── Finding                       a certification check found the platform not compliant

Findings are verdicts about the system under test; every other error is about the run
itself. Allure categories and the console summary rely on that split.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base of every error the harness raises on purpose."""


class ConfigError(HarnessError):
    """Bad input: a handles file, a command-line option or an argument."""


class ToolMissing(HarnessError):
    """A binary the run needs is not installed."""

    def __init__(self, tool: str, fix: str) -> None:
        super().__init__(f"{tool} is not installed or not on PATH; {fix}")
        self.tool = tool
        self.fix = fix


class SubstrateError(HarnessError):
    """A call to a substrate failed."""

    def __init__(self, code: str, message: str, *, operation: str) -> None:
        super().__init__(f"{operation}: {code}: {message}")
        self.code = code
        self.message = message
        self.operation = operation


class NotFound(SubstrateError):
    """The resource a handle names does not exist."""


class PreconditionFailed(SubstrateError):
    """A conditional write was refused: the key already exists."""


class PortInUse(SubstrateError):
    """A loopback port is already bound by another process."""

    def __init__(self, port: int, *, operation: str) -> None:
        super().__init__(
            "PortInUse",
            f"127.0.0.1:{port} is already in use; stop whatever listens there "
            "(`ss -ltnp | grep :PORT`) or let the harness pick a free port",
            operation=operation,
        )
        self.port = port


class Timeout(SubstrateError):
    """A polled condition did not hold before its deadline."""

    def __init__(self, message: str, *, operation: str) -> None:
        super().__init__("Timeout", message, operation=operation)


class EvidenceError(HarnessError):
    """The evidence bundle is missing, tampered with, or a write would overwrite it."""


class PhaseBlocked(HarnessError, AssertionError):
    """A phase cannot run because a predecessor is FAILED, ERROR or BLOCKED.

    An AssertionError too, so test reports show it as a failed check, not a broken run.
    """

    def __init__(self, phase_id: str, blocker: str, blocker_status: str) -> None:
        super().__init__(f"{phase_id} is BLOCKED: predecessor {blocker} is {blocker_status}")
        self.phase_id = phase_id
        self.blocker = blocker
        self.blocker_status = blocker_status


class ModeNotImplemented(HarnessError):
    """The platform artifact declares a mode but answers "not implemented" (exit 3) when run.

    The phase that needs it is NOT_IMPLEMENTED, never DONE.
    """

    def __init__(self, mode: str) -> None:
        super().__init__(f"the platform does not implement mode {mode!r} yet (exit 3): the phase is NOT_IMPLEMENTED")
        self.mode = mode


class Finding(HarnessError, AssertionError):
    """A certification check found the platform out of compliance.

    An AssertionError too, so test reports show it as a failed check, not a broken run.

    ``details`` lists each offending observation (resource ids, handle names) so that the
    message names exactly what is wrong.
    """

    def __init__(self, check: str, details: list[str]) -> None:
        lines = "\n".join(f"  - {d}" for d in details)
        super().__init__(f"FINDING [{check}]:\n{lines}")
        self.check = check
        self.details = list(details)
