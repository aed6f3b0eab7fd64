from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import canonical, evidence, redact
from harness.errors import EvidenceError


@pytest.fixture
def bundle(tmp_path: Path) -> evidence.Bundle:
    b = evidence.Bundle(tmp_path / "cert-x", cert_id="cert-x")
    b.write_json("substrate/apply_snapshot.json", {"b": 2, "a": [1, 2]})
    b.write_text("substrate/logs/moto.log", "moto started\n")
    b.seal(mirror=None)
    return b


def test_canonical_json_is_stable_and_sorted() -> None:
    one = canonical.dumps({"b": 1, "a": {"d": 2, "c": 3}})
    two = canonical.dumps({"a": {"c": 3, "d": 2}, "b": 1})
    assert one == two
    assert one.decode().index('"a"') < one.decode().index('"b"')
    assert canonical.digest_of({"x": 1}) == canonical.sha256_bytes(canonical.dumps({"x": 1}))


def test_manifest_lists_every_file_with_digest_and_size(bundle: evidence.Bundle) -> None:
    manifest = json.loads((bundle.root / "manifest.json").read_text())
    paths = [f["path"] for f in manifest["files"]]
    assert paths == ["substrate/apply_snapshot.json", "substrate/logs/moto.log"]
    entry = manifest["files"][1]
    assert entry["sha256"] == canonical.sha256_bytes(b"moto started\n") and entry["size"] == 13
    assert manifest["bundle_digest"] == canonical.digest_of(
        {"cert_id": "cert-x", "files": manifest["files"], "mirror": None})


def test_write_once_never_overwrites(tmp_path: Path) -> None:
    b = evidence.Bundle(tmp_path / "c", cert_id="c")
    b.write_json("gates.json", {"v": 1})
    with pytest.raises(EvidenceError, match=r"gates\.json already exists .* left untouched"):
        b.write_json("gates.json", {"v": 2})
    assert json.loads((b.root / "gates.json").read_text()) == {"v": 1}


def test_an_existing_bundle_is_never_reused(bundle: evidence.Bundle) -> None:
    with pytest.raises(EvidenceError, match="already exists and is not empty"):
        evidence.Bundle(bundle.root, cert_id="cert-x")


def test_sealed_bundle_refuses_more_files(bundle: evidence.Bundle) -> None:
    with pytest.raises(EvidenceError, match="sealed"):
        bundle.write_json("late.json", {})


def test_paths_cannot_escape_the_bundle(tmp_path: Path) -> None:
    b = evidence.Bundle(tmp_path / "c", cert_id="c")
    with pytest.raises(EvidenceError, match="escapes the bundle"):
        b.write_json("../outside.json", {})


def test_verify_passes_on_an_untouched_bundle(bundle: evidence.Bundle) -> None:
    report, _ = evidence.verify_local(bundle.root)
    assert report.ok and report.lines() == []


@pytest.mark.parametrize("victim", ["substrate/apply_snapshot.json", "substrate/logs/moto.log"])
def test_one_changed_byte_is_named(bundle: evidence.Bundle, victim: str) -> None:
    path = bundle.root / victim
    data = bytearray(path.read_bytes())
    data[0] ^= 0x01
    path.write_bytes(bytes(data))
    report, _ = evidence.verify_local(bundle.root)
    assert not report.ok
    assert report.changed == [victim]
    assert report.lines() == [f"changed  {victim}"]


def test_missing_and_extra_files_are_named(bundle: evidence.Bundle) -> None:
    (bundle.root / "substrate/logs/moto.log").unlink()
    (bundle.root / "planted.json").write_text("{}")
    report, _ = evidence.verify_local(bundle.root)
    assert report.missing == ["substrate/logs/moto.log"]
    assert report.extra == ["planted.json"]


def test_rewritten_manifest_is_detected(bundle: evidence.Bundle) -> None:
    manifest_path = bundle.root / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][0]["size"] += 1
    manifest_path.write_text(json.dumps(manifest))
    report, _ = evidence.verify_local(bundle.root)
    assert not report.digest_ok and not report.ok


def test_secrets_are_scrubbed_before_they_reach_disk(tmp_path: Path) -> None:
    secret = "s3cr3t-value-planted-by-test"
    redact.register(secret)
    b = evidence.Bundle(tmp_path / "c", cert_id="c")
    b.write_json("a.json", {"dsn": f"postgresql://u:{secret}@h/db"})
    b.write_text("log.txt", f"token={secret}\n")
    assert redact.find_in_tree(b.root, secret) == []
    assert redact.MASK in (b.root / "log.txt").read_text()


@pytest.mark.parametrize(("old", "new"), [('"cert-x"', '"cert-y"'), ('"mirror": null', '"mirror":  null'),
                                          ('"bundle_digest": "', '"bundle_digest": "0')])
def test_any_changed_byte_of_the_manifest_is_named(bundle: evidence.Bundle, old: str, new: str) -> None:
    path = bundle.root / "manifest.json"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    report, _ = evidence.verify_local(bundle.root)
    assert not report.ok
    assert report.lines() == ["changed  manifest.json (it is not the manifest that sealed this bundle)"]


def test_a_manifest_that_is_no_longer_json_is_named(bundle: evidence.Bundle) -> None:
    path = bundle.root / "manifest.json"
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(EvidenceError, match=r"changed  manifest\.json"):
        evidence.verify_local(bundle.root)
