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
    # Nothing was judged: the first phase could not start, so the verdict is ERROR, not FAILED.
    first = gates["phases"][0]
    assert (gates["verdict"], gates["errored"], gates["failed"]) == ("ERROR", ["P(-1)"], [])
    assert first["status"] == "ERROR" and [s["outcome"] for s in first["scenarios"]] == ["error"]
    assert "Unreachable" in first["scenarios"][0]["message"] and "could not judge" in first["notes"][0]
    assert all(p["status"] in ("NOT_STARTED", "NOT_IMPLEMENTED") and not p["scenarios"] for p in gates["phases"][1:])
    assert f"verdict: ERROR (profile embedded, cert-unreachable); errored: P(-1) (could not judge: connect aws: " \
        f"Unreachable: --aws-endpoint {endpoint} does not answer" in run.stdout
    verify = subprocess.run([sys.executable, "-m", "harness.cli", "verify", str(bundle), "--local-only"],
                            capture_output=True, text=True, cwd=ROOT)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    verdict = subprocess.run([sys.executable, "-m", "harness.cli", "verdict", str(bundle)],
                             capture_output=True, text=True, cwd=ROOT)
    assert verdict.returncode == 3, verdict.stdout + verdict.stderr


FAULT_PLUGIN = '''
from harness.errors import Timeout


def pytest_bdd_before_step_call(request, feature, scenario, step, step_func, step_func_args):
    if scenario.name == "The artifact is built and pushed under an immutable tag":
        raise Timeout("the injected fault", operation="ecr.push")
'''


@pytest.mark.substrate
def test_a_substrate_error_in_a_scenario_is_error_not_failed(tmp_path: Path) -> None:
    (tmp_path / "substrate_fault.py").write_text(FAULT_PLUGIN)
    results = tmp_path / "allure-results"
    run = certify(tmp_path, "-p", "substrate_fault", "--cert-id", "cert-fault", "--alluredir", str(results),
                  "--events", "20",
                  "-k", "built_and_pushed_under_an_immutable_tag or run_manifest_is_written_before",
                  env={"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])})
    assert run.returncode == 1, run.stdout + run.stderr
    gates = json.loads((tmp_path / "reports/certifications/cert-fault/gates.json").read_text())
    pm1, p1 = gates["phases"][0], gates["phases"][2]
    assert (gates["verdict"], gates["errored"], gates["blocked"], gates["failed"]) == (
        "ERROR", ["P(-1)"], ["P1 @ run-20"], [])
    assert pm1["status"] == "ERROR"
    assert [(s["outcome"], s["message"]) for s in pm1["scenarios"]] == [
        ("error", "ecr.push: Timeout: the injected fault")]
    assert p1["gate"] == "P1 @ run-20" and p1["status"] == "BLOCKED" and p1["blocked_by"] == "P(-1)"
    assert [(s["outcome"], s["message"]) for s in p1["scenarios"]] == [
        ("blocked", "P1 @ run-20 is BLOCKED: predecessor P(-1) is ERROR")]
    assert "verdict: ERROR (profile embedded, cert-fault); errored: P(-1) (could not judge: ecr.push: Timeout: " \
           "the injected fault); blocked: P1 @ run-20; " in run.stdout
    assert "; not run: P0, P2 @ run-20, " in run.stdout
    # Allure: broken (not failed) and in the could-not-judge category.
    allure = [json.loads(p.read_text()) for p in results.glob("*-result.json")]
    faulted = next(r for r in allure if r["name"].endswith("The artifact is built and pushed under an immutable tag"))
    assert faulted["status"] == "broken"
    assert {"name": "category", "value": "Substrate or harness error (could not judge)"} in faulted["labels"]
    # Every phase that ran no scenario is a non-passing result naming why; P1's blocked scenario is its own.
    unjudged = {r["fullName"]: r for r in allure if r["fullName"].startswith("spine-certify.")}
    assert unjudged["spine-certify.P0"]["status"] == "broken"
    assert unjudged["spine-certify.P0"]["statusDetails"]["message"].startswith("P0 NOT_RUN: this phase did not run")
    assert "spine-certify.P1 @ run-20" not in unjudged and "spine-certify.P(-1)" not in unjudged
    assert len(unjudged) == len(gates["phases"]) - 2  # every gate but P(-1) and P1 @ run-20
    categories = json.loads((results / "categories.json").read_text())
    assert "Substrate or harness error (could not judge)" in [c["name"] for c in categories]
