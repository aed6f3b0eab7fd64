"""Pipeline drills: RTDL killed before it commits (D4), the decision lane redelivered from an earlier offset (D5).

The actions touch the substrate (signals to the daemon's process, the group's offsets moved on the broker, the
daemon started again as its service's task) and record what the harness read; ``judge_*`` are pure functions of
those records.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness import drills, ingress, pipeline
from harness.aws import AwsSession, s3
from harness.drills import faults, runs
from harness.errors import HarnessError, Timeout
from harness.kafka import KafkaConnection, admin
from harness.phases import p01, p02, p08, p09, p10
from harness.session import Certification
from harness.substrate.base import process_state
from harness.wait import wait_until

ARCHIVE_NAME = re.compile(r"partition=(\d+)/(\d{20})-(\d{20})\.jsonl$")
TRAP_TIMEOUT_S = 240.0
SETTLE_TIMEOUT_S = 120.0
DECISION_FAMILIES = ("decisions", "policy", "dla", "summary")
TRAP_STEP_S = 0.002
FREEZE_TIMEOUT_S = 5.0
PACED_S = 10.0  # D4's WSP sends the run one event a request over about this long: about one RTDL batch per
# event, so the trap has a window at each of about twenty archive writes (P6's unpaced stream gives RTDL two or three
# batches, and the trap catches about one write in three between its archive object and its commit)


# --- shared by the drills of this package ------------------------------------------------------------------------


@dataclass
class Watch:
    """A watch on the substrate run beside the main thread (which streams the run meanwhile): ``poll`` is asked
    until it returns a record (the watch sprang) or the watch is disarmed or times out. Only the watch's own
    clients are used in its thread: never the certification's memo, evidence or shared AWS clients."""

    name: str
    poll: Callable[[], dict[str, Any] | None]
    timeout_s: float = TRAP_TIMEOUT_S
    backoff_s: float = 0.01
    sprung: dict[str, Any] | None = None
    error: str | None = None
    disarmed: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def arm(self) -> None:
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        def ask() -> dict[str, Any] | bool | None:
            if self.disarmed.is_set():
                return True
            self.sprung = self.poll()
            return self.sprung

        try:
            wait_until(ask, timeout_s=self.timeout_s, backoff_s=self.backoff_s, max_backoff_s=self.backoff_s * 2,
                       err_msg=f"{self.name} never sprang", operation=self.name)
        except Timeout as exc:
            self.error = str(exc)
        except Exception as exc:  # recorded, and raised by ``result`` in the main thread
            self.error = f"{type(exc).__name__}: {exc}"

    @property
    def done(self) -> bool:
        return self.thread is not None and not self.thread.is_alive()

    def disarm(self, *, timeout_s: float = 30.0) -> None:
        self.disarmed.set()
        if self.thread is not None:
            self.thread.join(timeout=timeout_s)
            if self.thread.is_alive():
                raise HarnessError(f"{self.name} did not stop within {timeout_s:.0f}s of being disarmed")


def own_aws(cert: Certification) -> AwsSession:
    """A session of the watch's own (boto3 sessions are not shared between threads)."""
    return AwsSession(region=cert.handles.region, endpoint_url=cert.aws_session.endpoint_url)


def replace_crashed(cert: Certification, mode: str) -> dict[str, Any]:
    """The ``mode`` daemon, dead by the drill's hand, reaped and started again as its service's task (as
    ``p02.restart_daemon`` starts it, without the SIGTERM: it is already gone)."""
    pins = p01.ensure_pinned(cert)
    daemons = p02.ensure_daemons(cert)
    old = daemons[mode]
    exit_code = old.process.kill()  # reaps it (and stops its ECS task record); it is dead already
    process, url = p02.start_daemon(cert, pins, mode, service=old.service)
    daemons[mode] = p02.Daemon(mode, old.service, process, url)
    p02.wait_ready(daemons[mode])
    return {"mode": mode, "old_pid": old.process.pid, "old_exit_code": exit_code, "new_pid": process.pid,
            "task_arn": process.task_arn}


def admitted_events(cert: Certification, pins: p01.Pins) -> tuple[list[str], dict[int, int]]:
    """The run's admitted event ids and acknowledged end offsets, from IG's durable receipts."""
    receipts = ingress.flat_receipts(ingress.receipt_records(cert.aws_session, pins.evidence_root))
    return pipeline.admitted_events(receipts), ingress.acked_end_offsets(receipts)


def committed_at(cert: Certification, mode: str, run: str, topic: str, ends: dict[int, int], *,
                 timeout_s: float = SETTLE_TIMEOUT_S) -> dict[str, int | None]:
    """The daemon's committed offsets, polled until every partition reached ``ends`` (or the timeout: then as
    they are, and the judge names the shortfall)."""

    def reached() -> dict[str, int | None] | None:
        now = pipeline.committed(cert.kafka(), mode, run, topic)
        return now if all((now.get(str(p)) or 0) >= end for p, end in ends.items()) else None

    try:
        return wait_until(reached, timeout_s=timeout_s, backoff_s=0.2, max_backoff_s=1.0,
                          err_msg=f"{mode}'s group did not reach the ends {ends}", operation="drill offsets")
    except Timeout:
        return pipeline.committed(cert.kafka(), mode, run, topic)


def judge_offsets(who: str, ends: dict[str, int], committed: dict[str, int | None]) -> list[str]:
    """Every partition's committed offset at (or past) its end: nothing left unconsumed."""
    problems = [f"partition {p}: {who} committed {committed.get(p)}, the end is {end}: records left unconsumed"
                for p, end in sorted(ends.items()) if (committed.get(p) or 0) < end]
    return problems + ([f"there is no end offset to reach: {who} has nothing to consume"] if not ends else [])


def decision_problems(decided: dict[str, Any]) -> list[str]:
    """P9's judgement of the decisions and the DLA as the harness read them (one per event, the same bytes)."""
    judged = p09.judge(decided)["problems"]
    return [f"{family}: {p}" for family in DECISION_FAMILIES for p in judged[family]]


# --- D4: RTDL killed between its archive write and its offset commit ---------------------------------------------


def archived_ends(keys: list[str] | set[str], prefix: str) -> dict[str, int]:
    """Per partition, one past the last offset an archive object's name covers."""
    ends: dict[str, int] = {}
    for key in keys:
        found = ARCHIVE_NAME.match(key[len(prefix):]) if key.startswith(prefix) else None
        if found:
            p = str(int(found.group(1)))
            ends[p] = max(ends.get(p, 0), int(found.group(3)) + 1)
    return dict(sorted(ends.items()))


def uncommitted(kill: dict[str, Any]) -> dict[str, list[int]]:
    """Partitions where the archive reached past the group's committed offset: [committed, archived end]."""
    return {p: [kill["committed"].get(p) or 0, end] for p, end in kill["archived_ends"].items()
            if end > (kill["committed"].get(p) or 0)}


def stopped(pid: int) -> bool:
    """Whether the kernel shows the process stopped (state T or t), or gone: it cannot move."""
    return process_state(pid) in (None, "T", "t", "Z", "X")


@dataclass
class KillTrap:
    """Looks at the run's archive with RTDL frozen (SIGSTOP to its process group); when a new archive object has
    appeared, reads its group's committed offsets while it still cannot move, and SIGKILLs it when an archived record
    is past the committed offset (consumed and archived, not committed); otherwise lets it go on (SIGCONT)."""

    aws: AwsSession
    kafka: KafkaConnection
    bucket: str
    prefix: str
    group: str
    topic: str
    partitions: int
    pid: int
    known: set[str] = field(default_factory=set)
    samples: list[dict[str, Any]] = field(default_factory=list)
    armed_at: float = field(default_factory=time.time)

    def keys(self) -> set[str]:
        return set(s3.list_keys(self.aws, bucket=self.bucket, prefix=self.prefix))

    def poll(self) -> dict[str, Any] | None:
        """One look, with RTDL frozen for it: RTDL runs only between looks (the watch's short backoff), so an archive
        object that appears is seen before RTDL can have gone on through its publish, flush and commit."""
        os.killpg(self.pid, signal.SIGSTOP)
        killed = False
        try:
            # The signal is delivered asynchronously: look only once the kernel shows the process stopped.
            wait_until(lambda: stopped(self.pid), timeout_s=FREEZE_TIMEOUT_S, backoff_s=0.0002, max_backoff_s=0.001,
                       err_msg=f"RTDL (pid {self.pid}) did not stop on SIGSTOP", operation="D4 trap")
            frozen_at = time.time()
            frozen = self.keys()
            if not frozen - self.known:
                return None
            committed = admin.committed_offsets(self.kafka, self.group, self.topic, self.partitions)
            sample: dict[str, Any] = {
                "at_s": round(frozen_at - self.armed_at, 3), "new_objects": sorted(frozen - self.known),
                "archived_ends": archived_ends(frozen, self.prefix),
                "committed": {str(p): o for p, o in sorted(committed.items())},
                "frozen_ms": None, "action": "SIGCONT"}
            self.known = frozen
            if uncommitted(sample):
                os.killpg(self.pid, signal.SIGKILL)
                killed = True
                sample["action"] = "SIGKILL"
            sample["frozen_ms"] = round((time.time() - frozen_at) * 1000)
            self.samples.append(sample)
            return sample if killed else None
        finally:
            if not killed:
                os.killpg(self.pid, signal.SIGCONT)

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "bucket": self.bucket, "prefix": self.prefix, "group": self.group,
                "topic": self.topic, "samples": self.samples}


def rtdl_killed(cert: Certification) -> dict[str, Any]:
    """D4: RTDL SIGKILLed while archived records are past its committed offsets, then started again."""
    journal = drills.Journal(
        "D4", "rtdl-killed", "RTDL killed before committing offsets",
        hypothesis="the drill's run streams through IG into RTDL, which archives every consumed record once, "
                   "publishes one enriched event per event of the run and commits only what it archived; the "
                   "decision lane decides each event once, and the run closes with counts equal to the harness's "
                   "recount",
        fault="SIGKILL of the rtdl daemon's process group at a moment an archive object of the run reaches past its "
              "group's committed offset (the archive looked at every few milliseconds with RTDL frozen by SIGSTOP, "
              "the condition read from the archive bucket and the broker while it cannot move), mid-stream",
    )

    def body(j: drills.Journal) -> None:
        pins = runs.steady_before(cert, j, streamed_too=False)
        run = pins.platform_run_id
        traffic = cert.handles.topic_roles["traffic"]
        rtdl = p02.ensure_daemons(cert).get("rtdl")
        if rtdl is None:
            raise HarnessError("the platform has no running rtdl daemon (P2 did not start one): D4 has nothing to kill")
        trap = KillTrap(aws=own_aws(cert), kafka=cert.kafka(), bucket=cert.handles.bucket("archive").name,
                        prefix=f"{run}/{traffic}/", group=pipeline.group("rtdl", run), topic=traffic,
                        partitions=cert.handles.topics[traffic], pid=rtdl.process.pid)
        # RTDL runs a few milliseconds between two looks: fewer than its publish, flush and commit take.
        watch = Watch("D4 kill trap", trap.poll, backoff_s=TRAP_STEP_S)

        def arm() -> dict[str, Any]:
            trap.known = trap.keys()
            watch.arm()
            return {"pid": trap.pid, "archive_objects_before": len(trap.known)}

        j.step("method", "arm the trap on RTDL: freeze it when a new archive object appears, kill it when an "
               "archived record is past its committed offset", arm)
        try:
            j.step("method", "stream the run's traffic through IG while the trap is armed: WSP paced, one event "
                   "a request, so that RTDL archives and commits batch after batch", lambda: paced_stream(cert, pins),
                   summary=lambda w: {"exit_code": w["exit_code"], "pid": w["pid"]})
            kill = j.step("method", "the trap caught RTDL between an archive write and its commit and SIGKILLed it",
                          lambda: spring(cert, pins, trap, watch),
                          summary=lambda k: {"uncommitted": uncommitted(k), "exit_code": k["exit_code"],
                                             "archive_writes_seen": len(trap.samples)})
        finally:
            try:
                watch.disarm()
            finally:  # never leave RTDL stopped, whatever ended the look in hand (the trap's own finally may not run)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(trap.pid, signal.SIGCONT)
            cert.evidence(f"{j.directory}/kill_trap.json", trap.to_json())
        kill_problems = drills.recorded(cert, j, "kill_observed.json", kill, judge_kill)
        j.expect("observe", j.step("observe", "while RTDL was dead, no offset stood past what it archived and nothing "
                                   "was committed after the kill", lambda: kill_problems))
        j.step("rollback", "RTDL started again as its service's task", lambda: replace_crashed(cert, "rtdl"))
        obs = j.step("observe", "after the restart, the harness reads RTDL's group offsets, every archive object, the "
                     "rtdl topic, the decision topic and the DLA", lambda: observe_recovery(cert, pins),
                     summary=lambda o: {"committed": o["committed"], "acked_end_offsets": o["acked_end_offsets"],
                                        "archive_objects": len(o["archive"]["objects"]),
                                        "enriched_records": len(o["enriched"]),
                                        "enriched_again": redelivered(o["enriched"]),
                                        "decision_records": len(o["decided"]["decisions"]),
                                        "dla_rows": len(o["decided"]["dla"])})
        judged = drills.recorded(cert, j, "recovery_observed.json", obs, judge_recovery)
        j.expect("observe", j.step("observe", "nothing lost, nothing duplicated: the archive has no gap and no "
                                   "overlap, the group reached the acknowledged ends, one enriched event (copies "
                                   "byte-identical) and one decision and DLA row per admitted event",
                                   lambda: drills.flat(judged)))
        runs.steady_after(cert, j, pins)

    return drills.run(cert, journal, body)


def paced_stream(cert: Certification, pins: p01.Pins) -> dict[str, Any]:
    """The drill's run streamed by a paced WSP to its end; P6's memo then holds that stream (the drill's own)."""
    wsp = faults.ended(cert, pins, faults.start_wsp(cert, pins, batch=1, seconds=PACED_S),
                       timeout_s=faults.WSP_TIMEOUT_S, label="wsp-paced")
    if wsp["exit_code"] != 0:
        how = f"was killed after {faults.WSP_TIMEOUT_S:.0f}s" if wsp["timed_out"] else f"exited {wsp['exit_code']}"
        raise HarnessError(f"D4's paced WSP {how}: the run was not streamed, so the trap had nothing to catch:\n"
                           f"{wsp['output_tail'][-600:]}")
    faults.mark_streamed(cert, {"platform_run_id": pins.platform_run_id, "by": "D4", "receipts": [], "topic": []})
    return wsp


def spring(cert: Certification, pins: p01.Pins, trap: KillTrap, watch: Watch) -> dict[str, Any]:
    """Wait for the trap (the stream is sent by now; RTDL may still be consuming it). When RTDL commits the run's
    acknowledged ends before the trap catches it between an archive write and a commit, the fault could not be
    injected: the drill cannot be judged."""
    run, topic = pins.platform_run_id, trap.topic
    _, acked = admitted_events(cert, pins)

    def settled() -> str | None:
        if watch.sprung is not None or watch.done:
            return "trap"
        now = pipeline.committed(cert.kafka(), "rtdl", run, topic)
        return "committed" if acked and all((now.get(str(p)) or 0) >= e for p, e in acked.items()) else None

    wait_until(settled, timeout_s=TRAP_TIMEOUT_S, backoff_s=0.2, max_backoff_s=0.5,
               err_msg="neither the trap sprang nor RTDL committed the run", operation="D4 trap")
    watch.disarm()
    if watch.sprung is None:
        raise HarnessError(f"the trap never caught RTDL between an archive write and its commit: "
                           f"{len(trap.samples)} archive write(s) seen, each committed by the time RTDL was frozen"
                           f"{'; ' + watch.error if watch.error else ''}: the fault was not injected")
    kill = dict(watch.sprung)
    daemon = p02.ensure_daemons(cert)["rtdl"]
    kill["exit_code"] = daemon.process.wait(timeout_s=10)
    # Read again with RTDL dead: nothing it sent before the kill committed anything later.
    kill["committed_after_kill"] = pipeline.committed(cert.kafka(), "rtdl", run, topic)
    kill["archived_ends_after_kill"] = archived_ends(trap.keys(), trap.prefix)
    if not uncommitted({**kill, "committed": kill["committed_after_kill"],
                        "archived_ends": kill["archived_ends_after_kill"]}):
        raise HarnessError(f"RTDL was killed, but its group's offsets {kill['committed_after_kill']} cover the archive "
                           f"{kill['archived_ends_after_kill']}: a commit in flight landed, the fault was not injected")
    return kill


def judge_kill(kill: dict[str, Any]) -> list[str]:
    """At the kill and after it: the group's committed offsets never past the archive, and no commit after death."""
    problems = []
    for label, committed, ends in (("at the kill", kill["committed"], kill["archived_ends"]),
                                   ("after the kill", kill["committed_after_kill"], kill["archived_ends_after_kill"])):
        problems += [f"{label}, partition {p}: RTDL's group committed {c}, past its archived end "
                     f"{ends.get(p, 0)}: records were committed before they were archived"
                     for p, c in sorted(committed.items()) if c is not None and c > ends.get(p, 0)]
    moved = {p: (kill["committed"].get(p), c) for p, c in kill["committed_after_kill"].items()
             if c != kill["committed"].get(p)}
    if moved:
        problems.append(f"RTDL's group offsets moved after RTDL was killed (at the kill, after): {moved}")
    if kill.get("exit_code") not in (-signal.SIGKILL, None):
        problems.append(f"RTDL ended with {kill.get('exit_code')} rather than by the SIGKILL")
    return problems


def observe_recovery(cert: Certification, pins: p01.Pins) -> dict[str, Any]:
    run = pins.platform_run_id
    traffic = cert.handles.topic_roles["traffic"]
    admitted, acked = admitted_events(cert, pins)
    lag = p08.ensure_caught_up(cert)  # RTDL's catch-up claim, written by the restarted RTDL
    committed = committed_at(cert, "rtdl", run, traffic, acked)
    archive = p08.observe_archive(cert, pins, lag)
    enriched, shortfall = pipeline.run_records(cert.kafka(), cert.handles.topic_roles["rtdl"], run,
                                               identity="event_id", expected=len(admitted))
    decided = p09.ensure_decided(cert)["observed"]
    return {"platform_run_id": run, "admitted": admitted, "acked_end_offsets": {str(p): e for p, e in acked.items()},
            "committed": committed, "lag": lag, "archive": archive,
            "enriched": [{"partition": r["partition"], "offset": r["offset"], "sha256": r["sha256"],
                          "event_id": (r["value"] or {}).get("event_id")} for r in enriched],
            "enriched_shortfall": shortfall, "decided": decided}


def redelivered(enriched: list[dict[str, Any]]) -> int:
    """Enriched records beyond the first of their event (RTDL publishing again what it had not committed)."""
    return sum(n - 1 for n in Counter(r["event_id"] for r in enriched).values() if n > 1)


def judge_enriched(obs: dict[str, Any]) -> list[str]:
    """One enriched event per admitted event; a copy published again after the crash holds the same bytes (the
    same features), never another."""
    problems = [obs["enriched_shortfall"]] if obs["enriched_shortfall"] else []
    by_event: dict[str, set[str]] = {}
    for r in obs["enriched"]:
        by_event.setdefault(str(r["event_id"]), set()).add(r["sha256"])
    admitted = set(obs["admitted"])
    missing = sorted(admitted - set(by_event))
    if missing:
        problems.append(f"{len(missing)} admitted event(s) have no enriched event on the rtdl topic: {missing[:10]}")
    problems += [f"enriched event for {e}, which has no ADMITTED receipt" for e in sorted(set(by_event) - admitted)]
    problems += [f"event {e} is on the rtdl topic {len(shas)} times with different bytes (features computed again "
                 "otherwise after the crash)" for e, shas in sorted(by_event.items()) if len(shas) > 1]
    return problems


def judge_recovery(obs: dict[str, Any]) -> dict[str, list[str]]:
    """After the restart, per family: the group's offsets, the archive, the rtdl topic, the decisions and DLA."""
    return {
        "offsets": judge_offsets("RTDL's group", obs["acked_end_offsets"], obs["committed"])
        + p08.judge_lag(obs["lag"]),
        "archive": p08.judge_archive(obs["archive"]),
        "enriched": judge_enriched(obs),
        "decisions": decision_problems(obs["decided"]),
    }


# --- D5: the decision lane redelivered from the middle of the rtdl topic ------------------------------------------


def lane_redelivery(cert: Certification) -> dict[str, Any]:
    """D5: the lane stopped, its group moved back to a mid offset per partition, the lane started again."""
    journal = drills.Journal(
        "D5", "lane-redelivery", "Decision-lane redelivery from an earlier offset",
        hypothesis="the drill's run is streamed, reconciled and decided: one decision on the topic and one DLA row "
                   "per admitted event, one case per REVIEW/DECLINE decision with a label per reason, the lane's "
                   "group at the ends of the rtdl topic; the run closes with the harness's recount",
        fault="the decision lane stopped (SIGTERM), its consumer group moved back by an operator's OffsetCommit to the "
              "middle of the run's enriched events on each partition of the rtdl topic (not to 0), the lane started "
              "again: the second half of every partition is delivered to it again",
    )

    def body(j: drills.Journal) -> None:
        pins = runs.steady_before(cert, j)
        topic = j.step("steady-state-before", "the rtdl topic read to its end: the run's offsets per partition",
                       lambda: rtdl_topic(cert, pins),
                       summary=lambda t: {"ends": t["ends"], "run_records": {p: len(o) for p, o in t["run"].items()}})
        before = j.step("steady-state-before", "the lane's group at the ends; the run's decisions, DLA rows, cases and "
                        "labels as the harness reads them",
                        lambda: lane_snapshot(cert, pins, topic, wait_for_ends=True), summary=snapshot_summary)
        j.expect("steady-state-before", judge_offsets("the lane's group", topic["ends"], before["committed"]))
        rewind = mid_offsets(topic)
        moved = j.step("method", "stop the lane, move its group to the middle of the run's records on each partition, "
                       "start it again", lambda: rewind_lane(cert, pins, topic, rewind),
                       summary=lambda m: {"rewound_to": m["rewound_to"], "committed_after_rewind":
                                          m["committed_after_rewind"], "new_pid": m["new_pid"]})
        after = j.step("observe", "the lane consumed back to the ends; the decisions, DLA rows, cases and labels read "
                       "again", lambda: lane_snapshot(cert, pins, topic, wait_for_ends=True), summary=snapshot_summary)
        record = {"platform_run_id": pins.platform_run_id, "topic": topic["topic"], "ends": topic["ends"],
                  "run_offsets": topic["run"], **moved, "before": before, "after": after}
        judged = drills.recorded(cert, j, "redelivery.json", record, judge_redelivery)
        j.expect("observe", j.step("observe", "the redelivered events added no decision, no DLA row, no case and no "
                                   "label, and the lane's group is back at the ends", lambda: judged))
        j.step("rollback", "nothing to restore: the lane runs and its group stands at the ends again",
               lambda: after["committed"])
        runs.steady_after(cert, j, pins)

    return drills.run(cert, journal, body)


def rtdl_topic(cert: Certification, pins: p01.Pins) -> dict[str, Any]:
    """The rtdl topic from offset 0 to its end once every admitted event of the run is on it: per partition the
    end (one past the last record, any run's) and the run's offsets."""
    run = pins.platform_run_id
    topic = cert.handles.topic_roles["rtdl"]
    admitted, _ = admitted_events(cert, pins)
    records, shortfall = pipeline.read_run(cert.kafka(), topic, run, identity="event_id", expected=len(admitted))
    if shortfall:
        raise HarnessError(f"the rtdl topic does not hold the run's enriched events: {shortfall}")
    ends: dict[str, int] = {}
    ours: dict[str, list[int]] = {}
    for r in records:
        ends[str(r.partition)] = max(ends.get(str(r.partition), 0), r.offset + 1)
        if (pipeline.decoded(r)["value"] or {}).get("platform_run_id") == run:
            ours.setdefault(str(r.partition), []).append(r.offset)
    return {"topic": topic, "ends": dict(sorted(ends.items())), "run": {p: sorted(o) for p, o in sorted(ours.items())}}


def mid_offsets(topic: dict[str, Any]) -> dict[str, int]:
    """Per partition holding at least two of the run's records, the offset of the middle one (never the first, so
    never 0): the lane gets the second half again and not the first."""
    return {p: offsets[len(offsets) // 2] for p, offsets in topic["run"].items() if len(offsets) >= 2}


def rewind_lane(cert: Certification, pins: p01.Pins, topic: dict[str, Any], rewind: dict[str, int]) -> dict[str, Any]:
    if not rewind:
        raise HarnessError(f"no partition of {topic['topic']} holds two records of the run: there is no earlier offset "
                           f"to redeliver from ({topic['run']})")
    run = pins.platform_run_id
    group = pipeline.group("decision-lane", run)
    old_pid = p02.ensure_daemons(cert)["decision-lane"].process.pid

    def move() -> dict[str, int | None]:
        admin.set_group_offsets(cert.kafka(), group, topic["topic"], {int(p): o for p, o in rewind.items()})
        return pipeline.committed(cert.kafka(), "decision-lane", run, topic["topic"])

    after_rewind = p02.restart_daemon(cert, "decision-lane", while_stopped=move)
    return {"group": group, "rewound_to": rewind, "committed_after_rewind": after_rewind, "old_pid": old_pid,
            "new_pid": p02.ensure_daemons(cert)["decision-lane"].process.pid}


def lane_snapshot(cert: Certification, pins: p01.Pins, topic: dict[str, Any], *,
                  wait_for_ends: bool = False) -> dict[str, Any]:
    """The lane's committed offsets, then the run's decisions on the topic (read to its end), DLA rows, cases and
    labels as the database holds them."""
    run = pins.platform_run_id
    ends = {int(p): e for p, e in topic["ends"].items()}
    committed = (committed_at(cert, "decision-lane", run, topic["topic"], ends) if wait_for_ends
                 else pipeline.committed(cert.kafka(), "decision-lane", run, topic["topic"]))
    admitted, _ = admitted_events(cert, pins)
    decisions, shortfall = pipeline.run_records(cert.kafka(), cert.handles.topic_roles["decision"], run,
                                                identity="decision_id", expected=len(admitted))
    url = p09.dsn(cert)
    now = p10.ensure_cases_now(cert, pins)
    return {"committed": committed,
            "decisions": [{"partition": d["partition"], "offset": d["offset"], "sha256": d["sha256"],
                           "decision_id": (d["value"] or {}).get("decision_id")} for d in decisions],
            "decision_shortfall": shortfall,
            "dla": [{"decision_id": r["decision_id"], "record_sha256": r["record_sha256"]}
                    for r in pipeline.dla_rows(url, run)],
            "cases": [{"case_id": c["case_id"], "decision_id": c["decision_id"]} for c in now["cases"]],
            "labels": [{"label_id": label["label_id"], "case_id": label["case_id"], "label": label["label"]}
                       for label in now["labels"]]}


def snapshot_summary(s: dict[str, Any]) -> dict[str, Any]:
    return {"committed": s["committed"], "decision_records": len(s["decisions"]),
            "decisions": len({d["decision_id"] for d in s["decisions"]}), "dla_rows": len(s["dla"]),
            "cases": len(s["cases"]), "labels": len(s["labels"])}


def judge_redelivery(record: dict[str, Any]) -> list[str]:
    """The rewind landed on earlier offsets (not 0), the lane consumed back to the ends, and the redelivered events
    changed nothing: the same decisions once each, the same DLA rows, cases and labels."""
    ends = record["ends"]
    rewound = record["rewound_to"]
    # The rewind is the harness's own action: one that did not land means the fault never held (ERROR).
    injection = [] if any(o < ends.get(p, 0) for p, o in rewound.items()) else [
        f"the group was not moved before any end {ends}: {rewound} redelivers nothing"]
    injection += [f"partition {p}: rewound to offset 0, not to an earlier offset of the run" for p, o in
                  sorted(rewound.items()) if o == 0]
    injection += [f"partition {p}: the group stood at {record['committed_after_rewind'].get(p)} after the rewind, "
                  f"not {o}" for p, o in sorted(rewound.items()) if record["committed_after_rewind"].get(p) != o]
    if injection:
        raise HarnessError("the redelivery was not injected: " + "; ".join(injection))
    problems = judge_offsets("the restarted lane", ends, record["after"]["committed"])
    before, after = record["before"], record["after"]
    for side, snap in (("before", before), ("after", after)):
        if snap["decision_shortfall"]:
            problems.append(f"{side}: {snap['decision_shortfall']}")
    twice = {i: n for i, n in Counter(d["decision_id"] for d in after["decisions"]).items() if n > 1}
    if twice:
        problems.append(f"{len(twice)} decision(s) on the topic more than once after the redelivery: "
                        f"{sorted(twice.items())[:5]}")
    if len(after["decisions"]) != len(before["decisions"]):
        problems.append(f"the run's decision records went from {len(before['decisions'])} to {len(after['decisions'])}")
    ids = {side: {d["decision_id"] for d in snap["decisions"]} for side, snap in (("before", before), ("after", after))}
    if ids["before"] != ids["after"]:
        problems.append(f"the distinct decisions changed: {len(ids['before'])} before, {len(ids['after'])} after "
                        f"({sorted(ids['after'] ^ ids['before'])[:5]})")
    dla_twice = sorted(i for i, n in Counter(r["decision_id"] for r in after["dla"]).items() if n > 1)
    if dla_twice:
        problems.append(f"decision id(s) more than once in the DLA: {dla_twice[:5]}")
    for what, key in (("dla", "decision_id"), ("cases", "case_id"), ("labels", "label_id")):
        was = {r[key]: r for r in before[what]}
        now = {r[key]: r for r in after[what]}
        if len(after[what]) != len(before[what]) or was != now:
            added = sorted(set(now) - set(was))
            changed = sorted(k for k in set(now) & set(was) if now[k] != was[k])
            problems.append(f"the redelivery changed the {what.replace('dla', 'DLA rows')}: {len(before[what])} "
                            f"before, {len(after[what])} after; new {added[:5]}, changed {changed[:5]}")
    return problems


DRILLS = {"D4": rtdl_killed, "D5": lane_redelivery}
