"""Reporting: Allure environment and categories, attachments, and the console summary."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import allure

from harness import redact
from harness.errors import Finding, ModeNotImplemented, PhaseBlocked
from harness.ledger import INTERRUPTED_NOTE, first_line

if TYPE_CHECKING:
    from harness.session import Certification

FINDING, COULD_NOT_JUDGE, NOT_IMPLEMENTED = (
    "Fail-closed finding", "Substrate or harness error (could not judge)", "Not implemented by the platform",
)  # fmt: skip
# Allure matches these against "<module.Type>: <message>" of what a scenario raised. The patterns
# exclude each other (Allure 2 gives a result every category that matches in full, Allure 3's
# allure2 plugin the first that matches anywhere) and use [\s\S] instead of the (?s) flag, which
# JavaScript's RegExp does not know.
_FINDING = r"Finding: FINDING \[|PhaseBlocked: \S+ is BLOCKED: predecessor \S+ is FAILED"
_NOT_IMPLEMENTED = r"ModeNotImplemented: "
CATEGORIES = [
    {
        "name": FINDING,
        "description": "The platform or substrate is out of compliance with a phase's Definition of Done "
                       "(or the phase is blocked by one that is).",
        "matchedStatuses": ["failed"],
        "messageRegex": rf"[\s\S]*({_FINDING})[\s\S]*",
    },
    {
        "name": NOT_IMPLEMENTED,
        "description": "The platform answers 'not implemented' for a mode the phase needs: NOT_IMPLEMENTED.",
        "matchedStatuses": ["broken"],
        "messageRegex": rf"[\s\S]*({_NOT_IMPLEMENTED})[\s\S]*",
    },
    {
        "name": COULD_NOT_JUDGE,
        "description": "A substrate call or process failed (AWS, Kafka, PostgreSQL, Terraform), the evidence, "
                       "configuration or a tool was wrong, or the harness itself broke: the phase is ERROR, "
                       "not FAILED (or is blocked by an ERROR phase).",
        "matchedStatuses": ["failed", "broken"],
        "messageRegex": rf"^(?![\s\S]*({_FINDING}|{_NOT_IMPLEMENTED}))[\s\S]*$",
    },
]


_UNJUDGED = {
    "NOT_IMPLEMENTED": "the platform builds no surface for this phase yet (no feature, or its modes answer "
                       "'not implemented'): NOT_IMPLEMENTED",
    "NOT_STARTED": "this phase did not run in this certification (interrupted, or its scenarios were not "
                   "selected): NOT_RUN",
    "BLOCKED": "this phase is BLOCKED by {blocked_by}",
}


def write_unjudged_phases(results_dir: Path, gates: dict[str, Any], *, now_ms: int) -> list[str]:
    """A non-passing Allure result for each phase that ran no scenario (NOT_IMPLEMENTED, NOT_RUN, BLOCKED).

    Without them a report shows only what ran, and a certification with phases missing looks green.
    Returns the phase ids written.
    """
    written = []
    for phase in gates["phases"]:
        reason = _UNJUDGED.get(phase["status"])
        if reason is None or phase["scenarios"]:
            continue
        gate = gate_of(phase)
        status = "NOT_RUN" if phase["status"] == "NOT_STARTED" else phase["status"]
        notes = "; ".join(phase.get("notes", []))
        message = (f"{gate} {status}: " + reason.format(blocked_by=phase.get("blocked_by"))
                   + (f"; {notes}" if notes else "") + f" (certification verdict {gates['verdict']})")
        key = f"{gates['cert_id']}/{gate}"
        labels = [{"name": "phase", "value": phase["phase_id"]}, {"name": "gate", "value": gate},
                  {"name": "suite", "value": phase["phase_id"]},
                  {"name": "category", "value": NOT_IMPLEMENTED if phase["status"] == "NOT_IMPLEMENTED"
                   else COULD_NOT_JUDGE}]
        if phase.get("rung"):
            labels.append({"name": "parentSuite", "value": phase["rung"]})
        result = {
            "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"spine-certify:{key}")),
            "historyId": hashlib.sha256(key.encode()).hexdigest()[:32],
            "name": f"{gate} {phase['name']}: {status}",
            "fullName": f"spine-certify.{gate}",
            "status": "broken" if phase["status"] != "BLOCKED" else "failed",
            "statusDetails": {"message": message},
            "stage": "finished", "start": now_ms, "stop": now_ms,
            "labels": labels,
        }
        (results_dir / f"{result['uuid']}-result.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
        written.append(gate)
    return written


def gate_of(phase: dict[str, Any]) -> str:
    """A gates.json entry's gate id (``P7 @ run-200``); entries written before the ladder have only a phase id."""
    return str(phase.get("gate") or phase["phase_id"])


def category_of(exc: BaseException) -> str:
    """The name of the Allure category a scenario that raised ``exc`` falls in (also set as its label)."""
    if isinstance(exc, Finding) or (isinstance(exc, PhaseBlocked) and exc.blocker_status == "FAILED"):
        return FINDING
    if isinstance(exc, ModeNotImplemented):
        return NOT_IMPLEMENTED
    return COULD_NOT_JUDGE


def write_allure_metadata(results_dir: Path, env: dict[str, str]) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"{k.replace(' ', '_')}={v}" for k, v in sorted(env.items())]
    (results_dir / "environment.properties").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (results_dir / "categories.json").write_text(json.dumps(CATEGORIES, indent=2), encoding="utf-8")


def summary_table(gates: dict[str, Any], bundle: Path) -> list[str]:
    """phase | status | evidence | duration, then the verdict."""
    rows = [("gate", "status", "duration", "evidence")]
    for phase in gates["phases"]:
        shown = phase["evidence"][:3]
        more = len(phase["evidence"]) - len(shown)
        evidence = (", ".join(shown) or "-") + (f" (+{more} more in gates.json)" if more > 0 else "")
        duration = f"{phase['duration_s']:.1f}s" if phase.get("duration_s") is not None else "-"
        status = phase["status"] + (f" (by {phase['blocked_by']})" if phase.get("blocked_by") else "")
        rows.append((gate_of(phase), status, duration, evidence))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}" for r in rows]
    lines.insert(1, "-" * (sum(widths) + 6 + 8))
    where: dict[tuple[str, str], list[str]] = {}
    for phase in gates["phases"]:
        for check, why in phase.get("waived", {}).items():
            where.setdefault((check, why), []).append(gate_of(phase))
    waived = [f"waived {check} ({', '.join(gates_)}): {why}" for (check, why), gates_ in where.items()]
    lines.append("")
    lines.extend(waived)
    lines.append(verdict_line(gates))
    lines.append(f"evidence bundle: {bundle}")
    return lines


def verdict_line(gates: dict[str, Any]) -> str:
    line = f"verdict: {gates['verdict']} (profile {gates['profile']}, {gates['cert_id']})"
    parts = []
    for key, label in (("failed", "failed"), ("errored", "errored"), ("blocked", "blocked"),
                       ("not_implemented", "not implemented"), ("not_run", "not run")):
        if gates.get(key):
            shown = [_with_error(gates, pid) if key == "errored" else pid for pid in gates[key]]
            parts.append(f"{label}: {', '.join(shown)}")
    return line + ("; " + "; ".join(parts) if parts else "")


def _with_error(gates: dict[str, Any], phase_id: str, *, width: int = 240) -> str:
    """`P0 (could not judge: <the first error's first line>)`; the whole message is in gates.json."""
    phase: dict[str, Any] = next((p for p in gates["phases"] if gate_of(p) == phase_id), {})
    error = next((s for s in phase.get("scenarios", []) if s["outcome"] == "error"), None)
    if error is None:  # interrupted: no scenario error, the gate's note says why
        notes = phase.get("notes") or []
        return f"{phase_id} ({INTERRUPTED_NOTE})" if INTERRUPTED_NOTE in notes else phase_id
    text = first_line(error["message"])
    return f"{phase_id} (could not judge: {text if len(text) <= width else text[: width - 1] + '…'})"


def close_scenario(cert: Certification, *, since: int) -> None:
    """Attach the evidence a scenario wrote to its Allure result, then mirror it write-once."""
    for rel in cert.bundle.written[since:]:
        allure.attach.file(str(cert.bundle.path(rel)), name=rel,
                           attachment_type=allure.attachment_type.JSON if rel.endswith(".json") else None)
    cert.mirror_pending()


def record_step_error(cert: Certification | None, exc: BaseException) -> None:
    """Categorise a failed step and attach the tail of every substrate part's log."""
    allure.dynamic.label("category", category_of(exc))
    if cert is None:
        return
    for part in cert.substrate.parts:
        if part.log_path is not None and part.log_path.exists():
            tail = part.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-80:]
            allure.attach(redact.scrub("\n".join(tail)), name=f"{part.name} log (tail)",
                          attachment_type=allure.attachment_type.TEXT)
