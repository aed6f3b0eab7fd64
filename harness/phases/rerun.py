"""The reproducibility check: the last rung's run and its rerun, compared on semantic content.

Both runs are read again by the harness (receipts, the three topics, the database, the stream views
it recomputed at P3); what must differ between two runs (run ids, the ids derived from them,
timestamps, offsets) is ignored, everything else must be equal. The comparison itself is
``harness.reproducibility``; this module finds the runs and records the result.
"""

from __future__ import annotations

import json
from typing import Any

from harness import pipeline, reproducibility
from harness.errors import EvidenceError, HarnessError
from harness.phases import p01
from harness.session import Certification

EVIDENCE = "certification/reproducibility.json"


def rerun_pair(cert: Certification) -> tuple[str, str]:
    """(the rung rerun, the rerun) of this certification's ladder."""
    rerun = next((r for r in cert.options.rungs if r.rerun_of), None)
    if rerun is None or rerun.rerun_of is None:
        raise HarnessError("this certification has no rerun to compare (--events N certifies one run): "
                           "certify with --ladder")
    return rerun.rerun_of, rerun.id


def pins_of(cert: Certification, rung: str) -> p01.Pins:
    with cert.in_scope(rung):
        pins = cert.peek("p1.pin")
    if not isinstance(pins, p01.Pins):
        raise HarnessError(f"rung {rung} was never pinned in this certification: nothing to compare")
    return pins


def snapshot(cert: Certification, pins: p01.Pins) -> dict[str, Any]:
    """One run's semantic content, read now; its stream views as the harness recomputed them at P3."""
    recomputed_at = f"runs/{pins.platform_run_id}/oracle/recomputed.json"
    if not cert.bundle.has(recomputed_at):
        raise EvidenceError(f"{recomputed_at} is not in the bundle: P3 of {pins.platform_run_id} recomputed no "
                            "stream view")
    recomputed = json.loads(cert.bundle.path(recomputed_at).read_text(encoding="utf-8"))
    stream_view = reproducibility.stream_view_hashes(recomputed)
    aws = cert.aws_session
    return reproducibility.observe(
        aws, cert.kafka(), run=pins.platform_run_id, evidence_root=pins.evidence_root,
        topics={role: cert.handles.topic_roles[role] for role in ("traffic", "rtdl", "decision")},
        dsn=pipeline.platform_dsn(aws, cert.handles.ssm["db_dsn"]), stream_view=stream_view,
    )


def compared(cert: Certification) -> dict[str, Any]:
    return cert.once("rerun.compared", lambda: _compare(cert, *rerun_pair(cert), EVIDENCE))


def compared_across_scenarios(cert: Certification) -> dict[str, Any]:
    """The first rung's run against the rerun: two scenarios, which the comparison must tell apart."""
    first, rerun = cert.options.rungs[0].id, rerun_pair(cert)[1]
    if first == rerun_pair(cert)[0]:
        raise HarnessError("the ladder has one size: there is no run of another scenario to compare with")
    return cert.once("rerun.across", lambda: _compare(cert, first, rerun, "certification/fault_other_scenario.json"))


def _compare(cert: Certification, first: str, second: str, evidence: str) -> dict[str, Any]:
    runs = [pins_of(cert, rung) for rung in (first, second)]
    snapshots = [snapshot(cert, pins) for pins in runs]
    report = reproducibility.compare(*snapshots)
    cert.evidence(evidence, {"rungs": [first, second], "runs": [p.platform_run_id for p in runs],
                             "scenarios": [p.scenario_run_id for p in runs], "report": report,
                             "snapshots": snapshots})
    return report
