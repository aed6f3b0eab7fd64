"""The S3 mirror is write-once and `verify` compares a bundle with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import certificate, cli, evidence, mirror
from harness.aws import AwsSession, s3
from harness.errors import EvidenceError
from harness.substrate import MotoServer

pytestmark = pytest.mark.substrate


@pytest.fixture
def sealed(tmp_path: Path, moto: MotoServer) -> tuple[evidence.Bundle, evidence.MirrorTarget, AwsSession]:
    session = AwsSession(region="eu-west-2", endpoint_url=moto.endpoint)
    bucket = f"evidence-{tmp_path.name.lower().replace('_', '-')[:40]}"
    session.client("s3").create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-2"})
    target = evidence.MirrorTarget(bucket=bucket, prefix="certifications/cert-t/", region="eu-west-2",
                                   endpoint_url=moto.endpoint)
    bundle = evidence.Bundle(tmp_path / "cert-t", cert_id="cert-t")
    gates = {"cert_id": "cert-t", "profile": "embedded", "verdict": "INCOMPLETE", "phases": []}
    bundle.write_json("gates.json", gates)
    bundle.write_json(certificate.CERTIFICATE, certificate.build(bundle.root, gates))
    bundle.seal(mirror=target)
    mirror.put_files(session, target, bundle.root, [*bundle.written])
    return bundle, target, session


def test_a_second_write_of_an_existing_key_fails_closed(sealed) -> None:  # type: ignore[no-untyped-def]
    bundle, target, session = sealed
    original = s3.get_bytes(session, bucket=target.bucket, key=target.key("gates.json"))
    (bundle.root / "gates.json").write_text('{"verdict": "CERTIFIED"}\n')
    with pytest.raises(EvidenceError, match=r"gates.json already exists; the mirror is write-once"):
        mirror.put_files(session, target, bundle.root, ["gates.json"])
    assert s3.get_bytes(session, bucket=target.bucket, key=target.key("gates.json")) == original


def test_verify_compares_with_the_mirror(sealed, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    bundle, _target, _session = sealed
    assert cli.main(["verify", str(bundle.root)]) == 0
    assert "compared with s3://" in capsys.readouterr().out


def test_verify_names_an_object_changed_in_the_mirror(sealed, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    bundle, target, session = sealed
    session.client("s3").put_object(Bucket=target.bucket, Key=target.key("gates.json"), Body=b"{}")
    assert cli.main(["verify", str(bundle.root)]) == 1
    assert "changed  s3 mirror: gates.json" in capsys.readouterr().out


def test_verify_with_an_unreachable_mirror_checks_local_digests(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    target = evidence.MirrorTarget(bucket="b", prefix="p/", region="eu-west-2", endpoint_url="http://127.0.0.1:9")
    bundle = evidence.Bundle(tmp_path / "c", cert_id="c")
    bundle.write_json("x.json", {})
    bundle.seal(mirror=target)
    assert cli.main(["verify", str(bundle.root)]) == 0
    assert "not reachable" in capsys.readouterr().out
