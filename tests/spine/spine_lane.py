"""Helpers for the platform tests: a `Lane` (fresh buckets, a pinned run.json) and the platform as subprocesses."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.config

ROOT = Path(__file__).resolve().parents[2]
REGION = "eu-west-2"
IMAGE_DIGEST = "sha256:" + "ab" * 32


def config_digest(config: dict[str, Any]) -> str:
    """The contract's run_config_digest: sha256 of the compact canonical JSON."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="testing",
                        aws_secret_access_key="testing",
                        config=botocore.config.Config(s3={"addressing_style": "path"}))


def run(argv: list[str], env: dict[str, str], *, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *argv], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout_s, check=False)


@dataclass
class Lane:
    """One platform run against fresh buckets: source, oracle and evidence named from the run id."""

    endpoint: str
    run_id: str
    seed: int = 7
    events: int = 300
    s3: Any = field(init=False)

    def __post_init__(self) -> None:
        self.s3 = client(self.endpoint)
        self.scenario = f"scn-seed{self.seed}-n{self.events}"
        self.buckets = {role: f"{role}-{self.run_id}" for role in ("src", "oracle", "evidence")}
        for bucket in self.buckets.values():
            self.s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        self.source = f"s3://{self.buckets['src']}/oracle/{self.scenario}/"
        self.oracle_root = f"s3://{self.buckets['oracle']}/oracle/{self.scenario}/"
        self.evidence_root = f"s3://{self.buckets['evidence']}/runs/{self.run_id}/"
        # Pinned like P1 does: the run config names the oracle root (SR checks it), pinned now (SR refuses stale runs).
        self.run_config = {"profile": "embedded", "events": self.events, "seed": self.seed,
                           "oracle_root": self.oracle_root}
        self.run_config_digest = config_digest(self.run_config)
        self.pinned_at = datetime.now(UTC).isoformat()
        self.put_run_json()

    def put_run_json(self, **overrides: Any) -> None:
        run_json = {
            "platform_run_id": self.run_id, "scenario_run_id": self.scenario,
            "run_config_digest": self.run_config_digest, "run_config": self.run_config,
            "image": {"tag": "git-0123abc", "digest": IMAGE_DIGEST, "source_sha": "0123abc"},
            "events": self.events, "handles_digest": "00" * 32, "pinned_at": self.pinned_at,
        }
        run_json.update(overrides)
        self.s3.put_object(Bucket=self.buckets["evidence"], Key=f"runs/{self.run_id}/run.json",
                           Body=json.dumps(run_json).encode())

    def aws_env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

    def env(self, **overrides: str | None) -> dict[str, str]:
        env = {
            **self.aws_env(),
            "REQUIRED_PLATFORM_RUN_ID": self.run_id,
            "SPINE_RUN_MANIFEST": f"s3://{self.buckets['evidence']}/runs/{self.run_id}/run.json",
            "SPINE_RUN_CONFIG_DIGEST": self.run_config_digest,
            "SPINE_IMAGE_DIGEST": IMAGE_DIGEST,
            "SPINE_EVIDENCE_ROOT": self.evidence_root,
            "SPINE_ORACLE_SOURCE": self.source,
            "SPINE_ORACLE_ROOT": self.oracle_root,
        }
        for name, value in overrides.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    def engine(self, *args: str, out: str | None = None) -> subprocess.CompletedProcess[str]:
        return run(["-m", "spine.engine", "--seed", str(self.seed), "--events", str(self.events),
                    "--out", out or self.source, *args], self.aws_env())

    def put_source(self, files: dict[str, bytes]) -> None:
        """Upload engine files (relative key → bytes) under the source root, the manifest last."""
        for key in sorted(files, key=lambda k: k == "_manifest.json"):
            self.put(self.source + key, files[key])

    def spine(self, mode: str, **env: str | None) -> subprocess.CompletedProcess[str]:
        return run(["-m", "spine", mode], self.env(**env))

    def lane(self, *modes: str) -> None:
        """Run modes in order; each must succeed."""
        for mode in modes:
            proc = self.spine(mode)
            assert proc.returncode == 0, f"{mode} exited {proc.returncode}: {proc.stderr}"

    # --- reading and tampering with what the platform wrote ---

    def url_parts(self, url: str) -> tuple[str, str]:
        bucket, _, key = url.removeprefix("s3://").partition("/")
        return bucket, key

    def get(self, url: str) -> bytes:
        bucket, key = self.url_parts(url)
        return bytes(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    def put(self, url: str, body: bytes) -> None:
        bucket, key = self.url_parts(url)
        self.s3.put_object(Bucket=bucket, Key=key, Body=body)

    def delete(self, url: str) -> None:
        bucket, key = self.url_parts(url)
        self.s3.delete_object(Bucket=bucket, Key=key)

    def exists(self, url: str) -> bool:
        bucket, key = self.url_parts(url)
        return bool(self.s3.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount", 0))

    def evidence(self, relative: str) -> dict[str, Any]:
        record: dict[str, Any] = json.loads(self.get(self.evidence_root + relative))
        return record

    def evidence_keys(self) -> list[str]:
        bucket, prefix = self.url_parts(self.evidence_root)
        listed = self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        return sorted(o["Key"][len(prefix):] for o in listed)

    def manifest(self, root: str | None = None) -> dict[str, Any]:
        record: dict[str, Any] = json.loads(self.get((root or self.source) + "_manifest.json"))
        return record
