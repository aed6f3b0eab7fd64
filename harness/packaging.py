"""The single platform artifact: a reproducible OCI image layout around the platform's wheel."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detect_secrets import SecretsCollection
from detect_secrets.settings import default_settings, transient_settings

from harness import canonical, redact
from harness.errors import ConfigError, EvidenceError

WHEEL_NAME = "spine_platform"
VERSION = "0.1.0"
_EPOCH = (1980, 1, 1, 0, 0, 0)
MANIFEST_MEDIA = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA = "application/vnd.oci.image.config.v1+json"
LAYER_MEDIA = "application/vnd.oci.image.layer.v1.tar+gzip"
APP_DIR = "app"

# What a secret looks like when nobody registered it: cloud keys, private keys, inline passwords.
SECRET_PATTERNS = {
    "aws-access-key-id": re.compile(rb"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private-key": re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "inline-password": re.compile(rb"(?i)\b(password|passwd|secret|api_key)\s*[:=]\s*['\"][^'\"\s]{8,}['\"]"),
    "dsn-with-password": re.compile(rb"postgres(ql)?://[^:/\s]+:[^@/\s]{6,}@"),
}

# detect-secrets runs beside these rules with its whole default plugin set and default filters, changed
# deliberately in two ways:
# - the inline allowlist (`# pragma: allowlist secret`) is dropped: it lets a source file silence the
#   scanner, and a shipped image is checked as it is, not as its authors marked it;
# - the artifact's own commit SHA is excluded as a value: the OCI revision label carries it, it is public
#   provenance (the tag is git-<sha>), and HexHighEntropyString would flag it. Only that exact value is
#   excluded; any other hex string still fails the scan.
_ALLOWLIST_FILTER = "detect_secrets.filters.allowlist.is_line_allowlisted"
_EXCLUDE_VALUE_FILTER = "detect_secrets.filters.regex.should_exclude_secret"


@dataclass(frozen=True)
class Artifact:
    """A built image layout on disk; ``digest`` is its OCI manifest digest."""

    layout: Path
    tag: str
    digest: str
    source_sha: str
    wheel: Path
    manifest: bytes
    config: dict[str, Any]

    @property
    def wheel_in_image(self) -> str:
        return f"/{APP_DIR}/{self.wheel.name}"

    def to_json(self) -> dict[str, Any]:
        return {"tag": self.tag, "digest": self.digest, "source_sha": self.source_sha,
                "layout": str(self.layout), "wheel": self.wheel.name,
                "wheel_sha256": canonical.sha256_file(self.wheel)}


def _git(project_root: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=project_root, capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def source_sha(project_root: Path) -> str:
    """The commit the artifact is built from; a changed tracked file is marked, never hidden."""
    sha = _git(project_root, "rev-parse", "HEAD")
    if not sha:
        raise ConfigError(f"{project_root} is not a git checkout with a commit; the artifact tag is git-<sha>")
    dirty = _git(project_root, "status", "--porcelain", "--untracked-files=no", "--", "spine")
    return sha + ("-dirty" if dirty else "")


def tracked_files(project_root: Path) -> list[Path]:
    """The platform's files as git tracks them: an untracked file never ships under a commit's tag."""
    listed = _git(project_root, "ls-files", "--", "spine")
    if not listed:
        raise ConfigError(f"git tracks no files under {project_root / 'spine'}: nothing to package")
    return [project_root / line for line in listed.splitlines() if (project_root / line).is_file()]


def _zip_entry(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def build_wheel(project_root: Path, sources: list[Path], out_dir: Path, *,
                extra_files: dict[str, bytes] | None = None) -> Path:
    """A pure-Python wheel of the platform package, byte-identical for the same sources."""
    files: dict[str, bytes] = {p.relative_to(project_root).as_posix(): p.read_bytes() for p in sorted(sources)}
    files.update(extra_files or {})
    dist_info = f"{WHEEL_NAME}-{VERSION}.dist-info"
    files[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: spine-platform\nVersion: {VERSION}\n"
        "Summary: Spine Green v0 reference platform\n"
    ).encode()
    files[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: spine-certify\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = []
    for name, data in sorted(files.items()):
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / f"{WHEEL_NAME}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name in sorted(files):
            _zip_entry(zf, name, files[name])
    return wheel


def _layer(wheel: Path) -> tuple[bytes, str]:
    """A gzip'd tar holding the wheel under /app; returns (blob, diff_id of the plain tar)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mode, kind in ((APP_DIR, b"", 0o755, tarfile.DIRTYPE),
                                       (f"{APP_DIR}/{wheel.name}", wheel.read_bytes(), 0o644, tarfile.REGTYPE)):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.size, info.mtime = kind, mode, len(data), 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data) if data else None)
    plain = raw.getvalue()
    blob = gzip.compress(plain, mtime=0)
    return blob, "sha256:" + hashlib.sha256(plain).hexdigest()


def _blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def build(project_root: Path, out_dir: Path, *, sha: str | None = None,
          extra_files: dict[str, bytes] | None = None) -> Artifact:
    """Build the artifact from this checkout's ``spine/`` into ``out_dir`` (an OCI image layout)."""
    sha = sha or source_sha(project_root)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    wheel = build_wheel(project_root, tracked_files(project_root), out_dir / "wheel", extra_files=extra_files)
    layout = out_dir / "oci"
    layout.mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}\n')
    blob, diff_id = _layer(wheel)
    layer = {"mediaType": LAYER_MEDIA, **_blob(layout, blob)}
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": ["python", "-m", "spine"],
            "Env": [f"PYTHONPATH=/{APP_DIR}/{wheel.name}"],
            "Labels": {"org.opencontainers.image.revision": sha,
                       "org.opencontainers.image.title": "spine-platform"},
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    config_desc = {"mediaType": CONFIG_MEDIA, **_blob(layout, canonical.dumps(config))}
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_MEDIA, "config": config_desc,
                           "layers": [layer]}, sort_keys=True, separators=(",", ":")).encode()
    manifest_desc = {"mediaType": MANIFEST_MEDIA, **_blob(layout, manifest)}
    tag = f"git-{sha}"
    index = {"schemaVersion": 2, "manifests": [
        {**manifest_desc, "annotations": {"org.opencontainers.image.ref.name": tag}}]}
    (layout / "index.json").write_bytes(canonical.dumps(index))
    return Artifact(layout=layout, tag=tag, digest=manifest_desc["digest"], source_sha=sha, wheel=wheel,
                    manifest=manifest, config=config)


def layout_digest(layout: Path) -> str:
    """Recompute the manifest digest from the layout on disk, checking every blob it names."""
    index = json.loads((layout / "index.json").read_text())
    desc = index["manifests"][0]
    manifest_bytes = (layout / "blobs" / "sha256" / desc["digest"].split(":", 1)[1]).read_bytes()
    manifest = json.loads(manifest_bytes)
    for blob in [manifest["config"], *manifest["layers"]]:
        path = layout / "blobs" / "sha256" / blob["digest"].split(":", 1)[1]
        if not path.is_file() or "sha256:" + canonical.sha256_file(path) != blob["digest"]:
            raise EvidenceError(f"artifact blob {blob['digest']} is missing or changed in {layout}")
    return "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()


def extract_wheel(artifact: Artifact, dest: Path) -> Path:
    """Unpack the layer and return the wheel as it is inside the image."""
    manifest = json.loads(artifact.manifest)
    blob = artifact.layout / "blobs" / "sha256" / manifest["layers"][0]["digest"].split(":", 1)[1]
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob.read_bytes()))) as tar:
        tar.extractall(dest, filter="data")
    return dest / APP_DIR / artifact.wheel.name


def image_files(artifact: Artifact) -> list[tuple[str, bytes]]:
    """What the secret scan reads: the image config, every file of the wheel, every other text file of the layout."""
    files = [("<image config>", canonical.dumps(artifact.config))]
    with zipfile.ZipFile(artifact.wheel) as zf:
        files += [(f"{artifact.wheel_in_image}!{name}", zf.read(name)) for name in sorted(zf.namelist())]
    config_blob = json.loads(artifact.manifest)["config"]["digest"].split(":", 1)[1]
    for path in sorted(p for p in artifact.layout.rglob("*") if p.is_file()):
        data = path.read_bytes()
        # The config blob is read above; the gzip'd layer is not text: its wheel is read file by file.
        if path.name != config_blob and _is_text(data):
            files.append((f"<layout>/{path.relative_to(artifact.layout).as_posix()}", data))
    return files


def _is_text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def scan_for_secrets(artifact: Artifact) -> list[dict[str, str]]:
    """Every file in the image, its config and layout, searched for registered secrets and secret shapes.

    A finding is ``{file, rule}``: the rule is ``registered-secret``, a ``SECRET_PATTERNS`` name or the
    detect-secrets plugin's secret type. The secret value itself is never kept.
    """
    files = image_files(artifact)
    known = [s.encode() for s in redact.registered()]
    detected = _detect_secrets(files, public_values=[artifact.source_sha.removesuffix("-dirty")])
    findings: list[dict[str, str]] = []
    for where, data in files:
        rules = ["registered-secret"] if any(secret in data for secret in known) else []
        rules += [rule for rule, pattern in SECRET_PATTERNS.items() if pattern.search(data)]
        rules += sorted(detected.get(where, set()))
        findings += [{"file": where, "rule": rule} for rule in rules]
    return findings


def _detect_secrets(files: list[tuple[str, bytes]], *, public_values: list[str]) -> dict[str, set[str]]:
    """detect-secrets over the text files: the secret types found in each, by file."""
    with default_settings() as defaults:
        config = defaults.json()
    config["filters_used"] = [f for f in config["filters_used"] if f["path"] != _ALLOWLIST_FILTER]
    config["filters_used"].append({"path": _EXCLUDE_VALUE_FILTER,
                                   "pattern": [f"^{re.escape(value)}$" for value in public_values if value]})
    found: dict[str, set[str]] = {}
    with tempfile.TemporaryDirectory(prefix="secret-scan-") as tmp:
        on_disk: dict[str, str] = {}
        for index, (where, data) in enumerate(files):
            if not _is_text(data):
                continue
            # One folder per file keeps its base name (plugins and filters read the extension) and never
            # trusts a path from inside the image.
            name = re.sub(r"[^A-Za-z0-9._-]", "_", re.split(r"[/!]", where)[-1])
            name = name if name.strip(".") else "file"
            path = Path(tmp) / f"{index:05d}" / name
            path.parent.mkdir()
            path.write_bytes(data)
            on_disk[str(path)] = where
        collection = SecretsCollection()
        with transient_settings(config):
            for path_name in on_disk:
                collection.scan_file(path_name)
        for path_name, secret in collection:
            found.setdefault(on_disk[path_name], set()).add(secret.type)
    return found
