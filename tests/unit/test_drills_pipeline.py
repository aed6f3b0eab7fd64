"""D4, D5 and D8 judges: a compliant recorded observation passes; each mutation, the way a platform that did not
fail closed would leave it, is named. Plus the D4 trap's signals on a real process and the D8 profile refusal."""

from __future__ import annotations

import copy
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from check_records import RUN, Mutation, Record, mutated
from pipeline_records import EVENTS, FLAGGED, RTDL, decision_id, enriched_value, sha256
from test_pipeline_checks import (
    _put,
    archive_world,
    cases_observed,
    decisions_observed,
    lag_observed,
    line,
    observe_archive,
)

from harness.drills import database, pipeline
from harness.errors import HarnessError
from harness.wait import wait_until

# --- D4 RTDL killed before committing offsets ------------------------------------------------------------------


def kill_record() -> Record:
    """What the trap saw while RTDL was frozen, and the re-read after the kill: partitions 0 and 1 archived past the
    group's committed offsets (partition 0 never committed), partition 2 committed to its archived end."""
    return {"at_s": 2.667, "new_objects": ["..."], "archived_ends": {"0": 2, "1": 9, "2": 1},
            "committed": {"0": None, "1": 1, "2": 1}, "frozen_ms": 14, "action": "SIGKILL", "exit_code": -9,
            "committed_after_kill": {"0": None, "1": 1, "2": 1},
            "archived_ends_after_kill": {"0": 2, "1": 9, "2": 1}}


def test_d4_uncommitted_names_partitions_archived_past_their_committed_offset() -> None:
    assert pipeline.uncommitted(kill_record()) == {"0": [0, 2], "1": [1, 9]}
    assert pipeline.uncommitted({"archived_ends": {"0": 2}, "committed": {"0": 2}}) == {}


def test_d4_archived_ends_come_from_the_object_names_of_the_run_only() -> None:
    prefix = f"{RUN}/fp.bus.traffic.fraud.v1/"
    keys = [f"{prefix}partition=0/{0:020d}-{1:020d}.jsonl", f"{prefix}partition=0/{2:020d}-{4:020d}.jsonl",
            f"{prefix}partition=12/{7:020d}-{7:020d}.jsonl", f"{prefix}partition=1/stray.json",
            f"other-run/fp.bus.traffic.fraud.v1/partition=1/{0:020d}-{9:020d}.jsonl"]
    assert pipeline.archived_ends(keys, prefix) == {"0": 5, "12": 8}


def test_d4_kill_passes_a_group_that_committed_nothing_past_the_archive() -> None:
    assert pipeline.judge_kill(kill_record()) == []


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(lambda k: k["committed"].update({"1": 10}), "at the kill, partition 1: RTDL's group committed 10, "
                 "past its archived end 9: records were committed before they were archived", id="committed-first"),
    pytest.param(lambda k: k["committed_after_kill"].update({"3": 4}), "after the kill, partition 3: RTDL's group "
                 "committed 4, past its archived end 0", id="committed-unarchived-partition"),
    pytest.param(lambda k: k["committed_after_kill"].update({"1": 9}), r"RTDL's group offsets moved after RTDL was "
                 r"killed \(at the kill, after\): \{'1': \(1, 9\)\}", id="commit-after-death"),
    pytest.param(lambda k: k.update(exit_code=0), "RTDL ended with 0 rather than by the SIGKILL", id="not-killed"),
])
def test_d4_kill_names_a_commit_past_the_archive(mutate: Mutation, match: str) -> None:
    problems = pipeline.judge_kill(mutated(kill_record(), mutate))
    assert any(match in p or _search(match, p) for p in problems), problems


def _search(pattern: str, text: str) -> bool:
    return re.search(pattern, text) is not None


def enriched(event_id: str, value: bytes | None = None) -> Record:
    partition, offset, *_ = EVENTS[event_id]
    return {"partition": partition, "offset": offset, "sha256": sha256(value or enriched_value(event_id)),
            "event_id": event_id}


def recovery(world_mutation: Mutation | None = None) -> Record:
    """drills/rtdl-killed/recovery_observed.json of a compliant restart: the group at IG's acknowledged ends, the
    archive exactly the topic's records, one enriched event, one decision and one DLA row per admitted event."""
    world = archive_world() if world_mutation is None else mutated(archive_world(), world_mutation)
    return {"platform_run_id": RUN, "admitted": sorted(EVENTS), "acked_end_offsets": {"0": 4, "1": 3},
            "committed": {"0": 4, "1": 4}, "lag": lag_observed(), "archive": observe_archive(world),
            "enriched": [enriched(e) for e in EVENTS], "enriched_shortfall": None, "decided": decisions_observed()}


def test_d4_recovery_passes_a_restart_that_lost_and_duplicated_nothing() -> None:
    assert pipeline.judge_recovery(recovery()) == {"offsets": [], "archive": [], "enriched": [], "decisions": []}


def test_d4_recovery_accepts_an_enriched_event_published_again_with_the_same_bytes() -> None:
    obs = mutated(recovery(), lambda o: o["enriched"].append({**enriched("evt_03"), "offset": 9}))
    assert pipeline.judge_recovery(obs)["enriched"] == []
    assert pipeline.redelivered(obs["enriched"]) == 1


def _publish_twice(event_id: str) -> Mutation:
    def mutate(o: Record) -> None:
        value = decisions_observed()["decisions"][list(EVENTS).index(event_id)]
        o["decided"]["decisions"].append({**copy.deepcopy(value), "partition": 0, "offset": 9})
    return mutate


def _rearchived(o: Record) -> None:
    """The restarted RTDL archived offsets 2-3 of partition 0 again, in an object of their own."""
    o["archive"] = recovery(_put(0, 2, 3, [line(0, 2), line(0, 3)]))["archive"]


@pytest.mark.parametrize(("family", "mutate", "match"), [
    pytest.param("offsets", lambda o: o["committed"].update({"1": 2}), "partition 1: RTDL's group committed 2, the "
                 "end is 3: records left unconsumed", id="group-short-of-the-end"),
    pytest.param("offsets", lambda o: o["lag"]["committed"].update({"0": 3}), "partition 0: group "
                 f"spine.rtdl.{RUN} committed 3, acknowledged end 4: lag 1", id="lag-past-the-pinned-maximum"),
    pytest.param("archive", _rearchived, "partition 0 offset 2 is archived 2 times", id="re-archived-after-the-crash"),
    pytest.param("enriched", lambda o: o["enriched"].append({**enriched("evt_03", b"other features"), "offset": 9}),
                 "event evt_03 is on the rtdl topic 2 times with different bytes", id="features-computed-otherwise"),
    pytest.param("enriched", lambda o: o.update(enriched=[r for r in o["enriched"] if r["event_id"] != "evt_05"]),
                 "1 admitted event(s) have no enriched event on the rtdl topic: ['evt_05']", id="enriched-lost"),
    pytest.param("enriched", lambda o: o["enriched"].append(enriched("evt_01") | {"event_id": "evt_99"}),
                 "enriched event for evt_99, which has no ADMITTED receipt", id="enriched-not-admitted"),
    pytest.param("enriched", lambda o: o.update(enriched_shortfall="6 distinct event_id of 7 expected"),
                 "6 distinct event_id of 7 expected", id="rtdl-topic-short"),
    pytest.param("decisions", _publish_twice("evt_02"), "decisions: event evt_02 has 2 decision records",
                 id="decided-twice"),
    pytest.param("decisions", lambda o: o["decided"]["dla"].pop(0), "has no DLA record", id="dla-row-lost"),
])
def test_d4_recovery_names_what_the_crash_lost_or_duplicated(family: str, mutate: Mutation, match: str) -> None:
    judged = pipeline.judge_recovery(mutated(recovery(), mutate))
    assert any(match in p for p in judged[family]), judged
    assert [f for f, found in judged.items() if found] == [family]


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A real process in a process group of its own, standing in for the daemon the trap signals."""
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _trap(pid: int, keys: list[set[str]]) -> pipeline.KillTrap:
    prefix = f"{RUN}/fp.bus.traffic.fraud.v1/"
    trap = pipeline.KillTrap(aws=None, kafka=None, bucket="archive", prefix=prefix,  # type: ignore[arg-type]
                             group=f"spine.rtdl.{RUN}", topic="fp.bus.traffic.fraud.v1", partitions=3, pid=pid)
    answers = iter([{prefix + k for k in ks} for ks in keys])

    def look() -> set[str]:
        LOOKED_FROZEN.append(_state(pid) == "T")
        return next(answers)

    trap.keys = look  # type: ignore[method-assign]
    return trap


LOOKED_FROZEN: list[bool] = []  # per look at the archive: was the daemon stopped while the trap looked?


def _poll(trap: pipeline.KillTrap, committed: dict[int, int | None]) -> Record | None:
    with mock.patch.object(pipeline.admin, "committed_offsets", return_value=committed):
        return trap.poll()


def test_d4_trap_lets_rtdl_go_on_when_what_it_archived_is_committed(sleeper: subprocess.Popen[bytes]) -> None:
    obj = f"partition=1/{0:020d}-{0:020d}.jsonl"
    committed = {0: None, 1: 1, 2: None}
    LOOKED_FROZEN.clear()
    trap = _trap(sleeper.pid, [set(), {obj}, {obj}])
    assert _poll(trap, committed) is None and trap.samples == []  # nothing new: no sample
    assert _state(sleeper.pid) != "T"  # continued after the look, not left stopped
    assert _poll(trap, committed) is None
    assert trap.samples[0]["action"] == "SIGCONT" and sleeper.poll() is None
    assert _state(sleeper.pid) != "T"
    assert _poll(trap, committed) is None and len(trap.samples) == 1  # the same object: no second sample
    assert LOOKED_FROZEN == [True, True, True]  # every look at the archive was made with the daemon stopped


def test_d4_trap_kills_rtdl_frozen_with_archived_records_past_its_commit(sleeper: subprocess.Popen[bytes]) -> None:
    obj = f"partition=1/{1:020d}-{8:020d}.jsonl"
    committed = {0: None, 1: 1, 2: None}
    trap = _trap(sleeper.pid, [{obj}])
    sprung = _poll(trap, committed)
    assert sprung is not None and sprung["action"] == "SIGKILL"
    assert sprung["archived_ends"] == {"1": 9} and sprung["committed"] == {"0": None, "1": 1, "2": None}
    assert sleeper.wait(timeout=5) == -signal.SIGKILL


def test_d4_trap_never_leaves_rtdl_stopped_when_the_broker_does_not_answer(sleeper: subprocess.Popen[bytes]) -> None:
    obj = f"partition=0/{0:020d}-{0:020d}.jsonl"
    trap = _trap(sleeper.pid, [{obj}])
    with mock.patch.object(pipeline.admin, "committed_offsets", side_effect=RuntimeError("broker away")), \
            pytest.raises(RuntimeError):
        trap.poll()
    assert _state(sleeper.pid) != "T" and sleeper.poll() is None


def test_d4_stopped_reads_the_kernels_state_of_the_daemon(sleeper: subprocess.Popen[bytes]) -> None:
    assert not pipeline.stopped(sleeper.pid)
    os.killpg(sleeper.pid, signal.SIGSTOP)
    wait_until(lambda: _state(sleeper.pid) == "T", timeout_s=5, backoff_s=0.001, err_msg="the sleeper did not stop")
    assert pipeline.stopped(sleeper.pid)
    os.killpg(sleeper.pid, signal.SIGCONT)
    sleeper.kill()
    sleeper.wait()
    assert pipeline.stopped(sleeper.pid)  # gone: it cannot move either


def test_watch_records_what_sprang_and_stops_when_disarmed() -> None:
    answers = iter([None, None, {"sprung": True}])
    watch = pipeline.Watch("test watch", lambda: next(answers), timeout_s=10, backoff_s=0.001)
    watch.arm()
    wait_until(lambda: watch.done, timeout_s=10, err_msg="the watch did not spring")
    assert watch.sprung == {"sprung": True} and watch.error is None
    watch.disarm()
    idle = pipeline.Watch("idle watch", lambda: None, timeout_s=10, backoff_s=0.001)
    idle.arm()
    idle.disarm()
    assert idle.done and idle.sprung is None and idle.error is None


# --- D5 decision-lane redelivery from an earlier offset ---------------------------------------------------------


def test_d5_mid_offsets_are_the_middle_record_of_the_run_never_the_first() -> None:
    topic = {"run": {"0": [0, 1], "1": list(range(9)), "2": [5], "3": [10, 11, 12]}}
    assert pipeline.mid_offsets(topic) == {"0": 1, "1": 4, "3": 11}


def lane_snapshot() -> Record:
    values = decisions_observed()
    cases = cases_observed()
    return {"committed": {"0": 2, "1": 9, "2": 9},
            "decisions": [{"partition": d["partition"], "offset": d["offset"], "sha256": d["sha256"],
                           "decision_id": d["value"]["decision_id"]} for d in values["decisions"]],
            "decision_shortfall": None,
            "dla": [{"decision_id": r["decision_id"], "record_sha256": r["record_sha256"]} for r in values["dla"]],
            "cases": [{"case_id": c["case_id"], "decision_id": c["decision_id"]} for c in cases["cases"]],
            "labels": [{"label_id": label["label_id"], "case_id": label["case_id"], "label": label["label"]}
                       for label in cases["labels"]]}


def redelivery() -> Record:
    """drills/lane-redelivery/redelivery.json: the group moved to the middle of each partition while the lane was
    stopped, the restarted lane back at the ends, and nothing new on the topic or in the database."""
    return {"platform_run_id": RUN, "topic": RTDL, "ends": {"0": 2, "1": 9, "2": 9},
            "run_offsets": {"0": [0, 1], "1": list(range(9)), "2": list(range(9))},
            "group": f"spine.decision-lane.{RUN}", "rewound_to": {"0": 1, "1": 4, "2": 4},
            "committed_after_rewind": {"0": 1, "1": 4, "2": 4}, "old_pid": 100, "new_pid": 200,
            "before": lane_snapshot(), "after": lane_snapshot()}


def test_d5_redelivery_passes_a_lane_that_added_nothing() -> None:
    assert pipeline.judge_redelivery(redelivery()) == []


def _after(what: str, row: Record) -> Mutation:
    return lambda r: r["after"][what].append(row)


CASE_OF_04 = {"case_id": "case_" + sha256(decision_id("evt_04").encode())[:32], "decision_id": decision_id("evt_04")}


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(lambda r: r["after"]["decisions"].append({**r["after"]["decisions"][1], "offset": 7}),
                 "1 decision(s) on the topic more than once after the redelivery", id="decision-published-again"),
    pytest.param(lambda r: r["after"]["decisions"].append({**r["after"]["decisions"][1], "offset": 7}),
                 "the run's decision records went from 7 to 8", id="decision-records-grew"),
    pytest.param(lambda r: r["after"]["decisions"].append({"partition": 2, "offset": 5, "sha256": "ab" * 32,
                                                           "decision_id": "dec_new"}),
                 "the distinct decisions changed: 7 before, 8 after", id="new-decision"),
    pytest.param(_after("dla", {"decision_id": "dec_new", "record_sha256": "ab" * 32}),
                 r"the redelivery changed the DLA rows: 7 before, 8 after; new \['dec_new'\]", id="new-dla-row"),
    pytest.param(_after("dla", {"decision_id": decision_id("evt_01"), "record_sha256": "cd" * 32}),
                 "decision id(s) more than once in the DLA", id="dla-row-twice"),
    pytest.param(lambda r: r["after"]["dla"][0].update(record_sha256="cd" * 32),
                 r"the redelivery changed the DLA rows: 7 before, 7 after; new \[\], changed", id="dla-row-changed"),
    pytest.param(_after("cases", CASE_OF_04), r"the redelivery changed the cases: 4 before, 5 after; new \['case_",
                 id="case-opened-for-approve"),
    pytest.param(lambda r: r["after"]["labels"].append({**r["after"]["labels"][0], "label_id": "lbl_new"}),
                 r"the redelivery changed the labels: 5 before, 6 after; new \['lbl_new'\]", id="label-appended"),
    pytest.param(lambda r: r["after"]["committed"].update({"1": 5}), "partition 1: the restarted lane committed 5, "
                 "the end is 9: records left unconsumed", id="not-back-at-the-ends"),
    pytest.param(lambda r: r["after"].update(decision_shortfall="6 distinct decision_id of 7 expected"),
                 "after: 6 distinct decision_id of 7 expected", id="decision-read-short"),
])
def test_d5_redelivery_names_what_the_redelivered_events_changed(mutate: Mutation, match: str) -> None:
    problems = pipeline.judge_redelivery(mutated(redelivery(), mutate))
    assert any(_search(match, p) or match in p for p in problems), problems


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(lambda r: r.update(rewound_to={"0": 0, "1": 0, "2": 0}, committed_after_rewind={"0": 0, "1": 0,
                                                                                                  "2": 0}),
                 "partition 1: rewound to offset 0, not to an earlier offset of the run", id="rewound-to-0"),
    pytest.param(lambda r: r["committed_after_rewind"].update({"2": 9}),
                 "partition 2: the group stood at 9 after the rewind, not 4", id="rewind-did-not-land"),
    pytest.param(lambda r: r.update(rewound_to={"0": 2, "1": 9, "2": 9}, committed_after_rewind={"0": 2, "1": 9,
                                                                                                  "2": 9}),
                 "redelivers nothing", id="nothing-rewound"),
])
def test_d5_a_rewind_that_did_not_land_cannot_be_judged(mutate: Mutation, match: str) -> None:
    """The rewind is the harness's action: when it did not land, the drill is ERROR, not a platform finding."""
    with pytest.raises(HarnessError, match=re.escape(match)):
        pipeline.judge_redelivery(mutated(redelivery(), mutate))


def test_d5_judge_offsets_names_every_partition_short_of_its_end() -> None:
    assert pipeline.judge_offsets("g", {"0": 2, "1": 3}, {"0": 2, "1": None}) == [
        "partition 1: g committed None, the end is 3: records left unconsumed"]
    assert pipeline.judge_offsets("g", {}, {}) == ["there is no end offset to reach: g has nothing to consume"]


# --- D8 database unavailable while cases open -------------------------------------------------------------------


def outage() -> Record:
    """drills/database-unavailable/outage_observed.json: the database refused the harness, decisions stalled, the
    reporter failed on the database and left the run open."""
    return {"platform_run_id": RUN, "stopped": {"dla_rows_seen": 2, "cases_seen": 0, "labels_seen": 0},
            "database": {"answers": False, "error": "Connection refused"}, "admitted": 7, "enriched_events": 7,
            "enriched_shortfall": None, "decisions_on_topic": 2,
            "daemons": {"case-labels": {"alive": True, "pid": 1, "ready": None}},
            "reporter": {"reporter": database.OUTAGE_REPORTER, "exit_code": 1,
                         "stderr": "reporter: database at SSM /db/dsn refused the connection", "conflict": None,
                         "refused": None},
            "run_completed": False, "obs_objects": []}


def test_d8_outage_passes_a_reporter_that_could_not_close() -> None:
    assert database.judge_outage(outage()) == []


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(lambda o: o["reporter"].update(exit_code=0), f"reporter {database.OUTAGE_REPORTER} exited 0 while "
                 "the database was down", id="reporter-closed"),
    pytest.param(lambda o: o.update(run_completed=True), "run_completed.json was written while the database was down",
                 id="run-completed-claimed"),
    pytest.param(lambda o: o.update(obs_objects=["obs/reconciliation.json", "run_completed.json"]),
                 "run_completed.json was written while the database was down", id="run-completed-listed"),
    pytest.param(lambda o: o["reporter"].update(exit_code=None), "did not end while the database was down",
                 id="reporter-hung"),
])
def test_d8_outage_names_a_green_closure_without_the_database(mutate: Mutation, match: str) -> None:
    problems = database.judge_outage(mutated(outage(), mutate))
    assert any(match in p for p in problems), problems


def db_recovery() -> Record:
    daemons = {mode: {"alive": True, "pid": pid, "ready": 200 if mode == "ig" else None, "pid_before": pid}
               for mode, pid in (("case-labels", 11), ("decision-lane", 12), ("ig", 13), ("rtdl", 14))}
    return {"platform_run_id": RUN, "daemons": daemons, "decided": decisions_observed(), "cases": cases_observed()}


def test_d8_recovery_passes_daemons_that_reconnected_and_cases_opened_once() -> None:
    assert database.judge_recovery(db_recovery()) == {"daemons": [], "decisions": [], "cases": []}


def _second_case(o: Record) -> None:
    case = copy.deepcopy(o["cases"]["cases"][0])
    o["cases"]["cases"].append({**case, "case_id": "case_" + "0" * 32})


@pytest.mark.parametrize(("family", "mutate", "match"), [
    pytest.param("daemons", lambda o: o["daemons"]["case-labels"].update(alive=False), "case-labels is not running "
                 "after the database came back (pid 11, was 11): it did not recover", id="case-labels-died"),
    pytest.param("daemons", lambda o: o["daemons"]["decision-lane"].update(alive=False, pid=99),
                 "decision-lane is not running after the database came back (pid 99, was 12)", id="lane-died"),
    pytest.param("cases", lambda o: o["cases"].update(cases=[c for c in o["cases"]["cases"]
                                                             if c["event_id"] != FLAGGED[0]]),
                 f"cases: decision {decision_id(FLAGGED[0])} (REVIEW, event {FLAGGED[0]}) has no case",
                 id="case-lost"),
    pytest.param("cases", _second_case, "has 2 cases", id="case-opened-twice"),
    pytest.param("cases", lambda o: o["cases"].update(labels=o["cases"]["labels"][1:]),
                 "labels: case", id="label-lost"),
    pytest.param("cases", lambda o: o["cases"].update(sessions=[]), "managed_db: case/labels holds no connection",
                 id="never-reconnected"),
    pytest.param("decisions", _publish_twice("evt_03"), "decisions: event evt_03 has 2 decision records",
                 id="decision-published-again-after-the-reconnect"),
])
def test_d8_recovery_names_a_daemon_that_did_not_recover_and_what_was_lost_or_doubled(
        family: str, mutate: Mutation, match: str) -> None:
    judged = database.judge_recovery(mutated(db_recovery(), mutate))
    assert any(match in p for p in judged[family]), judged


def test_d8_refuses_a_profile_without_a_local_database() -> None:
    cert: Any = mock.Mock()
    cert.substrate.parts = []
    cert.options.profile = "dev_min"
    with pytest.raises(HarnessError, match="profile 'dev_min' has no local PostgreSQL the harness runs"):
        database.cluster(cert)

