"""Bad input stops a certification with one message that says what and how to fix it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.substrate import free_port

ROOT = Path(__file__).resolve().parents[2]


def certify(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "features"), "--rootdir", str(ROOT), "-p", "no:cacheprovider",
         "--reports-dir", str(tmp_path / "reports"), *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})},
    )


def test_a_malformed_handles_file_stops_before_anything_starts(tmp_path: Path) -> None:
    bad = tmp_path / "handles.yaml"
    bad.write_text((ROOT / "infra/handles/embedded.yaml").read_text().replace("  tag_mutability: IMMUTABLE\n", ""))
    run = certify(tmp_path, "--handles", str(bad))
    assert run.returncode == 4  # pytest's usage error: nothing ran
    assert f"{bad}: ecr.tag_mutability: missing handle; add it" in run.stderr
    assert not (tmp_path / "reports").exists()
    assert "start moto" not in run.stdout


def test_a_missing_terraform_stops_before_anything_starts(tmp_path: Path) -> None:
    run = certify(tmp_path, env={"TERRAFORM_BIN": str(tmp_path / "no-terraform")})
    assert run.returncode == 4
    assert "terraform is not installed or not on PATH; install Terraform >= 1.9" in run.stderr


def test_a_reused_certification_id_leaves_the_earlier_bundle_untouched(tmp_path: Path) -> None:
    earlier = tmp_path / "reports" / "certifications" / "cert-reused"
    earlier.mkdir(parents=True)
    (earlier / "gates.json").write_text('{"verdict": "INCOMPLETE"}\n')
    run = certify(tmp_path, "--cert-id", "cert-reused")
    assert run.returncode == 4
    assert "already exists; evidence is write-once" in run.stderr
    assert (earlier / "gates.json").read_text() == '{"verdict": "INCOMPLETE"}\n'
    assert sorted(p.name for p in earlier.iterdir()) == ["gates.json"]


@pytest.mark.substrate
def test_an_unreachable_substrate_stops_after_one_error_with_a_sealed_bundle(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    run = certify(tmp_path, "--aws-endpoint", endpoint, "--cert-id", "cert-unreachable")
    assert run.returncode == 2  # pytest: interrupted after the first error
    assert f"Interrupted: the substrate did not start: connect aws: Unreachable: --aws-endpoint {endpoint}" \
        f" does not answer" in run.stdout
    assert "AssertionError" not in run.stdout + run.stderr
    assert "1 failed in" in run.stdout.splitlines()[-1]
    bundle = tmp_path / "reports" / "certifications" / "cert-unreachable"
    gates = json.loads((bundle / "gates.json").read_text())
    assert gates["verdict"] == "INCOMPLETE" and all(p["status"] != "DONE" for p in gates["phases"])
    verify = subprocess.run([sys.executable, "-m", "harness.cli", "verify", str(bundle), "--local-only"],
                            capture_output=True, text=True, cwd=ROOT)
    assert verify.returncode == 0, verify.stdout + verify.stderr
