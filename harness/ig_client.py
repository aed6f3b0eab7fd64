"""The IG HTTP API as the contract names it (health, ingest, commit); the harness's only HTTP client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from harness import redact
from harness.errors import SubstrateError


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "body": self.body}


def _call(method: str, url: str, *, key: str | None, json: Any = None, timeout_s: float = 30.0,
          sender: str = "spine-certify") -> Answer:
    headers = {"X-Spine-Sender": sender}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    try:
        response = requests.request(method, url, json=json, headers=headers, timeout=timeout_s)
    except requests.RequestException as exc:
        raise SubstrateError("HttpError", redact.scrub(str(exc)), operation=f"{method} {url}") from exc
    try:
        body: Any = response.json()
    except ValueError:
        body = {"text": redact.scrub(response.text[:500])}
    return Answer(response.status_code, body)


def health(base_url: str, *, timeout_s: float = 5.0) -> Answer:
    return _call("GET", f"{base_url}/v1/ops/health", key=None, timeout_s=timeout_s)


def ingest(base_url: str, batch: list[dict[str, Any]], *, key: str | None, sender: str = "spine-certify") -> Answer:
    return _call("POST", f"{base_url}/v1/ingest", key=key, json={"events": batch}, sender=sender)


def commit(base_url: str, *, key: str) -> Answer:
    return _call("POST", f"{base_url}/v1/ops/commit", key=key, timeout_s=60.0)
