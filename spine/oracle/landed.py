"""The landed Oracle as the lane may read it: only after oracle-seed proved continuity, only verified bytes."""

from __future__ import annotations

import hashlib

from spine import evidence, s3
from spine.errors import NotFound, SpineError
from spine.oracle import manifest as manifests
from spine.oracle.seed import EVIDENCE as LANDING
from spine.runscope import RunScope

STREAM_VIEW = "stream_view/{output}/part-00000.parquet"
STREAM_VIEW_EVIDENCE = "oracle/stream_view/{output}.json"
SORT_RECEIPT = "oracle/sort_receipts/{output}.json"


def oracle_root(scope: RunScope) -> s3.Location:
    return s3.Location.parse(scope.env["SPINE_ORACLE_ROOT"], name="SPINE_ORACLE_ROOT").root


def load_manifest(scope: RunScope, root: s3.Location) -> manifests.Manifest:
    """The landed manifest, refused unless this run's landing evidence vouches for exactly these bytes."""
    landing = evidence.get_json(scope.evidence, LANDING)
    if landing is None:
        raise SpineError(f"no landing evidence {scope.evidence.url(LANDING)}: the Oracle was not landed for this run")
    if landing.get("continuity") is not True:
        raise SpineError(f"landing evidence {scope.evidence.url(LANDING)} does not show continuity")
    if landing.get("destination") != root.url():
        raise SpineError(f"landing evidence is for {landing.get('destination')!r}, not SPINE_ORACLE_ROOT={root.url()}")
    try:
        raw = s3.get_bytes(root.bucket, root.key(manifests.NAME))
    except NotFound as exc:
        raise SpineError(f"landed manifest {root.url(manifests.NAME)} does not exist") from exc
    landed = (landing.get("manifest") or {}).get("destination", {}).get("sha256")
    actual = hashlib.sha256(raw).hexdigest()
    if actual != landed:
        raise SpineError(f"landed manifest {root.url(manifests.NAME)} has sha256 {actual}; the landing evidence "
                         f"records {landed}")
    manifest = manifests.parse(raw, where=root.url(manifests.NAME))
    if manifest.scenario_run_id != scope.scenario_run_id:
        raise SpineError(f"landed manifest scenario_run_id={manifest.scenario_run_id!r} but run.json pins "
                         f"scenario_run_id={scope.scenario_run_id!r}")
    return manifest


def read_file(root: s3.Location, entry: manifests.File) -> bytes:
    """A landed file's bytes, refused when absent or not the bytes the manifest records."""
    try:
        data = s3.get_bytes(root.bucket, root.key(entry.key))
    except NotFound as exc:
        raise SpineError(f"landed object {root.url(entry.key)} listed in the manifest does not exist") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != entry.sha256 or len(data) != entry.size:
        raise SpineError(f"landed object {root.url(entry.key)} has sha256 {actual} size {len(data)}; "
                         f"the manifest records sha256 {entry.sha256} size {entry.size}")
    return data
