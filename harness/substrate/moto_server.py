"""moto server on loopback: the AWS emulator of the embedded profile."""

from __future__ import annotations

import sys
from importlib import metadata

from harness import aws
from harness.substrate.base import ProcessPart


class MotoServer(ProcessPart):
    name = "moto"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "harness.substrate.moto_launch", "-H", "127.0.0.1", "-p", str(self.port)]

    def environment(self) -> dict[str, str]:
        env = super().environment()
        # Budgets, ECS and the Tagging API report this account; keep it stable.
        env.setdefault("MOTO_ACCOUNT_ID", "123456789012")
        # AWS managed policies (AmazonECSTaskExecutionRolePolicy, ...) exist in every account.
        env["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
        return env

    def probe(self) -> str:
        return aws.probe(self.endpoint)

    def version(self) -> str:
        return f"moto {metadata.version('moto')}"
