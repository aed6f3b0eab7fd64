"""Drills D6, D10 and D11 judged from recorded observations: a compliant record passes; each mutation a failing
platform (or a blind check) would produce is named."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any
from unittest import mock

import pytest
from check_records import RUN, SCENARIO, Mutation, Record, mutated

from harness.drills import control, substrate
from harness.errors import SubstrateError
from harness.phases import p00, p01

IMAGE = "sha256:" + "7dc9" * 16
PREVIOUS = f"{RUN}-previous"
ORACLE_ROOT = f"s3://fp-oracle/oracle/{SCENARIO}/"


def _pins() -> p01.Pins:
    config = {"platform_run_id": RUN, "scenario_run_id": SCENARIO, "oracle_source": f"s3://fp-src/oracle/{SCENARIO}/",
              "oracle_root": ORACLE_ROOT, "evidence_root": f"s3://fp-evidence/runs/{RUN}/", "events": 20}
    digest = p01.config_digest(config)
    return p01.Pins(RUN, SCENARIO, config, digest, {"platform_run_id": RUN, "run_config_digest": digest,
                                                    "image": {"digest": IMAGE}})


PINS = _pins()
OWN = control.run_facts(PINS, "ab" * 32)
STALE = control.stale_readies(OWN, control.previous_facts(PINS))
STALE_IDS = [r["value"]["message_id"] for r in STALE]
OWN_READY = control.ready_value(OWN)


def _on_topic(records: list[dict[str, Any]], first: int, at_ms: int) -> list[Record]:
    return [{"partition": 0, "offset": first + i, "key": r["key"], "timestamp_ms": at_ms, "value": r["value"]}
            for i, r in enumerate(records)]


# --- D6: the READYs the drill publishes ------------------------------------------------------------------------


def test_a_ready_is_the_contracts_record_its_message_id_the_digest_of_the_rest() -> None:
    body = {k: v for k, v in OWN_READY.items() if k != "message_id"}
    assert OWN_READY["message_id"] == hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    assert control.encode(OWN_READY) == json.dumps(OWN_READY, sort_keys=True, separators=(",", ":")).encode()
    assert set(OWN_READY) == {"type", *control.READY_FIELDS, "message_id"}


def test_every_stale_ready_is_in_srs_shape_and_none_is_the_runs_own() -> None:
    assert [r["label"] for r in STALE] == ["previous-run", "previous-run-keyed-here", "old-scenario",
                                          "previous-oracle"]
    assert [r["key"] for r in STALE] == [PREVIOUS, RUN, RUN, RUN]
    for record in STALE:
        assert record["value"] == control.ready_value({k: record["value"][k] for k in control.READY_FIELDS})
        assert record["value"] != OWN_READY
    previous_oracle = STALE[-1]["value"]
    differs = sorted(k for k in control.READY_FIELDS if previous_oracle[k] != OWN[k])
    assert differs == ["checker_receipt_sha256", "oracle_root"]  # only run.json's oracle_root tells it apart
    assert STALE[0]["value"]["oracle_root"] == f"s3://fp-oracle/oracle/{SCENARIO}-previous/"


# --- D6: while only stale READYs are on the topic --------------------------------------------------------------


HELD: Record = {
    "platform_run_id": RUN, "previous_run_id": PREVIOUS, "held_s": 10.0, "ended_early": False,
    "receipt_objects": [], "wsp_objects": [], "traffic": [
        {"partition": 0, "offset": 7, "timestamp_ms": 1, "event_id": "evt_x", "platform_run_id": "run-another"}],
    "wsp": {"pid": 4242, "alive": True, "exit_code": None},
    "control_readies": _on_topic(STALE, 3, 1000), "stale_message_ids": STALE_IDS,
}


def test_a_run_that_received_nothing_while_wsp_waits_holds() -> None:
    assert control.judge_held(HELD) == []


@pytest.mark.parametrize(("mutate", "named"), [
    (lambda r: r["receipt_objects"].append("ingest/receipts/req-1.json"), "IG received 1 request"),
    (lambda r: r["wsp_objects"].append("wsp/attempts/wsp-1.json"), "WSP wrote"),
    (lambda r: r["traffic"].append({"partition": 1, "offset": 0, "timestamp_ms": 2, "event_id": "evt_1",
                                    "platform_run_id": RUN}), "record\\(s\\) of the run on the traffic topic"),
    (lambda r: r["traffic"].append({"partition": 1, "offset": 0, "timestamp_ms": 2, "event_id": "evt_1",
                                    "platform_run_id": PREVIOUS}), f"previous run {PREVIOUS} admitted"),
    (lambda r: r["wsp"].update(alive=False, exit_code=0), "WSP ended \\(exit 0\\) while waiting"),
    (lambda r: r["wsp"].update(alive=False, exit_code=1), "WSP ended \\(exit 1\\) while waiting"),
    (lambda r: r["control_readies"].extend(_on_topic([{"key": RUN, "value": OWN_READY}], 9, 1500)),
     "a READY the harness did not publish"),
], ids=["receipts", "wsp-evidence", "run-traffic", "previous-run-traffic", "wsp-streamed", "wsp-gave-up",
        "own-ready-early"])
def test_anything_the_run_received_on_a_stale_ready_is_named(mutate: Mutation, named: str) -> None:
    problems = control.judge_held(mutated(HELD, mutate))
    assert problems and any(re.search(named, p) for p in problems), problems


# --- D6: on the run's own READY --------------------------------------------------------------------------------


def _receipt(i: int, at_ms: int) -> Record:
    return {"event_id": f"evt_{i:02d}", "status": "ADMITTED", "partition": i % 3, "offset": i // 3,
            "request_id": f"req-{i // 2}", "sender": "wsp-1", "received_at_ms": at_ms}


EVENTS = [f"evt_{i:02d}" for i in range(6)]
STREAMED: Record = {
    "platform_run_id": RUN, "previous_run_id": PREVIOUS,
    "wsp": {"pid": 4242, "exit_code": 0, "output_tail": ""},
    "expected_ready": OWN_READY, "stale_message_ids": STALE_IDS,
    "control_readies": _on_topic(STALE[1:], 4, 1000) + _on_topic([{"key": RUN, "value": OWN_READY}], 7, 2000),
    "receipts": [_receipt(i, 2500 + i) for i in range(6)],
    "topic": [{"partition": i % 3, "offset": i // 3, "timestamp_ms": 2600, "event_id": e, "platform_run_id": RUN}
              for i, e in enumerate(EVENTS)],
    "view_event_ids": EVENTS,
    "wsp_claim": {"ready_message_id": OWN_READY["message_id"], "sender": "wsp-1", "sent": 6},
}


def test_a_run_streamed_on_its_own_ready_holds() -> None:
    assert control.judge_streamed(STREAMED) == []


@pytest.mark.parametrize(("mutate", "named"), [
    (lambda r: r["wsp_claim"].update(ready_message_id=STALE_IDS[-1]), "a stale READY the harness published"),
    (lambda r: r.update(wsp_claim=None), "WSP wrote no wsp/stream_summary.json"),
    (lambda r: r["wsp"].update(exit_code=1, output_tail="no READY"), "WSP exited 1 after the run's own READY"),
    (lambda r: r["receipts"][0].update(received_at_ms=1500), "before the run's own READY"),
    (lambda r: r["receipts"][0].update(received_at_ms=None), "carry no received_at_ms"),
    (lambda r: r["topic"].pop(), "1 stream view event\\(s\\) not received and on the traffic topic"),
    (lambda r: r["receipts"].pop(0), "1 stream view event\\(s\\) not received"),
    (lambda r: r["topic"].append({"partition": 0, "offset": 9, "timestamp_ms": 2700, "event_id": "evt_00",
                                  "platform_run_id": PREVIOUS}), f"previous run {PREVIOUS} on the traffic topic"),
    (lambda r: r.update(control_readies=r["control_readies"][:-1]), "0 READY record\\(s\\) on the control topic"),
], ids=["streamed-on-stale", "no-claim", "wsp-failed", "received-before-ready", "receipt-time-unknown",
        "event-not-on-topic",
        "event-not-received", "previous-run-traffic", "own-ready-missing"])
def test_a_stream_that_is_not_the_runs_own_is_named(mutate: Mutation, named: str) -> None:
    problems = control.judge_streamed(mutated(STREAMED, mutate))
    assert problems and any(re.search(named, p) for p in problems), problems


# --- D10: the evidence bucket refuses writes -------------------------------------------------------------------


DENIED: Record = {
    "reporter": {"reporter": "reporter-denied-1", "exit_code": 1, "stderr": "put ...: AccessDenied: Access Denied",
                 "conflict": None, "refused": None},
    "obs_before": [], "obs_after": [], "run_completed": False,
    "lock": {"platform_run_id": RUN, "state": "RELEASED", "holder": "reporter-denied-1", "token": 1},
    "probe": {"key": f"runs/{RUN}/{substrate.PROBE}", "refused": True, "code": "AccessDenied"},
    "mirror": {"bucket": "fp-evidence", "key": "certifications/c1/drills/evidence-bucket-refuses/denied_write.json",
               "present": True},
}


def test_a_reporter_that_cannot_write_its_closure_and_does_not_close_holds() -> None:
    assert substrate.judge_denied(DENIED) == []


@pytest.mark.parametrize(("mutate", "named"), [
    (lambda r: r["reporter"].update(exit_code=0), "exited 0 while the run's evidence prefix refused writes"),
    (lambda r: r["reporter"].update(exit_code=None), "did not end"),
    (lambda r: r.update(run_completed=True), "run_completed.json exists"),
    (lambda r: r["obs_after"].append("obs/reconciliation.json"), "objects appeared under the denied prefix"),
    (lambda r: r["lock"].update(state="CLOSED"), "the lock table shows the run CLOSED"),
    (lambda r: r["mirror"].update(present=False), "the deny is not scoped to the run"),
], ids=["closed-green", "hung", "run-completed", "obs-written", "lock-closed", "mirror-denied"])
def test_a_closure_without_evidence_is_named(mutate: Mutation, named: str) -> None:
    problems = substrate.judge_denied(mutated(DENIED, mutate))
    assert problems and any(named in p for p in problems), problems


def test_the_deny_covers_the_runs_prefix_only_and_keeps_an_existing_policy() -> None:
    statement = substrate.deny_writes("fp-evidence", f"runs/{RUN}/")
    assert statement == {"Sid": substrate.DENY_SID, "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
                         "Resource": f"arn:aws:s3:::fp-evidence/runs/{RUN}/*"}
    existing = {"Version": "2012-10-17", "Statement": {"Sid": "TLS", "Effect": "Deny", "Principal": "*",
                                                       "Action": "s3:*", "Resource": "*"}}
    merged = substrate.with_statement(existing, statement)
    assert [s["Sid"] for s in merged["Statement"]] == ["TLS", substrate.DENY_SID]
    assert substrate.with_statement(None, statement)["Statement"] == [statement]


# --- D11: drift sentinel ---------------------------------------------------------------------------------------


PROTECTED = {"versioning": "Enabled", "encryption": ["AES256"], "policy": None,
             "public_access_block": {k: True for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy",
                                                       "RestrictPublicBuckets")}}
NAT = {"nat_gateway_id": "nat-0abc", "allocation_id": "eipalloc-0abc", "subnet_id": "subnet-1", "vpc_id": "vpc-1",
       "bucket": "fp-oracle"}
POSTURE: Record = {
    "network": {"vpc_ids": ["vpc-1"], "nat_gateways": [], "load_balancers": []},
    "buckets": {role: {"pinned": {"name": f"fp-{role}", "versioning": role == "evidence", "encryption": "AES256",
                                  "public_access_block": True}, "observed": dict(PROTECTED)}
                for role in ("oracle", "evidence", "archive")},
}


def _drifted(r: Record) -> None:
    r["network"]["nat_gateways"].append({"id": NAT["nat_gateway_id"], "vpc_id": "vpc-1", "state": "available"})
    r["buckets"]["oracle"]["observed"]["policy"] = substrate.with_statement(None, substrate.public_read("fp-oracle"))


DRIFTED = mutated(POSTURE, _drifted)


def test_the_posture_before_and_after_the_drift_passes_p0s_checks() -> None:
    assert substrate.posture_problems(POSTURE) == []


def test_p0s_checks_name_both_drifts() -> None:
    assert substrate.drift_named(DRIFTED, NAT) == []
    found = substrate.posture_problems(DRIFTED)
    assert any("NAT gateway nat-0abc (available) in vpc-1" in p for p in found), found
    assert any("fp-oracle: its bucket policy grants public access" in p for p in found), found


@pytest.mark.parametrize(("mutate", "named"), [
    (lambda r: r["network"].update(nat_gateways=[]), "does not name the NAT gateway nat-0abc"),
    (lambda r: r["buckets"]["oracle"]["observed"].update(policy=None), "do not name the public-read policy"),
    (lambda r: r["buckets"]["oracle"]["observed"]["policy"]["Statement"][0].update(
        Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}), "do not name the public-read policy"),
], ids=["nat-not-seen", "policy-not-read", "policy-read-as-restricted"])
def test_a_check_that_misses_a_drift_is_named(mutate: Mutation, named: str) -> None:
    problems = substrate.drift_named(mutated(DRIFTED, mutate), NAT)
    assert problems and any(named in p for p in problems), problems


def test_a_public_policy_refused_by_block_public_access_is_not_required_to_be_named() -> None:
    refused = {**NAT, "public_policy": False}  # only the NAT gateway half of the drift could be created
    nat_only = mutated(DRIFTED, lambda r: r["buckets"]["oracle"]["observed"].update(policy=None))
    assert substrate.drift_named(nat_only, refused) == []
    assert substrate.drift_named(mutated(nat_only, lambda r: r["network"].update(nat_gateways=[])), refused)
    assert substrate.drift_named(nat_only, {**NAT, "public_policy": True})  # put, yet not named


BLOCKED = ("User: arn:aws:iam::123456789012:user/ci is not authorized to perform: s3:PutBucketPolicy on resource: "
           "\"arn:aws:s3:::fp-oracle\" because public policies are blocked by the BlockPublicPolicy block public "
           "access setting.")


@pytest.mark.parametrize(("error", "planted"), [
    (None, True),
    (SubstrateError("AccessDenied", BLOCKED, operation="s3.put_bucket_policy fp-oracle"), False),
])
def test_the_public_policy_is_put_or_its_refusal_by_block_public_access_recorded(
        error: SubstrateError | None, planted: bool) -> None:
    with mock.patch.object(substrate.s3, "put_policy", side_effect=error) as put:
        result = substrate.put_public_policy(None, "fp-oracle", None)  # type: ignore[arg-type]
    assert result["planted"] is planted and put.call_count == 1
    assert put.call_args.kwargs["document"]["Statement"][0]["Sid"] == substrate.PUBLIC_SID
    assert (result["refused"] or {}).get("code") == (None if planted else "AccessDenied")


def test_any_other_refusal_of_the_public_policy_is_an_error() -> None:
    denied = SubstrateError("AccessDenied", "Access Denied", operation="s3.put_bucket_policy fp-oracle")
    with mock.patch.object(substrate.s3, "put_policy", side_effect=denied), pytest.raises(SubstrateError):
        substrate.put_public_policy(None, "fp-oracle", None)  # type: ignore[arg-type]


@pytest.mark.parametrize(("principal", "condition", "public"), [
    ("*", None, True),
    ({"AWS": "*"}, None, True),
    ({"AWS": ["arn:aws:iam::123456789012:root", "*"]}, None, True),
    ("*", {"Bool": {"aws:SecureTransport": "true"}}, True),
    ("*", {"StringEquals": {"aws:SourceVpc": "vpc-1"}}, False),
    ({"AWS": "arn:aws:iam::123456789012:root"}, None, False),
])
def test_a_bucket_policy_is_public_when_it_allows_anyone_without_tying_them_to_known_callers(
        principal: Any, condition: Any, public: bool) -> None:
    statement = {"Effect": "Allow", "Principal": principal, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}
    if condition:
        statement["Condition"] = condition
    assert bool(p00.public_grants({"Statement": [statement]})) is public
    assert p00.public_grants({"Statement": [{**statement, "Effect": "Deny"}]}) == []


def test_a_removed_nat_gateway_still_listed_counts_as_gone_for_p12_and_a_live_one_does_not() -> None:
    arn = "arn:aws:ec2:eu-west-2:123456789012:natgateway/nat-0abc"
    eip = "arn:aws:ec2:eu-west-2:123456789012:elastic-ip/eipalloc-0abc"
    assert substrate.teardown_problems({"ids": ["nat-0abc"], "listed": {arn: "deleted", eip: "MISSING"}}) == []
    assert substrate.teardown_problems({"ids": ["nat-0abc"], "listed": {arn: "available"}}) == [
        f"P12 would count {arn} (available) as still present"]
