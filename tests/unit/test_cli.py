from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import cli, evidence
from harness.ledger import Ledger, ScenarioRecord


def _bundle(tmp_path: Path, ledger: Ledger) -> Path:
    bundle = evidence.Bundle(tmp_path / "cert-v", cert_id="cert-v")
    bundle.write_json("gates.json", {"cert_id": "cert-v", "profile": "embedded", **ledger.to_json()})
    bundle.seal(mirror=None)
    return bundle.root


def test_verdict_prints_ledger_and_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = Ledger({"P0", "P12"})
    for phase in ("P0", "P12"):
        ledger.enter(phase)
        ledger.record(phase, ScenarioRecord(name="s", outcome="passed", duration_s=1.0))
    ledger.close_all()
    root = _bundle(tmp_path, ledger)
    assert cli.main(["verdict", str(root)]) == 2
    out = capsys.readouterr().out
    assert "verdict: INCOMPLETE" in out and "not implemented: P(-1), P1, P2" in out
    assert "P0     DONE" in out


def test_verdict_failed_exit_code_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = Ledger({"P0"})
    ledger.enter("P0")
    ledger.record("P0", ScenarioRecord(name="s", outcome="failed", duration_s=1.0, message="FINDING"))
    ledger.close_all()
    root = _bundle(tmp_path, ledger)
    assert cli.main(["verdict", str(root), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["failed"] == ["P0"]


def test_verify_and_verdict_refuse_what_is_not_a_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["verify", str(tmp_path)]) == 1
    assert cli.main(["verdict", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "has no manifest.json" in err and "has no gates.json" in err


def test_handles_command(project_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["handles", str(project_root / "infra/handles/dev_min.yaml")]) == 0
    assert "profile dev_min" in capsys.readouterr().out
