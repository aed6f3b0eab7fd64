"""Control-plane drills: a stale READY of a previous run on the control topic (D6).

WSP may stream only on its run's own READY (contract §5: the fields match run.json, the message id is the
digest of the content). D6 publishes READY records of a previous run, in SR's exact record shape, before
and while the drill run's WSP waits for its READY, holds that for ``HOLD_S`` seconds and counts, from what
it reads itself, what the run received: IG's receipts, the traffic topic, WSP's evidence. Then SR
publishes the run's own READY: WSP streams on it, and the run settles and closes.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from harness import canonical, drills, ingress
from harness.aws import s3
from harness.compute import Started
from harness.drills import runs
from harness.errors import HarnessError, Timeout
from harness.kafka import produce
from harness.phases import claims, p01, p02, p03, p05
from harness.session import Certification
from harness.wait import wait_until

HOLD_S = 10.0  # how long only stale READYs are on the topic while WSP waits (its start and topic read take ~2 s)
READY_TIMEOUT_S = 180  # WSP's SPINE_WSP_READY_TIMEOUT_S: it must still be waiting when the run's own READY comes
WSP_TIMEOUT_S = 300.0
STREAM_SUMMARY = "wsp/stream_summary.json"
READY_FIELDS = ("platform_run_id", "scenario_run_id", "run_config_digest", "image_digest", "oracle_root",
                "checker_receipt_sha256")


# --- READY as the contract defines it (§5), computed by the harness --------------------------------------------


def ready_value(facts: dict[str, Any]) -> dict[str, Any]:
    """The READY record's value: the pinned fields and ``message_id``, the sha256 of json.dumps (sorted keys) of
    the other fields."""
    body = {"type": "READY", **{k: facts[k] for k in READY_FIELDS}}
    return {**body, "message_id": hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()}


def encode(value: dict[str, Any]) -> bytes:
    """SR's record value: compact JSON with sorted keys."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def run_facts(pins: p01.Pins, checker_receipt_sha256: str) -> dict[str, Any]:
    """What the run's own READY carries: run.json's pins and the sha256 of its checker receipt."""
    return {"platform_run_id": pins.platform_run_id, "scenario_run_id": pins.scenario_run_id,
            "run_config_digest": pins.run_config_digest, "image_digest": pins.run_json["image"]["digest"],
            "oracle_root": pins.run_config["oracle_root"], "checker_receipt_sha256": checker_receipt_sha256}


def previous_facts(pins: p01.Pins) -> dict[str, Any]:
    """The READY facts of a previous run of this drill: its own run id and scenario, the Oracle root and config
    of that scenario, the same image, and the digest of a checker receipt closing that root."""
    run_id, scenario = f"{pins.platform_run_id}-previous", f"{pins.scenario_run_id}-previous"
    config = {**pins.run_config, "platform_run_id": run_id, "scenario_run_id": scenario,
              "oracle_source": pins.run_config["oracle_source"].replace(pins.scenario_run_id, scenario),
              "oracle_root": pins.run_config["oracle_root"].replace(pins.scenario_run_id, scenario),
              "evidence_root": pins.run_config["evidence_root"].replace(pins.platform_run_id, run_id)}
    receipt = {"platform_run_id": run_id, "scenario_run_id": scenario, "oracle_root": config["oracle_root"],
               "verdict": "PASS"}
    return {"platform_run_id": run_id, "scenario_run_id": scenario, "run_config_digest": p01.config_digest(config),
            "image_digest": pins.run_json["image"]["digest"], "oracle_root": config["oracle_root"],
            "checker_receipt_sha256": hashlib.sha256(canonical.dumps(receipt)).hexdigest()}


def stale_readies(own: dict[str, Any], previous: dict[str, Any]) -> list[dict[str, Any]]:
    """The stale READY records, each (label, key, value) in SR's shape; the last one is published while WSP waits.

    previous-run: the previous run's READY as SR published it; previous-run-keyed-here: the same value keyed by
    this run; old-scenario: this run's id over the previous run's scenario, config, root and receipt;
    previous-oracle: this run's id, scenario, config and image over the previous run's Oracle root and receipt.
    """
    this_key = own["platform_run_id"]
    records = [
        ("previous-run", previous["platform_run_id"], previous),
        ("previous-run-keyed-here", this_key, previous),
        ("old-scenario", this_key, {**previous, "platform_run_id": this_key}),
        ("previous-oracle", this_key, {**own, "oracle_root": previous["oracle_root"],
                                       "checker_receipt_sha256": previous["checker_receipt_sha256"]}),
    ]
    return [{"label": label, "key": key, "value": ready_value(facts)} for label, key, facts in records]


# --- observations ----------------------------------------------------------------------------------------------


def _checker_receipt_sha256(cert: Certification, pins: p01.Pins) -> str:
    bucket, prefix = s3.split_url(pins.evidence_root)
    return hashlib.sha256(s3.get_bytes(cert.aws_session, bucket=bucket,
                                       key=f"{prefix}oracle/checker_receipt.json")).hexdigest()


def _keys(cert: Certification, pins: p01.Pins, under: str) -> list[str]:
    bucket, prefix = s3.split_url(pins.evidence_root)
    return sorted(k[len(prefix):] for k in s3.list_keys(cert.aws_session, bucket=bucket, prefix=prefix + under))


def control_readies(cert: Certification, run_ids: list[str]) -> list[dict[str, Any]]:
    """The READY records on the control topic keyed by, or naming, one of ``run_ids``, as the harness reads them."""
    return [{k: r[k] for k in ("partition", "offset", "key", "timestamp_ms", "value")}
            for run_id in run_ids for r in p05.readies(p05.control_history(cert), run_id)]


def _traffic(cert: Certification, run_ids: list[str], min_end: dict[int, int] | None = None) -> list[dict[str, Any]]:
    events = ingress.topic_events(cert.kafka(), cert.handles.topic_roles["traffic"], min_end=min_end)
    return [e.to_json() for e in events if e.platform_run_id in run_ids]


def observe_held(cert: Certification, pins: p01.Pins, wsp: Started, previous_run_id: str,
                 published: list[dict[str, Any]]) -> dict[str, Any]:
    """Hold the fault ``HOLD_S`` seconds (ending early if the run receives anything or WSP ends), then read what
    the run received: receipts and WSP evidence under its root, its and the previous run's traffic, WSP's state."""
    def acted() -> dict[str, Any] | None:
        receipts, wsp_keys = _keys(cert, pins, ingress.RECEIPTS), _keys(cert, pins, "wsp/")
        return {"receipts": receipts, "wsp": wsp_keys} if receipts or wsp_keys or not wsp.alive() else None

    try:
        early = wait_until(acted, timeout_s=HOLD_S, backoff_s=0.25, max_backoff_s=1.0,
                           err_msg="the drill run received nothing while only stale READYs were on the control "
                                   "topic", operation="D6 hold")
    except Timeout:
        early = None
    on_topic = control_readies(cert, [pins.platform_run_id, previous_run_id])
    at = {(r["partition"], r["offset"]) for r in on_topic}
    missing = [p["label"] for p in published if (p["partition"], p["offset"]) not in at]
    if missing:
        raise HarnessError(f"the stale READYs {missing} are not on the control topic at the offsets the broker "
                           "acknowledged: the fault is not in place")
    return {"platform_run_id": pins.platform_run_id, "previous_run_id": previous_run_id, "held_s": HOLD_S,
            "ended_early": early is not None,
            "receipt_objects": _keys(cert, pins, ingress.RECEIPTS), "wsp_objects": _keys(cert, pins, "wsp/"),
            "traffic": _traffic(cert, [pins.platform_run_id, previous_run_id]),
            "wsp": {"pid": wsp.pid, "alive": wsp.alive(), "exit_code": wsp.exit_code},
            "control_readies": on_topic, "stale_message_ids": [p["value"]["message_id"] for p in published]}


def observe_streamed(cert: Certification, pins: p01.Pins, wsp: dict[str, Any], own: dict[str, Any],
                     previous_run_id: str, stale_ids: list[str]) -> dict[str, Any]:
    """After the run's own READY: WSP's end, the receipts, the traffic topic, the READYs on the control topic, the
    stream view (read by the harness) and WSP's claim of the READY it streamed on."""
    records = ingress.receipt_records(cert.aws_session, pins.evidence_root)
    received_at = {str(rec.get("request_id")): rec.get("received_at_ms") for rec in records}
    receipts = ingress.flat_receipts(records)
    rows = ingress.view_rows(cert.aws_session, pins.run_config["oracle_root"])[0]
    claim = claims.get(cert, pins, STREAM_SUMMARY)
    return {"platform_run_id": pins.platform_run_id, "previous_run_id": previous_run_id, "wsp": wsp,
            "expected_ready": ready_value(own), "stale_message_ids": stale_ids,
            "control_readies": control_readies(cert, [pins.platform_run_id]),
            "receipts": [{k: r.get(k) for k in ("event_id", "status", "partition", "offset", "request_id", "sender")}
                         | {"received_at_ms": received_at.get(str(r.get("request_id")))} for r in receipts],
            "topic": _traffic(cert, [pins.platform_run_id, previous_run_id],
                              min_end=ingress.acked_end_offsets(receipts)),
            "view_event_ids": [str(r["event_id"]) for r in rows],
            "wsp_claim": None if claim is None else {"ready_message_id": claim.get("ready_message_id"),
                                                     "sender": claim.get("sender"), "sent": claim.get("sent")}}


# --- judgements (pure) -----------------------------------------------------------------------------------------


def quiet_problems(obs: dict[str, Any]) -> list[str]:
    """Before the fault: no READY of the run or of the previous run yet, and no receipt of the run."""
    problems = [f"already on the control topic: READY {r['partition']}/{r['offset']} keyed {r['key']}"
                for r in obs["control_readies"]]
    if obs["receipt_objects"]:
        problems.append(f"the run already has receipts: {obs['receipt_objects'][:3]}")
    return problems


def judge_held(obs: dict[str, Any]) -> list[str]:
    """While only stale READYs were on the control topic, the run received nothing and WSP kept waiting."""
    problems = []
    if obs["receipt_objects"]:
        problems.append(f"IG received {len(obs['receipt_objects'])} request(s) for the run while only stale READYs "
                        f"were on the control topic: {obs['receipt_objects'][:3]}")
    if obs["wsp_objects"]:
        problems.append(f"WSP wrote {obs['wsp_objects'][:3]} while no READY of its run was on the control topic")
    run_records = [e for e in obs["traffic"] if e["platform_run_id"] == obs["platform_run_id"]]
    if run_records:
        problems.append(f"{len(run_records)} record(s) of the run on the traffic topic before its READY, first at "
                        f"{run_records[0]['partition']}/{run_records[0]['offset']}")
    previous = [e for e in obs["traffic"] if e["platform_run_id"] == obs["previous_run_id"]]
    if previous:
        problems.append(f"{len(previous)} record(s) of the previous run {obs['previous_run_id']} admitted to the "
                        "traffic topic")
    if not obs["wsp"]["alive"]:
        problems.append(f"WSP ended (exit {obs['wsp']['exit_code']}) while waiting for its READY: it must keep "
                        "waiting for its own and never act on a stale one")
    other = [r for r in obs["control_readies"] if r["value"].get("message_id") not in obs["stale_message_ids"]]
    if other:
        problems.append(f"a READY the harness did not publish was on the control topic during the hold: "
                        f"{[(r['partition'], r['offset']) for r in other]}")
    return problems


def judge_streamed(obs: dict[str, Any]) -> list[str]:
    """On its own READY WSP streamed every event of the stream view, after that READY, and names that READY."""
    problems = []
    wsp, expected = obs["wsp"], obs["expected_ready"]
    if wsp["exit_code"] != 0:
        problems.append(f"WSP exited {wsp['exit_code']} after the run's own READY was published: "
                        f"{wsp.get('output_tail', '')[-300:]}")
    own = [r for r in obs["control_readies"] if r["key"] == obs["platform_run_id"] and r["value"] == expected]
    if len({json.dumps(r["value"], sort_keys=True) for r in own}) != 1:
        problems.append(f"{len(own)} READY record(s) on the control topic equal the run's own READY as the harness "
                        f"computes it from run.json and the checker receipt ({expected['message_id']}), expected 1")
    claim = obs["wsp_claim"]
    if claim is None:
        problems.append(f"WSP wrote no {STREAM_SUMMARY}")
    elif claim["ready_message_id"] != expected["message_id"]:
        stale = " (a stale READY the harness published)" if claim["ready_message_id"] in obs["stale_message_ids"] \
            else ""
        problems.append(f"WSP claims it streamed on READY {claim['ready_message_id']}{stale}, the run's own READY "
                        f"is {expected['message_id']}")
    received = {r["event_id"] for r in obs["receipts"] if r["status"] in ("ADMITTED", "DUPLICATE")}
    on_topic = {e["event_id"] for e in obs["topic"] if e["platform_run_id"] == obs["platform_run_id"]}
    missing = [e for e in obs["view_event_ids"] if e not in received or e not in on_topic]
    if not obs["view_event_ids"]:
        problems.append("the harness found no stream view rows")
    if missing:
        problems.append(f"{len(missing)} stream view event(s) not received and on the traffic topic: {missing[:5]}")
    if own:
        ready_ms = min(r["timestamp_ms"] for r in own)
        early = sorted({str(r["request_id"]) for r in obs["receipts"]
                        if r.get("received_at_ms") is None or r["received_at_ms"] < ready_ms})
        if early:
            problems.append(f"IG received request(s) {early[:3]} before the run's own READY was on the control topic "
                            f"({ready_ms} ms), or their receipt records carry no received_at_ms")
    previous = [e for e in obs["topic"] if e["platform_run_id"] == obs["previous_run_id"]]
    if previous:
        problems.append(f"{len(previous)} record(s) of the previous run {obs['previous_run_id']} on the traffic topic")
    return problems


# --- the drill -------------------------------------------------------------------------------------------------


def stale_ready(cert: Certification) -> dict[str, Any]:
    """D6: READYs of a previous run on the control topic before and while the drill run's WSP waits for its own."""
    journal = drills.Journal(
        "D6", "stale-ready", "Stale READY of a previous run on the control topic",
        hypothesis="the drill's run is pinned, its oracle lane passed and its daemons run; no READY of it is on the "
                   "control topic, so its WSP sends nothing; once SR publishes its READY, WSP streams the stream "
                   "view, ingest reconciles, decisions and cases complete and the run closes once",
        fault="READY records of a previous run in SR's exact shape on the control topic: the previous run's own, "
              "the same keyed by this run, this run's id over the previous scenario, and (while WSP waits) this "
              "run's pins over the previous run's Oracle root and checker receipt",
    )

    def body(j: drills.Journal) -> None:
        pins = j.step("steady-state-before", "the drill's run is pinned, its oracle lane passed and its daemons up; "
                      "its READY is not published", lambda: _prepared(cert),
                      summary=lambda p: {"platform_run_id": p.platform_run_id})
        j.platform_run_id = pins.platform_run_id
        j.expect("steady-state-before", runs.health_problems(j.step(
            "steady-state-before", "every daemon runs and IG answers ready", lambda: runs.health(cert))))
        previous = previous_facts(pins)
        quiet = j.step("steady-state-before", "no READY of the run or of the previous run is on the control topic "
                       "and the run has received nothing",
                       lambda: {"control_readies": control_readies(cert, [pins.platform_run_id,
                                                                          previous["platform_run_id"]]),
                                "receipt_objects": _keys(cert, pins, ingress.RECEIPTS)})
        j.expect("steady-state-before", quiet_problems(quiet))

        own = run_facts(pins, _checker_receipt_sha256(cert, pins))
        records = stale_readies(own, previous)
        control = cert.handles.topic_roles["control"]
        published = j.step("method", "publish three stale READYs of the previous run on the control topic before "
                           "WSP starts", lambda: _publish(cert, control, records[:3]))
        wsp = j.step("method", "start the drill run's WSP: it waits for its READY", lambda: _start_wsp(cert, pins),
                     summary=lambda s: {"pid": s.pid, "ready_timeout_s": READY_TIMEOUT_S})
        try:
            published = published + j.step(
                "method", "publish a stale READY under the run's own id while WSP waits: this run's pins over the "
                "previous run's Oracle root and checker receipt", lambda: _publish(cert, control, records[3:]))
            held = j.step("observe", f"hold the stale READYs for {HOLD_S:.0f}s: what the run received, what WSP did",
                          lambda: observe_held(cert, pins, wsp, previous["platform_run_id"], published))
            j.expect("observe", drills.recorded(cert, j, "held_observed.json", held, judge_held))
            ready = j.step("rollback", "the stale records stay on the topic (it is append-only): SR publishes the "
                           "run's own READY", lambda: p05.ensure_ready(cert),
                           summary=lambda r: {"sr_exit_code": r["sr_job"]["exit_code"],
                                              "sr_stderr": r["sr_job"]["stderr_tail"]})
            ended = j.step("rollback", "WSP streams on the run's own READY and ends",
                           lambda: _wait_wsp(cert, pins, wsp))
        finally:
            if wsp.alive():
                wsp.kill()
        streamed = j.step("steady-state-after", "what WSP streamed: receipts, the traffic topic, the READYs on the "
                          "control topic, WSP's claim",
                          lambda: observe_streamed(cert, pins, ended, own, previous["platform_run_id"],
                                                   [r["value"]["message_id"] for r in records]))
        j.expect("steady-state-after", drills.recorded(cert, j, "streamed_observed.json", streamed, judge_streamed))
        # The run's stream is this WSP's: P7 reconciles it instead of streaming the run a second time.
        cert.once("p6.stream", lambda: {**streamed, "sr": ready["sr_job"]})
        runs.steady_after(cert, j, pins)

    return drills.run(cert, journal, body)


def _prepared(cert: Certification) -> p01.Pins:
    pins = p01.ensure_pinned(cert)
    p03.ensure_lane(cert)
    p02.ensure_daemons(cert)
    return pins


def _publish(cert: Certification, topic: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    acked = produce.send(cert.kafka(), topic, [(r["key"].encode(), encode(r["value"])) for r in records])
    return [{**r, "partition": partition, "offset": offset} for r, (partition, offset) in zip(records, acked,
                                                                                            strict=True)]


def _start_wsp(cert: Certification, pins: p01.Pins) -> Started:
    env = p01.job_env(cert, pins, SPINE_IG_URL=p02.ig(cert).url or "",
                      SPINE_WSP_READY_TIMEOUT_S=str(READY_TIMEOUT_S))
    return cert.compute_provider.start("wsp", env=env, tags={"platform_run_id": pins.platform_run_id,
                                                             "cert_id": cert.cert_id})


def _wait_wsp(cert: Certification, pins: p01.Pins, wsp: Started) -> dict[str, Any]:
    code = wsp.wait(timeout_s=WSP_TIMEOUT_S)
    if code is None:
        wsp.kill()
    output = wsp.output()
    cert.evidence_bytes(f"runs/{pins.platform_run_id}/compute/wsp-d6-{wsp.pid}-{uuid.uuid4().hex[:6]}.log",
                        f"# D6 WSP started before its READY; exit {code}\n{output}".encode())
    return {"pid": wsp.pid, "exit_code": code, "output_tail": output.strip()[-800:],
            "ignored_readies": [line for line in output.splitlines() if '"ready_ignored"' in line][:10]}


DRILLS = {"D6": stale_ready}
