from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness import handles
from harness.errors import ConfigError


def _write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "handles.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def raw(project_root: Path) -> dict:
    return yaml.safe_load((project_root / "infra/handles/embedded.yaml").read_text())


@pytest.mark.parametrize("profile", ["embedded", "dev_min"])
def test_shipped_registries_load(project_root: Path, profile: str) -> None:
    h = handles.load(project_root / f"infra/handles/{profile}.yaml", profile=profile)
    assert h.profile == profile
    assert set(h.buckets) == set(handles.BUCKET_ROLES)
    assert set(h.task_families) == set(handles.MODES)
    assert h.topics["fp.bus.control.v1"] == 1
    assert len(h.digest) == 64


def test_profiles_pin_the_same_names_but_differ_in_replication(project_root: Path) -> None:
    emb = handles.load(project_root / "infra/handles/embedded.yaml")
    dev = handles.load(project_root / "infra/handles/dev_min.yaml")
    assert emb.topics == dev.topics
    assert (emb.replication_factor, dev.replication_factor) == (1, 3)


def test_unknown_key_names_file_key_and_fix(tmp_path: Path, raw: dict) -> None:
    raw["s3"]["bukets"] = {}
    path = _write(tmp_path, raw)
    with pytest.raises(ConfigError) as err:
        handles.load(path)
    message = str(err.value)
    assert str(path) in message
    assert "s3.bukets: unknown key; remove it or use one of" in message


def test_missing_handle_is_named(tmp_path: Path, raw: dict) -> None:
    del raw["ssm"]["db_dsn"]
    with pytest.raises(ConfigError, match=r"ssm\.db_dsn: missing handle; add it"):
        handles.load(_write(tmp_path, raw))


def test_wrong_type_is_named_with_the_value(tmp_path: Path, raw: dict) -> None:
    raw["kafka"]["topics"]["fp.bus.control.v1"] = "one"
    raw["s3"]["buckets"]["evidence"]["versioning"] = 1
    with pytest.raises(ConfigError) as err:
        handles.load(_write(tmp_path, raw))
    message = str(err.value)
    assert "kafka.topics.fp.bus.control.v1: expected int, got str 'one'" in message
    assert "s3.buckets.evidence.versioning: expected bool, got int 1" in message
    assert "2 problem(s)" in message


def test_bool_is_not_accepted_as_a_partition_count(tmp_path: Path, raw: dict) -> None:
    raw["kafka"]["topics"]["fp.bus.control.v1"] = True
    with pytest.raises(ConfigError, match="expected int, got bool True"):
        handles.load(_write(tmp_path, raw))


def test_semantic_rules(tmp_path: Path, raw: dict) -> None:
    raw["ssm"]["ig_api_key"] = "fraud/ig"
    raw["kafka"]["topics"]["fp.bus.case.v1"] = 0
    raw["ecs"]["services"]["nope"] = "x"
    with pytest.raises(ConfigError) as err:
        handles.load(_write(tmp_path, raw))
    message = str(err.value)
    assert "ssm.ig_api_key: SSM path 'fraud/ig' must start with '/'" in message
    assert "kafka.topics.fp.bus.case.v1: partitions must be >= 1" in message
    assert "ecs.services.nope: not an entrypoint mode" in message


def test_profile_mismatch_says_which_file_to_pass(project_root: Path) -> None:
    with pytest.raises(ConfigError, match=r"pass --handles infra/handles/dev_min.yaml"):
        handles.load(project_root / "infra/handles/embedded.yaml", profile="dev_min")


def test_malformed_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("s3: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        handles.load(bad)
    with pytest.raises(ConfigError, match="handles file not found"):
        handles.load(tmp_path / "absent.yaml")
