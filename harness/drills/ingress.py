"""Ingress drills: IG's writer key rotated (D1), the broker frozen (D2), IG killed mid-batch (D3), a poison event (D7).

Each drill streams its own run with a paced WSP, injects its fault mid-stream through a real action, and
records what the harness read (``drills/<name>/observed_fault.json``) before ``judge_*``, a pure function of
that record, says what did not fail closed. After the rollback every drill ends on ``exactly_once`` (its
reading in ``observed_after.json``) and on the run settled and closed like a rung's (``runs.settled``).
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections import Counter
from typing import Any

from harness import closeout, drills, ig_client, pipeline
from harness.aws import dynamodb, s3
from harness.compute import Started
from harness.drills import faults, runs
from harness.errors import HarnessError
from harness.kafka.consume import read_all
from harness.phases import claims, p01, p02, p04, p11
from harness.session import Certification
from harness.wait import wait_until

KEY_WINDOW_S = 1.0  # contract §5: a rotated writer key is refused within a second
CLOCK_SLACK_MS = 100  # IG stamps arrival in whole ms on its own clock
REFUSED = (401, 403)
STREAM_S = 5.0  # a paced WSP takes about this long for the run: the fault lands mid-stream


def _event(pins: p01.Pins, event_id: str, **payload: Any) -> dict[str, Any]:
    return {"event_id": event_id, "event_type": "card_transaction", "platform_run_id": pins.platform_run_id,
            "scenario_run_id": pins.scenario_run_id, "ts_utc": "2026-01-01T00:00:00Z",
            "payload": {"card_id": "card-drill", "merchant_id": "merchant-drill", "amount_minor": 100,
                        "currency": "EUR", "channel": "ecom", **payload}}


def _brief(ids: list[Any]) -> str:
    return f"{sorted(map(str, ids))[:5]}{' ...' if len(ids) > 5 else ''}"


def _settle(cert: Certification, j: drills.Journal, pins: p01.Pins, view_ids: list[str]) -> None:
    """The steady state after the rollback: every event exactly once, then the run closed like a rung's."""
    j.expect("steady-state-after", runs.health_problems(j.step("steady-state-after", "every daemon runs and IG "
                                                               "answers ready", lambda: runs.health(cert))))
    after = j.step("steady-state-after", "every stream-view event has one ADMITTED receipt and one record on the "
                   "traffic topic; every record of the run has its receipt; no ambiguity left",
                   lambda: {"receipts": faults.receipts(cert, pins), "topic": faults.topic(cert)},
                   summary=lambda o: {"receipts": len(o["receipts"]), "topic_records": len(o["topic"])})
    cert.evidence(f"{j.directory}/observed_after.json", {"platform_run_id": pins.platform_run_id,
                                                         "view_event_ids": view_ids, **after})
    j.expect("steady-state-after", exactly_once(pins.platform_run_id, view_ids, after["receipts"], after["topic"]))
    settled = j.step("steady-state-after", "ingest reconciles, decisions and cases complete, and the run closes with "
                     "the harness's recount", lambda: runs.settled(cert, pins),
                     summary=lambda s: {"closer_exit": s["closer"]["exit_code"], "problems": s["problems"]})
    j.expect("steady-state-after", settled["problems"])


def _record(cert: Certification, j: drills.Journal, observed: dict[str, Any]) -> None:
    """The raw observation of the fault, in the bundle before it is judged (a verdict re-checkable offline)."""
    cert.evidence(f"{j.directory}/observed_fault.json", observed)


def exactly_once(run: str, view_ids: list[str], receipts: list[dict[str, Any]],
                 topic: list[dict[str, Any]]) -> list[str]:
    """Nothing lost, nothing twice, nothing unreceipted: the run's receipts against its records on the topic."""
    problems: list[str] = []
    view = set(view_ids)
    admitted = [r for r in receipts if r.get("status") == "ADMITTED"]
    times = Counter(str(r["event_id"]) for r in admitted)
    mine = [e for e in topic if e.get("platform_run_id") == run]
    copies = Counter(str(e["event_id"]) for e in mine)
    not_once = [e for e in view_ids if times[e] != 1]
    if not_once:
        problems.append(f"{len(not_once)} stream-view event(s) without exactly one ADMITTED receipt: "
                        + ", ".join(f"{e} ({times[e]})" for e in not_once[:5]))
    lost_or_twice = [e for e in view_ids if copies[e] != 1]
    if lost_or_twice:
        problems.append(f"{len(lost_or_twice)} stream-view event(s) not on the traffic topic exactly once: "
                        + ", ".join(f"{e} ({copies[e]})" for e in lost_or_twice[:5]))
    at = {(e["partition"], e["offset"]): e for e in topic}
    wrong = [r for r in admitted if (at.get((r.get("partition"), r.get("offset"))) or {}).get("event_id")
             != r["event_id"]]
    problems += [f"ADMITTED {r['event_id']} names {r.get('partition')}/{r.get('offset')}, which holds "
                 f"{(at.get((r.get('partition'), r.get('offset'))) or {}).get('event_id', 'no record')}"
                 for r in wrong[:5]]
    receipted = {(r.get("partition"), r.get("offset")) for r in admitted}
    bare = [e for e in mine if (e["partition"], e["offset"]) not in receipted]
    if bare:
        problems.append(f"{len(bare)} record(s) of the run on the traffic topic without an ADMITTED receipt: "
                        + ", ".join(f"{e['partition']}/{e['offset']} ({e['event_id']})" for e in bare[:5]))
    foreign = sorted({str(e["event_id"]) for e in mine} - view) + sorted(set(times) - view)
    if foreign:
        problems.append(f"admitted or on the topic but not in the stream view: {_brief(list(dict.fromkeys(foreign)))}")
    open_ = sorted({str(r["event_id"]) for r in receipts if r.get("status") == "PUBLISH_AMBIGUOUS"} - set(times))
    if open_:
        problems.append(f"PUBLISH_AMBIGUOUS never reconciled (no ADMITTED receipt): {_brief(open_)}")
    if not view_ids:
        problems.append("the harness read no stream-view event for the run")
    return problems


# --- D1: IG's writer key rotated mid-stream ------------------------------------------------------------------------


def key_rotation(cert: Certification) -> dict[str, Any]:
    """D1: while WSP streams, IG's writer key gets a new value in SSM; the old key must stop working."""
    journal = drills.Journal(
        "D1", "ig-key-rotation", "IG writer key rotated mid-stream",
        hypothesis="the drill's run streams through IG with the writer key from SSM; every stream-view event is "
                   "admitted exactly once and the run closes with counts equal to the harness's recount",
        fault="while WSP streams, the SecureString at ssm.ig_api_key is given a new value",
    )

    def body(j: drills.Journal) -> None:
        pins = runs.steady_before(cert, j, streamed_too=False)
        view_ids = [e["event_id"] for e in faults.view_events(cert, pins)]
        url = p02.ig(cert).url or ""
        first = j.step("method", "start WSP (the old key in hand), paced to be mid-stream at the rotation",
                       lambda: faults.start_wsp(cert, pins, batch=2, seconds=STREAM_S), summary=lambda s: s.pid)
        j.step("method", "wait until IG has receipted WSP's first request", lambda: faults.wait_for_receipts(
            cert, pins, first))
        rotation = j.step("method", "rotate IG's writer key: a new SecureString value at ssm.ig_api_key",
                          lambda: faults.rotate_secret(cert, "ig_api_key"), summary=lambda r: r.to_json())
        polls = j.step("observe", "the old key, presented with an empty batch, until IG refuses it",
                       lambda: _poll_key(url, rotation.old),
                       summary=lambda p: {"answers": len(p), "last": p[-1] if p else None})
        old_wsp = j.step("observe", "the WSP holding the old key ends", lambda: faults.ended(
            cert, pins, first, timeout_s=120, label="wsp-old-key"), summary=lambda w: w["exit_code"])
        probe_id = f"d1-old-key-{uuid.uuid4().hex[:8]}"
        probe = j.step("observe", "an event of the run sent with the old key after the rotation",
                       lambda: ig_client.ingest(url, [_event(pins, probe_id)], key=rotation.old,
                                                sender="d1-old-key-probe").to_json(),
                       summary=lambda a: a["status"])
        left = j.step("observe", "what the old key left: the run's receipts, the traffic topic, the probe's dedupe "
                      "item", lambda: _left(cert, pins, [probe_id]),
                      summary=lambda o: {"receipts": len(o["receipts"]), "topic_records": len(o["topic"])})
        observed = {"platform_run_id": pins.platform_run_id, "rotation": {**rotation.to_json(),
                                                                          "window_s": KEY_WINDOW_S},
                    "old_key_polls": polls, "old_wsp": old_wsp, "probe": {"event_id": probe_id, "answer": probe},
                    **left, "view_event_ids": view_ids}
        _record(cert, j, observed)
        j.expect("observe", j.step("observe", "judged: the old key refused within the window, nothing of it "
                                   "admitted after, the WSP holding it stopped", lambda: judge_rotation(observed)))
        resumed = j.step("rollback", "WSP resumed: a new WSP reads the new key from SSM and streams the run",
                         lambda: faults.run_wsp(cert, pins), summary=lambda r: r.exit_code)
        faults.mark_streamed(cert, {"platform_run_id": pins.platform_run_id, "by": "D1", "receipts": [], "topic": []})
        if resumed.exit_code != 0:
            j.expect("steady-state-after", [f"WSP with the new key exited {resumed.exit_code}: {resumed.last_error()}"])
        _settle(cert, j, pins, view_ids)

    return drills.run(cert, journal, body)


def _poll_key(url: str, key: str) -> list[dict[str, Any]]:
    """Empty batches with ``key`` (IG answers 400 to a key it accepts, 401/403 to one it refuses) until refused."""
    answers: list[dict[str, Any]] = []

    def refused() -> bool:
        sent_at_ms = int(time.time() * 1000)
        answer = ig_client.ingest(url, [], key=key, sender="d1-old-key-poll")
        answers.append({"sent_at_ms": sent_at_ms, "status": answer.status})
        return answer.status in REFUSED

    with contextlib.suppress(HarnessError):  # the answers are the observation
        wait_until(refused, timeout_s=KEY_WINDOW_S + 15, backoff_s=0.05, max_backoff_s=0.2,
                   err_msg="IG never refused the old writer key", operation="d1 old key")
    return answers


def _left(cert: Certification, pins: p01.Pins, probe_ids: list[str]) -> dict[str, Any]:
    table = cert.handles.tables["ig_dedupe"].name
    return {"receipts": faults.receipts(cert, pins), "topic": faults.topic(cert),
            "probe_dedupe_items": {i: dynamodb.get_item(cert.aws_session, table=table,
                                                        key={"dedupe_key": f"{pins.platform_run_id}/{i}"})
                                   for i in probe_ids}}


def judge_rotation(obs: dict[str, Any]) -> list[str]:
    """What did not fail closed when the writer key rotated (raises HarnessError when it cannot be judged)."""
    rotation, problems = obs["rotation"], []
    effective_ms = rotation["rotated_at_ms"] + int(rotation["window_s"] * 1000)
    polls = obs["old_key_polls"]
    late = [p for p in polls if p["sent_at_ms"] >= effective_ms and p["status"] not in REFUSED]
    problems += [f"IG accepted the old key {(p['sent_at_ms'] - rotation['rotated_at_ms']) / 1000:.2f}s after the "
                 f"rotation (answer {p['status']}; the contract allows {rotation['window_s']}s)" for p in late[:3]]
    if not any(p["status"] in REFUSED for p in polls):
        problems.append(f"IG never refused the old key after the rotation (last answer "
                        f"{polls[-1]['status'] if polls else 'none'})")
    probe_id, answer = obs["probe"]["event_id"], obs["probe"]["answer"]
    if answer["status"] not in REFUSED:
        problems.append(f"an event sent with the old key after the rotation was answered {answer['status']}, "
                        "not 401/403")
    problems += [f"the old key's event {probe_id} has a receipt ({r['status']})" for r in obs["receipts"]
                 if r.get("event_id") == probe_id]
    problems += [f"the old key's event {probe_id} is on the traffic topic at {e['partition']}/{e['offset']}"
                 for e in obs["topic"] if e.get("event_id") == probe_id]
    if obs["probe_dedupe_items"].get(probe_id):
        problems.append(f"the old key's event {probe_id} has a dedupe item")
    wsp = obs["old_wsp"]
    view = set(obs["view_event_ids"])
    senders = list(dict.fromkeys(r["sender"] for r in obs["receipts"] if r.get("event_id") in view
                                 and (r.get("received_at_ms") or 0) < rotation["rotated_at_ms"]))
    if not senders:
        raise HarnessError("no request of the WSP holding the old key was receipted before the rotation: the key "
                           "did not rotate mid-stream")
    if wsp["exit_code"] == 0:
        raise HarnessError("the WSP holding the old key finished (exit 0) before the rotation took effect: the "
                           "rotation did not land mid-stream (pace it slower)")
    if wsp["timed_out"]:
        problems.append("the WSP holding the old key kept running for 120s after the rotation: IG never refused it")
    elif not any(f"({status})" in wsp["output_tail"] for status in REFUSED):
        problems.append(f"the WSP holding the old key exited {wsp['exit_code']} without a 401/403 from IG: "
                        f"{wsp['output_tail'][-300:]}")
    after = [r for r in obs["receipts"] if r["sender"] in senders
             and (r.get("received_at_ms") or 0) > effective_ms + CLOCK_SLACK_MS]
    if after:
        problems.append(f"{len(after)} receipt(s) for requests with the old key received after the rotation took "
                        f"effect ({senders}): {_brief([r['event_id'] for r in after])}")
    return problems


# --- D2: the broker frozen mid-stream ---------------------------------------------------------------------------


def broker_unavailable(cert: Certification) -> dict[str, Any]:
    """D2: the broker stops answering (SIGSTOP: its in-memory storage survives) while WSP streams."""
    journal = drills.Journal(
        "D2", "broker-unavailable", "Broker unavailable mid-stream",
        hypothesis="the drill's run streams through IG onto the traffic topic; every stream-view event is admitted "
                   "exactly once and the run closes with counts equal to the harness's recount",
        fault="while WSP streams, the embedded broker's process group is stopped (SIGSTOP), then continued",
    )

    def body(j: drills.Journal) -> None:
        broker = faults.local_broker(cert)  # before anything: a bus the harness does not run cannot be frozen
        pins = runs.steady_before(cert, j, streamed_too=False)
        view = faults.view_events(cert, pins)
        view_ids = [e["event_id"] for e in view]
        url = p02.ig(cert).url or ""
        first = j.step("method", "start WSP, paced to be mid-stream when the broker stops",
                       lambda: faults.start_wsp(cert, pins, batch=2, seconds=STREAM_S), summary=lambda s: s.pid)
        j.step("method", "wait until IG has receipted WSP's first request", lambda: faults.wait_for_receipts(
            cert, pins, first))
        key = p04.writer_key(cert)
        j.step("method", "IG checks its bus now (it trusts a check for a second)", lambda: faults.wait_fresh_bus_check(
            url))
        before = set(faults.receipt_keys(cert, pins))
        frozen = j.step("method", "freeze the broker: SIGSTOP its process group (in-memory storage: never "
                        "restarted)", lambda: {**faults.freeze(cert, broker), "wsp_alive": first.alive()})
        try:
            probe = j.step("observe", "at once, the run's last stream-view event sent by the harness: IG still "
                           "trusts its bus and publishes into the stopped broker",
                           lambda: ig_client.ingest(url, [view[-1]], key=key, sender="d2-probe-while-frozen").to_json(),
                           summary=lambda a: {"status": a["status"], "receipts": [
                               r.get("status") for r in (a["body"] or {}).get("receipts", [])]})
            health = j.step("observe", "IG's health until it reports the bus not connected", lambda:
                            faults.wait_ig_health(url, status=503, timeout_s=20), summary=lambda a: a[-1])
            reporter_id = f"reporter-while-frozen-{uuid.uuid4().hex[:8]}"
            reporter = j.step("observe", "a reporter started while the broker is frozen",
                              lambda: _reporter_while_frozen(cert, pins, reporter_id),
                              summary=lambda r: {"exit_code": r["outcome"]["exit_code"],
                                                 "refused": r["outcome"]["refused"] is not None})
            during = sorted(set(faults.receipt_keys(cert, pins)) - before)
        finally:
            thawed = j.step("rollback", "thaw the broker: SIGCONT its process group", lambda: faults.thaw(broker))
        back = j.step("rollback", "IG answers its bus connected again", lambda: faults.wait_ig_health(
            url, status=200, timeout_s=60), summary=lambda a: a[-1]["status"])
        revived = j.step("rollback", "every daemon that exited during the outage started again as its service's "
                         "task (what ECS does; the embedded compute does not)", lambda: faults.revive_exited(
                             cert, pins), summary=lambda r: {m: v["exited"]["exit_code"] for m, v in r.items()})
        first_end = j.step("rollback", "the WSP that streamed through the freeze ends", lambda: faults.ended(
            cert, pins, first, timeout_s=120, label="wsp-through-freeze"), summary=lambda w: w["exit_code"])
        resumed = j.step("rollback", "WSP resumed: streams the run again; each publish left ambiguous is "
                         "reconciled when its event is sent again", lambda: faults.run_wsp(cert, pins),
                         summary=lambda r: r.exit_code)
        faults.mark_streamed(cert, {"platform_run_id": pins.platform_run_id, "by": "D2", "receipts": [], "topic": []})
        left = j.step("observe", "receipts answered while the broker was frozen, and the traffic topic after it",
                      lambda: _while_frozen(cert, pins, during),
                      summary=lambda o: {"receipt_objects": len(during), "receipts": len(o["receipts_while_frozen"])})
        observed = {"platform_run_id": pins.platform_run_id, "freeze": frozen, "thaw": thawed, "health": health,
                    "health_after": back[-3:], "probe": {"event_id": view[-1]["event_id"], "answer": probe},
                    "reporter": reporter, "revived": revived, "wsp_through_freeze": first_end,
                    "resumed": resumed.to_json(), **left}
        _record(cert, j, observed)
        j.expect("observe", j.step("observe", "judged: no ADMITTED receipt without a delivery report, IG refused or "
                                   "answered PUBLISH_AMBIGUOUS, no closure while frozen",
                                   lambda: judge_frozen(observed)))
        if resumed.exit_code != 0:
            j.expect("steady-state-after", [f"WSP resumed after the thaw exited {resumed.exit_code}: "
                                            f"{resumed.last_error()}"])
        _settle(cert, j, pins, view_ids)

    return drills.run(cert, journal, body)


def _reporter_while_frozen(cert: Certification, pins: p01.Pins, reporter_id: str) -> dict[str, Any]:
    outcome = runs.close(cert, pins, reporter_id, SPINE_REPORTER_READ_TIMEOUT_S="5")
    return {"outcome": outcome, "run_completed": claims.get(cert, pins, p11.COMPLETED) is not None,
            "lock": closeout.current(cert.aws_session, cert.handles.tables["reporter_lock"].name,
                                         pins.platform_run_id)}


def _while_frozen(cert: Certification, pins: p01.Pins, keys: list[str]) -> dict[str, Any]:
    bucket = s3.split_url(pins.evidence_root)[0]
    records = [s3.get_json(cert.aws_session, bucket=bucket, key=k) for k in keys]
    return {"receipts_while_frozen": [{**r, "request_id": rec.get("request_id"), "sender": rec.get("sender")}
                                      for rec in records for r in rec.get("receipts", [])],
            "topic": faults.topic(cert)}


def judge_frozen(obs: dict[str, Any]) -> list[str]:
    """What did not fail closed while the broker was frozen (raises HarnessError when it cannot be judged)."""
    problems: list[str] = []
    freeze = obs["freeze"]
    if not freeze["frozen"]:
        raise HarnessError("the broker was not stopped after SIGSTOP: the fault never held")
    if not freeze["wsp_alive"]:
        raise HarnessError("WSP had finished before the broker was frozen: the fault did not land mid-stream")
    if not any(a.get("status") == 503 for a in obs["health"]):
        problems.append(f"IG never reported its bus down while the broker was frozen (last answer "
                        f"{obs['health'][-1] if obs['health'] else None})")
    answer = obs["probe"]["answer"]
    body = answer["body"] if isinstance(answer["body"], dict) else {}
    if answer["status"] == 200:
        own = [r for r in body.get("receipts", []) if isinstance(r, dict)
               and r.get("event_id") == obs["probe"]["event_id"]]
        if len(own) != 1:
            problems.append(f"the event sent while the broker was frozen was answered 200 with {len(own)} receipt(s) "
                            f"for it: {body.get('receipts')}; one PUBLISH_AMBIGUOUS receipt, or a refusal, is owed")
        problems += [f"the event sent while the broker was frozen got receipt {r.get('status')}: no delivery "
                     "report can come from a stopped broker" for r in own if r.get("status") != "PUBLISH_AMBIGUOUS"]
    elif answer["status"] != 503:
        problems.append(f"the event sent while the broker was frozen was answered {answer['status']}, neither "
                        "refused (503) nor PUBLISH_AMBIGUOUS")
    at = {(e["partition"], e["offset"]): e for e in obs["topic"]}
    for r in obs["receipts_while_frozen"]:
        if r.get("status") == "ADMITTED":
            record = at.get((r.get("partition"), r.get("offset")))
            if record is None or record.get("event_id") != r.get("event_id"):
                problems.append(f"ADMITTED {r['event_id']} answered while the broker was frozen names "
                                f"{r.get('partition')}/{r.get('offset')}, which does not hold it")
            elif record["timestamp_ms"] >= freeze["frozen_at_ms"]:
                problems.append(f"ADMITTED {r['event_id']} answered while the broker was frozen for a record produced "
                                "after it stopped: no delivery report can have come")
    reporter = obs["reporter"]
    outcome = reporter["outcome"]
    if outcome["exit_code"] != 1:
        problems.append(f"a reporter started while the broker was frozen exited {outcome['exit_code']}, not 1")
    if outcome["refused"] is None:
        problems.append(f"the reporter started while the broker was frozen wrote no obs/refused_"
                        f"{outcome['reporter']}.json")
    if reporter["run_completed"]:
        problems.append("run_completed.json exists after a reporter ran while the broker was frozen")
    if (reporter["lock"] or {}).get("state") not in (None, "RELEASED"):
        problems.append(f"the reporter that refused left the lock {reporter['lock']}")
    return problems


# --- D3: IG killed mid-batch ------------------------------------------------------------------------------------


def ig_killed(cert: Certification) -> dict[str, Any]:
    """D3: IG gets SIGKILL while it holds claims of a batch it has not receipted; it is started again."""
    journal = drills.Journal(
        "D3", "ig-killed", "IG killed mid-batch",
        hypothesis="the drill's run streams through IG; every stream-view event is admitted exactly once, every "
                   "record of the run on the traffic topic has its receipt, and the run closes with counts equal to "
                   "the harness's recount",
        fault="SIGKILL to IG's process group while a batch's claims are PENDING in ig_dedupe",
    )

    def body(j: drills.Journal) -> None:
        pins = runs.steady_before(cert, j, streamed_too=False)
        view_ids = [e["event_id"] for e in faults.view_events(cert, pins)]
        first = j.step("method", "start WSP, paced, four events a batch", lambda: faults.start_wsp(
            cert, pins, batch=4, seconds=STREAM_S), summary=lambda s: s.pid)
        killed = j.step("method", "SIGKILL IG as soon as a batch's claim is PENDING in ig_dedupe",
                        lambda: _kill_mid_batch(cert, pins, view_ids, first))
        left = j.step("observe", "what the kill left: the dedupe items, receipts and records of the cut batch",
                      lambda: _cut_batch(cert, pins, killed["batch"]), summary=lambda o: o["items"])
        restarted = j.step("rollback", "start IG again on its port, as its service's task",
                           lambda: faults.restart_daemon(cert, pins, "ig"))
        first_end = j.step("rollback", "the WSP whose request was cut retries against the new IG and ends",
                           lambda: faults.ended(cert, pins, first, timeout_s=180, label="wsp-through-kill"),
                           summary=lambda w: w["exit_code"])
        resumed = None
        if first_end["exit_code"] != 0:
            resumed = j.step("rollback", "WSP resumed (the first gave up retrying)", lambda: faults.run_wsp(
                cert, pins), summary=lambda r: r.exit_code)
        faults.mark_streamed(cert, {"platform_run_id": pins.platform_run_id, "by": "D3", "receipts": [], "topic": []})
        after = j.step("observe", "after IG came back: the cut batch's dedupe items, every receipt, the topic",
                       lambda: {**_cut_batch(cert, pins, view_ids), "receipts": faults.receipts(cert, pins),
                                "topic": faults.topic(cert)},
                       summary=lambda o: dict(Counter(str(s) for s in o["items"].values())))
        observed = {"platform_run_id": pins.platform_run_id, "killed": killed, "left": left, "restarted": restarted,
                    "wsp": first_end, "resumed": resumed.to_json() if resumed else None, "view_event_ids": view_ids,
                    "after": after}
        _record(cert, j, observed)
        j.expect("observe", j.step("observe", "judged: the cut batch admitted once, nothing lost, nothing twice, "
                                   "no record without a receipt", lambda: judge_killed(observed)))
        _settle(cert, j, pins, view_ids)

    return drills.run(cert, journal, body)


def _kill_mid_batch(cert: Certification, pins: p01.Pins, view_ids: list[str], wsp: Started) -> dict[str, Any]:
    """Poll the dedupe item of the next event WSP sends; SIGKILL IG the moment one is PENDING."""
    table = cert.handles.tables["ig_dedupe"].name
    state = {"next": 0, "polls": 0}

    def pending() -> tuple[str, str] | None:
        if not wsp.alive():
            return "ended", f"WSP ended (exit {wsp.exit_code}) first"
        while state["next"] < len(view_ids):
            state["polls"] += 1
            event_id = view_ids[state["next"]]
            item = dynamodb.get_item(cert.aws_session, table=table,
                                     key={"dedupe_key": f"{pins.platform_run_id}/{event_id}"})
            if item is None:
                return None  # not claimed yet: poll it again
            if item.get("state") == "PENDING":
                return "pending", event_id
            state["next"] += 1  # settled: its batch is done, look at the next event
        return "ended", "every event was settled first"

    outcome, seen = wait_until(pending, timeout_s=120, backoff_s=0.002, max_backoff_s=0.005,
                               err_msg="no claim of the run was ever seen PENDING", operation="d3 kill mid-batch")
    if outcome != "pending":
        raise HarnessError(f"IG could not be killed mid-batch: {seen} (paced too fast to catch a batch in flight)")
    ig = p02.ig(cert).process
    killed_at_ms = int(time.time() * 1000)
    code = ig.kill()
    index = view_ids.index(seen)
    return {"pending_event_id": seen, "polls": state["polls"], "killed_at_ms": killed_at_ms, "ig_pid": ig.pid,
            "exit_code": code, "batch": view_ids[index:index + 4]}


def _cut_batch(cert: Certification, pins: p01.Pins, event_ids: list[str]) -> dict[str, Any]:
    """The events' dedupe states, which of them have a receipt, and where the traffic topic holds them."""
    table = cert.handles.tables["ig_dedupe"].name
    items = {e: (dynamodb.get_item(cert.aws_session, table=table, key={"dedupe_key": f"{pins.platform_run_id}/{e}"})
                 or {}).get("state") for e in event_ids}
    receipted = sorted({str(r["event_id"]) for r in faults.receipts(cert, pins)} & set(event_ids))
    on_topic = [f"{e['partition']}/{e['offset']} {e['event_id']}" for e in faults.topic(cert)
                if e.get("platform_run_id") == pins.platform_run_id and e.get("event_id") in items]
    return {"items": items, "receipted": receipted, "on_topic": on_topic}


def judge_killed(obs: dict[str, Any]) -> list[str]:
    """What did not fail closed after IG was killed mid-batch (HarnessError when the kill was not mid-batch)."""
    killed, problems = obs["killed"], []
    if obs["left"]["items"].get(killed["pending_event_id"]) not in ("PENDING", "ADMITTED", "PUBLISH_AMBIGUOUS"):
        raise HarnessError(f"the claim seen PENDING ({killed['pending_event_id']}) is gone after the kill: "
                           f"{obs['left']['items']}")
    if "PENDING" not in obs["left"]["items"].values():
        raise HarnessError(f"no claim of the cut batch was PENDING once IG was dead: the kill did not cut a batch "
                           f"({obs['left']['items']})")
    stuck = {e: s for e, s in obs["after"]["items"].items() if s != "ADMITTED"}
    if stuck:
        problems.append(f"dedupe items not ADMITTED after IG came back and WSP ended: {dict(list(stuck.items())[:5])}")
    completed = obs["wsp"]["exit_code"] == 0 or (obs["resumed"] or {}).get("exit_code") == 0
    if not completed:
        problems.append(f"no WSP completed the run after IG came back (exit {obs['wsp']['exit_code']}, resumed "
                        f"{(obs['resumed'] or {}).get('exit_code')})")
    problems += exactly_once(obs["platform_run_id"], obs["view_event_ids"], obs["after"]["receipts"],
                             obs["after"]["topic"])
    return problems


# --- D7: a poison event -----------------------------------------------------------------------------------------


def poison_event(cert: Certification) -> dict[str, Any]:
    """D7: schema-invalid events of the run, sent with the writer key mid-stream."""
    journal = drills.Journal(
        "D7", "poison-event", "Poison (schema-invalid) event",
        hypothesis="the drill's run streams through IG; every stream-view event is admitted exactly once, decided "
                   "once, and the run closes with counts equal to the harness's recount",
        fault="while WSP streams, one request with the writer key carrying schema-invalid events: a missing "
              "envelope field, a missing payload field, a wrong type in the payload, a wrong type for the identity, "
              "and a value that is not an object",
    )

    def body(j: drills.Journal) -> None:
        pins = runs.steady_before(cert, j, streamed_too=False)
        view_ids = [e["event_id"] for e in faults.view_events(cert, pins)]
        poison = poison_events(pins)
        first = j.step("method", "start WSP, paced", lambda: faults.start_wsp(cert, pins, batch=2, seconds=STREAM_S),
                       summary=lambda s: s.pid)
        j.step("method", "wait until IG has receipted WSP's first request", lambda: faults.wait_for_receipts(
            cert, pins, first))
        answer = j.step("method", "post the poison batch to IG with the writer key", lambda: ig_client.ingest(
            p02.ig(cert).url or "", [p["event"] for p in poison], key=p04.writer_key(cert),
            sender="d7-poison").to_json(), summary=lambda a: {"status": a["status"], "receipts": [
                r.get("status") for r in (a["body"].get("receipts", []) if isinstance(a["body"], dict) else [])]})
        wsp = j.step("rollback", "nothing to undo: WSP streams on to the run's end", lambda: faults.ended(
            cert, pins, first, timeout_s=180, label="wsp-with-poison"), summary=lambda w: w["exit_code"])
        if wsp["exit_code"] != 0:
            j.expect("steady-state-after", [f"WSP exited {wsp['exit_code']} after the poison batch: "
                                            f"{wsp['output_tail'][-300:]}"])
        faults.mark_streamed(cert, {"platform_run_id": pins.platform_run_id, "by": "D7", "receipts": [], "topic": []})
        j.expect("steady-state-after", j.step("observe", "RTDL, the decision lane and case/labels reach the run's "
                                              "end", lambda: runs.downstream_problems(cert)))
        seen = j.step("observe", "the quarantine objects, every topic, the DLA and the cases, read by the harness",
                      lambda: _poison_seen(cert, pins, answer, len(view_ids)),
                      summary=lambda o: {k: len(v) for k, v in o.items() if isinstance(v, list | dict)})
        observed = {"platform_run_id": pins.platform_run_id, "poison": poison, "answer": answer,
                    "view_event_ids": view_ids, **seen}
        _record(cert, j, observed)
        j.expect("observe", j.step("observe", "judged: every poison event QUARANTINED with its object, on no topic, "
                                   "in no decision, DLA row or case", lambda: judge_poison(observed)))
        _settle(cert, j, pins, view_ids)

    return drills.run(cert, journal, body)


def poison_events(pins: p01.Pins) -> list[dict[str, Any]]:
    """The poison batch: each kind of schema-invalid value once, each under an identity of its own.

    (Not under a stream-view event's identity: the runs of one scenario share event ids on the traffic topic,
    and P7 counts a QUARANTINED identity on any run's records, so that record would be judged published.)"""
    tag = uuid.uuid4().hex[:8]
    no_ts = {k: v for k, v in _event(pins, f"d7-missing-ts-{tag}").items() if k != "ts_utc"}
    no_currency = _event(pins, f"d7-missing-currency-{tag}")
    del no_currency["payload"]["currency"]
    return [
        {"kind": "missing envelope field ts_utc", "event": no_ts},
        {"kind": "missing payload field currency", "event": no_currency},
        {"kind": "wrong type: amount_minor a string", "event": _event(pins, f"d7-wrong-type-{tag}",
                                                                      amount_minor="1250")},
        {"kind": "wrong type: event_id a number", "event": {**_event(pins, "unused"), "event_id": int(tag, 16)}},
        {"kind": "not an object", "event": f"d7-not-an-object-{tag}"},
    ]


def _poison_seen(cert: Certification, pins: p01.Pins, answer: dict[str, Any], events: int) -> dict[str, Any]:
    run, conn = pins.platform_run_id, cert.kafka()
    receipts = answer["body"].get("receipts", []) if isinstance(answer["body"], dict) else []
    quarantine = {}
    for r in receipts:
        if r.get("quarantine"):
            bucket, key = s3.split_url(r["quarantine"])
            quarantine[r["quarantine"]] = s3.get_json_optional(cert.aws_session, bucket=bucket, key=key)
    downstream: dict[str, Any] = {}
    for role in ("rtdl", "decision"):
        found, shortfall = pipeline.run_records(conn, cert.handles.topic_roles[role], run, identity="event_id",
                                                expected=events)
        downstream[role] = [{"partition": r["partition"], "offset": r["offset"], "value": r["value"]} for r in found]
        downstream[f"{role}_shortfall"] = shortfall
    dsn = pipeline.platform_dsn(cert.aws_session, cert.handles.ssm["db_dsn"])
    dla, cases = pipeline.dla_rows(dsn, run), pipeline.case_rows(dsn, run)
    return {"quarantine_objects": quarantine,
            "traffic": [{"partition": r.partition, "offset": r.offset, "value": r.value.decode("utf-8", "replace")}
                        for r in read_all(conn, cert.handles.topic_roles["traffic"])],
            **downstream,
            "dla": [{k: row[k] for k in ("decision_id", "event_id", "decision")} for row in dla],
            "cases": [{k: row[k] for k in ("case_id", "event_id", "decision")} for row in cases]}


def _as_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def judge_poison(obs: dict[str, Any]) -> list[str]:
    """What of the poison batch got past IG: every item must be QUARANTINED and land nowhere downstream."""
    problems: list[str] = []
    answer = obs["answer"]
    if answer["status"] != 200:
        return [f"IG answered the poison batch with the writer key {answer['status']}, not 200 with receipts"]
    receipts = {r.get("index"): r for r in answer["body"].get("receipts", [])}
    traffic = [(r, _as_json(r["value"])) for r in obs["traffic"]]
    for index, item in enumerate(obs["poison"]):
        sent, kind = item["event"], item["kind"]
        receipt = receipts.get(index)
        if receipt is None or receipt.get("status") != "QUARANTINED":
            problems.append(f"poison #{index} ({kind}): receipt {receipt}, not QUARANTINED")
        else:
            stored = obs["quarantine_objects"].get(receipt.get("quarantine") or "")
            if not stored or stored.get("event") != sent or not stored.get("reason"):
                problems.append(f"poison #{index} ({kind}): no quarantine object holding it and its reason at "
                                f"{receipt.get('quarantine')}")
        problems += [f"poison #{index} ({kind}) is on the traffic topic at {r['partition']}/{r['offset']}"
                     for r, value in traffic if value == sent]
        event_id = sent.get("event_id") if isinstance(sent, dict) else None
        if event_id is None:
            continue
        problems += [f"poison #{index} ({kind}): event id {event_id} is on the traffic topic at "
                     f"{r['partition']}/{r['offset']}" for r, value in traffic
                     if isinstance(value, dict) and value.get("event_id") == event_id]
        for role in ("rtdl", "decision"):
            problems += [f"poison #{index} ({kind}): event id {event_id} is on the {role} topic at "
                         f"{r['partition']}/{r['offset']}" for r in obs[role] if (r["value"] or {}).get("event_id")
                         == event_id]
        problems += [f"poison #{index} ({kind}): event id {event_id} has DLA row {row['decision_id']}"
                     for row in obs["dla"] if row["event_id"] == event_id]
        problems += [f"poison #{index} ({kind}): event id {event_id} has case {row['case_id']}"
                     for row in obs["cases"] if row["event_id"] == event_id]
    return problems


DRILLS = {"D1": key_rotation, "D2": broker_unavailable, "D3": ig_killed, "D7": poison_event}
