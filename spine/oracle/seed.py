"""oracle-seed: land the Data Engine's scenario S3→S3, write-once, proving byte continuity per file."""

from __future__ import annotations

from typing import Any

from spine import evidence, log, s3
from spine.errors import NotFound, SpineError
from spine.oracle import manifest as manifests
from spine.runscope import RunScope

EVIDENCE = "oracle/landing_manifest.json"


def _source(url: str) -> s3.Location:
    # The Oracle is landed from object storage only: a local copy proves nothing about the Engine's truth.
    if not url.startswith("s3://"):
        raise SpineError(f"local source refused: SPINE_ORACLE_SOURCE={url!r} is not an s3:// URL")
    return s3.Location.parse(url, name="SPINE_ORACLE_SOURCE").root


def _land(source: s3.Location, root: s3.Location, key: str, src: s3.Digest, etag: str) -> dict[str, Any]:
    """Land one verified source object (the version with ``etag``); return source and destination digests."""
    try:
        dst, _ = s3.digest(root.bucket, root.key(key))
        outcome = "already_landed"
    except NotFound:
        s3.copy(source=(source.bucket, source.key(key)), source_etag=etag, destination=(root.bucket, root.key(key)))
        dst, _ = s3.digest(root.bucket, root.key(key))
        outcome = "copied"
    match = dst == src
    log.info("landed" if match else "conflict", key=key, outcome=outcome, sha256=dst.sha256, size=dst.size)
    return {"key": key, "source": src.to_json(), "destination": dst.to_json(), "match": match}


def run(scope: RunScope) -> None:
    source = _source(scope.env["SPINE_ORACLE_SOURCE"])
    root = s3.Location.parse(scope.env["SPINE_ORACLE_ROOT"], name="SPINE_ORACLE_ROOT").root
    if root == source:
        raise SpineError(f"SPINE_ORACLE_ROOT={root.url()} is the source itself; the Oracle is landed elsewhere")
    try:
        raw = s3.get_bytes(source.bucket, source.key(manifests.NAME))
    except NotFound as exc:
        raise SpineError(f"source manifest {source.url(manifests.NAME)} does not exist") from exc
    manifest = manifests.parse(raw, where=source.url(manifests.NAME))
    if manifest.scenario_run_id != scope.scenario_run_id:
        raise SpineError(f"source manifest scenario_run_id={manifest.scenario_run_id!r} but run.json pins "
                         f"scenario_run_id={scope.scenario_run_id!r}")

    # Every source object must be what the Engine recorded before anything is copied.
    etags: dict[str, str] = {}
    for f in manifest.files():
        try:
            got, etags[f.key] = s3.digest(source.bucket, source.key(f.key))
        except NotFound as exc:
            raise SpineError(f"source object {source.url(f.key)} listed in the manifest does not exist") from exc
        if got != s3.Digest(f.sha256, f.size):
            raise SpineError(f"source object {source.url(f.key)} has sha256 {got.sha256} size {got.size}; "
                             f"the manifest records sha256 {f.sha256} size {f.size}")
    log.info("source_verified", files=len(manifest.files()), manifest_sha256=manifest.sha256)

    files = []
    for f in manifest.files():
        pair = _land(source, root, f.key, s3.Digest(f.sha256, f.size), etags[f.key])
        files.append({**pair, "output": f.key.split("/", 1)[0], "rows": f.rows, "manifest_sha256": f.sha256})
    conflicts = [f for f in files if not f["match"]]
    # The manifest lands last, and only over complete data: a consumer never sees a partial landing.
    landed_manifest = None
    if not conflicts:
        got, etag = s3.digest(source.bucket, source.key(manifests.NAME))
        if got != s3.Digest(manifest.sha256, manifest.size):
            raise SpineError(f"source manifest {source.url(manifests.NAME)} changed while landing")
        landed_manifest = _land(source, root, manifests.NAME, got, etag)
        if not landed_manifest["match"]:
            conflicts.append(landed_manifest)
    record = {
        "platform_run_id": scope.platform_run_id,
        "scenario_run_id": manifest.scenario_run_id,
        "source": source.url(),
        "destination": root.url(),
        "manifest": landed_manifest,
        "files": files,
        "continuity": not conflicts and landed_manifest is not None,
    }
    evidence.put_json(scope.evidence, EVIDENCE, record)
    if conflicts:
        first = conflicts[0]
        raise SpineError(f"landed object {root.url(first['key'])} has sha256 {first['destination']['sha256']}, the "
                         f"source {first['source']['sha256']}: write-once, not overwritten "
                         f"({len(conflicts)} object(s) differ)")
    log.info("landing_complete", files=len(files), continuity=True)
