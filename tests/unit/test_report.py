"""The Allure results cannot look greener than the verdict: phases that ran no scenario are results too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness import report
from harness.ledger import PHASES


def gates(statuses: dict[str, str], *, verdict: str, scenarios: tuple[str, ...] = ()) -> dict[str, Any]:
    phases = [{"phase_id": pid, "name": name, "status": statuses.get(pid, "DONE"),
               "blocked_by": "P0" if statuses.get(pid) == "BLOCKED" else None,
               "scenarios": [{"name": "s", "outcome": "passed"}] if pid in scenarios or pid not in statuses else []}
              for pid, name in PHASES]
    return {"cert_id": "cert-x", "verdict": verdict, "phases": phases}


def results(directory: Path) -> dict[str, dict[str, Any]]:
    found = [json.loads(p.read_text()) for p in directory.glob("*-result.json")]
    return {next(label["value"] for label in r["labels"] if label["name"] == "phase"): r for r in found}


def test_a_phase_not_implemented_is_a_broken_result_naming_why(tmp_path: Path) -> None:
    written = report.write_unjudged_phases(tmp_path, gates({"P8": "NOT_IMPLEMENTED"}, verdict="INCOMPLETE"),
                                           now_ms=1)
    assert written == ["P8"]
    result = results(tmp_path)["P8"]
    assert result["status"] == "broken" and result["stage"] == "finished"
    assert result["name"] == "P8 RTDL core: NOT_IMPLEMENTED"
    assert result["statusDetails"]["message"].startswith("P8 NOT_IMPLEMENTED: the platform builds no surface")
    assert "(certification verdict INCOMPLETE)" in result["statusDetails"]["message"]
    assert {"name": "category", "value": report.NOT_IMPLEMENTED} in result["labels"]


def test_phases_not_run_and_blocked_without_scenarios_are_results_too(tmp_path: Path) -> None:
    written = report.write_unjudged_phases(
        tmp_path, gates({"P3": "NOT_STARTED", "P4": "BLOCKED"}, verdict="ERROR"), now_ms=1)
    assert written == ["P3", "P4"]
    found = results(tmp_path)
    assert found["P3"]["status"] == "broken"
    assert "P3 NOT_RUN: this phase did not run" in found["P3"]["statusDetails"]["message"]
    assert found["P4"]["status"] == "failed"
    assert "P4 BLOCKED: this phase is BLOCKED by P0" in found["P4"]["statusDetails"]["message"]


def test_phases_that_ran_scenarios_get_no_extra_result(tmp_path: Path) -> None:
    # DONE phases, and a BLOCKED phase whose scenarios ran (each failing as blocked), are already in the results
    assert report.write_unjudged_phases(tmp_path, gates({"P4": "BLOCKED"}, verdict="FAILED", scenarios=("P4",)),
                                        now_ms=1) == []
    assert report.write_unjudged_phases(tmp_path, gates({}, verdict="CERTIFIED"), now_ms=1) == []
    assert list(tmp_path.iterdir()) == []


def test_the_same_certification_writes_the_same_result_ids(tmp_path: Path) -> None:
    g = gates({"P9": "NOT_IMPLEMENTED"}, verdict="INCOMPLETE")
    for name, now in (("a", 1), ("b", 2)):
        (tmp_path / name).mkdir()
        report.write_unjudged_phases(tmp_path / name, g, now_ms=now)
    assert results(tmp_path / "a")["P9"]["uuid"] == results(tmp_path / "b")["P9"]["uuid"]


def test_the_allure_3_config_carries_every_category_the_harness_labels() -> None:
    """Allure 3 ignores categories.json; allurerc.mjs must match the same names on the `category` label."""
    config = (Path(__file__).resolve().parents[2] / "allurerc.mjs").read_text()
    for category in report.CATEGORIES:
        assert f'category("{category["name"]}")' in config
