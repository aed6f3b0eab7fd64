from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from harness import packaging, redact
from harness.errors import EvidenceError
from tests.conftest import platform_checkout


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
    assert findings == [{"file": f"{planted.wheel_in_image}!spine/creds.py", "rule": "aws-access-key-id"}]


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
