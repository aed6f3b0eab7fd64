"""A platform that does not build one mode is INCOMPLETE everywhere the verdict is said, never green."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.substrate]
ROOT = Path(__file__).resolve().parents[2]


def test_a_platform_whose_reporter_answers_not_implemented_is_incomplete(tmp_path: Path) -> None:
    results = tmp_path / "allure-results"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "features" / "phases"), "--rootdir", str(ROOT),
         "-p", "no:cacheprovider", "-p", "reporter_double", "--events", "20", "--cert-id", "cert-double",
         "--reports-dir", str(tmp_path / "reports"), "--alluredir", str(results)],
        cwd=tmp_path, capture_output=True, text=True, timeout=1200, env=env,
    )
    bundle = tmp_path / "reports/certifications/cert-double"
    gates = json.loads((bundle / "gates.json").read_text())
    p11 = next(p for p in gates["phases"] if p["gate"] == "P11 @ run-20")
    assert p11["status"] == "NOT_IMPLEMENTED", (p11, run.stdout[-3000:])
    outcomes = {s["outcome"] for s in p11["scenarios"]}
    assert "not_implemented" in outcomes and outcomes <= {"passed", "not_implemented"}, p11["scenarios"]
    others = [p for p in gates["phases"] if p["kind"] == "phase" and p["gate"] != "P11 @ run-20"]
    assert {p["status"] for p in others} == {"DONE"}, [(p["gate"], p["status"]) for p in others]
    # INCOMPLETE, naming the gate, in the console, gates.json, certificate.json and the report.
    assert (gates["verdict"], gates["failed"], gates["errored"]) == ("INCOMPLETE", [], [])
    assert "P11 @ run-20" in gates["not_implemented"]
    assert "verdict: INCOMPLETE (profile embedded, cert-double)" in run.stdout
    assert "not implemented: P11 @ run-20" in run.stdout
    certificate = json.loads((bundle / "certificate.json").read_text())
    assert (certificate["verdict"], certificate["phases"]["P11 @ run-20"]) == ("INCOMPLETE", "NOT_IMPLEMENTED")
    environment = (results / "environment.properties").read_text().splitlines()
    assert "verdict=INCOMPLETE" in environment
    allure = [json.loads(p.read_text()) for p in results.glob("*-result.json")]
    unbuilt = [r for r in allure if r["name"].startswith("P11 @ run-20 · ") and r["status"] != "passed"]
    assert unbuilt and {r["status"] for r in unbuilt} == {"broken"}  # not green: the mode is not built
    assert all({"name": "category", "value": "Not implemented by the platform"} in r["labels"] for r in unbuilt)
