"""A whole certification with injected faults: P0 fails closed, P12 still runs, nothing leaks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from harness import redact
from harness.substrate import pid_alive

pytestmark = [pytest.mark.slow, pytest.mark.substrate]
ROOT = Path(__file__).resolve().parents[2]
SECRET = "planted-" + uuid.uuid4().hex
P0_SCENARIOS = [
    "Core and demo stacks apply from a clean substrate",
    "A second plan shows no changes",
    "Every pinned handle resolves to a live resource",
    "No NAT gateway in the project's VPCs",
    "The budget guardrail exists",
]


class Run:
    def __init__(self, out: Path, result: pytest.RunResult) -> None:
        self.out = out
        self.result = result
        self.facts: dict[str, Any] = json.loads((out / "faults.json").read_text())
        self.bundle = out / "certifications" / self.facts["cert_id"]
        self.gates: dict[str, Any] = json.loads((self.bundle / "gates.json").read_text())

    def phase(self, phase_id: str) -> dict[str, Any]:
        return next(p for p in self.gates["phases"] if p["phase_id"] == phase_id)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    out = tmp_path_factory.mktemp("faulted")
    pytester_dir = tmp_path_factory.mktemp("pytester")
    env = {**os.environ, "SPINE_FAULTS_OUT": str(out / "faults.json"), "SPINE_FAULTS_SECRET": SECRET,
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "features"), "--rootdir", str(ROOT), "-p", "faults",
         "--reports-dir", str(out), "--alluredir", str(out / "allure-results"), "-p", "no:cacheprovider"],
        cwd=pytester_dir, env=env, capture_output=True, text=True, timeout=1200,
    )
    (out / "stdout.txt").write_text(proc.stdout)
    (out / "stderr.txt").write_text(proc.stderr)
    result = pytest.RunResult(proc.returncode, proc.stdout.splitlines(), proc.stderr.splitlines(), 0.0)
    return Run(out, result)


def test_a_failing_p0_check_still_runs_p12_and_the_verdict_is_failed(run: Run) -> None:
    assert run.result.ret == 1
    p0, p12 = run.phase("P0"), run.phase("P12")
    assert p0["status"] == "FAILED"
    assert p12["status"] in ("DONE", "FAILED") and len(p12["scenarios"]) == 5
    assert p12["notes"][0].startswith("ran after earlier gates did not pass: P0 FAILED")
    for later in ("P1", "P3"):  # phases with features after the failed one are blocked, naming it, in every rung
        gates = [p for p in run.gates["phases"] if p["phase_id"] == later]
        assert [p["gate"] for p in gates] == [f"{later} @ {r}" for r in ("run-20", "run-200", "rerun-200")]
        assert all(p["status"] == "BLOCKED" and p["blocked_by"] == "P0" for p in gates), gates
    assert run.gates["verdict"] == "FAILED"
    assert "verdict: FAILED" in run.result.stdout.str()
    environment = (run.out / "allure-results" / "environment.properties").read_text()
    assert "verdict=FAILED" in environment.splitlines()
    cert = json.loads((run.bundle / "certificate.json").read_text())
    assert (cert["verdict"], cert["phases"]["P0"], cert["failed"]) == ("FAILED", "FAILED", run.gates["failed"])


def test_the_nat_finding_names_the_planted_gateway(run: Run) -> None:
    nat = run.facts["nat_gateway"]
    scenario = next(s for s in run.phase("P0")["scenarios"] if s["name"] == "No NAT gateway in the project's VPCs")
    assert scenario["outcome"] == "failed"
    assert f"NAT gateway {nat}" in scenario["message"]
    posture = json.loads((run.bundle / "substrate/network_posture.json").read_text())
    assert nat in [n["id"] for n in posture["nat_gateways"]]
    proof = json.loads((run.bundle / "teardown/teardown_proof.json").read_text())
    assert proof["tagging_api"] is not None and "direct" in proof


def test_the_planted_secret_appears_nowhere(run: Run) -> None:
    # It was read by the harness (so it had the chance to leak) ...
    resolution = json.loads((run.bundle / "substrate/handle_resolution.json").read_text())
    secret_entry = next(e for e in resolution["families"]["ssm"] if e["handle"] == "ssm.confluent_api_secret")
    assert secret_entry["ok"] and secret_entry["observed"]["value"] is None
    # ... printed and logged inside the run, and masked in every place the run wrote.
    assert redact.MASK in run.result.stdout.str()
    workdir = ROOT / ".spine-certify" / "work" / run.facts["cert_id"]
    for tree in (run.bundle, run.out / "allure-results", workdir):
        assert redact.find_in_tree(tree, SECRET) == [], tree
    assert SECRET not in run.result.stdout.str() + run.result.stderr.str()
    attachments = [p.read_text(errors="replace") for p in (run.out / "allure-results").glob("*-attachment*")]
    assert any(redact.MASK in text for text in attachments)


def test_the_bundle_verifies_and_one_changed_byte_is_named(run: Run, tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "harness.cli", "verify"]
    ok = subprocess.run([*cli, str(run.bundle)], capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    copy = tmp_path / "bundle"
    shutil.copytree(run.bundle, copy)
    victim = copy / "substrate" / "apply_snapshot.json"
    data = bytearray(victim.read_bytes())
    data[10] ^= 0x20
    victim.write_bytes(bytes(data))
    bad = subprocess.run([*cli, str(copy), "--local-only"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 1
    assert "changed  substrate/apply_snapshot.json" in bad.stdout


def test_no_process_started_by_the_run_is_left(run: Run) -> None:
    pids = run.facts["pids"]
    assert len(pids) == 3
    assert [p for p in pids if pid_alive(p)] == []


def test_the_report_renders_in_chromium_with_the_p0_scenarios(run: Run, tmp_path: Path) -> None:
    cli = ROOT / "node_modules" / "allure" / "cli.js"
    assert cli.exists(), "run `make setup` to install the Allure CLI"
    chromium = shutil.which("chromium")
    assert chromium, "run `make setup` to install Debian's chromium"
    report = tmp_path / "report"
    subprocess.run(["node", str(cli), "generate", str(run.out / "allure-results"), "--config",
                    str(ROOT / "allurerc.mjs"), "--output", str(report)], check=True, cwd=ROOT,
                   capture_output=True, timeout=300,
                   env={**os.environ, "ALLURE_RESULTS_DIR": str(run.out / "allure-results")})
    page = report / "index.html"
    assert page.exists()
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000", "--dump-dom",
         page.as_uri()],
        capture_output=True, text=True, timeout=180,
    ).stdout
    missing = [name for name in P0_SCENARIOS if name not in dom]
    assert missing == [], f"not rendered: {missing}"
    # The report is titled with the verdict: it cannot look greener than the certification.
    assert f"spine-certify: FAILED (profile embedded, {run.gates['cert_id']})" in dom
