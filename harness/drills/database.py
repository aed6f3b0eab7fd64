"""Database drills: PostgreSQL unavailable while decisions flow and cases open (D8).

The actions stop and start the embedded PostgreSQL (``PostgresCluster.stop_server``/``start_server``), run a
reporter against the run while the database is down and read what the platform left; ``judge_outage`` and
``judge_recovery`` are pure functions of those records.
"""

from __future__ import annotations

import time
from typing import Any

from harness import db, drills, pipeline
from harness.drills import runs
from harness.drills.pipeline import Watch, admitted_events, decision_problems
from harness.errors import HarnessError, SubstrateError
from harness.phases import claims, p01, p02, p09, p10
from harness.session import Certification
from harness.substrate import PostgresCluster
from harness.wait import wait_until

OUTAGE_REPORTER = "drill-during-outage"
STOP_TIMEOUT_S = 180.0
COMPLETED = "run_completed.json"


def cluster(cert: Certification) -> PostgresCluster:
    """The embedded PostgreSQL the harness started; a profile whose database the harness does not run has none."""
    for part in cert.substrate.parts:
        if isinstance(part, PostgresCluster):
            return part
    raise HarnessError(f"D8 stops and restarts the database, and profile {cert.options.profile!r} has no local "
                       "PostgreSQL the harness runs (its database is the platform's own, reached at the DSN in SSM): "
                       "D8 needs the embedded profile's PostgresCluster")


def stop_on_first_row(pg: PostgresCluster, dsn: str, run: str) -> dict[str, Any] | None:
    """One look at the run's rows (the watch's own connection); once the decision lane has recorded the run's first
    decision, PostgreSQL stops at once (`pg_ctl stop -m fast`)."""
    (dla, cases, labels), = db.query(
        dsn, "select (select count(*) from dla_records where platform_run_id = %s),"
             " (select count(*) from cases where platform_run_id = %s),"
             " (select count(*) from case_labels where platform_run_id = %s)", (run, run, run), timeout_s=2.0)
    if dla < 1:
        return None
    began = time.time()
    pg.stop_server()
    return {"dla_rows_seen": int(dla), "cases_seen": int(cases), "labels_seen": int(labels),
            "stopped_at": round(began, 3), "stop_s": round(time.time() - began, 3)}


def database_unavailable(cert: Certification) -> dict[str, Any]:
    """D8: PostgreSQL stopped mid-run, a reporter tried while it was down, PostgreSQL started again."""
    journal = drills.Journal(
        "D8", "database-unavailable", "Database unavailable while cases open",
        hypothesis="the drill's run streams through IG; the decision lane records one DLA row and publishes one "
                   "decision per admitted event, case/labels opens one case per REVIEW/DECLINE decision with a label "
                   "per reason, every daemon runs, and the run closes once with the harness's recount",
        fault="PostgreSQL stopped (pg_ctl stop -m fast: every session ended, transactions in flight rolled back) the "
              "moment the decision lane recorded the run's first DLA row, mid-stream, with decisions still to "
              "record and cases still to open; a reporter run while it is down",
    )

    def body(j: drills.Journal) -> None:
        pg = cluster(cert)  # before anything: a profile without one cannot run this drill
        pins = runs.steady_before(cert, j, streamed_too=False)
        run = pins.platform_run_id
        dsn = p09.dsn(cert)
        pids = {mode: d.process.pid for mode, d in p02.ensure_daemons(cert).items()}
        stopper = Watch("D8 database stop", lambda: stop_on_first_row(pg, dsn, run), timeout_s=STOP_TIMEOUT_S,
                        backoff_s=0.02)

        def arm() -> dict[str, Any]:
            stopper.arm()
            return {"database": pg.endpoint, "daemon_pids": pids}

        try:
            j.step("method", "arm: stop PostgreSQL the moment the decision lane records the run's first DLA row", arm)
            j.step("method", "stream the run's traffic through IG", lambda: runs.streamed(cert),
                   summary=lambda r: {"receipts": len(r["receipts"]), "topic_records": len(r["topic"])})
            stopped = j.step("method", "PostgreSQL stopped with the run's decisions flowing",
                             lambda: await_stop(cert, stopper))
            outage = j.step("observe", "while the database is down: the harness's own connection, the rtdl and "
                            "decision topics, the daemons, and a reporter run for the run",
                            lambda: observe_outage(cert, pins, dsn, stopped),
                            summary=lambda o: {k: o[k] for k in ("database", "admitted", "enriched_events",
                                                                 "decisions_on_topic", "run_completed")}
                            | {"reporter_exit": o["reporter"]["exit_code"]})
            outage_problems = drills.recorded(cert, j, "outage_observed.json", outage, judge_outage)
            j.expect("observe", j.step("observe", "no green closure while the database was down: the reporter refused "
                                       "or failed and no run_completed.json exists", lambda: outage_problems))
        finally:
            try:
                stopper.disarm()
            finally:
                if stopper.sprung is not None or not pg.serving:
                    j.step("rollback", "PostgreSQL started again on the same data directory and port",
                           lambda: restart(pg, stopper.sprung))
        recovered = j.step("observe", "after the restart, the harness reads the daemons, the decision topic, the DLA, "
                           "the cases and labels and who is connected to the database",
                           lambda: observe_recovery(cert, pins, pids),
                           summary=lambda o: {"daemons": o["daemons"],
                                              "decisions": len(o["decided"]["decisions"]),
                                              "dla_rows": len(o["decided"]["dla"]),
                                              "cases": len(o["cases"]["cases"]), "labels": len(o["cases"]["labels"]),
                                              "sessions": o["cases"]["sessions"]})
        judged = drills.recorded(cert, j, "recovery_observed.json", recovered, judge_recovery)
        j.expect("observe", j.step("observe", "the daemons recovered and nothing was lost or duplicated: one decision "
                                   "and DLA row per event, one case per REVIEW/DECLINE decision with a label per "
                                   "reason, case/labels connected again",
                                   lambda: drills.flat(judged)))
        runs.steady_after(cert, j, pins)

    return drills.run(cert, journal, body)


def await_stop(cert: Certification, stopper: Watch) -> dict[str, Any]:
    """The stream is sent; the stop lands once the lane records the run's first row (or never: no judgement)."""
    wait_until(lambda: stopper.sprung is not None or stopper.done, timeout_s=STOP_TIMEOUT_S, backoff_s=0.1,
               max_backoff_s=0.5, err_msg="the database stop never happened", operation="D8 stop")
    if stopper.sprung is None:
        raise HarnessError(f"the decision lane recorded no DLA row of the run, so the database was never stopped"
                           f"{': ' + stopper.error if stopper.error else ''}")
    return dict(stopper.sprung)


def observe_outage(cert: Certification, pins: p01.Pins, dsn: str, stopped: dict[str, Any]) -> dict[str, Any]:
    run = pins.platform_run_id
    try:
        db.query(dsn, "select 1", timeout_s=3.0)
    except SubstrateError as exc:
        database = {"answers": False, "error": str(exc)[:300]}
    else:
        raise HarnessError("PostgreSQL still answers the DSN in SSM after it was stopped: the fault is not in place")
    admitted, _ = admitted_events(cert, pins)
    # RTDL needs no database: every admitted event reaches the rtdl topic, work the lane cannot record now.
    enriched, enriched_short = pipeline.run_records(cert.kafka(), cert.handles.topic_roles["rtdl"], run,
                                                    identity="event_id", expected=len(admitted), timeout_s=60)
    decisions, _ = pipeline.run_records(cert.kafka(), cert.handles.topic_roles["decision"], run,
                                        identity="decision_id", expected=len(admitted), timeout_s=5)
    decided = {(d["value"] or {}).get("decision_id") for d in decisions}
    if len(decided) >= len(admitted):
        raise HarnessError(f"every one of the {len(admitted)} admitted events was decided before the database "
                           "stopped: the fault did not land while decisions flowed")
    daemons = runs.health(cert)
    reporter = runs.close(cert, pins, OUTAGE_REPORTER)
    return {"platform_run_id": run, "stopped": stopped, "database": database, "admitted": len(admitted),
            "enriched_events": len({(r["value"] or {}).get("event_id") for r in enriched}),
            "enriched_shortfall": enriched_short, "decisions_on_topic": len(decided), "daemons": daemons,
            "reporter": reporter, "run_completed": claims.get(cert, pins, COMPLETED) is not None,
            "obs_objects": runs.obs_objects(cert, pins)}


def judge_outage(obs: dict[str, Any]) -> list[str]:
    """While the database was down nothing closed: the reporter exited non-zero and no run_completed.json exists."""
    problems = []
    reporter = obs["reporter"]
    if reporter["exit_code"] == 0:
        problems.append(f"reporter {reporter['reporter']} exited 0 while the database was down")
    if obs["run_completed"] or COMPLETED in obs["obs_objects"]:
        problems.append(f"{COMPLETED} was written while the database was down: a green closure without the DLA, "
                        "cases and labels")
    if reporter["exit_code"] is None:
        problems.append(f"reporter {reporter['reporter']} did not end while the database was down")
    return problems


def restart(pg: PostgresCluster, stopped: dict[str, Any] | None) -> dict[str, Any]:
    pg.start_server()
    return {"serving": pg.serving, "endpoint": pg.endpoint,
            "down_s": round(time.time() - stopped["stopped_at"], 3) if stopped else None}


def observe_recovery(cert: Certification, pins: p01.Pins, pids: dict[str, int]) -> dict[str, Any]:
    cases = p10.ensure_cases(cert)  # waits for the lane's and case/labels' claims, then reads the database
    decided = p09.ensure_decided(cert)["observed"]
    health = runs.health(cert)
    return {"platform_run_id": pins.platform_run_id,
            "daemons": {mode: {**o, "pid_before": pids.get(mode)} for mode, o in health.items()},
            "decided": decided, "cases": cases["observed"]}


def judge_recovery(obs: dict[str, Any]) -> dict[str, list[str]]:
    """After the restart, per family: the daemons (each running: it retried its connection), the decisions and DLA,
    the cases and labels (one case per REVIEW/DECLINE decision, a label per reason, case/labels connected)."""
    daemons = [f"{mode} is not running after the database came back (pid {o['pid']}, was {o['pid_before']}): it did "
               "not recover" for mode, o in sorted(obs["daemons"].items()) if not o["alive"]]
    daemons += [f"{mode} answers {o['ready']} to its readiness probe" for mode, o in sorted(obs["daemons"].items())
                if o["ready"] not in (None, 200)]
    judged = p10.judge(obs["cases"])
    return {"daemons": daemons,
            "decisions": decision_problems(obs["decided"]),
            "cases": [f"{family}: {p}" for family in p10.FAMILIES for p in judged[family]]}


DRILLS = {"D8": database_unavailable}
