"""P(-1) packaging readiness: one artifact, pushed immutably, every entrypoint answering, no secrets."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from harness import packaging
from harness.aws import ecr
from harness.compute import EmbeddedCompute
from harness.errors import EvidenceError, Finding, HarnessError, SubstrateError
from harness.phases import p00
from harness.session import Certification

# Fault: credentials baked into platform modules, each a shape the scan must catch. The values are
# AWS documentation examples or made up, never real keys.
PLANTED_FILES = {
    # an AWS access key id, the regex's shape
    "spine/_planted_credentials.py": b'AWS_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"\n',
    # an AWS secret access key alone, with no AKIA id beside it
    "spine/_planted_aws_secret.py": b'aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"\n',
    # a Confluent Cloud API key and secret (16 upper-case alphanumerics, 64 base64-ish characters)
    "spine/_planted_confluent.py": (
        b'CONFLUENT_API_KEY = "EXAMPLE7QZ4KRM2W"\n'
        b'CONFLUENT_API_SECRET = "cfltEXAMPLEq3Zr8Vx0LmN2pK7sT1uW9yB4cD6eF5gH0jR+aS/tU8vX2wY4zA1bC"\n'
    ),
}


def ensure_packaged(cert: Certification) -> dict[str, Any]:
    """Build the artifact from this checkout, push it under git-<sha>, record provenance (once)."""
    return cert.once("pm1.package", lambda: _package(cert))


def _package(cert: Certification) -> dict[str, Any]:
    if cert.options.profile != "embedded":
        raise HarnessError(
            "P(-1) on dev_min needs a runnable image (Python base layer, dependencies), its layers "
            "uploaded to ECR and ECS compute; this version builds and runs the artifact on the embedded "
            "profile only"
        )
    # ECR is a core resource: packaging needs the core stack, not the demo one.
    p00.ensure_core(cert)
    artifact = packaging.build(cert.options.project_root, cert.workdir / "artifact")
    repo = ecr.describe_repository(cert.aws_session, cert.handles.ecr_repository)
    if repo is None:
        raise SubstrateError("NoRepository", f"ECR repository {cert.handles.ecr_repository} does not exist",
                             operation="push artifact")
    stored = ecr.get_manifest(cert.aws_session, repository=cert.handles.ecr_repository, tag=artifact.tag)
    if stored is not None and _digest(stored) != artifact.digest:
        raise EvidenceError(
            f"{cert.handles.ecr_repository}:{artifact.tag} already holds image {_digest(stored)}, not the "
            f"artifact just built ({artifact.digest}); the tag is immutable: commit and build again"
        )
    existing = ecr.find_image(cert.aws_session, repository=cert.handles.ecr_repository, tag=artifact.tag)
    registry_digest = existing["digest"] if existing else ecr.put_image(
        cert.aws_session, repository=cert.handles.ecr_repository, tag=artifact.tag,
        manifest=artifact.manifest, media_type=packaging.MANIFEST_MEDIA)
    provenance = {
        "tag": artifact.tag,
        "digest": artifact.digest,
        "source_sha": artifact.source_sha,
        "repository": repo["uri"],
        "image": f"{repo['uri']}:{artifact.tag}",
        "registry_digest": registry_digest,
        "registry_digest_note": None if registry_digest == artifact.digest else (
            "the registry reports another digest for the same manifest (the emulator does not hash "
            "manifests); the provenance digest is the OCI manifest digest computed from the layout"),
        "pushed": existing is None,
        "layers_pushed": False,  # the emulator takes a manifest alone; real ECR needs the blobs too
        "wheel": artifact.to_json()["wheel"],
        "wheel_sha256": artifact.to_json()["wheel_sha256"],
    }
    cert.artifact = artifact
    cert.compute = EmbeddedCompute(artifact=artifact, recorded_digest=artifact.digest, workdir=cert.workdir,
                                   aws=cert.aws_session, cluster=cert.handles.ecs_cluster,
                                   task_families=cert.handles.task_families,
                                   network=lambda: p00.demo_network(cert))
    cert.evidence("packaging/image_provenance.json", provenance)
    return provenance


def _digest(manifest: bytes) -> str:
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def check_pushed(cert: Certification, provenance: dict[str, Any]) -> None:
    """The manifest ECR serves under the tag is the one whose digest the provenance records."""
    stored = ecr.get_manifest(cert.aws_session, repository=cert.handles.ecr_repository, tag=provenance["tag"])
    problems = []
    if stored is None:
        problems.append(f"{cert.handles.ecr_repository}:{provenance['tag']} is not in ECR")
    elif _digest(stored) != provenance["digest"]:
        problems.append(f"ECR serves manifest {_digest(stored)} under {provenance['tag']}, "
                        f"the provenance records {provenance['digest']}")
    if not provenance["tag"].startswith("git-") or not provenance["digest"].startswith("sha256:"):
        problems.append(f"provenance is not pinned: tag {provenance['tag']}, digest {provenance['digest']}")
    if problems:
        raise Finding("P(-1).push", problems)


def contracts(cert: Certification) -> dict[str, Any]:
    """Invoke `<mode> --contract` for every mode the handles declare, from the artifact itself."""
    ensure_packaged(cert)
    answers: dict[str, Any] = {}
    for mode in cert.handles.task_families:
        result = cert.compute_provider.run(mode, env={}, args=["--contract"], timeout_s=60)
        try:
            answer = json.loads(result.stdout) if result.ok else None
        except ValueError:
            answer = None
        answers[mode] = {"exit_code": result.exit_code, "answer": answer,
                         "error": None if answer is not None else result.last_error()}
    cert.evidence("packaging/entrypoint_contract.json", {"image_digest": cert.artifact_digest, "modes": answers})
    return answers


def check_contracts(answers: dict[str, Any]) -> None:
    problems = []
    for mode, entry in answers.items():
        answer = entry["answer"]
        if answer is None:
            problems.append(f"mode {mode}: no contract ({entry['error']})")
        elif answer.get("mode") != mode or not isinstance(answer.get("required_env"), list):
            problems.append(f"mode {mode}: malformed contract {answer}")
    if problems:
        raise Finding("P(-1).entrypoints", problems)


def scan(cert: Certification) -> dict[str, Any]:
    ensure_packaged(cert)
    assert cert.artifact is not None
    findings = packaging.scan_for_secrets(cert.artifact)
    record = {"image_digest": cert.artifact.digest, "findings": findings, "files_scanned": _count(cert.artifact)}
    cert.evidence("packaging/secret_scan.json", record)
    return record


def _count(artifact: packaging.Artifact) -> int:
    return len(packaging.image_files(artifact))


def check_no_secrets(record: dict[str, Any]) -> None:
    if record["findings"]:
        raise Finding("P(-1).secrets", [f"{f['rule']} in {f['file']}" for f in record["findings"]])


def planted_secret_scan(cert: Certification) -> dict[str, Any]:
    """Fault: an artifact built with credentials planted in platform modules. The scan must name each file."""
    ensure_packaged(cert)
    planted = packaging.build(cert.options.project_root, cert.workdir / "artifact-planted",
                              extra_files=PLANTED_FILES)
    record = {"planted_files": sorted(PLANTED_FILES), "findings": packaging.scan_for_secrets(planted)}
    cert.evidence("packaging/fault_planted_secret.json", record)
    return record


def check_planted_found(record: dict[str, Any]) -> None:
    named = {f["file"].rsplit("!", 1)[-1] for f in record["findings"]}
    missed = [name for name in record["planted_files"] if name not in named]
    if missed:
        raise Finding("P(-1).secret_scan_blind", [f"the planted secret in {name} was not found" for name in missed])


def tampered_run(cert: Certification) -> dict[str, Any]:
    """Faults: a copy with one changed byte, and another well-formed artifact, run under the recorded pin."""
    ensure_packaged(cert)
    assert cert.artifact is not None
    pinned = cert.artifact.digest
    copy_dir = cert.workdir / "artifact-tampered"
    shutil.copytree(cert.artifact.layout.parent, copy_dir, dirs_exist_ok=False)
    layer = json.loads(cert.artifact.manifest)["layers"][0]["digest"].split(":", 1)[1]
    blob = copy_dir / "oci" / "blobs" / "sha256" / layer
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    changed_byte = dataclasses.replace(cert.artifact, layout=copy_dir / "oci",
                                       wheel=copy_dir / "wheel" / cert.artifact.wheel.name)
    other = packaging.build(cert.options.project_root, cert.workdir / "artifact-other",
                            extra_files={"spine/_other_build.py": b"BUILD = 'another'\n"})
    record = {"pinned_digest": pinned,
              "changed_byte": _attempt(changed_byte, pinned, cert.workdir / "tampered-a"),
              "other_artifact": {"digest": other.digest, **_attempt(other, pinned, cert.workdir / "tampered-b")}}
    cert.evidence("packaging/fault_tampered_artifact.json", record)
    return record


def _attempt(artifact: packaging.Artifact, pinned: str, workdir: Path) -> dict[str, Any]:
    compute = EmbeddedCompute(artifact=artifact, recorded_digest=pinned, workdir=workdir)
    try:
        result = compute.run("oracle-check", env={}, args=["--contract"], timeout_s=60)
    except EvidenceError as exc:
        return {"refused": True, "error": str(exc), "ran": False}
    return {"refused": False, "error": None, "ran": True, "exit_code": result.exit_code}


def check_tampered_refused(record: dict[str, Any]) -> None:
    problems = []
    if not (record["changed_byte"]["refused"] and "missing or changed" in record["changed_byte"]["error"]):
        problems.append(f"a copy with one changed byte was not refused for it: {record['changed_byte']}")
    other = record["other_artifact"]
    if not (other["refused"] and f"recorded provenance pins {record['pinned_digest']}" in other["error"]):
        problems.append(f"an artifact with another digest was not refused against the pin: {other}")
    if problems:
        raise Finding("P(-1).digest_pinning", problems)


def repush(cert: Certification) -> dict[str, Any]:
    """Fault: another image under the same immutable tag must be refused by the registry."""
    provenance = ensure_packaged(cert)
    other = b'{"schemaVersion":2,"mediaType":"' + packaging.MANIFEST_MEDIA.encode() + b'","layers":[]}'
    record: dict[str, Any]
    try:
        ecr.put_image(cert.aws_session, repository=cert.handles.ecr_repository, tag=provenance["tag"],
                      manifest=other, media_type=packaging.MANIFEST_MEDIA)
        record = {"refused": False, "code": None}
    except SubstrateError as exc:
        record = {"refused": exc.code == "ImageAlreadyExistsException", "code": exc.code}
    cert.evidence("packaging/fault_tag_overwrite.json", record)
    return record


def check_repush_refused(record: dict[str, Any]) -> None:
    if not record["refused"]:
        raise Finding("P(-1).immutable_tag", [f"a second image under the same tag was not refused ({record})"])
