"""The run-scoped evidence bundle: canonical JSON, a sha256 manifest, a write-once S3 mirror."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import canonical, certificate, redact
from harness.errors import EvidenceError

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class MirrorTarget:
    bucket: str
    prefix: str
    region: str
    endpoint_url: str | None

    def key(self, relpath: str) -> str:
        return f"{self.prefix}{relpath}"


class Bundle:
    """``reports/certifications/<cert_id>/``. Every file is written exactly once."""

    def __init__(self, root: Path, *, cert_id: str) -> None:
        self.cert_id = cert_id
        self.root = root
        if root.exists() and any(root.iterdir()):
            raise EvidenceError(
                f"evidence bundle {root} already exists and is not empty; a certification never "
                "writes into an earlier one (choose another --cert-id or --reports-dir)"
            )
        root.mkdir(parents=True, exist_ok=True)
        self._written: list[str] = []
        self.sealed = False

    def path(self, relpath: str) -> Path:
        target = (self.root / relpath).resolve()
        if self.root.resolve() not in target.parents:
            raise EvidenceError(f"evidence path {relpath!r} escapes the bundle {self.root}")
        return target

    def write_bytes(self, relpath: str, data: bytes) -> Path:
        if self.sealed:
            raise EvidenceError(f"bundle {self.root} is sealed; cannot add {relpath}")
        target = self.path(relpath)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with target.open("xb") as fh:  # "x": fail rather than overwrite
                fh.write(redact.scrub_bytes(data))
        except FileExistsError as exc:
            raise EvidenceError(
                f"evidence file {relpath} already exists in {self.root}; evidence is write-once "
                "and the existing file was left untouched"
            ) from exc
        self._written.append(relpath)
        return target

    def write_json(self, relpath: str, record: Any) -> Path:
        return self.write_bytes(relpath, canonical.dumps(record))

    def write_text(self, relpath: str, text: str) -> Path:
        return self.write_bytes(relpath, text.encode("utf-8"))

    def copy_file(self, relpath: str, source: Path) -> Path:
        return self.write_bytes(relpath, source.read_bytes())

    def has(self, relpath: str) -> bool:
        return relpath in self._written

    def require(self, relpath: str) -> Path:
        """The file must have been written by this certification and still be on disk."""
        if relpath not in self._written or not self.path(relpath).is_file():
            raise EvidenceError(f"evidence {relpath} was not written to {self.root}")
        return self.path(relpath)

    @property
    def written(self) -> list[str]:
        return list(self._written)

    def seal(self, *, mirror: MirrorTarget | None) -> dict[str, Any]:
        """Write ``manifest.json`` over every file; nothing may be added afterwards."""
        manifest = build_manifest(self.root, cert_id=self.cert_id, mirror=mirror)
        self.write_bytes(MANIFEST, canonical.dumps(manifest))
        self.sealed = True
        return manifest


def _entries(root: Path) -> list[dict[str, Any]]:
    return [
        {"path": p.relative_to(root).as_posix(), "sha256": canonical.sha256_file(p), "size": p.stat().st_size}
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).as_posix() != MANIFEST
    ]


def _sealed_fields(manifest: dict[str, Any]) -> dict[str, Any]:
    """Everything the bundle digest covers: the id, every file entry and the mirror location."""
    return {k: manifest.get(k) for k in ("cert_id", "files", "mirror")}


def build_manifest(root: Path, *, cert_id: str, mirror: MirrorTarget | None) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "cert_id": cert_id,
        "files": _entries(root),
        "mirror": None if mirror is None else {
            "bucket": mirror.bucket, "prefix": mirror.prefix,
            "region": mirror.region, "endpoint_url": mirror.endpoint_url,
        },
    }
    manifest["bundle_digest"] = canonical.digest_of(_sealed_fields(manifest))
    return manifest


@dataclass
class VerifyReport:
    bundle: Path
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    digest_ok: bool = True
    mirror_status: str = "not configured"
    mirror_changed: list[str] = field(default_factory=list)
    mirror_missing: list[str] = field(default_factory=list)
    certificate: list[str] = field(default_factory=list)
    rejudged: list[str] = field(default_factory=list)  # what judging the recorded observations again contradicts

    @property
    def ok(self) -> bool:
        return self.digest_ok and not (
            self.changed or self.missing or self.extra or self.mirror_changed or self.mirror_missing
            or self.certificate or self.rejudged
        )

    def lines(self) -> list[str]:
        out = [f"{'changed':8} {p}" for p in self.changed]
        out += [f"{'missing':8} {p}" for p in self.missing]
        out += [f"{'extra':8} {p}" for p in self.extra]
        if not self.digest_ok:
            out.append(f"{'changed':8} {MANIFEST} (it is not the manifest that sealed this bundle)")
        out += [f"{'changed':8} s3 mirror: {p}" for p in self.mirror_changed]
        out += [f"{'missing':8} s3 mirror: {p}" for p in self.mirror_missing]
        out += [f"{'certificate':8} {p}" for p in self.certificate]
        out += [f"{'rejudged':8} {p}" for p in self.rejudged]
        return out


def load_manifest(bundle: Path) -> dict[str, Any]:
    path = bundle / MANIFEST
    if not path.is_file():
        raise EvidenceError(f"{bundle} has no {MANIFEST}: not a sealed evidence bundle")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise EvidenceError(f"changed  {MANIFEST}: {path} is not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict):
        raise EvidenceError(f"changed  {MANIFEST}: {path} is not a JSON object")
    return manifest


def verify_local(bundle: Path) -> tuple[VerifyReport, dict[str, Any]]:
    """Recompute every digest and compare with the manifest."""
    manifest = load_manifest(bundle)
    report = VerifyReport(bundle=bundle)
    recorded = {f["path"]: f for f in manifest.get("files", [])}
    actual = {e["path"]: e for e in _entries(bundle)}
    for path, entry in recorded.items():
        if path not in actual:
            report.missing.append(path)
        elif (actual[path]["sha256"], actual[path]["size"]) != (entry["sha256"], entry["size"]):
            report.changed.append(path)
    report.extra = sorted(set(actual) - set(recorded))
    # Any byte of the manifest itself counts: its content must be sealed by its digest and it
    # must be exactly the canonical serialisation of that content.
    raw = (bundle / MANIFEST).read_bytes()
    report.digest_ok = (canonical.digest_of(_sealed_fields(manifest)) == manifest.get("bundle_digest")
                        and raw == canonical.dumps(manifest))
    report.certificate = certificate.check(bundle)  # what the certificate claims is what the bundle holds
    return report, manifest


def copy_tree_into(bundle: Bundle, prefix: str, source: Path) -> list[str]:
    """Copy every file below ``source`` into the bundle under ``prefix`` (scrubbed)."""
    copied = []
    if source.is_dir():
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            rel = f"{prefix}/{path.relative_to(source).as_posix()}"
            bundle.copy_file(rel, path)
            copied.append(rel)
    return copied
