"""`certificate.json`: what the certification claims, in one object that `spine-certify verify` re-checks.

It is written last before the manifest seals the bundle: profile, verdict and every gate's status
(from the gate ledger), the ladder's rungs with their runs and status, the reproducibility check,
every drill with its status and journal, the runs pinned, the image provenance, the waived checks,
and the digest of every other evidence file, so a certificate cannot be carried over to another
bundle.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness import canonical

CERTIFICATE = "certificate.json"
_NOT_COVERED = {CERTIFICATE, "manifest.json"}
_VERDICT_FIELDS = ("verdict", "failed", "errored", "blocked", "not_implemented", "not_run")


def evidence_digest(root: Path) -> str:
    """Digest over (path, sha256, size) of every file but the certificate and the manifest."""
    entries = [{"path": p.relative_to(root).as_posix(), "sha256": canonical.sha256_file(p), "size": p.stat().st_size}
               for p in sorted(root.rglob("*"))
               if p.is_file() and p.relative_to(root).as_posix() not in _NOT_COVERED]
    return canonical.digest_of(entries)


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _gate(phase: dict[str, Any]) -> str:
    return str(phase.get("gate") or phase["phase_id"])


def _worst(statuses: list[str]) -> str:
    """A rung's status: DONE only when each of its gates is; otherwise the first that is not."""
    return next((s for s in statuses if s != "DONE"), "DONE") if statuses else "NOT_STARTED"


def _rung_run(root: Path, phase: dict[str, Any]) -> str | None:
    """The platform run a rung pinned: the run.json P1 booked to the rung's P1 gate."""
    return next((rel.split("/")[1] for rel in phase.get("evidence", [])
                 if rel.startswith("runs/") and rel.endswith("/run.json")), None)


def ladder(root: Path, gates: dict[str, Any]) -> list[dict[str, Any]]:
    rungs = []
    for rung in gates.get("ladder", []):
        own = [p for p in gates["phases"] if p.get("rung") == rung["rung"]]
        pinning: dict[str, Any] = next((p for p in own if p["phase_id"] == "P1"), {})
        rungs.append({**rung, "status": _worst([p["status"] for p in own]),
                      "platform_run_id": _rung_run(root, pinning),
                      "gates": {p["phase_id"]: p["status"] for p in own}})
    return rungs


def drills(root: Path, gates: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for phase in gates["phases"]:
        if phase.get("kind") != "drill":
            continue
        journal_path = next((rel for rel in phase.get("evidence", []) if rel.endswith("/journal.json")), None)
        journal = _json(root / journal_path) if journal_path else None
        out[phase["phase_id"]] = {"name": phase["name"], "status": phase["status"], "journal": journal_path,
                                  "platform_run_id": (journal or {}).get("platform_run_id")}
    return out


def build(root: Path, gates: dict[str, Any]) -> dict[str, Any]:
    provenance = _json(root / "packaging" / "image_provenance.json") or {}
    runs = []
    for manifest in sorted((root / "runs").glob("*/run.json")):
        run = _json(manifest) or {}
        runs.append({"platform_run_id": run.get("platform_run_id"), "scenario_run_id": run.get("scenario_run_id"),
                     "events": run.get("events"), "run_config_digest": run.get("run_config_digest")})
    reproducible = next((p for p in gates["phases"] if p.get("kind") == "ladder"), None)
    return {
        "cert_id": gates["cert_id"],
        "profile": gates["profile"],
        "claim": gates.get("claim"),
        **{k: gates.get(k) for k in _VERDICT_FIELDS},
        "ladder": ladder(root, gates),
        "reproducibility": None if reproducible is None else {
            "status": reproducible["status"], "evidence": sorted(reproducible.get("evidence", []))},
        "drills": drills(root, gates),
        "phases": {_gate(p): p["status"] for p in gates["phases"]},
        "waived": {check: reason for p in gates["phases"] for check, reason in p.get("waived", {}).items()},
        "image": {k: provenance.get(k) for k in ("tag", "digest", "source_sha", "repository")} if provenance else None,
        "runs": runs,
        "evidence_digest": evidence_digest(root),
    }


def check(root: Path) -> list[str]:
    """What in the bundle contradicts its certificate (empty: the certificate says what the bundle holds)."""
    cert = _json(root / CERTIFICATE)
    gates = _json(root / "gates.json")
    if not (root / CERTIFICATE).exists() and not (root / "gates.json").exists():
        return []  # an evidence bundle that holds no certification: nothing is certified, nothing to check
    if not isinstance(cert, dict):
        return [f"{CERTIFICATE} is missing or not JSON"]
    if not isinstance(gates, dict):
        return ["gates.json is missing or not JSON: the certificate has nothing to be checked against"]
    problems = [f"{CERTIFICATE} says {k} {cert.get(k)!r}, gates.json {gates.get(k)!r}"
                for k in ("cert_id", "profile", *_VERDICT_FIELDS) if cert.get(k) != gates.get(k)]
    statuses = {_gate(p): p["status"] for p in gates.get("phases", [])}
    if cert.get("phases") != statuses:
        problems.append(f"{CERTIFICATE} gate statuses {cert.get('phases')} differ from gates.json {statuses}")
    for key, derived in (("ladder", ladder(root, gates)), ("drills", drills(root, gates))):
        if key in cert and cert[key] != derived:
            problems.append(f"{CERTIFICATE}'s {key} {cert[key]} is not what gates.json and the evidence say: {derived}")
    if cert.get("evidence_digest") != evidence_digest(root):
        problems.append(f"{CERTIFICATE}'s evidence digest is not this bundle's: it was issued for other evidence")
    return problems
