"""The run-scope guard: every mode refuses work for another run, config or image before doing any."""

from __future__ import annotations

import pytest
from spine_lane import Lane

pytestmark = pytest.mark.substrate

MODES = ["oracle-seed", "oracle-sort", "oracle-check"]


@pytest.mark.parametrize("mode", MODES)
def test_another_platform_run_id_is_refused(lane: Lane, mode: str) -> None:
    lane.put_run_json(platform_run_id="run-someone-else")
    proc = lane.spine(mode)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f"{mode}: run scope refused: run.json platform_run_id='run-someone-else' but "
                                   f"REQUIRED_PLATFORM_RUN_ID='{lane.run_id}'")
    assert lane.evidence_keys() == ["run.json"]


@pytest.mark.parametrize("mode", MODES)
def test_another_run_config_digest_is_refused(lane: Lane, mode: str) -> None:
    proc = lane.spine(mode, SPINE_RUN_CONFIG_DIGEST="f" * 64)
    assert proc.returncode == 1
    assert "run.json run_config_digest=" in proc.stderr and f"SPINE_RUN_CONFIG_DIGEST='{'f' * 64}'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert lane.evidence_keys() == ["run.json"]


@pytest.mark.parametrize("mode", MODES)
def test_another_image_digest_is_refused(lane: Lane, mode: str) -> None:
    lane.put_run_json(image={"tag": "git-0123abc", "digest": "sha256:" + "cd" * 32, "source_sha": "0123abc"})
    proc = lane.spine(mode)
    assert proc.returncode == 1
    assert f"run.json image.digest='sha256:{'cd' * 32}' but SPINE_IMAGE_DIGEST='sha256:{'ab' * 32}'" in proc.stderr
    assert lane.evidence_keys() == ["run.json"]


def test_a_missing_run_manifest_is_refused(lane: Lane) -> None:
    proc = lane.spine("oracle-check", SPINE_RUN_MANIFEST=f"s3://{lane.buckets['evidence']}/runs/nope/run.json")
    assert proc.returncode == 1
    assert "run manifest" in proc.stderr and "does not exist" in proc.stderr


def test_evidence_for_another_run_is_refused(lane: Lane) -> None:
    proc = lane.spine("oracle-check", SPINE_EVIDENCE_ROOT=f"s3://{lane.buckets['evidence']}/runs/run-other/")
    assert proc.returncode == 1
    assert "SPINE_EVIDENCE_ROOT" in proc.stderr
    assert lane.evidence_keys() == ["run.json"]


@pytest.mark.parametrize("name", ["REQUIRED_PLATFORM_RUN_ID", "SPINE_IMAGE_DIGEST", "SPINE_ORACLE_ROOT"])
def test_a_missing_variable_exits_2(lane: Lane, name: str) -> None:
    proc = lane.spine("oracle-sort", **{name: None})
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"oracle-sort: missing environment variable: {name}"
