"""P2 and P4 checks: a valid record (modelled on a passing run) passes; each mutation is a Finding naming it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from check_records import OTHER_RUN, RUN, SCENARIO, Check, Mutation, Record, fails, mutated

from harness.phases import p02, p04

# --- P2 daemon bring-up ------------------------------------------------------------------------------------------

def _task(service: str, n: int, *, run_id: str = RUN) -> Record:
    return {"arn": f"arn:aws:ecs:eu-west-2:123456789012:task/cluster/{service}-{n}", "desired_status": "RUNNING",
            "group": f"service:{service}", "last_status": "RUNNING",
            "tags": {"cert_id": "cert-1", "platform_run_id": run_id}, "task_definition": f"td/{service}:1"}


def _daemon(mode: str, pid: int, *, health: Record | None) -> Record:
    service = f"fraud-platform-dev-min-{mode}"
    return {"service": service, "ecs_service": {"desired": 1, "running": 1, "status": "ACTIVE",
                                                "task_definition": f"td/{service}:1"},
            "tasks": [_task(service, 1)], "health": health,
            "process": {"alive": True, "pid": pid, "exit_code": None, "mode": mode, "run_id": RUN,
                        "task_arn": _task(service, 1)["arn"]}}


def readiness() -> Record:
    """daemons/readiness.json: IG answers health for the run; rtdl exposes no URL."""
    health = {"status": 200, "body": {"platform_run_id": RUN, "scenario_run_id": SCENARIO, "status": "ok",
                                      "version": "spine-ig/1", "bus": {"connected": True, "partitions": 3}}}
    return {"platform_run_id": RUN, "compute": "embedded", "waived": {},
            "daemons": {"ig": _daemon("ig", 101, health=health), "rtdl": _daemon("rtdl", 102, health=None)}}


def foreign_refused() -> Record:
    """daemons/foreign_run_refused.json: IG started for another run against this run's manifest."""
    reason = f"run scope refused: run.json platform_run_id='{RUN}' but REQUIRED_PLATFORM_RUN_ID='{OTHER_RUN}'"
    return {"required_platform_run_id": OTHER_RUN, "run_manifest_of": RUN, "exit_code": 1, "health_answers": [],
            "output": f'{{"event": "refused", "exit_code": 1, "mode": "ig", "reason": "{reason}"}}\nig: {reason}\n'}


def _second_task(r: Record) -> None:
    ig = r["daemons"]["ig"]
    ig["tasks"].append(_task(ig["service"], 2))


def _second_task_of_other_run(r: Record) -> None:
    ig = r["daemons"]["ig"]
    ig["tasks"].append(_task(ig["service"], 2, run_id=OTHER_RUN))


@pytest.mark.parametrize("check", [p02.check_running, p02.check_single_replica, p02.check_tagged])
def test_p2_checks_pass_a_single_running_replica_per_daemon_tagged_with_the_run(check: Check) -> None:
    check(readiness())


@pytest.mark.parametrize(("check", "mutate", "match"), [
    pytest.param(p02.check_running, lambda r: r["daemons"]["ig"]["process"].update(alive=False, exit_code=-9),
                 r"ig: its process \(pid 101\) is not running", id="ig-process-dead"),
    pytest.param(p02.check_running, lambda r: r["daemons"]["rtdl"]["process"].update(alive=False, exit_code=1),
                 r"rtdl: its process \(pid 102\) is not running", id="daemon-without-url-dead"),
    pytest.param(p02.check_running, lambda r: r["daemons"]["ig"]["health"].update(status=503),
                 r"ig: readiness answer \{'status': 503", id="health-503"),
    pytest.param(p02.check_running, lambda r: r["daemons"]["ig"]["health"]["body"].update(platform_run_id=OTHER_RUN),
                 rf"ig: readiness answer .*{OTHER_RUN}", id="health-names-another-run"),
    pytest.param(p02.check_running, lambda r: r["daemons"]["ig"]["health"]["body"].pop("platform_run_id"),
                 r"ig: readiness answer", id="health-names-no-run"),
    pytest.param(p02.check_running, lambda r: r["daemons"].clear(), r"no daemon of the run is running",
                 id="no-daemon"),
    pytest.param(p02.check_single_replica, _second_task, r"ig: 2 tasks of service fraud-platform-dev-min-ig .*"
                 r"expected 1: \[.*ig-1', .*ig-2'\]", id="two-tasks"),
    pytest.param(p02.check_single_replica, lambda r: r["daemons"]["rtdl"]["tasks"].clear(),
                 r"rtdl: 0 tasks of service fraud-platform-dev-min-rtdl", id="no-task"),
    pytest.param(p02.check_single_replica, lambda r: r["daemons"]["ig"]["ecs_service"].update(desired=2),
                 r"ig: service fraud-platform-dev-min-ig desired count 2, pinned 1", id="desired-2"),
    pytest.param(p02.check_single_replica, lambda r: r["daemons"]["ig"].update(ecs_service=None),
                 r"ig: service fraud-platform-dev-min-ig desired count None", id="no-ecs-service"),
    pytest.param(p02.check_tagged, lambda r: r["daemons"]["ig"]["tasks"][0]["tags"].update(platform_run_id=OTHER_RUN),
                 rf"ig: task .*ig-1 tagged .*{OTHER_RUN}.*not platform_run_id={RUN}", id="task-of-another-run"),
    pytest.param(p02.check_tagged, lambda r: r["daemons"]["rtdl"]["tasks"][0].update(tags={}),
                 rf"rtdl: task .*rtdl-1 tagged \{{\}}, not platform_run_id={RUN}", id="task-untagged"),
    pytest.param(p02.check_tagged, _second_task_of_other_run, rf"ig: task .*ig-2 tagged .*{OTHER_RUN}",
                 id="second-task-of-another-run"),
])
def test_p2_checks_name_a_daemon_that_is_not_one_live_replica_of_the_run(check: Check, mutate: Mutation,
                                                                          match: str) -> None:
    fails(check, mutated(readiness(), mutate), match)


def test_p2_running_names_a_health_answer_that_is_not_json() -> None:
    fails(p02.check_running, mutated(readiness(), lambda r: r["daemons"]["ig"]["health"].update(body="OK")),
           r"ig: readiness answer")


def test_p2_foreign_run_daemon_that_refused_before_serving_passes() -> None:
    p02.check_foreign_refused(foreign_refused())


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(lambda r: r.update(exit_code=0), rf"ig started for {OTHER_RUN} exited 0, not 1", id="exit-0"),
    pytest.param(lambda r: r.update(exit_code=-15), r"exited -15, not 1", id="killed-still-running"),
    pytest.param(lambda r: r.update(health_answers=[200]), r"served health answers \[200\] before refusing",
                 id="served-health"),
    pytest.param(lambda r: r.update(health_answers=[503, 503]), r"served health answers \[503, 503\]",
                 id="served-unready-health"),
    pytest.param(lambda r: r.update(output="ig: listening on 127.0.0.1:8080\n"),
                 r"its output does not name the run-scope refusal", id="silent-refusal"),
])
def test_p2_foreign_run_daemon_must_refuse_before_serving(mutate: Mutation, match: str) -> None:
    fails(p02.check_foreign_refused, mutated(foreign_refused(), mutate), match)


# --- P4 IG auth and health ---------------------------------------------------------------------------------------

P4_IDS = {name: f"p4-{name}-980c9e9b" for name in ("no-key", "wrong-key", "invalid", "other-run")}
QUARANTINE = {name: f"s3://fraud-platform-dev-min-quarantine/{RUN}/{P4_IDS[name]}/7ddde8d7.json"
              for name in ("invalid", "other-run")}
P4_REASONS = {"invalid": "schema-invalid: missing field(s) payload",
              "other-run": f"another run's event: platform_run_id {OTHER_RUN} is not {RUN}"}


def p4_health() -> Record:
    return {"platform_run_id": RUN, "answer": {"status": 200, "body": {
        "platform_run_id": RUN, "scenario_run_id": SCENARIO, "status": "ok", "version": "spine-ig/1",
        "bus": {"connected": True, "error": None, "partitions": 3, "topic": "fp.bus.traffic.fraud.v1"}}}}


def _p4_receipt(index: int, name: str) -> Record:
    return {"event_id": P4_IDS[name], "index": index, "quarantine": QUARANTINE[name], "reason": P4_REASONS[name],
            "status": "QUARANTINED"}


def auth_probes() -> Record:
    """ingest/p4_auth_probes.json: no key 401, wrong key 403, the writer key quarantines two bad events."""
    receipts = [_p4_receipt(0, "invalid"), _p4_receipt(1, "other-run")]
    return {
        "platform_run_id": RUN, "event_ids": dict(P4_IDS),
        "answers": {"no_key": {"status": 401, "body": {"error": "missing writer key"}},
                    "wrong_key": {"status": 403, "body": {"error": "wrong writer key"}},
                    "writer_key": {"status": 200, "body": {"platform_run_id": RUN, "receipts": receipts,
                                                           "request_id": "req-1", "sender": "spine-certify"}}},
        "on_topic": [],
        "dedupe_items": {name: False for name in P4_IDS},
        "receipts_naming_probes": [{**r, "request_id": "req-1", "sender": "spine-certify"} for r in receipts],
        "quarantine_objects": {QUARANTINE[name]: {
            "platform_run_id": RUN, "reason": P4_REASONS[name],
            "event": {"event_id": P4_IDS[name], "event_type": "card_transaction", "scenario_run_id": SCENARIO,
                      "platform_run_id": OTHER_RUN if name == "other-run" else RUN}}
            for name in ("invalid", "other-run")},
    }


def _on_topic(name: str) -> Mutation:
    return lambda r: r["on_topic"].append({"event_id": P4_IDS[name], "partition": 2, "offset": 9,
                                           "platform_run_id": RUN, "timestamp_ms": 1})


def _receipt_for(name: str, status: str) -> Mutation:
    return lambda r: r["receipts_naming_probes"].append({"event_id": P4_IDS[name], "status": status,
                                                         "request_id": "req-0", "sender": "spine-certify"})


def _writer_receipt(name: str) -> Callable[[Record], Record]:
    return lambda r: next(x for x in r["answers"]["writer_key"]["body"]["receipts"] if x["event_id"] == P4_IDS[name])


def _stored(name: str) -> Callable[[Record], Record]:
    return lambda r: r["quarantine_objects"][QUARANTINE[name]]


def test_p4_checks_pass_the_probes_of_a_compliant_ig() -> None:
    p04.check_health(p4_health())
    p04.check_refused(auth_probes())
    p04.check_quarantined(auth_probes())


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(lambda r: r["answer"].update(status=503), r"GET /v1/ops/health answered 503", id="503"),
    pytest.param(lambda r: r["answer"]["body"].update(platform_run_id=OTHER_RUN),
                 rf"health names run {OTHER_RUN}, not {RUN}", id="another-run"),
    pytest.param(lambda r: r["answer"]["body"].pop("version"), r"health names no version", id="no-version"),
    pytest.param(lambda r: r["answer"]["body"]["bus"].update(connected=False, error="broker down"),
                 r"health reports the bus not connected: .*broker down", id="bus-down"),
    pytest.param(lambda r: r["answer"]["body"].pop("bus"), r"health reports the bus not connected: None",
                 id="no-bus"),
    pytest.param(lambda r: r["answer"].update(body="OK"), r"health names run None", id="body-not-json"),
])
def test_p4_health_names_what_is_wrong(mutate: Mutation, match: str) -> None:
    fails(p04.check_health, mutated(p4_health(), mutate), match)


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(lambda r: r["answers"]["no_key"].update(status=200, body={"receipts": []}),
                 r"a batch without a writer key was answered 200, not 401", id="no-key-200"),
    pytest.param(lambda r: r["answers"]["no_key"].update(status=403),
                 r"a batch without a writer key was answered 403, not 401", id="no-key-403"),
    pytest.param(lambda r: r["answers"]["wrong_key"].update(status=200, body={"receipts": []}),
                 r"a batch with a wrong writer key was answered 200, not 403", id="wrong-key-200"),
    pytest.param(lambda r: r["answers"]["wrong_key"].update(status=401),
                 r"a batch with a wrong writer key was answered 401, not 403", id="wrong-key-401"),
    pytest.param(_on_topic("no-key"), rf"refused event {P4_IDS['no-key']} is on the traffic topic at 2/9",
                 id="no-key-event-on-topic"),
    pytest.param(_on_topic("wrong-key"), rf"refused event {P4_IDS['wrong-key']} is on the traffic topic at 2/9",
                 id="wrong-key-event-on-topic"),
    pytest.param(lambda r: r["dedupe_items"].update({"no-key": True}),
                 rf"refused event {P4_IDS['no-key']} has a dedupe item", id="no-key-dedupe-item"),
    pytest.param(lambda r: r["dedupe_items"].update({"wrong-key": True}),
                 rf"refused event {P4_IDS['wrong-key']} has a dedupe item", id="wrong-key-dedupe-item"),
    pytest.param(_receipt_for("no-key", "ADMITTED"), rf"refused event {P4_IDS['no-key']} has a receipt \(ADMITTED\)",
                 id="no-key-receipt"),
    pytest.param(_receipt_for("wrong-key", "QUARANTINED"),
                 rf"refused event {P4_IDS['wrong-key']} has a receipt \(QUARANTINED\)", id="wrong-key-receipt"),
])
def test_p4_refused_names_a_request_ig_did_not_refuse_or_that_left_a_trace(mutate: Mutation, match: str) -> None:
    fails(p04.check_refused, mutated(auth_probes(), mutate), match)


@pytest.mark.parametrize(("mutate", "match"), [
    pytest.param(lambda r: r["answers"].update(writer_key={"status": 500, "body": {"error": "boom"}}),
                 r"a batch with the writer key was answered 500, not 200", id="writer-key-500"),
    pytest.param(lambda r: _writer_receipt("invalid")(r).update(status="ADMITTED", quarantine=None),
                 rf"invalid event {P4_IDS['invalid']}: receipt .*'ADMITTED'.*, not QUARANTINED", id="invalid-admitted"),
    pytest.param(lambda r: r["answers"]["writer_key"]["body"]["receipts"].pop(1),
                 rf"other-run event {P4_IDS['other-run']}: receipt None, not QUARANTINED", id="other-run-no-receipt"),
    pytest.param(lambda r: r["quarantine_objects"].update({QUARANTINE["invalid"]: None}),
                 rf"invalid event {P4_IDS['invalid']}: no quarantine object", id="invalid-no-object"),
    pytest.param(lambda r: r["quarantine_objects"].pop(QUARANTINE["other-run"]),
                 rf"other-run event {P4_IDS['other-run']}: no quarantine object", id="other-run-object-absent"),
    pytest.param(lambda r: _writer_receipt("invalid")(r).update(quarantine=None),
                 rf"invalid event {P4_IDS['invalid']}: no quarantine object .*\(None\)", id="receipt-names-no-object"),
    pytest.param(lambda r: _stored("invalid")(r)["event"].update(event_id=P4_IDS["other-run"]),
                 rf"invalid event {P4_IDS['invalid']}: no quarantine object with the event",
                 id="object-of-other-event"),
    pytest.param(lambda r: _stored("other-run")(r).pop("event"),
                 rf"other-run event {P4_IDS['other-run']}: no quarantine object with the event", id="object-no-event"),
    pytest.param(lambda r: _stored("other-run")(r).update(reason=""),
                 rf"other-run event {P4_IDS['other-run']}: no quarantine object with the event and its reason",
                 id="object-no-reason"),
    pytest.param(_on_topic("invalid"), rf"quarantined event {P4_IDS['invalid']} is on the traffic topic at 2/9",
                 id="invalid-on-topic"),
    pytest.param(_on_topic("other-run"), rf"quarantined event {P4_IDS['other-run']} is on the traffic topic",
                 id="other-run-on-topic"),
])
def test_p4_quarantined_names_an_event_without_its_quarantine_object(mutate: Mutation, match: str) -> None:
    fails(p04.check_quarantined, mutated(auth_probes(), mutate), match)


def test_p2_replicas_names_a_process_that_is_not_the_services_task() -> None:
    fails(p02.check_single_replica,
           mutated(readiness(), lambda r: r["daemons"]["ig"]["process"].update(task_arn="arn:other-task")),
           r"ig: the running process is task arn:other-task, the service's task is")
