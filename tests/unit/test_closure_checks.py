"""P11 checks: a compliant recorded closure passes; each mutation is a Finding naming the fault."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from check_records import OTHER_RUN, RUN, SCENARIO, Mutation, Record, fails, mutated
from pipeline_records import (
    DECISION,
    EVENTS,
    FLAGGED,
    RTDL,
    TOPIC_NAMES,
    TRAFFIC,
    canonical,
    case_of,
    decision_at,
    decision_id,
    decision_value,
    enriched_value,
    labels_of,
    sha256,
    traffic_value,
)

from harness import pipeline
from harness.errors import Finding, HarnessError
from harness.phases import p11

WINNER, LOSER = "reporter-a-3f9c2e1d", "reporter-b-77d0a4b2"
TOKEN = 3
IMAGE = "sha256:" + "7dc9" * 16
CONFIG = "b23f" * 16
RECONCILIATION, REPORT, CONFORMANCE, ANCHORS = p11.OBS
COMPLETED = p11.COMPLETED
# Where run_completed.json keeps the sha256 of each obs object it closes (contract §6).
VOUCHES = "obs"

# The contract's counts of the run in pipeline_records (§6), by hand: 7 events, evt_02 sent twice, one probe
# quarantined; 3 APPROVE, 2 REVIEW, 2 DECLINE; 4 cases with 1 + 2 + 1 + 1 labels.
COUNTS: Record = {
    "receipts": {"ADMITTED": 7, "DUPLICATE": 1, "QUARANTINED": 1, "PUBLISH_AMBIGUOUS": 0},
    "admitted_events": 7, "traffic_records": 7, "traffic_events": 7, "enriched_records": 7, "enriched_events": 7,
    "decision_records": 7, "decisions": 7, "decisions_by_outcome": {"APPROVE": 3, "REVIEW": 2, "DECLINE": 2},
    "dla_records": 7, "dla_by_outcome": {"APPROVE": 3, "REVIEW": 2, "DECLINE": 2}, "cases": 4, "labels": 5,
}
CLOSES = ["admitted_events = traffic_events", "admitted_events = traffic_records", "admitted_events = enriched_events",
          "admitted_events = decisions", "admitted_events = decision_records", "admitted_events = dla_records",
          "decisions_by_outcome = dla_by_outcome", "cases = dla REVIEW + DECLINE",
          "labels = reasons of the dla REVIEW and DECLINE decisions", "PUBLISH_AMBIGUOUS unreconciled = 0"]


def _topic_record(partition: int, offset: int, value: bytes, identity: str, decision: Record | None = None) -> Record:
    """A run record as p11.observe keeps it."""
    return {"partition": partition, "offset": offset, "sha256": sha256(value), "identity": identity,
            "event_id": (decision or {}).get("event_id", identity),
            "decision": (decision or {}).get("decision"), "reasons": (decision or {}).get("reasons")}


def _topics() -> dict[str, list[Record]]:
    return {"traffic": [_topic_record(p, o, traffic_value(p, o), e) for e, (p, o, *_) in EVENTS.items()],
            "rtdl": [_topic_record(p, o, enriched_value(e), e) for e, (p, o, *_) in EVENTS.items()],
            "decision": [_topic_record(*decision_at(e), canonical(decision_value(e)), decision_id(e), decision_value(e))
                         for e in EVENTS]}


def anchors(records: list[Record]) -> dict[str, Record]:
    """The contract's replay anchors (§6), computed here: per partition the first and last offset, the record
    count, and sha256 of the lines "<offset> <sha256 of the value>\\n" in offset order."""
    by_partition: dict[str, list[Record]] = {}
    for r in sorted(records, key=lambda r: (r["partition"], r["offset"])):
        by_partition.setdefault(str(r["partition"]), []).append(r)
    return {p: {"first_offset": rs[0]["offset"], "last_offset": rs[-1]["offset"], "records": len(rs),
                "digest": sha256("".join(f"{r['offset']} {r['sha256']}\n" for r in rs).encode())}
            for p, rs in by_partition.items()}


def _conformance_checks() -> list[Record]:
    def check(name: str, expected: Any, observed: Any = None) -> Record:
        observed = expected if observed is None else observed
        return {"name": name, "expected": expected, "observed": observed, "ok": expected == observed}

    return [check("image digest", IMAGE), check("run config digest", CONFIG),
            *(check(f"topic {role} exists", {"topic": name, "exists": True}) for role, name in TOPIC_NAMES.items()),
            check("archive bucket exists", {"bucket": "fraud-platform-dev-min-archive", "exists": True}),
            *(check(f"platform role has no {p} on {t}", False, False)
              for t in ("case_labels", "cases", "dla_records") for p in ("DELETE", "UPDATE"))]


def vouch(obs: Record, *, key: str = VOUCHES) -> Record:
    """run_completed.json written last, vouching for the obs objects as stored; the digests as the harness reads
    the five objects back."""
    found = obs["claims"]
    found[COMPLETED] = {"platform_run_id": RUN, "scenario_run_id": SCENARIO, "closed_by": WINNER,
                        "fencing_token": TOKEN, "counts": copy.deepcopy(COUNTS),
                        key: {rel: sha256(canonical(found[rel])) for rel in p11.OBS}}
    obs["claim_sha256"] = {rel: sha256(canonical(claim)) for rel, claim in found.items()}
    return obs


def recomputed() -> Record:
    """obs/p11_recomputed.json's observation of a run the reporter closed: its counts, anchors and closure agree
    with what the harness read of the receipts, the three topics, the database and the lock table."""
    receipts = [{"event_id": "p4-invalid-980c9e9b", "status": "QUARANTINED", "partition": None, "offset": None},
                *({"event_id": e, "status": "ADMITTED", "partition": p, "offset": o}
                  for e, (p, o, *_) in EVENTS.items()),
                {"event_id": "evt_02", "status": "DUPLICATE", "partition": 0, "offset": 1}]
    topics = _topics()
    obs: Record = {
        "platform_run_id": RUN, "image_digest": IMAGE, "run_config_digest": CONFIG, "topic_names": dict(TOPIC_NAMES),
        "receipts": receipts, "topics": topics, "read_shortfalls": {},
        "dla": [{"decision_id": decision_id(e), "decision": EVENTS[e][3]} for e in sorted(EVENTS, key=decision_id)],
        "cases": sorted(case_of(e)["case_id"] for e in FLAGGED),
        "labels": sorted(label["label_id"] for e in FLAGGED for label in labels_of(e)),
        "lock": {"platform_run_id": RUN, "holder": WINNER, "token": TOKEN, "state": "CLOSED",
                 "expires_at": 1_795_618_000},
        "claims": {
            RECONCILIATION: {"platform_run_id": RUN, "counts": copy.deepcopy(COUNTS), "closed": True,
                             "closes": [{"check": c, "left": 7, "right": 7, "ok": True} for c in CLOSES]},
            REPORT: {"platform_run_id": RUN, "scenario_run_id": SCENARIO, "reporter": WINNER, "fencing_token": TOKEN,
                     "counts": copy.deepcopy(COUNTS), "closed": True, "environment_ok": True},
            CONFORMANCE: {"platform_run_id": RUN, "checks": _conformance_checks(), "ok": True},
            ANCHORS: {"platform_run_id": RUN, "archive": None,
                      "topics": {TOPIC_NAMES[role]: {"partitions": anchors(records)}
                                 for role, records in topics.items()}},
        },
    }
    return vouch(obs)


def p11_fails(obs: Record, family: str, match: str) -> Finding:
    with pytest.raises(Finding, match=match) as caught:
        p11.check({"observed": obs, "judged": p11.judge(obs)}, family)
    assert caught.value.check == f"P11.{family}"
    return caught.value


def _drop(role: str, identity: str) -> Mutation:
    return lambda o: o["topics"][role].remove(next(r for r in o["topics"][role] if r["identity"] == identity))


def _again(role: str, identity: str, offset: int = 9) -> Mutation:
    """The record published a second time (same value, a later offset)."""
    return lambda o: o["topics"][role].append({**next(r for r in o["topics"][role] if r["identity"] == identity),
                                               "offset": offset})


def _ambiguous(o: Record) -> None:
    o["receipts"].append({"event_id": "evt_08", "status": "PUBLISH_AMBIGUOUS", "partition": None, "offset": None})


def _drop_dla(event_id: str) -> Mutation:
    return lambda o: o["dla"].remove({"decision_id": decision_id(event_id), "decision": EVENTS[event_id][3]})


def _anchor(role: str, partition: str) -> Any:
    return lambda o: o["claims"][ANCHORS]["topics"][TOPIC_NAMES[role]]["partitions"][partition]


# --- recount and closes ---------------------------------------------------------------------------------------


def test_p11_recount_is_the_contracts_counts() -> None:
    obs = recomputed()
    assert p11.recount(obs) == COUNTS
    assert p11.closes(COUNTS, obs) == []


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(_drop("traffic", "evt_04"), r"admitted_events 7 != traffic_events 6", id="admitted-not-on-traffic"),
    pytest.param(_again("traffic", "evt_04"), r"traffic_events 7 != traffic_records 8", id="traffic-twice"),
    pytest.param(_drop("rtdl", "evt_04"), r"traffic_records 7 != enriched_events 6", id="not-enriched"),
    pytest.param(_drop("decision", decision_id("evt_04")), r"enriched_events 7 != decisions 6", id="not-decided"),
    pytest.param(_again("decision", decision_id("evt_04")), r"decisions 7 != decision_records 8",
                 id="decision-twice"),
    pytest.param(_drop_dla("evt_03"), r"decision_records 7 != dla_records 6", id="dla-row-missing"),
    pytest.param(_drop_dla("evt_03"), r"decisions by outcome \{'APPROVE': 3, 'REVIEW': 2, 'DECLINE': 2\} != DLA "
                 r"\{'APPROVE': 3, 'REVIEW': 2, 'DECLINE': 1\}", id="dla-row-missing-by-outcome"),
    pytest.param(lambda o: o["dla"][0].update(decision="REVIEW" if o["dla"][0]["decision"] == "APPROVE" else "APPROVE"),
                 r"decisions by outcome .* != DLA ", id="dla-outcome-differs"),
    pytest.param(lambda o: o["cases"].pop(), r"cases 3 != DLA REVIEW \+ DECLINE 4", id="case-missing"),
    pytest.param(lambda o: o["labels"].pop(), r"labels 4 != reasons of the REVIEW and DECLINE decisions 5",
                 id="label-missing"),
    pytest.param(_ambiguous, r"1 PUBLISH_AMBIGUOUS receipt\(s\) unreconciled", id="publish-ambiguous"),
])
def test_p11_closes_names_what_does_not_close(mutate: Mutation, match: str) -> None:
    obs = mutated(recomputed(), mutate)
    problems = p11.closes(p11.recount(obs), obs)
    assert [p for p in problems if re.search(match, p)], problems


def test_p11_judge_finds_no_problem_in_a_compliant_closure() -> None:
    obs = recomputed()
    before = copy.deepcopy(obs)
    verdict = p11.judge(obs)
    assert verdict == {"counts": COUNTS, "problems": {family: [] for family in p11.FAMILIES}}
    p11.check({"observed": obs, "judged": verdict}, *p11.FAMILIES)
    assert obs == before


# --- reconciliation -------------------------------------------------------------------------------------------


def _claimed(name: str) -> tuple[Mutation, Any]:
    """The reporter claims ``name`` one higher (for a count per status or outcome: its first entry)."""
    value = copy.deepcopy(COUNTS[name])
    if isinstance(value, dict):
        value[next(iter(value))] += 1
    else:
        value += 1
    return (lambda o: o["claims"][RECONCILIATION]["counts"].update({name: value})), value


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_p11_reconciliation_names_each_count_the_reporter_claims_otherwise(name: str) -> None:
    mutate, claimed = _claimed(name)
    p11_fails(mutated(recomputed(), mutate), "reconciliation",
              re.escape(f"{name}: the reporter claims {claimed!r}, the harness counts {COUNTS[name]!r}"))


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(lambda o: o["claims"][RECONCILIATION]["counts"].pop("labels"),
                 r"labels: the reporter claims None, the harness counts 5", id="count-omitted"),
    pytest.param(lambda o: o["claims"][RECONCILIATION]["counts"].update(archive_objects=4),
                 r"archive_objects: the reporter counts it, the contract does not", id="extra-count"),
    pytest.param(lambda o: o["claims"][RECONCILIATION].update(closed=False),
                 r"obs/reconciliation\.json does not claim closed: False", id="claim-not-closed"),
    pytest.param(lambda o: o["claims"][RECONCILIATION].pop("closed"),
                 r"obs/reconciliation\.json does not claim closed: None", id="claim-without-closed"),
    pytest.param(lambda o: o["claims"][RECONCILIATION]["closes"][7].update(left=3, ok=False),
                 r"the reporter's own close 'cases = dla REVIEW \+ DECLINE' is not ok", id="own-close-not-ok"),
    pytest.param(lambda o: o["claims"].update({RECONCILIATION: None}),
                 r"the reporter wrote no obs/reconciliation\.json", id="no-claim"),
    pytest.param(_drop_dla("evt_03"), r"the harness's recount does not close: decision_records 7 != dla_records 6",
                 id="recount-dla-row-missing"),
    pytest.param(_drop_dla("evt_03"), r"dla_records: the reporter claims 7, the harness counts 6",
                 id="claim-counts-a-missing-dla-row"),
    pytest.param(_ambiguous, r"the harness's recount does not close: 1 PUBLISH_AMBIGUOUS receipt\(s\) unreconciled",
                 id="recount-publish-ambiguous"),
    pytest.param(lambda o: o["read_shortfalls"].update(rtdl=f"6 distinct event_id of 7 expected on {RTDL}: timed out"),
                 rf"reading the rtdl topic: 6 distinct event_id of 7 expected on {RTDL}: timed out",
                 id="read-shortfall"),
])
def test_p11_reconciliation_names_each_fault(mutate: Mutation, match: str) -> None:
    p11_fails(mutated(recomputed(), mutate), "reconciliation", match)


# --- replay anchors -------------------------------------------------------------------------------------------


def test_p11_topic_digests_are_the_contracts_anchors() -> None:
    for role, records in _topics().items():
        assert pipeline.topic_digests(records) == anchors(records), role


def test_p11_replay_anchors_keyed_by_role_as_the_reference_reporter_writes_them_pass() -> None:
    def by_role(o: Record) -> None:
        topics = o["claims"][ANCHORS]["topics"]
        o["claims"][ANCHORS]["topics"] = {role: {"topic": name, **topics.pop(name)} for role, name in
                                          TOPIC_NAMES.items()}

    obs = mutated(recomputed(), by_role)
    assert p11.judge(obs)["problems"]["replay_anchors"] == []


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(lambda o: _anchor("traffic", "0")(o).update(digest="0" * 64),
                 r"traffic partition 0: the reporter anchors 0-3 \(4 records, digest 000000000000…\), the harness "
                 r"recomputes 0-3 \(4 records, digest [0-9a-f]{12}…\)", id="digest-differs"),
    pytest.param(lambda o: o["topics"]["decision"][1].update(sha256="ab" * 32),
                 r"decision partition 1: the reporter anchors 0-1 \(2 records, digest [0-9a-f]{12}…\), the harness "
                 r"recomputes 0-1 \(2 records", id="bytes-on-the-topic-differ"),
    pytest.param(lambda o: _anchor("rtdl", "1")(o).update(last_offset=3),
                 r"rtdl partition 1: the reporter anchors 0-3 \(3 records", id="last-offset-differs"),
    pytest.param(lambda o: _anchor("rtdl", "1")(o).update(first_offset=1),
                 r"rtdl partition 1: the reporter anchors 1-2 \(3 records", id="first-offset-differs"),
    pytest.param(lambda o: _anchor("decision", "0")(o).update(records=2),
                 r"decision partition 0: the reporter anchors 0-2 \(2 records", id="record-count-differs"),
    pytest.param(_again("traffic", "evt_05", offset=3),
                 r"traffic partition 1: the reporter anchors 0-2 \(3 records, digest [0-9a-f]{12}…\), the harness "
                 r"recomputes 0-3 \(4 records", id="a-record-the-reporter-did-not-anchor"),
    pytest.param(lambda o: o["claims"][ANCHORS]["topics"][RTDL]["partitions"].pop("1"),
                 r"rtdl partition 1: the reporter anchors nothing, the harness recomputes 0-2 \(3 records",
                 id="partition-missing"),
    pytest.param(lambda o: o["claims"][ANCHORS]["topics"][DECISION]["partitions"].update(
        {"5": {"first_offset": 0, "last_offset": 0, "records": 1, "digest": "cd" * 32}}),
                 r"decision partition 5: the reporter anchors 0-0 \(1 records, digest cdcdcdcdcdcd…\), the harness "
                 r"recomputes nothing", id="partition-extra"),
    pytest.param(lambda o: o["claims"][ANCHORS]["topics"].pop(DECISION),
                 rf"the replay anchors have no entry for the decision topic {DECISION}", id="topic-missing"),
    pytest.param(lambda o: o["claims"][ANCHORS]["topics"].update(
        {"fp.bus.traffic.v0": o["claims"][ANCHORS]["topics"].pop(TRAFFIC)}),
                 rf"the replay anchors have no entry for the traffic topic {TRAFFIC}", id="topic-misnamed"),
    pytest.param(lambda o: o["claims"].update({ANCHORS: None}), r"the reporter wrote no obs/replay_anchors\.json",
                 id="no-claim"),
])
def test_p11_replay_anchors_name_each_anchor_the_harness_does_not_recompute(mutate: Mutation, match: str) -> None:
    p11_fails(mutated(recomputed(), mutate), "replay_anchors", match)


# --- run_completed ----------------------------------------------------------------------------------------------


def _completed(**changes: Any) -> Mutation:
    return lambda o: o["claims"][COMPLETED].update(changes)


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(lambda o: (o["claims"].update({COMPLETED: None}), o["claim_sha256"].pop(COMPLETED)),
                 r"the reporter wrote no run_completed\.json", id="missing"),
    pytest.param(_completed(platform_run_id=OTHER_RUN), rf"run_completed\.json names run '{OTHER_RUN}'",
                 id="other-run"),
    pytest.param(lambda o: o["claims"][COMPLETED]["counts"].update(cases=5),
                 r"run_completed\.json carries counts that differ from the harness's recount", id="counts-differ"),
    pytest.param(_completed(counts=None), r"run_completed\.json carries counts that differ", id="no-counts"),
    pytest.param(_completed(closed_by=LOSER), rf"run_completed\.json says closed by '{LOSER}' with token 3; the lock "
                 rf"table shows \{{.*'holder': '{WINNER}'", id="closed-by-not-the-lock-holder"),
    pytest.param(_completed(fencing_token=2), r"run_completed\.json says closed by .* with token 2; the lock table "
                 r"shows \{.*'token': 3", id="token-not-the-locks"),
    pytest.param(_completed(fencing_token=None), r"run_completed\.json says closed by .* with token None",
                 id="no-token"),
    pytest.param(lambda o: o["lock"].update(state="HELD"), r"the lock table shows \{.*'state': 'HELD'",
                 id="lock-not-closed"),
    pytest.param(lambda o: o["lock"].update(state="RELEASED"), r"the lock table shows \{.*'state': 'RELEASED'",
                 id="lock-released"),
    pytest.param(lambda o: o.update(lock=None), r"run_completed\.json says closed by .*; the lock table shows \{\}",
                 id="no-lock-item"),
    *[pytest.param(lambda o, rel=rel: o["claims"][COMPLETED][VOUCHES].update({rel: "0" * 64}),
                   rf"run_completed\.json vouches for {re.escape(rel)} with sha256 000000000000…, the object hashes "
                   r"to [0-9a-f]{12}…", id=f"vouches-other-{rel.split('/')[1].split('.')[0]}") for rel in p11.OBS],
    pytest.param(lambda o: o["claim_sha256"].update({REPORT: "ef" * 32}),
                 r"vouches for obs/run_report\.json with sha256 [0-9a-f]{12}…, the object hashes to efefefefefef…",
                 id="obs-object-rewritten-after-closure"),
    pytest.param(lambda o: o["claims"][COMPLETED][VOUCHES].pop(CONFORMANCE),
                 r"vouches for obs/environment_conformance\.json with sha256 None…", id="obs-object-not-vouched"),
    pytest.param(lambda o: (o["claims"].update({ANCHORS: None}), o["claim_sha256"].pop(ANCHORS)),
                 r"run_completed\.json exists but obs/replay_anchors\.json does not", id="obs-object-missing"),
])
def test_p11_run_completed_names_a_closure_the_lock_or_the_obs_objects_contradict(mutate: Mutation,
                                                                                  match: str) -> None:
    p11_fails(mutated(recomputed(), mutate), "run_completed", match)


def test_p11_run_completed_accepts_the_obs_digests_as_the_reference_reporter_writes_them() -> None:
    obs = recomputed()
    obs["claims"].pop(COMPLETED)
    obs = vouch(obs, key="obs")
    assert p11.judge(obs)["problems"]["run_completed"] == []


# --- conformance ----------------------------------------------------------------------------------------------


def _checks(o: Record) -> list[Record]:
    return o["claims"][CONFORMANCE]["checks"]


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(lambda o: next(c for c in _checks(o) if c["name"] == "platform role has no UPDATE on cases").update(
        observed=True, ok=False), r"environment conformance check 'platform role has no UPDATE on cases' failed: "
                 r"expected False, observed True", id="platform-role-may-update"),
    pytest.param(lambda o: _checks(o)[0].update(observed="sha256:" + "00" * 32, ok=False),
                 rf"environment conformance check 'image digest' failed: expected '{IMAGE}', observed 'sha256:0000",
                 id="image-differs"),
    pytest.param(lambda o: _checks(o)[2].pop("ok"), r"environment conformance check 'topic traffic exists' failed",
                 id="check-without-ok"),
    pytest.param(lambda o: _checks(o).clear(), r"obs/environment_conformance\.json holds no check", id="no-checks"),
    pytest.param(lambda o: _checks(o).pop(0),
                 rf"no conformance check shows the run's image digest {IMAGE} both expected and observed",
                 id="no-image-check"),
    pytest.param(lambda o: _checks(o).pop(1),
                 rf"no conformance check shows the run's run config digest {CONFIG} both expected and observed",
                 id="no-config-check"),
    pytest.param(lambda o: _checks(o)[2].update(observed={"topic": "x", "exists": False}),
                 r"check 'topic traffic exists' says ok, but expected .* is not observed", id="ok-but-differs"),
    pytest.param(lambda o: _checks(o)[0].update(expected="sha256:" + "11" * 32, observed="sha256:" + "11" * 32),
                 rf"no conformance check shows the run's image digest {IMAGE} both expected and observed",
                 id="image-of-another-run"),
    pytest.param(lambda o: o["claims"].update({CONFORMANCE: None}),
                 r"the reporter wrote no obs/environment_conformance\.json", id="no-claim"),
])
def test_p11_conformance_names_each_failed_or_missing_check(mutate: Mutation, match: str) -> None:
    p11_fails(mutated(recomputed(), mutate), "conformance", match)


def test_p11_check_names_only_the_families_asked_for() -> None:
    obs = mutated(recomputed(), lambda o: _anchor("traffic", "0")(o).update(digest="0" * 64))
    result = {"observed": obs, "judged": p11.judge(obs)}
    p11.check(result, "reconciliation", "run_completed", "conformance")
    with pytest.raises(Finding, match=r"\[P11\.replay_anchors\]") as caught:
        p11.check(result, "replay_anchors")
    assert len(caught.value.details) == 1


# --- single writer: a manual closeout holds the lock -------------------------------------------------------------

MANUAL = "manual-closeout-cert-20260101t000000z"
BLOCKED = "reporter-while-held-5e1f0a9c"


def _conflict(reporter: str, holder: str, token: int, state: str = "HELD") -> Record:
    """obs/conflict_<reporter>.json as a refused take writes it (contract §6)."""
    return {"platform_run_id": RUN, "reporter": reporter, "reporter_token": None,
            "refused": f"the lock for run {RUN} is held by {holder} (token {token}, state {state})",
            "holder": holder, "holder_token": token, "state": state, "expires_at": 1_795_618_000}


def manual_closeout() -> Record:
    """obs/p11_manual_closeout.json: the reporter ran while the manual closeout held the lock."""
    item = {"platform_run_id": RUN, "holder": MANUAL, "token": 1, "state": "HELD", "expires_at": 1_795_618_000}
    return {"platform_run_id": RUN, "holder": MANUAL, "token": 1, "taken": item,
            "reporter": {"reporter": BLOCKED, "exit_code": 1,
                         "stderr": f"reporter: the lock for run {RUN} is held by {MANUAL} (token 1, state HELD); "
                                   f"conflict evidence obs/conflict_{BLOCKED}.json",
                         "conflict": _conflict(BLOCKED, MANUAL, 1), "refused": None},
            "run_completed_present": False, "released": {"accepted": True, "item": {**item, "state": "RELEASED"}}}


def test_p11_manual_blocks_passes_a_reporter_that_names_the_manual_closeout() -> None:
    p11.check_manual_blocks(manual_closeout())


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(lambda r: r["reporter"].update(exit_code=0),
                 rf"the reporter exited 0 while {MANUAL} held the lock, not 1", id="reporter-exit-0"),
    pytest.param(lambda r: r["reporter"].update(exit_code=2), r"the reporter exited 2 while .* held the lock, not 1",
                 id="reporter-crashed"),
    pytest.param(lambda r: r["reporter"].update(conflict=None),
                 rf"the reporter wrote no obs/conflict_{BLOCKED}\.json", id="no-conflict-evidence"),
    pytest.param(lambda r: r["reporter"]["conflict"].update(holder=WINNER),
                 rf"the conflict evidence names '{WINNER}' token 1, the lock is held by '{MANUAL}' token 1",
                 id="conflict-names-another-holder"),
    pytest.param(lambda r: r["reporter"]["conflict"].update(holder_token=7),
                 rf"the conflict evidence names '{MANUAL}' token 7, the lock is held by '{MANUAL}' token 1",
                 id="conflict-names-another-token"),
    pytest.param(lambda r: r["reporter"]["conflict"].pop("holder_token"),
                 r"the conflict evidence names .* token None", id="conflict-without-token"),
    pytest.param(lambda r: r.update(run_completed_present=True),
                 r"run_completed\.json was written while the manual closeout held the lock", id="closed-anyway"),
    pytest.param(lambda r: r.update(released={"accepted": False, "refused_by": "the lock table's condition",
                                              "error": "ConditionalCheckFailed"}),
                 r"the manual closeout could not release its own lock: \{'accepted': False", id="lock-taken-over"),
])
def test_p11_manual_blocks_names_a_reporter_that_wrote_past_the_held_lock(mutate: Mutation, match: str) -> None:
    finding = fails(p11.check_manual_blocks, mutated(manual_closeout(), mutate), match)
    assert finding.check == "P11.single_writer"


# --- fencing: a stale token --------------------------------------------------------------------------------------

ACCEPTED = {"accepted": True, "item": {"platform_run_id": RUN, "holder": MANUAL, "token": 2, "state": "HELD"}}
REFUSED = {"accepted": False, "refused_by": "the lock table's condition",
           "error": "ConditionalCheckFailedException: The conditional request failed"}


def stale_token() -> Record:
    """obs/p11_stale_token.json: the lock taken again (token 2); token 1 refused, token 2 accepted, released."""
    return {"platform_run_id": RUN, "holder": MANUAL, "stale_token": 1, "current_token": 2,
            "fenced_with_stale": dict(REFUSED), "fenced_with_current": copy.deepcopy(ACCEPTED),
            "released": copy.deepcopy(ACCEPTED)}


def test_p11_stale_refused_passes_a_table_that_refuses_the_earlier_token() -> None:
    p11.check_stale_refused(stale_token())


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(lambda r: r.update(current_token=1), r"taking the lock again gave token 1, not above the earlier 1",
                 id="token-not-incremented"),
    pytest.param(lambda r: r.update(fenced_with_stale=copy.deepcopy(ACCEPTED)),
                 r"a fenced write with the stale token 1 was accepted", id="stale-token-accepted"),
    pytest.param(lambda r: r.update(fenced_with_current=dict(REFUSED)),
                 r"a fenced write with the current token 2 was refused", id="current-token-refused"),
    pytest.param(lambda r: r.update(released=dict(REFUSED)),
                 r"the lock could not be released with the current token", id="release-refused"),
])
def test_p11_stale_refused_names_a_table_that_does_not_fence(mutate: Mutation, match: str) -> None:
    finding = fails(p11.check_stale_refused, mutated(stale_token(), mutate), match)
    assert finding.check == "P11.fencing"


# --- single writer: two reporters at once ------------------------------------------------------------------------


def two_reporters() -> Record:
    """obs/p11_two_reporters.json: WINNER closed the run; LOSER exited 1 naming WINNER as the holder."""
    return {"platform_run_id": RUN,
            "reporters": [{"reporter": WINNER, "exit_code": 0, "conflict": None, "refused": None, "output": ""},
                          {"reporter": LOSER, "exit_code": 1, "conflict": _conflict(LOSER, WINNER, TOKEN),
                           "refused": None, "output": f"reporter: the lock for run {RUN} is held by {WINNER}"}],
            "lock": {"platform_run_id": RUN, "holder": WINNER, "token": TOKEN, "state": "CLOSED",
                     "expires_at": 1_795_618_000},
            "run_completed": {"platform_run_id": RUN, "scenario_run_id": SCENARIO, "closed_by": WINNER,
                              "fencing_token": TOKEN, "counts": copy.deepcopy(COUNTS)}}


def _reporter(reporter: str) -> Any:
    return lambda r: next(x for x in r["reporters"] if x["reporter"] == reporter)


@pytest.mark.parametrize("order", ["winner-first", "loser-first"])
def test_p11_one_closes_passes_one_winner_and_one_named_loser(order: str) -> None:
    record = two_reporters()
    if order == "loser-first":
        record["reporters"].reverse()
    p11.check_one_closes(record)


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(lambda r: _reporter(LOSER)(r).update(exit_code=0, conflict=None),
                 rf"2 of two reporters started at once exited 0: \[\('{WINNER}', 0\), \('{LOSER}', 0\)\]",
                 id="both-exit-0"),
    pytest.param(lambda r: (_reporter(WINNER)(r).update(exit_code=1, conflict=_conflict(WINNER, LOSER, TOKEN)),
                            r.update(run_completed=None)),
                 rf"0 of two reporters started at once exited 0: \[\('{WINNER}', 1\), \('{LOSER}', 1\)\]",
                 id="none-exit-0"),
    pytest.param(lambda r: r.update(run_completed=None), r"neither reporter wrote run_completed\.json",
                 id="no-run-completed"),
    pytest.param(lambda r: r["run_completed"].update(closed_by=LOSER),
                 rf"run_completed\.json names '{LOSER}', the reporter that exited 0 is '{WINNER}'",
                 id="winner-not-named-in-run-completed"),
    pytest.param(lambda r: r["lock"].update(state="HELD"),
                 rf"the lock table shows \{{.*'state': 'HELD'.*\}}, not CLOSED by {WINNER}", id="lock-not-closed"),
    pytest.param(lambda r: r["lock"].update(holder=LOSER), rf"the lock table shows .*, not CLOSED by {WINNER}",
                 id="lock-closed-by-the-loser"),
    pytest.param(lambda r: r.update(lock=None), rf"the lock table shows \{{\}}, not CLOSED by {WINNER}",
                 id="no-lock-item"),
    pytest.param(lambda r: r["run_completed"].update(fencing_token=TOKEN - 1),
                 rf"run_completed\.json carries fencing token {TOKEN - 1}, the lock {TOKEN}", id="token-mismatch"),
    pytest.param(lambda r: _reporter(LOSER)(r).update(conflict=None),
                 rf"{LOSER} wrote no obs/conflict_{LOSER}\.json", id="loser-without-conflict-evidence"),
    pytest.param(lambda r: _reporter(LOSER)(r)["conflict"].update(holder=MANUAL),
                 rf"{LOSER}'s conflict evidence names '{MANUAL}', the lock went to '{WINNER}'",
                 id="loser-names-someone-else"),
    pytest.param(lambda r: _reporter(LOSER)(r).update(exit_code=2), rf"{LOSER} exited 2, not 1", id="loser-crashed"),
    pytest.param(lambda r: _reporter(LOSER)(r).update(exit_code=None), rf"{LOSER} exited None, not 1",
                 id="loser-never-finished"),
])
def test_p11_one_closes_names_a_contention_without_a_single_writer(mutate: Mutation, match: str) -> None:
    finding = fails(p11.check_one_closes, mutated(two_reporters(), mutate), match)
    assert finding.check == "P11.single_writer"


# --- a closed run stays closed ------------------------------------------------------------------------------------


def after_close() -> Record:
    """obs/p11_after_close.json: a later reporter refused (the run is closed), the earlier holder's fence and
    take refused by the table, the lock CLOSED and run_completed.json byte for byte as it was."""
    return {"platform_run_id": RUN,
            "reporter_after_close": {"reporter": "reporter-after-close-0c1d2e3f", "exit_code": 1,
                                     "stderr": f"reporter: run {RUN} is closed: run_completed.json exists; nothing "
                                               "written", "conflict": None, "refused": None},
            "fenced_with_old_token": dict(REFUSED), "retake": dict(REFUSED),
            "lock": {"platform_run_id": RUN, "holder": WINNER, "token": TOKEN, "state": "CLOSED"},
            "run_completed_unchanged": True, "winner": [WINNER]}


def test_p11_closed_stays_closed_passes_refusals_after_closure() -> None:
    p11.check_closed_stays_closed(after_close())


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(lambda r: r["reporter_after_close"].update(exit_code=0),
                 r"a reporter started after closure exited 0, not 1", id="reporter-ran-again"),
    pytest.param(lambda r: r.update(fenced_with_old_token=copy.deepcopy(ACCEPTED)),
                 r"fenced with old token on the closed run was accepted", id="fence-accepted"),
    pytest.param(lambda r: r.update(retake=copy.deepcopy(ACCEPTED)), r"retake on the closed run was accepted",
                 id="lock-retaken"),
    pytest.param(lambda r: r["lock"].update(state="RELEASED"),
                 r"the lock no longer shows the run CLOSED: \{.*'state': 'RELEASED'", id="lock-reopened"),
    pytest.param(lambda r: r.update(lock=None), r"the lock no longer shows the run CLOSED: None", id="lock-gone"),
    pytest.param(lambda r: r.update(run_completed_unchanged=False),
                 r"run_completed\.json is missing or changed after closure", id="run-completed-changed"),
])
def test_p11_closed_stays_closed_names_a_write_after_closure(mutate: Mutation, match: str) -> None:
    finding = fails(p11.check_closed_stays_closed, mutated(after_close(), mutate), match)
    assert finding.check == "P11.fencing"


# --- closure refused --------------------------------------------------------------------------------------------

FAULTS = {label: fault for fault, label in p11.FAULTS.items()}


def _refused_counts(*, ambiguous: int, admitted: int) -> Record:
    zero = {"APPROVE": 0, "REVIEW": 0, "DECLINE": 0}
    return {"receipts": {"ADMITTED": admitted, "DUPLICATE": 0, "QUARANTINED": 0, "PUBLISH_AMBIGUOUS": ambiguous},
            "admitted_events": admitted, "traffic_records": 0, "traffic_events": 0, "enriched_records": 0,
            "enriched_events": 0, "decision_records": 0, "decisions": 0, "decisions_by_outcome": dict(zero),
            "dla_records": 0, "dla_by_outcome": dict(zero), "cases": 0, "labels": 0}


def refused_closure(label: str) -> Record:
    """obs/fault_closure_<label>.json: the reporter refused the run, its refusal as spine/reporter.py writes it."""
    run, event_id = f"{RUN}-closure-{label}", f"evt_closure_{label.replace('-', '_')}"
    reporter = f"reporter-{label}-9a8b7c6d"
    receipt = {"index": 0, "event_id": event_id, "payload_sha256": "0" * 64, "reason": None, "quarantine": None,
               "topic": TRAFFIC, "partition": None, "offset": None, "status": "PUBLISH_AMBIGUOUS"}
    if label == "ambiguous":
        opened = [{"check": "PUBLISH_AMBIGUOUS unreconciled = 0", "left": 1, "right": 0, "ok": False}]
        counts, ambiguous = _refused_counts(ambiguous=1, admitted=0), [event_id]
        named = f"PUBLISH_AMBIGUOUS unreconciled = 0 (1 vs 0); PUBLISH_AMBIGUOUS left for {event_id}"
    else:
        receipt.update(status="ADMITTED", partition=0, offset=10**9)
        opened = [{"check": f"admitted_events = {name}", "left": 1, "right": 0, "ok": False}
                  for name in ("traffic_events", "traffic_records", "enriched_events", "decisions",
                               "decision_records", "dla_records")]
        counts, ambiguous = _refused_counts(ambiguous=0, admitted=1), []
        named = "; ".join(f"{c['check']} (1 vs 0)" for c in opened)
    reads = {role: {"topic": name, "complete": False, "target": 1} for role, name in TOPIC_NAMES.items()}
    return {"fault": FAULTS[label], "platform_run_id": run, "event_id": event_id, "receipt": receipt,
            "reporter": {"reporter": reporter, "exit_code": 1, "conflict": None,
                         "stderr": f"reporter: run {run} does not close: {named}; evidence "
                                   f"obs/refused_{reporter}.json; lock released",
                         "refused": {"platform_run_id": run, "reporter": reporter, "fencing_token": 1,
                                     "counts": counts, "open": opened, "ambiguous_event_ids": ambiguous,
                                     "reads": reads}},
            "run_completed_present": False,
            "lock": {"platform_run_id": run, "holder": reporter, "token": 1, "state": "RELEASED"}}


@pytest.mark.parametrize("label", sorted(FAULTS))
def test_p11_closure_refused_passes_a_refusal_naming_its_fault(label: str) -> None:
    p11.check_closure_refused(refused_closure(label))


def _unnamed(r: Record) -> None:
    """A refusal that names only another close (a minimal refusal document: no counts, no reads)."""
    other = {"check": "cases = dla REVIEW + DECLINE", "left": 1, "right": 0, "ok": False}
    r["reporter"].update(stderr=f"reporter: run {r['platform_run_id']} does not close: cases = dla REVIEW + DECLINE "
                                "(1 vs 0)", refused={"open": [other]})


@pytest.mark.parametrize("label", sorted(FAULTS))
@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(lambda r: r["reporter"].update(exit_code=0), r"the reporter exited 0 for a run with .*, not 1",
                 id="exit-0"),
    pytest.param(lambda r: r["reporter"].update(exit_code=2), r"the reporter exited 2 for a run with .*, not 1",
                 id="exit-2-crash"),
    pytest.param(lambda r: r.update(run_completed_present=True), r"run_completed\.json was written for a run with ",
                 id="closed-anyway"),
    pytest.param(lambda r: r["reporter"].update(refused=None), r"the reporter wrote no obs/refused_reporter-\S+\.json",
                 id="no-refusal-evidence"),
    pytest.param(_unnamed,
                 r"the refusal does not name the fault \(evt_closure_\w+ / "
                 r"(PUBLISH_AMBIGUOUS|admitted_events = traffic)\)",
                 id="fault-unnamed"),
    pytest.param(lambda r: r["lock"].update(state="HELD"), r"the refusing reporter left the lock .*'state': 'HELD'",
                 id="lock-left-held"),
])
def test_p11_closure_refused_names_a_reporter_that_did_not_refuse(label: str, mutate: Mutation, match: str) -> None:
    finding = fails(p11.check_closure_refused, mutated(refused_closure(label), mutate), match)
    assert finding.check == "P11.closure_refused"


@pytest.mark.parametrize("label", sorted(FAULTS))
def test_p11_closure_refused_names_a_full_refusal_that_names_another_close(label: str) -> None:
    def other_close(r: Record) -> None:
        close = {"check": "cases = dla REVIEW + DECLINE", "left": 1, "right": 0, "ok": False}
        r["reporter"]["refused"].update(open=[close], ambiguous_event_ids=[])
        r["reporter"].update(stderr=f"reporter: run {r['platform_run_id']} does not close: cases = dla REVIEW + "
                                    "DECLINE (1 vs 0)")

    fails(p11.check_closure_refused, mutated(refused_closure(label), other_close), r"does not name the fault")


def test_p11_closure_refused_names_a_refusal_that_closed_the_lock() -> None:
    record = mutated(refused_closure("ambiguous"), lambda r: r["lock"].update(state="CLOSED"))
    fails(p11.check_closure_refused, record, r"the refusing reporter left the lock")


# --- identities, an empty run, writes without the lock, contention not shown ------------------------------------


def test_p11_equal_counts_of_the_wrong_records_do_not_close() -> None:
    def forged(o: Record) -> None:  # one enriched event replaced by another id: every count still closes
        o["topics"]["rtdl"][0]["identity"] = "evt_forged"

    with pytest.raises(Finding, match=r"the rtdl topic's event ids are not the admitted ones: missing \['evt_01'\], "
                                      r"extra \['evt_forged'\]"):
        p11.check({"judged": p11.judge(mutated(recomputed(), forged))}, "reconciliation")


def test_p11_a_decision_id_the_dla_lacks_does_not_close() -> None:
    def swapped(o: Record) -> None:
        o["dla"][0]["decision_id"] = "dec_other"

    with pytest.raises(Finding, match=r"the decision topic's decision ids are not the DLA's"):
        p11.check({"judged": p11.judge(mutated(recomputed(), swapped))}, "reconciliation")


def test_p11_an_empty_run_closes_nothing() -> None:
    problems = p11.identities({"receipts": [], "topics": {"traffic": [], "rtdl": [], "decision": []}, "dla": []})
    assert problems == []  # nothing differs ...
    judged = p11.judge(mutated(recomputed(), lambda o: o.update(receipts=[])))
    assert "the run has no ADMITTED receipt: an empty run closes nothing" in judged["problems"]["reconciliation"]


def test_p11_manual_blocks_names_an_obs_object_written_without_the_lock() -> None:
    record = manual_closeout()
    record["written_while_held"] = [f"obs/conflict_{BLOCKED}.json"]
    p11.check_manual_blocks(record)
    record["written_while_held"].append("obs/reconciliation.json")
    with pytest.raises(Finding, match=r"the reporter wrote without the lock: \['obs/reconciliation\.json'\]"):
        p11.check_manual_blocks(record)


def test_p11_two_reporters_that_did_not_overlap_show_no_contention() -> None:
    record = two_reporters()
    _reporter(LOSER)(record)["conflict"]["state"] = "CLOSED"  # the loser came after the winner had closed
    with pytest.raises(HarnessError, match=r"did not overlap, so this run shows no contention") as caught:
        p11.check_one_closes(record)
    assert not isinstance(caught.value, Finding)  # could not judge, not a platform failure


def test_p11_two_reporters_whose_processes_did_not_run_at_once_show_no_contention() -> None:
    """Even when the loser wrote no conflict file at all, the harness's own clock shows the race never happened."""
    record = two_reporters()
    record["ran"] = [[100.0, 101.5], [101.6, 102.0]]
    _reporter(LOSER)(record).update(conflict=None)
    with pytest.raises(HarnessError, match=r"did not run at the same time") as caught:
        p11.check_one_closes(record)
    assert not isinstance(caught.value, Finding)
    record["ran"] = [[100.0, 101.5], [100.1, 101.2]]  # they overlapped: the missing conflict file is the finding
    with pytest.raises(Finding, match=rf"{LOSER} wrote no obs/conflict_"):
        p11.check_one_closes(record)
