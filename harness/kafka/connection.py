"""How to reach a Kafka cluster: plaintext on loopback, or SASL_SSL for Confluent Cloud."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness import redact


@dataclass(frozen=True)
class KafkaConnection:
    bootstrap: str
    security_protocol: str = "PLAINTEXT"
    api_key: str | None = field(default=None, repr=False)
    api_secret: str | None = field(default=None, repr=False)
    # Tansu joins a consumer group in half of session.timeout.ms; keep it short locally.
    fast_groups: bool = False

    def __post_init__(self) -> None:
        if self.security_protocol not in ("PLAINTEXT", "SASL_SSL"):
            raise ValueError(f"security_protocol={self.security_protocol!r} must be PLAINTEXT or SASL_SSL")
        if self.security_protocol == "SASL_SSL" and not (self.api_key and self.api_secret):
            raise ValueError("SASL_SSL needs api_key and api_secret (read them from SSM)")
        redact.register(self.api_secret)

    def client_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": self.security_protocol,
        }
        if self.security_protocol == "SASL_SSL":
            config.update(
                {"sasl.mechanisms": "PLAIN", "sasl.username": self.api_key, "sasl.password": self.api_secret}
            )
        return config

    def to_json(self) -> dict[str, Any]:
        """What evidence may say about the connection: never the key or secret."""
        return {"bootstrap": self.bootstrap, "security_protocol": self.security_protocol}
