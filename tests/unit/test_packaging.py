from __future__ import annotations

import dataclasses
import json
import logging
import zipfile
from pathlib import Path

import pytest

from harness import packaging, redact
from harness.errors import EvidenceError
from tests.conftest import platform_checkout

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
CONFLUENT_KEY = "EXAMPLE7QZ4KRM2W"
CONFLUENT_SECRET = "cfltEXAMPLEq3Zr8Vx0LmN2pK7sT1uW9yB4cD6eF5gH0jR+aS/tU8vX2wY4zA1bC"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return platform_checkout(tmp_path / "proj", {"spine/__init__.py": '"""platform"""\n',
                                                 "spine/__main__.py": "print('hello')\n"})


def test_the_same_sources_give_the_same_digest(project: Path, tmp_path: Path) -> None:
    one = packaging.build(project, tmp_path / "a", sha="abc123")
    two = packaging.build(project, tmp_path / "b", sha="abc123")
    assert one.digest == two.digest and one.digest.startswith("sha256:")
    assert one.tag == "git-abc123"
    assert packaging.layout_digest(one.layout) == one.digest


def test_a_changed_source_or_sha_changes_the_digest(project: Path, tmp_path: Path) -> None:
    base = packaging.build(project, tmp_path / "a", sha="abc123")
    assert packaging.build(project, tmp_path / "b", sha="def456").digest != base.digest
    (project / "spine" / "__main__.py").write_text("print('changed')\n")
    assert packaging.build(project, tmp_path / "c", sha="abc123").digest != base.digest


def test_the_layout_is_an_oci_image_around_the_wheel(project: Path, tmp_path: Path) -> None:
    artifact = packaging.build(project, tmp_path / "a", sha="abc123")
    index = json.loads((artifact.layout / "index.json").read_text())
    assert index["manifests"][0]["digest"] == artifact.digest
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "git-abc123"
    assert artifact.config["config"]["Entrypoint"] == ["python", "-m", "spine"]
    wheel = packaging.extract_wheel(artifact, tmp_path / "x")
    with zipfile.ZipFile(wheel) as zf:
        assert "spine/__main__.py" in zf.namelist()


def test_a_changed_blob_is_detected(project: Path, tmp_path: Path) -> None:
    artifact = packaging.build(project, tmp_path / "a", sha="abc123")
    layer = json.loads(artifact.manifest)["layers"][0]["digest"].split(":")[1]
    blob = artifact.layout / "blobs" / "sha256" / layer
    blob.write_bytes(blob.read_bytes() + b"x")
    with pytest.raises(EvidenceError, match="missing or changed"):
        packaging.layout_digest(artifact.layout)


def test_the_scan_names_the_file_holding_a_secret(project: Path, tmp_path: Path) -> None:
    clean = packaging.build(project, tmp_path / "a", sha="abc123")
    assert packaging.scan_for_secrets(clean) == []
    planted = packaging.build(project, tmp_path / "b", sha="abc123",
                              extra_files={"spine/creds.py": b'KEY = "AKIAIOSFODNN7EXAMPLE"\n'})
    findings = packaging.scan_for_secrets(planted)
    assert findings == [{"file": f"{planted.wheel_in_image}!spine/creds.py", "rule": "aws-access-key-id"},
                        {"file": f"{planted.wheel_in_image}!spine/creds.py", "rule": "AWS Access Key"}]


def _rules_by_file(artifact: packaging.Artifact) -> dict[str, set[str]]:
    rules: dict[str, set[str]] = {}
    for finding in packaging.scan_for_secrets(artifact):
        rules.setdefault(finding["file"].rsplit("!", 1)[-1], set()).add(finding["rule"])
    return rules


def test_an_aws_secret_access_key_without_its_key_id_fails_the_scan(project: Path, tmp_path: Path) -> None:
    platform_checkout(project, {"spine/platform_aws.py": f'aws_secret_access_key = "{AWS_SECRET}"\n'})
    rules = _rules_by_file(packaging.build(project, tmp_path / "a"))
    assert set(rules) == {"spine/platform_aws.py"}
    assert "AWS Access Key" in rules["spine/platform_aws.py"]
    assert "aws-access-key-id" not in rules["spine/platform_aws.py"]  # no AKIA id: the regexes alone were blind


def test_a_confluent_cloud_key_and_secret_fail_the_scan(project: Path, tmp_path: Path) -> None:
    platform_checkout(project, {"spine/platform_kafka.py": (f'CONFLUENT_API_KEY = "{CONFLUENT_KEY}"\n'
                                                            f'CONFLUENT_API_SECRET = "{CONFLUENT_SECRET}"\n')})
    rules = _rules_by_file(packaging.build(project, tmp_path / "a"))
    assert set(rules) == {"spine/platform_kafka.py"}
    assert {"Secret Keyword", "Base64 High Entropy String"} <= rules["spine/platform_kafka.py"]


def test_no_finding_or_log_carries_the_secret_value(project: Path, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    platform_checkout(project, {"spine/platform_aws.py": f'aws_secret_access_key = "{AWS_SECRET}"\n',
                                "spine/platform_kafka.py": f'CONFLUENT_API_SECRET = "{CONFLUENT_SECRET}"\n'})
    artifact = packaging.build(project, tmp_path / "a")
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="detect-secrets"):
        findings = packaging.scan_for_secrets(artifact)
    assert "Checking file" in caplog.text  # the detector's own log was captured, at its most verbose
    assert findings and all(set(f) == {"file", "rule"} for f in findings)
    seen = json.dumps(findings) + caplog.text + "".join(capsys.readouterr())
    for value in (AWS_SECRET, CONFLUENT_SECRET, CONFLUENT_SECRET[:20]):
        assert value not in seen


def test_the_artifact_built_from_this_checkout_scans_clean(project_root: Path, tmp_path: Path) -> None:
    artifact = packaging.build(project_root, tmp_path / "real")
    assert packaging.scan_for_secrets(artifact) == []


def test_only_the_artifacts_own_commit_sha_passes_as_public(project: Path, tmp_path: Path) -> None:
    clean = packaging.build(project, tmp_path / "a")
    assert clean.config["config"]["Labels"]["org.opencontainers.image.revision"] == clean.source_sha
    assert packaging.scan_for_secrets(clean) == []
    other = dataclasses.replace(clean, source_sha="0" * 40)  # the same image under another commit
    assert {"file": "<image config>", "rule": "Hex High Entropy String"} in packaging.scan_for_secrets(other)


def test_the_config_and_layout_files_are_scanned(project: Path, tmp_path: Path) -> None:
    artifact = packaging.build(project, tmp_path / "a")
    config = json.loads(json.dumps(artifact.config))
    config["config"]["Env"].append(f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}")
    (artifact.layout / "notes.py").write_text(f'aws_secret_access_key = "{AWS_SECRET}"\n')
    files = {f["file"] for f in packaging.scan_for_secrets(dataclasses.replace(artifact, config=config))}
    assert files == {"<image config>", "<layout>/notes.py"}


def test_the_scan_finds_registered_secrets(project: Path, tmp_path: Path) -> None:
    redact.register("registered-secret-value-77")
    platform_checkout(project, {"spine/settings.py": "TOKEN = 'registered-secret-value-77'\n"})
    artifact = packaging.build(project, tmp_path / "a", sha="abc123")
    rules = {(f["file"].rsplit("!", 1)[1], f["rule"]) for f in packaging.scan_for_secrets(artifact)}
    assert ("spine/settings.py", "registered-secret") in rules


def test_an_untracked_file_never_ships(project: Path, tmp_path: Path) -> None:
    (project / "spine" / "stray.py").write_text('KEY = "AKIAIOSFODNN7EXAMPLE"\n')
    artifact = packaging.build(project, tmp_path / "a")
    assert not artifact.tag.endswith("-dirty")
    with zipfile.ZipFile(artifact.wheel) as zf:
        assert "spine/stray.py" not in zf.namelist()
    assert packaging.scan_for_secrets(artifact) == []


def test_a_changed_tracked_file_marks_the_tag_dirty(project: Path, tmp_path: Path) -> None:
    clean = packaging.build(project, tmp_path / "a")
    (project / "spine" / "__main__.py").write_text("print('edited')\n")
    dirty = packaging.build(project, tmp_path / "b")
    assert dirty.tag == clean.tag + "-dirty"
