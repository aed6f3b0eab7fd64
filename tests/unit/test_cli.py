from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness import cli, evidence, report
from harness.errors import PhaseBlocked
from harness.ledger import UNIT_IDS, Ledger, ScenarioRecord


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
    assert re.search(r"^P0 +DONE ", out, re.MULTILINE) and re.search(r"^Reproducibility +NOT_IMPLEMENTED ", out,
                                                                    re.MULTILINE)


def test_verdict_failed_exit_code_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = Ledger({"P0"})
    ledger.enter("P0")
    ledger.record("P0", ScenarioRecord(name="s", outcome="failed", duration_s=1.0, message="FINDING"))
    ledger.close_all()
    root = _bundle(tmp_path, ledger)
    assert cli.main(["verdict", str(root), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["failed"] == ["P0"]


def test_verdict_error_exit_code_names_what_could_not_be_judged(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    ledger = Ledger({"P0", "P1"})
    ledger.enter("P0")
    ledger.record("P0", ScenarioRecord(name="s", outcome="error", duration_s=1.0,
                                       message="s3.get: NoSuchBucket: bucket b\ndetail"))
    with pytest.raises(PhaseBlocked):
        ledger.enter("P1")
    ledger.close_all()
    root = _bundle(tmp_path, ledger)
    assert cli.main(["verdict", str(root)]) == 3
    out = capsys.readouterr().out
    assert "verdict: ERROR (profile embedded, cert-v); errored: P0 (could not judge: s3.get: NoSuchBucket: " \
           "bucket b); blocked: P1; not implemented: P(-1), P2" in out
    assert re.search(r"^P0 +ERROR ", out, re.MULTILINE) and re.search(r"^P1 +BLOCKED \(by P0\) ", out, re.MULTILINE)
    assert cli.main(["verdict", str(root), "--json"]) == 3
    gates = json.loads(capsys.readouterr().out)
    assert (gates["verdict"], gates["errored"], gates["failed"], gates["blocked"]) == ("ERROR", ["P0"], [], ["P1"])


def test_an_interrupted_certification_reads_error_naming_the_interruption() -> None:
    ledger = Ledger({"P0"})
    ledger.enter("P0")
    ledger.record("P0", ScenarioRecord(name="s", outcome="passed", duration_s=1.0))
    ledger["P0"].notes.append("a note the gate had before the interruption")
    ledger.close_all(interrupted=True)
    line = report.verdict_line({"cert_id": "cert-i", "profile": "embedded", **ledger.to_json()})
    assert line.startswith("verdict: ERROR (profile embedded, cert-i); errored: P0 (the certification was "
                           "interrupted while this gate was ACTIVE: it could not be judged)")


def test_the_verdict_line_cuts_a_long_error_but_gates_keep_it() -> None:
    ledger = Ledger({"P0"})
    ledger.enter("P0")
    ledger.record("P0", ScenarioRecord(name="s", outcome="error", duration_s=1.0, message="terraform: " + "x" * 500))
    ledger.close_all()
    gates = {"cert_id": "cert-v", "profile": "embedded", **ledger.to_json()}
    line = report.verdict_line(gates)
    assert line.startswith("verdict: ERROR (profile embedded, cert-v); errored: P0 (could not judge: terraform: xxx")
    assert line.endswith("x…); not implemented: P(-1), P1, P2, P3, P4, P5, P6, P7, P8, P9, P10, P11, "
                         "Reproducibility, D1, D2, D3, D4, D5, D6, D7, D8, D9, D10, D11, P12")
    assert line.endswith("; not implemented: " + ", ".join(u for u in UNIT_IDS if u != "P0"))
    cut = "errored: P0 (could not judge: " + ("terraform: " + "x" * 500)[:239] + "…)"
    assert line.split("; ")[1] == cut  # the error is cut to 240 characters in the line
    assert len(gates["phases"][1]["scenarios"][0]["message"]) == 511


def test_verify_and_verdict_refuse_what_is_not_a_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["verify", str(tmp_path)]) == 1
    assert cli.main(["verdict", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "has no manifest.json" in err and "has no gates.json" in err


def test_handles_command(project_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["handles", str(project_root / "infra/handles/dev_min.yaml")]) == 0
    assert "profile dev_min" in capsys.readouterr().out
