"""Bring-your-own parts: an already-running broker or AWS emulator behind the same interface."""

from __future__ import annotations

from pathlib import Path

from harness import aws
from harness.aws import capabilities
from harness.errors import SubstrateError
from harness.kafka import KafkaConnection, admin
from harness.substrate.base import Part


class ExternalKafka(Part):
    """A Kafka cluster the harness does not own (`--kafka-bootstrap HOST:PORT`)."""

    name = "kafka"

    def __init__(self, *, workdir: Path, bootstrap: str) -> None:
        super().__init__(workdir=workdir)
        self.bootstrap = bootstrap
        self._meta: dict[str, object] = {}

    @property
    def endpoint(self) -> str:
        return self.bootstrap

    def connection(self) -> KafkaConnection:
        return KafkaConnection(bootstrap=self.bootstrap)

    def start(self) -> None:
        try:
            self._meta = admin.probe(self.connection(), timeout_s=10.0)
        except SubstrateError as exc:
            raise SubstrateError(
                exc.code, f"--kafka-bootstrap {self.bootstrap} does not answer: {exc.message}",
                operation="connect kafka",
            ) from exc

    def stop(self) -> None:
        """Not ours to stop."""

    def version(self) -> str:
        return f"external kafka (cluster {self._meta.get('cluster_id')})"


class ExternalAws(Part):
    """An AWS emulator the harness does not own (`--aws-endpoint URL`)."""

    name = "aws"

    def __init__(self, *, workdir: Path, endpoint_url: str) -> None:
        super().__init__(workdir=workdir)
        self.endpoint_url = endpoint_url
        self._account = ""

    @property
    def endpoint(self) -> str:
        return self.endpoint_url

    def start(self) -> None:
        try:
            self._account = aws.probe(self.endpoint_url)
        except SubstrateError as exc:
            raise SubstrateError(
                exc.code, f"--aws-endpoint {self.endpoint_url} does not answer: {exc.message}",
                operation="connect aws",
            ) from exc
        lacking = capabilities.missing(self.endpoint_url)
        if lacking:  # before anything is applied: the certification cannot judge what the endpoint cannot do
            raise SubstrateError(
                "MissingOperations",
                f"--aws-endpoint {self.endpoint_url} does not implement {len(lacking)} operation(s) the "
                f"certification needs: {'; '.join(lacking)}. Run without --aws-endpoint (the harness's own moto "
                "server adds the Budgets operations moto lacks) or point it at an endpoint that implements them",
                operation="probe aws endpoint",
            )

    def stop(self) -> None:
        """Not ours to stop."""

    def version(self) -> str:
        return f"external aws endpoint (account {self._account})"
