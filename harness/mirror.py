"""The S3 mirror of an evidence bundle: write-once puts, and comparison for `verify`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import canonical
from harness.aws import AwsSession, s3
from harness.errors import EvidenceError, PreconditionFailed, SubstrateError
from harness.evidence import MANIFEST, MirrorTarget, VerifyReport


def put_files(aws: AwsSession, target: MirrorTarget, root: Path, relpaths: list[str],
              *, done: set[str] | None = None) -> set[str]:
    """Mirror each file once; an existing key stops the run and is never overwritten.

    ``done`` collects what was mirrored as it goes, so a failure part-way loses no progress.
    """
    done = set() if done is None else done
    for rel in relpaths:
        key = target.key(rel)
        try:
            s3.put_once(aws, bucket=target.bucket, key=key, body=(root / rel).read_bytes())
        except PreconditionFailed as exc:
            raise EvidenceError(
                f"evidence key s3://{target.bucket}/{key} already exists; the mirror is write-once, "
                "nothing was overwritten (a certification id must not be reused)"
            ) from exc
        done.add(rel)
    return done


def compare(report: VerifyReport, manifest: dict[str, Any]) -> None:
    """Compare the bundle's manifest with its S3 mirror, when the mirror can be reached."""
    spec = manifest.get("mirror")
    if not spec:
        report.mirror_status = "not configured (the bundle was never mirrored)"
        return
    target = MirrorTarget(**spec)
    aws = AwsSession(region=target.region, endpoint_url=target.endpoint_url)
    where = f"s3://{target.bucket}/{target.prefix}"
    try:
        keys = set(s3.list_keys(aws, bucket=target.bucket, prefix=target.prefix))
    except SubstrateError as exc:
        report.mirror_status = f"not reachable ({where}: {exc.code}); compared local digests only"
        return
    expected = {f["path"]: f["sha256"] for f in manifest.get("files", [])}
    expected[MANIFEST] = canonical.sha256_file(report.bundle / MANIFEST)
    for rel, digest in sorted(expected.items()):
        key = target.key(rel)
        if key not in keys:
            report.mirror_missing.append(rel)
        elif canonical.sha256_bytes(s3.get_bytes(aws, bucket=target.bucket, key=key)) != digest:
            report.mirror_changed.append(rel)
    report.mirror_status = f"compared with {where} ({len(expected)} objects)"
