"""Every mode answers `--contract`; unbuilt modes exit 3; bad usage exits 2 — as docs/platform-contract.md §4 says."""

from __future__ import annotations

import json
import os

import pytest
from spine_lane import run

MODES = ["oracle-seed", "oracle-sort", "oracle-check", "sr", "wsp", "ig", "rtdl", "decision-lane", "case-labels",
         "reporter"]
IMPLEMENTED = set(MODES)
DAEMONS = {"ig", "rtdl", "decision-lane", "case-labels"}
COMMON_ENV = ["REQUIRED_PLATFORM_RUN_ID", "SPINE_RUN_MANIFEST", "SPINE_RUN_CONFIG_DIGEST", "SPINE_IMAGE_DIGEST",
              "SPINE_EVIDENCE_ROOT"]
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


@pytest.mark.parametrize("mode", MODES)
def test_contract_describes_the_mode(mode: str) -> None:
    proc = run(["-m", "spine", mode, "--contract"], ENV)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert set(answer) == {"mode", "implemented", "kind", "required_env", "evidence"}
    assert answer["mode"] == mode
    assert answer["implemented"] is (mode in IMPLEMENTED)
    assert answer["kind"] == ("daemon" if mode in DAEMONS else "job")
    assert answer["required_env"][: len(COMMON_ENV)] == COMMON_ENV
    assert all(isinstance(key, str) and not key.startswith("/") for key in answer["evidence"])


def test_contract_of_the_oracle_lane_names_its_environment_and_evidence() -> None:
    answers = {m: json.loads(run(["-m", "spine", m, "--contract"], ENV).stdout) for m in sorted(IMPLEMENTED)}
    assert {"SPINE_ORACLE_SOURCE", "SPINE_ORACLE_ROOT"} <= set(answers["oracle-seed"]["required_env"])
    assert "SPINE_ORACLE_ROOT" in answers["oracle-sort"]["required_env"]
    assert answers["oracle-seed"]["evidence"] == ["oracle/landing_manifest.json"]
    assert "oracle/sort_receipts/card_transactions.json" in answers["oracle-sort"]["evidence"]
    assert "oracle/stream_view/card_profiles.json" in answers["oracle-sort"]["evidence"]
    assert answers["oracle-check"]["evidence"] == ["oracle/checker_receipt.json", "oracle/_PASS"]


def test_a_mode_not_built_exits_3(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Every mode is built today; a platform that declares one unbuilt must answer exit 3, naming it."""
    from spine import cli
    from spine.contract import Contract

    monkeypatch.setitem(cli.MODES, "reporter", Contract("reporter", "job", False))
    assert cli.main(["reporter"]) == 3
    assert capsys.readouterr().err.strip() == "reporter: not implemented"
    assert json.loads(run(["-m", "spine", "reporter", "--contract"], ENV).stdout)["implemented"] is True


def test_the_decision_planes_name_their_environment_and_evidence() -> None:
    answers = {m: json.loads(run(["-m", "spine", m, "--contract"], ENV).stdout)
               for m in ("rtdl", "decision-lane", "case-labels", "reporter")}
    assert {"SPINE_TOPIC_TRAFFIC", "SPINE_TOPIC_RTDL", "SPINE_ARCHIVE_BUCKET"} <= set(answers["rtdl"]["required_env"])
    assert answers["rtdl"]["evidence"] == ["rtdl_core/catch_up.json", "rtdl_core/archive_index.json"]
    assert "SPINE_SSM_DB_DSN" in answers["decision-lane"]["required_env"]
    assert answers["case-labels"]["evidence"] == ["case_labels/summary.json"]
    assert "SPINE_REPORTER_LOCK_TABLE" in answers["reporter"]["required_env"]
    assert "run_completed.json" in answers["reporter"]["evidence"]


@pytest.mark.parametrize("argv", [[], ["nonsense"], ["oracle-seed", "--bogus"]])
def test_bad_usage_exits_2_listing_the_modes(argv: list[str]) -> None:
    proc = run(["-m", "spine", *argv], ENV)
    assert proc.returncode == 2
    assert all(mode in proc.stderr for mode in MODES)
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_missing_variable_exits_2_naming_it() -> None:
    env = {**ENV, **{name: "x" for name in COMMON_ENV}, "AWS_REGION": "eu-west-2", "SPINE_ORACLE_SOURCE": "s3://a/b/"}
    proc = run(["-m", "spine", "oracle-seed"], env)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "oracle-seed: missing environment variable: SPINE_ORACLE_ROOT"
