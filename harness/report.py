"""Reporting: Allure environment and categories, attachments, and the console summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import allure

from harness import redact

if TYPE_CHECKING:
    from harness.session import Certification

CATEGORIES = [
    {
        "name": "Fail-closed finding",
        "description": "The platform or substrate is out of compliance with a phase's Definition of Done.",
        "matchedStatuses": ["failed", "broken"],
        "messageRegex": r"(?s).*(Finding|FINDING \[|PhaseBlocked|is BLOCKED).*",
    },
    {
        "name": "Substrate error",
        "description": "A substrate call or process failed (AWS, Kafka, PostgreSQL, Terraform).",
        "matchedStatuses": ["failed", "broken"],
        "messageRegex": r"(?s).*(SubstrateError|NotFound|PreconditionFailed|PortInUse|Timeout|ToolMissing).*",
    },
    {
        "name": "Harness defect",
        "description": "An unexpected error inside the harness itself.",
        "matchedStatuses": ["failed", "broken"],
        "messageRegex": r"(?s)^(?!.*(Finding|FINDING \[|PhaseBlocked|is BLOCKED|SubstrateError|NotFound|"
        r"PreconditionFailed|PortInUse|Timeout|ToolMissing)).*",
    },
]


def category_of(exc: BaseException) -> str:
    from harness.errors import Finding, PhaseBlocked, SubstrateError, ToolMissing

    if isinstance(exc, (Finding, PhaseBlocked)):
        return "fail-closed finding"
    if isinstance(exc, (SubstrateError, ToolMissing)):
        return "substrate error"
    return "harness defect"


def write_allure_metadata(results_dir: Path, env: dict[str, str]) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"{k.replace(' ', '_')}={v}" for k, v in sorted(env.items())]
    (results_dir / "environment.properties").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (results_dir / "categories.json").write_text(json.dumps(CATEGORIES, indent=2), encoding="utf-8")


def summary_table(gates: dict[str, Any], bundle: Path) -> list[str]:
    """phase | status | evidence | duration, then the verdict."""
    rows = [("phase", "status", "duration", "evidence")]
    for phase in gates["phases"]:
        shown = phase["evidence"][:3]
        more = len(phase["evidence"]) - len(shown)
        evidence = (", ".join(shown) or "-") + (f" (+{more} more in gates.json)" if more > 0 else "")
        duration = f"{phase['duration_s']:.1f}s" if phase.get("duration_s") is not None else "-"
        status = phase["status"] + (f" (by {phase['blocked_by']})" if phase.get("blocked_by") else "")
        rows.append((phase["phase_id"], status, duration, evidence))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}" for r in rows]
    lines.insert(1, "-" * (sum(widths) + 6 + 8))
    waived = [f"waived {check} ({phase['phase_id']}): {why}" for phase in gates["phases"]
              for check, why in phase.get("waived", {}).items()]
    lines.append("")
    lines.extend(waived)
    lines.append(verdict_line(gates))
    lines.append(f"evidence bundle: {bundle}")
    return lines


def verdict_line(gates: dict[str, Any]) -> str:
    line = f"verdict: {gates['verdict']} (profile {gates['profile']}, {gates['cert_id']})"
    parts = []
    for key, label in (("failed", "failed"), ("blocked", "blocked"), ("not_implemented", "not implemented"),
                       ("not_run", "not run")):
        if gates.get(key):
            parts.append(f"{label}: {', '.join(gates[key])}")
    return line + ("; " + "; ".join(parts) if parts else "")


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
