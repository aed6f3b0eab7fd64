"""A drill's own run: brought to the point where a fault is injected, then settled and judged.

The drill's scope (``D7``) gives it its own pins, daemons and memoised phase results, so it reuses
the phases' building blocks without touching the ladder's runs. Settling judges the run the way
P7 and P11 do, from what the harness reads itself: the receipts against the traffic topic and the
stream view, then the reporter's closure against the harness's recount of the receipts, the three
topics and the database.
"""

from __future__ import annotations

from typing import Any

from harness import drills, ig_client
from harness.aws import s3
from harness.phases import p01, p02, p03, p05, p06, p07, p10, p11
from harness.session import Certification

CLOSER = "drill-closer"


def prepared(cert: Certification) -> p01.Pins:
    """The drill's run pinned, its oracle lane passed, its daemons up and its READY published."""
    pins = p01.ensure_pinned(cert)
    p03.ensure_lane(cert)
    p02.ensure_daemons(cert)
    p05.ensure_ready(cert)
    return pins


def steady_before(cert: Certification, j: drills.Journal, *, streamed_too: bool = True) -> p01.Pins:
    """The steady state before a fault, probed and journaled: the run prepared, every daemon running and
    ready, and (``streamed_too``) the run streamed with its ingest reconciled and its cases complete."""
    pins = j.step("steady-state-before", "the drill's run is pinned, its oracle lane passed, its daemons up and "
                  "its READY published", lambda: prepared(cert),
                  summary=lambda p: {"platform_run_id": p.platform_run_id})
    j.platform_run_id = pins.platform_run_id
    j.expect("steady-state-before", health_problems(j.step("steady-state-before", "every daemon runs and IG answers "
                                                           "ready", lambda: health(cert))))
    if streamed_too:
        j.step("steady-state-before", "the run's stream view is sent through IG", lambda: streamed(cert),
               summary=lambda r: {"receipts": len(r["receipts"]), "topic_records": len(r["topic"])})
        j.expect("steady-state-before", j.step("steady-state-before", "ingest reconciles: every receipt against "
                                               "the traffic topic and the stream view",
                                               lambda: ingest_problems(cert, pins)))
        j.expect("steady-state-before", j.step("steady-state-before", "RTDL, the decision lane and case/labels "
                                               "reached the run's end", lambda: downstream_problems(cert)))
    return pins


def downstream_problems(cert: Certification) -> list[str]:
    """P8..P10's waits and judgements of the run: caught up, one decision per event, one case per flag."""
    cases = p10.ensure_cases(cert)
    return drills.flat(cases["problems"], prefix="cases ")


def obs_objects(cert: Certification, pins: p01.Pins) -> list[str]:
    """The run's objects under obs/ and its run_completed.json, as the evidence bucket lists them."""
    bucket, prefix = s3.split_url(pins.evidence_root)
    return sorted(k[len(prefix):] for k in s3.list_keys(cert.aws_session, bucket=bucket, prefix=prefix)
                  if k[len(prefix):].startswith(("obs/", "run_completed")))


def health(cert: Certification) -> dict[str, Any]:
    """Each of the run's daemons: its process alive, and IG's readiness answer."""
    daemons = p02.ensure_daemons(cert)
    observed: dict[str, Any] = {}
    for mode, daemon in daemons.items():
        answer = ig_client.health(daemon.url, timeout_s=2.0) if daemon.url else None
        observed[mode] = {"alive": daemon.process.alive(), "pid": daemon.process.pid,
                          "ready": None if answer is None else answer.status}
    return observed


def health_problems(observed: dict[str, Any]) -> list[str]:
    problems = [f"{mode} is not running (pid {o['pid']})" for mode, o in observed.items() if not o["alive"]]
    problems += [f"{mode} answers {o['ready']} to its readiness probe" for mode, o in observed.items()
                 if o["ready"] not in (None, 200)]
    return problems + (["the run has no daemon"] if not observed else [])


def streamed(cert: Certification) -> dict[str, Any]:
    """The run's stream view sent through IG (P6's path: a first WSP attempt killed mid-stream, then resumed)."""
    return p06.ensure_streamed(cert)


def ingest_problems(cert: Certification, pins: p01.Pins) -> list[str]:
    """P7's reconciliation of the run: every receipt against the topic and the stream view, read now."""
    commit = p07.ensure_committed(cert)
    obs = p07.observe(cert, pins.platform_run_id, scenario_run_id=pins.scenario_run_id,
                      evidence_root=pins.evidence_root, oracle_root=pins.run_config["oracle_root"],
                      claims=commit["claims"])
    judged = p07.judge(obs)
    return drills.flat(judged["problems"], prefix="ingest ", skip=judged["waived"])


def close(cert: Certification, pins: p01.Pins, reporter_id: str = CLOSER, **overrides: str) -> dict[str, Any]:
    """One reporter run for the drill's run; how it ended (exit code, conflict or refusal evidence)."""
    result = p11.run_reporter(cert, pins, reporter_id, **overrides)
    return p11.reporter_outcome(cert, pins, reporter_id, result.exit_code, result.stderr)


def closure_problems(cert: Certification, pins: p01.Pins) -> list[str]:
    """P11's judgement of the run's closure: the reporter's claims against the harness's recount."""
    judged = p11.judge(p11.observe(cert, pins))
    return drills.flat(judged["problems"], prefix="closure ")


def settled(cert: Certification, pins: p01.Pins) -> dict[str, Any]:
    """The steady state after a fault: ingest reconciles, decisions and cases are complete, the run closes.

    Returns {"closer": how the closing reporter ended, "problems": [...]} (empty problems: steady).
    """
    problems = ingest_problems(cert, pins) + downstream_problems(cert)
    closer = close(cert, pins)
    if closer["exit_code"] != 0:
        problems.append(f"the reporter did not close the run: exit {closer['exit_code']}: {closer['stderr'][-300:]}")
    problems += closure_problems(cert, pins)
    return {"closer": closer, "problems": problems}


def steady_after(cert: Certification, j: drills.Journal, pins: p01.Pins) -> dict[str, Any]:
    """The steady state after the rollback, probed and journaled: the run settles (``settled``)."""
    settled_ = j.step("steady-state-after", "the run settles: ingest reconciles, decisions and cases are complete, "
                      "and the run closes with the harness's recount", lambda: settled(cert, pins),
                      summary=lambda s: {"closer_exit_code": s["closer"]["exit_code"], "problems": s["problems"]})
    j.expect("steady-state-after", settled_["problems"])
    return settled_
