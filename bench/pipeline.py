"""Benchmark the decision planes: traffic topic → rtdl → decision-lane → case-labels → reporter on the embedded
substrates (moto + Tansu + PostgreSQL).

    .venv/bin/python bench/pipeline.py --events 100000 [--seed 42] [--out PATH] [--scale-from EARLIER.json ...]

Starts moto, Tansu and PostgreSQL (the platform schema applied by its owner) on loopback and stops them at the end
(also on errors, Ctrl-C and SIGTERM), provisions what the modes read (evidence and versioned archive buckets, the
reporter lock table, the SSM bootstrap and DSN, the traffic, rtdl and decision topics with 3 partitions each) and
pins a run.json. IG is skipped: the benchmark generates the Data Engine's events (spine.engine.generate), turns
them into WSP's envelopes in stream-view order and, in IG's place, publishes them with an idempotent producer keyed
by card_id and writes IG's evidence (receipt objects of --receipt-batch events, receipt_summary.json,
quarantine_summary.json, kafka_offsets_snapshot.json from its delivery reports) in the formats of contract §5.

The three daemons are started first (`python -m spine <mode>`, the embedded launcher's group timings); one record of
another run on each topic proves every group joined (consumed, skipped, committed) before the clock starts.
Measured, from the first produce (t0):

  produce       until every delivery report is in (the acknowledged end offsets)
  IG evidence   receipts and summaries written (in a thread, while the stages are polled)
  P8 caught up  RTDL's group committed offsets (an OffsetFetch outside the group, as P8 reads them) at the
                acknowledged ends, also as seconds after the last acknowledgement
  stages        when rtdl_core/catch_up.json, decision_lane/summary.json and case_labels/summary.json appear (S3
                polled every <= 0.2 s); end to end = case_labels/summary.json; the daemons' own `batch` log lines
                say when each consumed its first and last batch
  reporter      a `reporter` job once the summaries exist: wall time, its own read times (obs/run_report.json),
                exit code and whether it closed (run_completed.json)
  harness       P11's recount: the observation built with harness.pipeline / harness.ingress /
                harness.kafka.consume functions as harness.phases.p11.observe builds it, then p11.recount and
                p11.closes, in this process (wall, peak RSS over its baseline)
  RSS           peak RSS (the kernel's VmHWM, read every 50 ms while the process lives) of each daemon, moto, Tansu
                and the reporter; PostgreSQL: the largest sum of its and its backends' RSS seen (shared memory counted
                per process). Not wait4's ru_maxrss: exec folds the forked parent's RSS into it, and this process
                holds the run's traffic
  CPU           CPU seconds of every process in the pipeline window and in the reporter's

Targets (the closure issue): reporter on a 1M-event run under 60 s and 300 MiB. Below 1M the benchmark reports a
linear extrapolation to 1M, labelled as such: through the sizes of this run and of ``--scale-from`` results (two
sizes or more: least squares; one: times in proportion, memory not extrapolated). ``--skip-harness-recount`` leaves
the in-process recount out (it holds every record of the three topics: about 13 KB per event, some 13 GB at 1M).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ingress import BenchError, Family, say, stop_everything
from pipeline_support import (
    CONSUMES,
    DAEMONS,
    MIB,
    REGION,
    STAGES,
    CpuClock,
    Plane,
    RssWatch,
    SelfRss,
    Traffic,
    Watch,
    acked_ends,
    daemon_activity,
    harness_recount,
    hwm,
    make_traffic,
    scaling,
    start_daemon,
    wait_for_groups,
    warm_up_value,
    write_ig_evidence,
)

from harness import db
from harness.aws import AwsSession
from harness.errors import HarnessError, Timeout
from harness.kafka import produce
from harness.substrate import MotoServer, PostgresCluster, TansuBroker
from harness.wait import wait_until

ROOT = Path(__file__).resolve().parents[1]
TARGET_EVENTS, TARGET_WALL_S, TARGET_RSS_MIB = 1_000_000, 60.0, 300.0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, help="write the result here (default reports/bench/pipeline-<N>.json)")
    parser.add_argument("--receipt-batch", type=int, default=200, help="events per receipt object (WSP's batch)")
    parser.add_argument("--daemon-poll-s", type=float, default=1.0,
                        help="SPINE_DAEMON_POLL_S (default 1.0: the contract's, what the embedded launcher gives)")
    parser.add_argument("--reporter-read-timeout-s", type=float,
                        help="SPINE_REPORTER_READ_TIMEOUT_S (default: unset, the contract's 60 s per topic)")
    parser.add_argument("--timeout-s", type=float, help="deadline of the pipeline (default 300 s + 20 ms per event)")
    parser.add_argument("--scale-from", type=Path, nargs="*", default=[],
                        help="earlier results of this benchmark at other sizes, for the extrapolation to 1M")
    parser.add_argument("--skip-harness-recount", action="store_true",
                        help="leave out the in-process P11 recount (it holds every record of three topics: about "
                             "13 KB per event, too much at 1M on a small machine)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs of every process)")
    args = parser.parse_args()
    if args.events < 1 or not 1 <= args.receipt_batch <= 5000 or args.daemon_poll_s <= 0:
        parser.error("--events must be >= 1, --receipt-batch within 1..5000 and --daemon-poll-s > 0")
    args.out = args.out or ROOT / "reports" / "bench" / f"pipeline-{args.events}.json"
    args.timeout_s = args.timeout_s or 300 + args.events * 0.02
    earlier = [json.loads(path.read_text()) for path in args.scale_from]
    for sig in (signal.SIGTERM, signal.SIGINT):  # SIGINT too: a background start inherits it ignored
        signal.signal(sig, _interrupt)

    work = Path(tempfile.mkdtemp(prefix="pipeline-bench-"))
    logs = work / "logs"
    logs.mkdir()
    family = Family(logs)
    rss = RssWatch()
    parts: list[MotoServer | TansuBroker | PostgresCluster] = []
    measured = False
    try:
        moto, tansu = MotoServer(workdir=work), TansuBroker(workdir=work)
        pg = PostgresCluster(workdir=work, database="spine_bench", user="spine")
        for part in (moto, tansu, pg):
            parts.append(part)  # stop() of a part that did not start is a no-op
            part.start()
            say(f"{part.name} ready at {part.endpoint}")
        result = measure(args, family, rss, moto, tansu, pg)
        result["scaling"] = scaling([*earlier, result], target_events=TARGET_EVENTS)
        result["targets"] = targets(result)
        print_table(result)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        say(f"result written to {args.out}")
        measured = True
        return 0
    except (BenchError, HarnessError) as exc:  # Timeout included
        print(f"pipeline bench failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        rss.stop()
        stop_everything(family, parts, work, keep=args.keep or not measured)


def measure(args: argparse.Namespace, family: Family, rss: RssWatch, moto: MotoServer,
            tansu: TansuBroker, pg: PostgresCluster) -> dict[str, Any]:
    assert moto.proc is not None and tansu.proc is not None and pg.pids()
    load_at_start = round(os.getloadavg()[0], 2)
    setup: dict[str, float] = {}
    began = time.monotonic()
    db.apply_schema(pg.owner_dsn, pg.user)
    aws = AwsSession(region=REGION, endpoint_url=moto.endpoint)
    knobs = {"SPINE_KAFKA_SESSION_TIMEOUT_MS": "2000", "SPINE_KAFKA_HEARTBEAT_MS": "500",
             "SPINE_DAEMON_POLL_S": str(args.daemon_poll_s)}
    if args.reporter_read_timeout_s:
        knobs["SPINE_REPORTER_READ_TIMEOUT_S"] = str(args.reporter_read_timeout_s)
    scenario = f"scn-seed{args.seed}-n{args.events}"
    plane = Plane("run-bench-pipeline", scenario, aws, tansu.connection(), pg.dsn, knobs)
    plane.provision(events_n=args.events, seed=args.seed)
    setup["provision_s"] = round(time.monotonic() - began, 2)
    say(f"generating {args.events:,} events (seed {args.seed}) ...")
    began = time.monotonic()
    traffic = make_traffic(args.seed, args.events, run_id=plane.run_id, scenario=scenario)
    setup["generate_s"] = round(time.monotonic() - began, 2)
    traffic_bytes = traffic.size_bytes
    say(f"{len(traffic.records):,} envelopes ({traffic_bytes / 1e6:.1f} MB) in {setup['generate_s']} s")

    procs: dict[str, subprocess.Popen[bytes]] = {}
    for mode in DAEMONS:
        began = time.monotonic()
        procs[mode] = start_daemon(family, mode, plane.env(mode))
        setup[f"{mode}_start_s"] = round(time.monotonic() - began, 2)
        rss.add(mode, procs[mode].pid)
        say(f"{mode} consuming after {setup[f'{mode}_start_s']} s")
    pids = {"moto": moto.proc.pid, "tansu": tansu.proc.pid, "postgres": pg.pids()[0],
            **{mode: proc.pid for mode, proc in procs.items()}}
    for name in ("moto", "tansu", "postgres"):
        rss.add(name, pids[name], children=name == "postgres")
    warm = {role: acked_ends(produce.send(plane.conn, plane.topics[role], [(b"bench-warm-up", warm_up_value(role))]))
            for role in sorted(set(CONSUMES.values()))}
    setup["groups_joined_s"] = round(wait_for_groups(plane, warm), 2)
    say(f"every group joined (warm-up records consumed) in {setup['groups_joined_s']} s; producing ...")

    clock = CpuClock(pids)
    clock.mark("pipeline")
    t0, t0_wall = time.monotonic(), time.time()
    watch = Watch(plane, procs, t0)
    placed = produce.send(plane.conn, plane.topics["traffic"], traffic.records, timeout_s=60 + args.events / 1000)
    acked_s = time.monotonic() - t0
    watch.ends = acked_ends(placed)
    say(f"{len(placed):,} records acknowledged in {acked_s:.1f} s; writing IG's evidence while the stages run ...")
    ig: dict[str, Any] = {}

    def write_evidence(written: Traffic, acked: list[tuple[int, int]]) -> None:
        ig.update(write_ig_evidence(plane, written, acked, batch=args.receipt_batch))
        ig["done_s"] = round(time.monotonic() - t0, 3)

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as side:
        writing = side.submit(write_evidence, traffic, placed)
        wait_until(lambda: watch.check() or (writing.done() and writing.exception() is not None),
                   timeout_s=args.timeout_s, backoff_s=0.05, max_backoff_s=0.2,
                   err_msg=f"the pipeline did not finish {args.events} events", operation="bench pipeline")
        writing.result()
    if watch.failed:
        raise BenchError(f"{watch.failed} during the pipeline: "
                         f"{(family.logs / (watch.failed.split()[0] + '.err')).read_text(errors='replace')[-1500:]}")
    cpu_pipeline = clock.since("pipeline")
    end_s = watch.stages["case-labels"]
    assert watch.caught_up_s is not None
    del traffic, placed
    say(f"case_labels/summary.json after {end_s:.1f} s ({args.events / end_s:,.0f} events/s end to end)")
    activity = {mode: daemon_activity(family.logs / f"{mode}.out", t0_wall) for mode in DAEMONS}
    evidence = {mode: plane.evidence_json(relative) for mode, relative in STAGES.items()}
    peaks = {name: rss.peak_mib(name) for name in (*DAEMONS, "moto", "tansu", "postgres")}

    say("reporter ...")
    clock.mark("reporter")
    reporter = run_job(family, rss, "reporter", plane.env("reporter", SPINE_REPORTER_ID="reporter-bench"),
                       timeout_s=1800)
    reporter["cpu_s_window"] = clock.since("reporter")
    completed = plane.evidence_json("run_completed.json")
    report = plane.evidence_json("obs/run_report.json") or {}
    reconciliation = plane.evidence_json("obs/reconciliation.json") or {}
    reporter.update(closed=reporter["exit"] == 0 and completed is not None,
                    run_completed=completed is not None, own_seconds=report.get("seconds"),
                    reads={role: {k: read.get(k) for k in ("records_read", "seconds", "complete")}
                           for role, read in (report.get("reads") or {}).items()})
    say(f"reporter exit {reporter['exit']} in {reporter['wall_s']:.1f} s, peak RSS {reporter['peak_rss_mib']:.0f} MiB"
        f"{'' if reporter['closed'] else ': NOT CLOSED ' + reporter['stderr']}")

    recount: dict[str, Any] | None = None
    if not args.skip_harness_recount:
        say("harness recount (P11) ...")
        clock.mark("harness")
        own = SelfRss()
        recount = harness_recount(plane, timeout_s=max(60.0, args.events / 1000))
        recount["rss"] = own.stop()
        recount["cpu_s_window"] = clock.since("harness")
        recount["equals_reporter"] = recount["counts"] == reconciliation.get("counts")
        say(f"harness recount in {recount['wall_s']:.1f} s, closes: {recount['closed']}, "
            f"equal to the reporter's counts: {recount['equals_reporter']}")

    stopped = {}
    for mode in reversed(DAEMONS):
        Family.stop(procs[mode])
        stopped[mode] = procs[mode].returncode
    return {
        "events": args.events, "seed": args.seed, "cpus": os.cpu_count(), "receipt_batch": args.receipt_batch,
        "daemon_poll_s": args.daemon_poll_s, "load_avg_1m": {"start": load_at_start,
                                                             "end": round(os.getloadavg()[0], 2)},
        "substrate": {"moto": moto.version(), "tansu": tansu.version(), "postgres": pg.version()},
        "setup": setup, "traffic_bytes": traffic_bytes,
        "stages": {"produce_acked_s": round(acked_s, 3), "ig_evidence": ig,
                   "p8_caught_up_s": round(watch.caught_up_s, 3),
                   "p8_caught_up_after_last_ack_s": round(watch.caught_up_s - acked_s, 3),
                   "acked_end_offsets": {str(p): e for p, e in sorted((watch.ends or {}).items())},
                   "rtdl_catch_up_s": round(watch.stages["rtdl"], 3),
                   "decision_lane_summary_s": round(watch.stages["decision-lane"], 3),
                   "case_labels_summary_s": round(end_s, 3), "watch_polls": watch.polls,
                   "produce_events_per_s": round(args.events / acked_s, 1),
                   "end_to_end_events_per_s": round(args.events / end_s, 1)},
        "daemons": {mode: {**activity[mode], "peak_rss_mib": peaks[mode], "cpu_s": cpu_pipeline[mode],
                           "exit_on_sigterm": stopped[mode]} for mode in DAEMONS},
        "evidence": evidence,
        "substrate_usage": {name: {"peak_rss_mib": peaks[name], "cpu_s_pipeline": cpu_pipeline[name],
                                   "cpu_s_reporter": reporter["cpu_s_window"][name],
                                   "cpu_s_harness": recount["cpu_s_window"][name] if recount else None}
                            for name in ("moto", "tansu", "postgres")},
        "cpu_s_pipeline": cpu_pipeline,
        "reporter": reporter, "reconciliation": reconciliation, "harness_recount": recount,
    }


def run_job(family: Family, rss: RssWatch, name: str, env: dict[str, str], *, timeout_s: float) -> dict[str, Any]:
    """`python -m spine <name>` to completion: wall, exit, CPU (wait4) and peak RSS: the process's own VmHWM, read
    by the watch and at every check for its end (wait4's ru_maxrss is kept beside it, but it holds this process's
    size at the fork)."""
    began = time.monotonic()
    proc = family.spawn(name, ["-m", "spine", name], env)
    rss.add(name, proc.pid)
    peak = [0]

    def reaped() -> tuple[int, Any] | None:
        peak[0] = max(peak[0], hwm(proc.pid))
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        return (status, usage) if pid else None

    try:
        status, usage = wait_until(reaped, timeout_s=timeout_s, backoff_s=0.005, max_backoff_s=0.05,
                                   err_msg=f"{name} did not finish", operation=f"job {name}")
    except Timeout:
        Family.stop(proc)
        raise
    wall = time.monotonic() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = (family.logs / f"{name}.err").read_text(errors="replace").strip()
    return {"exit": proc.returncode, "wall_s": round(wall, 3),
            "peak_rss_mib": max(rss.peak_mib(name), round(peak[0] / MIB, 1)),
            "ru_maxrss_mib": round(usage.ru_maxrss / 1024, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "stderr": stderr[-600:]}


def targets(r: dict[str, Any]) -> dict[str, Any]:
    metrics = r["scaling"]["metrics"]
    out = {}
    for name, metric, limit in (("reporter_1m_wall_s", "reporter_wall_s", TARGET_WALL_S),
                                ("reporter_1m_peak_rss_mib", "reporter_peak_rss_mib", TARGET_RSS_MIB)):
        value = metrics[metric]["value"]
        out[name] = {"value": value, "target": f"< {limit:g}", "how": metrics[metric]["how"],
                     "met": None if value is None else value < limit}
    return out


def print_table(r: dict[str, Any]) -> None:
    out = print
    st, rep, hr = r["stages"], r["reporter"], r["harness_recount"]
    end = st["case_labels_summary_s"]
    postgres = r["substrate"]["postgres"].replace("pg_ctl (PostgreSQL)", "PostgreSQL")
    out(f"Decision planes: {r['events']:,} events, seed {r['seed']}, {r['cpus']} CPUs, load {r['load_avg_1m']['start']}"
        f" → {r['load_avg_1m']['end']} ({r['substrate']['moto']}, {r['substrate']['tansu']}, {postgres}); "
        f"daemon poll {r['daemon_poll_s']} s")
    out("")
    head = f"{'measurement':<64}{'s from t0':>10}{'events/s':>11}"
    out(head)
    out("-" * len(head))
    ig = st["ig_evidence"]
    rows = [("produce acknowledged (idempotent, acks=all)", st["produce_acked_s"], st["produce_events_per_s"]),
            (f"IG evidence written ({ig['receipt_objects']} receipt objects + summaries)", ig["done_s"], None),
            (f"P8 caught up: rtdl committed = acked ends (+{st['p8_caught_up_after_last_ack_s']:.2f} s after ack)",
             st["p8_caught_up_s"], None),
            ("rtdl_core/catch_up.json", st["rtdl_catch_up_s"], None),
            ("decision_lane/summary.json", st["decision_lane_summary_s"], None),
            ("case_labels/summary.json = end to end", end, st["end_to_end_events_per_s"])]
    for name, at, rate in rows:
        out(f"{name:<64}{at:>10.2f}{rate if rate is not None else '':>11}")
    out("")
    head = f"{'process':<16}{'batches':>8}{'records':>9}{'1st batch s':>12}{'last batch s':>13}{'cpu s':>8}" \
           f"{'cpu %':>7}{'peak RSS MiB':>14}"
    out(head)
    out("-" * len(head))
    for mode, d in r["daemons"].items():
        out(f"{mode:<16}{d['batches']:>8}{d['records']:>9}{d.get('first_batch_s', math.nan):>12.2f}"
            f"{d.get('last_batch_s', math.nan):>13.2f}{d['cpu_s']:>8.1f}{d['cpu_s'] / end * 100:>7.0f}"
            f"{d['peak_rss_mib']:>14.0f}")
    for name, u in r["substrate_usage"].items():
        out(f"{name:<16}{'':>8}{'':>9}{'':>12}{'':>13}{u['cpu_s_pipeline']:>8.1f}"
            f"{u['cpu_s_pipeline'] / end * 100:>7.0f}{u['peak_rss_mib']:>14.0f}")
    bench_cpu = r["cpu_s_pipeline"]["bench"]
    out(f"{'bench (producer)':<16}{'':>8}{'':>9}{'':>12}{'':>13}{bench_cpu:>8.1f}{bench_cpu / end * 100:>7.0f}")
    out(f"(cpu over the pipeline window t0 → case_labels/summary.json, {end:.1f} s; batch times in s from t0; "
        "PostgreSQL's RSS sums its backends)")
    out("")
    own = rep.get("own_seconds") or {}
    window = rep["cpu_s_window"]
    out(f"reporter: exit {rep['exit']}, {'CLOSED' if rep['closed'] else 'NOT CLOSED'}, wall {rep['wall_s']:.2f} s "
        f"(its reads: receipts {own.get('receipts')} s, topics {own.get('topics')} s, database {own.get('database')} s)"
        f", peak RSS {rep['peak_rss_mib']:.0f} MiB (VmHWM; wait4's ru_maxrss {rep['ru_maxrss_mib']:.0f} holds the "
        f"bench's size at the fork), "
        f"cpu {rep['cpu_s']:.1f} s; meanwhile moto {window['moto']:.1f}, tansu {window['tansu']:.1f}, "
        f"postgres {window['postgres']:.1f} cpu s")
    if hr:
        out(f"harness P11 recount: {hr['wall_s']:.2f} s (reads {hr['observe_s']:.2f}, "
            f"recount {hr['recount_s']:.2f}), closes: {hr['closed']}, equal to the reporter's "
            f"counts: {hr['equals_reporter']}, peak RSS +{hr['rss']['delta_mib']:.0f} MiB over "
            f"{hr['rss']['baseline_mib']:.0f}")
    else:
        out("harness P11 recount: skipped (--skip-harness-recount)")
    out("")
    sc = r["scaling"]
    out(f"scaling to {sc['target_events']:,} events over sizes {sc['sizes']}:")
    for name, m in sc["metrics"].items():
        points = ", ".join(f"{int(n):,}: {v:g}" for n, v in m["points"].items())
        value = "—" if m["value"] is None else f"{m['value']:g}"
        out(f"  {name:<32}{value:>10}  {m['how']}  [{points}]")
    for name, t in r["targets"].items():
        met = "n/a" if t["met"] is None else "met" if t["met"] else "NOT MET"
        out(f"target {name:<26}{t['value']!s:>10}  {t['target']:<6} {met} ({t['how']})")
    out("")


if __name__ == "__main__":
    raise SystemExit(main())
