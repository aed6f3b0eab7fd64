"""case-labels and the reporter as real processes against moto, a Tansu broker and PostgreSQL.

The upstream of each run (receipts, the traffic, rtdl and decision topics, the DLA) is written by the test
itself; every claim is checked where it lands: rows in the database, objects in S3, the lock item in DynamoDB,
the topics as the test reads them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from spine_bus import Bus
from spine_closure import Plane, anchors, build, compact
from spine_lane import ROOT, Lane
from spine_pipeline import Daemon

from harness.substrate import MotoServer, PostgresCluster
from harness.wait import wait_until
from spine import ids

pytestmark = pytest.mark.substrate

OBS = ("obs/reconciliation.json", "obs/run_report.json", "obs/environment_conformance.json",
       "obs/replay_anchors.json")
_runs = itertools.count()


@pytest.fixture(scope="module")
def plane(bus: Bus, pg: PostgresCluster) -> Plane:
    return Plane(bus, pg)


@pytest.fixture
def new_lane(moto: MotoServer) -> Callable[[], Lane]:
    return lambda: Lane(endpoint=moto.endpoint, run_id=f"run-c{next(_runs):03d}-{os.getpid()}", events=12)


def reporter(lane: Lane, plane: Plane, name: str, **env: str) -> subprocess.CompletedProcess[str]:
    return lane.spine("reporter", **plane.env(SPINE_REPORTER_ID=name, **env))


def refusal(proc: subprocess.CompletedProcess[str]) -> str:
    """Exit 1 with exactly one stderr line, prefixed with the mode."""
    assert proc.returncode == 1, (proc.returncode, proc.stderr, proc.stdout[-3000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reporter: "), proc.stderr
    return lines[0]


def no_secret(plane: Plane, *texts: str | bytes) -> None:
    for text in texts:
        raw = text.encode() if isinstance(text, str) else text
        assert plane.pg.password.encode() not in raw and plane.pg.dsn.encode() not in raw


def all_evidence(lane: Lane) -> list[bytes]:
    return [lane.get(lane.evidence_root + key) for key in lane.evidence_keys()]


# --- case-labels ---


def test_case_labels_opens_one_case_per_review_or_decline_once(plane: Plane, new_lane: Callable[[], Lane],
                                                              tmp_path: Path) -> None:
    lane = new_lane()
    up = build(lane, plane, events=9, cases=False, lane_summary=False)  # 3 APPROVE, 3 REVIEW, 3 DECLINE
    env = lane.env(**plane.env())
    daemon = Daemon("case-labels", env, logs=tmp_path / "logs").start()
    try:
        wait_until(lambda: plane.sql("select count(*) from cases where platform_run_id = %s", (lane.run_id,))
                   == [(6,)], timeout_s=30, err_msg="six cases not opened")
        # The daemon keeps its connection, named after its mode, for as long as it runs.
        sessions = plane.sql("select usename from pg_stat_activity where application_name = 'spine-case-labels'",
                             owner=True)
        assert sessions and set(sessions) == {(plane.pg.user,)}
        # Redelivery: the same decisions again add nothing.
        plane.produce(plane.decision, [(d["card_id"].encode(), compact(d)) for d in up.decisions[:5]])
        wait_until(lambda: sum(b.get("REVIEW", 0) + b.get("DECLINE", 0) for b in daemon.logged("batch")) >= 9,
                   timeout_s=30, err_msg="redelivered decisions not consumed")
        assert not lane.exists(lane.evidence_root + "case_labels/summary.json")  # the lane's summary is not there
        up.put_lane_summary()
        wait_until(lambda: lane.exists(lane.evidence_root + "case_labels/summary.json"), timeout_s=30,
                   err_msg="case_labels/summary.json not written")
    finally:
        code = daemon.stop()
    assert code == 0, daemon.stderr
    cases = plane.sql("select case_id, decision_id, event_id, card_id, decision from cases"
                      " where platform_run_id = %s order by case_id", (lane.run_id,))
    expected = sorted((ids.case_id(d["decision_id"]), d["decision_id"], d["event_id"], d["card_id"], d["decision"])
                      for d in up.review_or_decline())
    assert cases == expected
    labels = plane.sql("select label_id, case_id, label, source from case_labels where platform_run_id = %s"
                       " order by label_id", (lane.run_id,))
    assert labels == sorted((ids.label_id(ids.case_id(d["decision_id"]), r), ids.case_id(d["decision_id"]), r,
                             "decision-lane:spine-rules/1") for d in up.review_or_decline() for r in d["reasons"])
    assert len(labels) == 9
    approved = [d["decision_id"] for d in up.decisions if d["decision"] == "APPROVE"]
    assert plane.sql("select count(*) from cases where decision_id = any(%s)", (approved,)) == [(0,)]
    # The other run's decision on the topic opened nothing.
    assert plane.sql("select count(*) from cases where platform_run_id = %s", (f"{lane.run_id}-other",)) == [(0,)]
    assert sum(b.get("skipped_foreign", 0) for b in daemon.logged("batch")) >= 1
    summary = lane.evidence("case_labels/summary.json")
    assert summary == {"platform_run_id": lane.run_id, "group": f"spine.case-labels.{lane.run_id}", "cases": 6,
                       "labels": 9, "by_decision": {"REVIEW": 3, "DECLINE": 3}, "dsn_ssm_path": plane.ssm_dsn,
                       "database": plane.pg.database, "role": plane.pg.user,
                       "server_version": summary["server_version"]}

    # A restart resumes after its committed offsets, finds the summary and does not write it again.
    plane.produce(plane.decision, [(d["card_id"].encode(), compact(d)) for d in up.decisions[-1:]])
    again = Daemon("case-labels", env, logs=tmp_path / "logs").start()
    try:
        wait_until(lambda: again.logged("batch"), timeout_s=30, err_msg="the restarted daemon consumed nothing")
        assert sum(b["records"] for b in again.logged("batch")) == 1  # only the record after the committed offsets
    finally:
        code = again.stop()
    assert code == 0, again.stderr
    assert again.logged("consuming")[0]["summarised"] is True
    assert not [e for e in again.logged("evidence") if e["key"] == "case_labels/summary.json"]
    assert plane.sql("select count(*) from cases where platform_run_id = %s", (lane.run_id,)) == [(6,)]
    assert plane.sql("select count(*) from case_labels where platform_run_id = %s", (lane.run_id,)) == [(9,)]
    no_secret(plane, daemon.stdout, daemon.stderr, again.stdout, again.stderr, *all_evidence(lane))


# --- reporter ---


def test_reporter_closes_a_consistent_run_once(plane: Plane, new_lane: Callable[[], Lane]) -> None:
    lane = new_lane()
    build(lane, plane, events=12)
    proc = reporter(lane, plane, "reporter-one")
    assert proc.returncode == 0, proc.stderr + proc.stdout[-3000:]
    keys = lane.evidence_keys()
    assert set(OBS) | {"run_completed.json"} <= set(keys)
    assert not [k for k in keys if k.startswith(("obs/conflict_", "obs/refused_"))]

    counts = {"receipts": {"ADMITTED": 12, "DUPLICATE": 1, "QUARANTINED": 0, "PUBLISH_AMBIGUOUS": 0},
              "admitted_events": 12, "traffic_records": 12, "traffic_events": 12, "enriched_records": 12,
              "enriched_events": 12, "decision_records": 12, "decisions": 12,
              "decisions_by_outcome": {"APPROVE": 4, "REVIEW": 4, "DECLINE": 4}, "dla_records": 12,
              "dla_by_outcome": {"APPROVE": 4, "REVIEW": 4, "DECLINE": 4}, "cases": 8, "labels": 12}
    reconciliation = lane.evidence("obs/reconciliation.json")
    assert reconciliation["counts"] == counts
    assert reconciliation["closed"] is True and all(c["ok"] for c in reconciliation["closes"])
    assert [c["check"] for c in reconciliation["closes"]] == [
        "admitted_events = traffic_events", "admitted_events = traffic_records", "admitted_events = enriched_events",
        "admitted_events = decisions", "admitted_events = decision_records", "admitted_events = dla_records",
        "decisions_by_outcome = dla_by_outcome", "cases = dla REVIEW + DECLINE",
        "labels = reasons of the dla REVIEW and DECLINE decisions", "PUBLISH_AMBIGUOUS unreconciled = 0"]
    assert "_at" not in json.dumps(reconciliation)  # no wall-clock time: the same run gives the same bytes

    completed = lane.evidence("run_completed.json")
    assert completed["platform_run_id"] == lane.run_id and completed["scenario_run_id"] == lane.scenario
    assert (completed["closed_by"], completed["fencing_token"], completed["counts"]) == ("reporter-one", 1, counts)
    assert completed["obs"] == {k: hashlib.sha256(lane.get(lane.evidence_root + k)).hexdigest() for k in OBS}
    lock = plane.lock(lane.run_id)
    assert lock is not None and {k: v for k, v in lock.items() if k != "expires_at"} == {
        "platform_run_id": lane.run_id, "holder": "reporter-one", "token": 1, "state": "CLOSED"}

    # The anchors are what the test computes from its own reading of the topics.
    replay = lane.evidence("obs/replay_anchors.json")
    for role, topic in (("traffic", plane.traffic), ("rtdl", plane.rtdl), ("decision", plane.decision)):
        assert replay["topics"][role] == {"topic": topic, "partitions": anchors(plane.bus.records(topic), lane.run_id)}
    assert replay["archive"]["objects"][0]["key"].startswith(f"{lane.run_id}/")
    conformance = lane.evidence("obs/environment_conformance.json")
    assert conformance["ok"] is True and len(conformance["checks"]) == 2 + 3 + 1 + 1 + 6
    assert {c["name"]: c["observed"] for c in conformance["checks"]}["platform role has no UPDATE on cases"] is False
    report = lane.evidence("obs/run_report.json")
    assert (report["reporter"], report["fencing_token"], report["closed"]) == ("reporter-one", 1, True)
    no_secret(plane, proc.stdout, proc.stderr, *all_evidence(lane))

    # A closed run is refused before anything: no lock taken; the only write is the conflict naming who closed it.
    line = refusal(reporter(lane, plane, "reporter-late"))
    assert "is closed" in line
    assert set(lane.evidence_keys()) - set(keys) == {"obs/conflict_reporter-late.json"}
    late = lane.evidence("obs/conflict_reporter-late.json")
    assert (late["holder"], late["holder_token"], late["state"]) == ("reporter-one", 1, "CLOSED")
    assert plane.lock(lane.run_id) == lock


def test_reporter_refuses_a_run_with_a_publish_ambiguous_receipt(plane: Plane, new_lane: Callable[[], Lane]) -> None:
    lane = new_lane()
    up = build(lane, plane, events=6, ambiguous=1)
    proc = reporter(lane, plane, "reporter-amb")
    line = refusal(proc)
    assert up.ambiguous[0] in line and "PUBLISH_AMBIGUOUS unreconciled = 0 (1 vs 0)" in line
    refused = lane.evidence("obs/refused_reporter-amb.json")
    assert refused["ambiguous_event_ids"] == up.ambiguous
    assert [c["check"] for c in refused["open"]] == ["PUBLISH_AMBIGUOUS unreconciled = 0"]
    assert refused["counts"]["receipts"]["PUBLISH_AMBIGUOUS"] == 1
    keys = lane.evidence_keys()
    assert "run_completed.json" not in keys and not set(OBS) & set(keys)
    lock = plane.lock(lane.run_id)
    assert lock is not None and (lock["holder"], lock["token"], lock["state"]) == ("reporter-amb", 1, "RELEASED")
    no_secret(plane, proc.stdout, proc.stderr, *all_evidence(lane))


def test_reporter_refuses_counts_that_do_not_close_then_closes_them(plane: Plane,
                                                                     new_lane: Callable[[], Lane]) -> None:
    lane = new_lane()
    up = build(lane, plane, events=6, missing_dla=1)  # the last decision (DECLINE) has no DLA row
    line = refusal(reporter(lane, plane, "reporter-short"))
    assert "admitted_events = dla_records (6 vs 5)" in line
    refused = lane.evidence("obs/refused_reporter-short.json")
    assert {c["check"] for c in refused["open"]} == {"admitted_events = dla_records",
                                                     "decisions_by_outcome = dla_by_outcome",
                                                     "cases = dla REVIEW + DECLINE",
                                                     "labels = reasons of the dla REVIEW and DECLINE decisions"}
    assert refused["counts"]["dla_records"] == 5 and "run_completed.json" not in lane.evidence_keys()
    lock = plane.lock(lane.run_id)
    assert lock is not None and lock["state"] == "RELEASED"

    up.insert_dla(up.decisions[-1])  # the missing row arrives: the released lock is taken again, with token 2
    proc = reporter(lane, plane, "reporter-next")
    assert proc.returncode == 0, proc.stderr
    assert lane.evidence("run_completed.json")["fencing_token"] == 2


def test_two_reporters_at_once_exactly_one_closes(plane: Plane, new_lane: Callable[[], Lane]) -> None:
    lane = new_lane()
    build(lane, plane, events=6)
    procs = {name: subprocess.Popen([sys.executable, "-m", "spine", "reporter"], cwd=ROOT, text=True,
                                    env=lane.env(**plane.env(SPINE_REPORTER_ID=name)), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
             for name in ("reporter-a", "reporter-b")}
    outcomes = {name: (*p.communicate(timeout=120), p.returncode) for name, p in procs.items()}
    winners = [name for name, (_, _, code) in outcomes.items() if code == 0]
    assert len(winners) == 1, outcomes
    (winner,), (loser,) = winners, set(procs) - set(winners)
    _, stderr, code = outcomes[loser]
    assert code == 1 and f"held by {winner} (token 1" in stderr, stderr
    conflict = lane.evidence(f"obs/conflict_{loser}.json")
    assert (conflict["reporter"], conflict["holder"], conflict["holder_token"]) == (loser, winner, 1)
    completed = lane.evidence("run_completed.json")
    assert (completed["closed_by"], completed["fencing_token"]) == (winner, 1)
    assert f"obs/refused_{loser}.json" not in lane.evidence_keys()


def test_a_held_lock_is_a_conflict_naming_its_holder(plane: Plane, new_lane: Callable[[], Lane]) -> None:
    lane = new_lane()
    build(lane, plane, events=3)
    plane.put_lock(lane.run_id, holder="manual-closeout", token=7, state="HELD", expires_at=int(time.time()) + 600)
    before = set(lane.evidence_keys())
    line = refusal(reporter(lane, plane, "reporter-blocked"))
    assert "held by manual-closeout (token 7, state HELD" in line
    conflict = lane.evidence("obs/conflict_reporter-blocked.json")
    assert (conflict["holder"], conflict["holder_token"], conflict["state"]) == ("manual-closeout", 7, "HELD")
    assert set(lane.evidence_keys()) - before == {"obs/conflict_reporter-blocked.json"}
    lock = plane.lock(lane.run_id)
    assert lock is not None and (lock["holder"], lock["token"], lock["state"]) == ("manual-closeout", 7, "HELD")


STALE = """
import sys
from spine.lock import Held, Lock
table, closed_run, other_run = sys.argv[1:4]
def attempt(lock):
    try:
        lock.fence("stale write")
        print("accepted")
    except Held as exc:
        print(f"refused: {exc}")
attempt(Lock(table, closed_run, "reporter-dead", lease_s=30, token=4))
taken = Lock(table, other_run, "reporter-x", lease_s=30)
print(f"taken {taken.take()}")
attempt(Lock(table, other_run, "reporter-x", lease_s=30, token=4))
attempt(taken)
"""


def test_an_expired_lock_is_taken_over_and_its_old_token_refused(plane: Plane,
                                                                 new_lane: Callable[[], Lane]) -> None:
    lane = new_lane()
    build(lane, plane, events=3)
    plane.put_lock(lane.run_id, holder="reporter-dead", token=4, state="HELD", expires_at=int(time.time()) - 5)
    proc = reporter(lane, plane, "reporter-new")
    assert proc.returncode == 0, proc.stderr
    assert lane.evidence("run_completed.json")["fencing_token"] == 5
    lock = plane.lock(lane.run_id)
    assert lock is not None and {k: v for k, v in lock.items() if k != "expires_at"} == {
        "platform_run_id": lane.run_id, "holder": "reporter-new", "token": 5, "state": "CLOSED"}
    # A write fenced with an old token is refused by the table, whoever presents it: the dead holder on the
    # closed run, and — on a second lock item — even the same holder name once its lock was taken over.
    other = f"{lane.run_id}-second"
    plane.put_lock(other, holder="reporter-x", token=4, state="HELD", expires_at=int(time.time()) - 5)
    stale = subprocess.run([sys.executable, "-c", STALE, plane.lock_table, lane.run_id, other], cwd=ROOT, text=True,
                           env=lane.aws_env(), capture_output=True, timeout=60, check=False)
    assert stale.returncode == 0, stale.stderr
    refused_closed, taken, refused_old, accepted = [x for x in stale.stdout.splitlines() if not x.startswith("{")]
    assert refused_closed.startswith("refused: stale write by reporter-dead refused: held by reporter-new (token 5, "
                                     "state CLOSED")
    assert taken == "taken 5"
    assert refused_old.startswith("refused: stale write by reporter-x refused: held by reporter-x (token 5, state HELD")
    assert accepted == "accepted"
