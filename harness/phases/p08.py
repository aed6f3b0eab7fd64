"""P8 RTDL core: caught up within the pinned lag, and every consumed record archived before its offset commit.

RTDL's `rtdl_core/catch_up.json` and `archive_index.json` are claims. The harness reads the group's
committed offsets from the broker, the acknowledged end offsets from IG's receipts, every archive
object and the whole traffic topic itself; ``judge_lag`` and ``judge_archive`` are pure functions
of that record.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from harness import ingress, pipeline
from harness.aws import s3
from harness.errors import Finding, Timeout
from harness.kafka.consume import read_all
from harness.phases import claims, p01, p07
from harness.session import Certification
from harness.wait import wait_until

CATCH_UP, INDEX = "rtdl_core/catch_up.json", "rtdl_core/archive_index.json"
CLAIM_TIMEOUT_S = 180.0
LAG_TIMEOUT_S = 60.0


def ensure_caught_up(cert: Certification) -> dict[str, Any]:
    """Wait for RTDL's claim, then observe the lag the harness computes itself (once)."""
    return cert.once("p8.lag", lambda: _lag(cert))


def _lag(cert: Certification) -> dict[str, Any]:
    pins = p01.ensure_pinned(cert)
    p07.ensure_committed(cert)
    claim = claims.wait(cert, pins, CATCH_UP, timeout_s=CLAIM_TIMEOUT_S, who="RTDL")
    index = claims.get(cert, pins, INDEX)
    obs = observe_lag(cert, pins, claims={CATCH_UP: claim, INDEX: index})
    cert.evidence(f"runs/{pins.platform_run_id}/rtdl_core/lag_observed.json", obs)
    return obs


def observe_lag(cert: Certification, pins: p01.Pins, *, claims: dict[str, Any]) -> dict[str, Any]:
    """Acknowledged ends from the receipts; the group's committed offsets polled until within the lag."""
    run = pins.platform_run_id
    topic = cert.handles.topic_roles["traffic"]
    receipts = ingress.flat_receipts(ingress.receipt_records(cert.aws_session, pins.evidence_root))
    acked = ingress.acked_end_offsets(receipts)
    lag_max = int(pins.run_config["rtdl_caught_up_lag_max"])
    polls = {"n": 0}

    def offsets() -> dict[str, int | None]:
        polls["n"] += 1
        return pipeline.committed(cert.kafka(), "rtdl", run, topic)

    def within() -> dict[str, int | None] | None:
        found = offsets()
        return found if max(lags(acked, found).values(), default=0) <= lag_max else None

    try:
        committed = wait_until(within, timeout_s=LAG_TIMEOUT_S, backoff_s=0.2, max_backoff_s=1.0,
                               err_msg="RTDL's group did not reach the acknowledged ends", operation="P8 lag")
    except Timeout:
        committed = offsets()
    return {"platform_run_id": run, "group": pipeline.group("rtdl", run), "topic": topic, "lag_max": lag_max,
            "acked_end_offsets": {str(p): e for p, e in sorted(acked.items())}, "committed": committed,
            "polls": polls["n"], "claims": claims}


def lags(acked: dict[int, int], committed: dict[str, int | None]) -> dict[int, int]:
    """Per acknowledged partition: acknowledged end minus committed offset (nothing committed: the whole end)."""
    return {p: max(end - (committed.get(str(p)) or 0), 0) for p, end in acked.items()}


def judge_lag(obs: dict[str, Any]) -> list[str]:
    acked = {int(p): e for p, e in obs["acked_end_offsets"].items()}
    problems = []
    if not acked:
        problems.append("IG's receipts acknowledge no record of the run: there is nothing RTDL could catch up on")
    for p, lag in sorted(lags(acked, obs["committed"]).items()):
        if lag > obs["lag_max"]:
            problems.append(f"partition {p}: group {obs['group']} committed {obs['committed'].get(str(p))}, "
                            f"acknowledged end {acked[p]}: lag {lag} > RTDL_CAUGHT_UP_LAG_MAX {obs['lag_max']}")
    claim = obs["claims"].get(CATCH_UP)
    if claim is None:
        problems.append(f"RTDL wrote no {CATCH_UP}")
        return problems
    if claim.get("caught_up") is not True:
        problems.append(f"RTDL's {CATCH_UP} does not claim caught_up: {claim.get('caught_up')!r}")
    if claim.get("group") != obs["group"] or claim.get("topic") != obs["topic"]:
        problems.append(f"RTDL's claim names group {claim.get('group')!r} on {claim.get('topic')!r}, "
                        f"the contract {obs['group']!r} on {obs['topic']!r}")
    if claim.get("lag_max") != obs["lag_max"]:
        problems.append(f"RTDL's claim uses lag_max {claim.get('lag_max')!r}, run.json pins {obs['lag_max']}")
    parts = claim.get("partitions") or {}
    for p, end in sorted(acked.items()):
        said = parts.get(str(p)) or {}
        if said.get("acked_end_offset") != end:
            problems.append(f"partition {p}: RTDL's claim has acknowledged end {said.get('acked_end_offset')!r}, "
                            f"IG's receipts give {end}")
        observed = obs["committed"].get(str(p))
        if not isinstance(said.get("committed_offset"), int) or said["committed_offset"] < end - obs["lag_max"]:
            problems.append(f"partition {p}: RTDL claims caught up at committed offset "
                            f"{said.get('committed_offset')!r}, short of the acknowledged end {end} by more than "
                            f"RTDL_CAUGHT_UP_LAG_MAX {obs['lag_max']}")
        elif observed is not None and said["committed_offset"] > observed:
            problems.append(f"partition {p}: RTDL claims committed offset {said['committed_offset']}, the broker "
                            f"holds {observed} for its group")
    return problems


def check_caught_up(obs: dict[str, Any]) -> None:
    problems = judge_lag(obs)
    if problems:
        raise Finding("P8.caught_up", problems)


# --- archive durability -------------------------------------------------------------------------------------


def archive(cert: Certification) -> dict[str, Any]:
    return cert.once("p8.archive", lambda: _archive(cert, label="archive_observed"))


def _archive(cert: Certification, *, label: str) -> dict[str, Any]:
    pins = p01.ensure_pinned(cert)
    lag = ensure_caught_up(cert)
    obs = observe_archive(cert, pins, lag)
    verdict = judge_archive(obs)
    cert.evidence(f"runs/{pins.platform_run_id}/rtdl_core/{label}.json", {"observed": obs, "problems": verdict})
    return {"observed": obs, "problems": verdict}


def observe_archive(cert: Certification, pins: p01.Pins, lag: dict[str, Any]) -> dict[str, Any]:
    run = pins.platform_run_id
    topic = cert.handles.topic_roles["traffic"]
    acked = {int(p): e for p, e in lag["acked_end_offsets"].items()}
    # The committed offsets first: an object archived after this read is extra, never a false "committed
    # before archived".
    committed = pipeline.committed(cert.kafka(), "rtdl", run, topic)
    records = read_all(cert.kafka(), topic, min_end=acked, timeout_s=60)
    bucket = cert.handles.bucket("archive").name
    return {
        "platform_run_id": run,
        "topic": topic,
        "bucket": bucket,
        "records": [{"partition": r.partition, "offset": r.offset, "sha256": pipeline.sha256(r.value),
                     "run": (ingress.decode(r).platform_run_id == run)} for r in records],
        "objects": pipeline.archive_objects(cert.aws_session, bucket, run, topic),
        "committed": committed,
        "index": claims.get(cert, pins, INDEX),
        # Where RTDL says it stood when it wrote the index: objects archived later are rightly not in it.
        "indexed_up_to": {p: v.get("committed_offset") for p, v in
                          ((lag["claims"].get(CATCH_UP) or {}).get("partitions") or {}).items()},
    }


def judge_archive(obs: dict[str, Any]) -> list[str]:
    """No gap, no overlap, the topic's bytes, committed offsets never past the archived ones, index = objects."""
    problems: list[str] = []
    topic = {(r["partition"], r["offset"]): r for r in obs["records"]}
    first_on_topic: dict[int, int] = {}
    for p, o in topic:
        first_on_topic[p] = min(first_on_topic.get(p, o), o)
    archived: Counter[tuple[int, int]] = Counter()
    by_partition: dict[int, list[dict[str, Any]]] = {}
    for obj in obs["objects"]:
        problems += obj["problems"]
        if obj["partition"] is None or obj["name_first"] is None:
            continue
        by_partition.setdefault(obj["partition"], []).append(obj)
        offsets = [line["offset"] for line in obj["lines"]]
        if offsets != list(range(obj["name_first"], obj["name_last"] + 1)):
            problems.append(f"{obj['key']} holds offsets {_span(offsets)}, its name says "
                            f"{obj['name_first']}-{obj['name_last']}")
        for line in obj["lines"]:
            where = (obj["partition"], line["offset"])
            archived[where] += 1
            on_topic = topic.get(where)
            if on_topic is None:
                problems.append(f"{obj['key']}: offset {line['offset']} is not on partition {obj['partition']}")
            elif on_topic["sha256"] != line["sha256"]:
                problems.append(f"{obj['key']}: offset {line['offset']} holds other bytes than the topic "
                                f"(sha256 {line['sha256'][:12]}…, topic {on_topic['sha256'][:12]}…)")
            if line["claimed_sha256"] != line["sha256"]:
                problems.append(f"{obj['key']}: offset {line['offset']} claims value_sha256 "
                                f"{str(line['claimed_sha256'])[:12]}…, its value hashes to {line['sha256'][:12]}…")
    problems += [f"partition {p} offset {o} is archived {n} times" for (p, o), n in sorted(archived.items()) if n > 1]
    for p, objs in sorted(by_partition.items()):
        objs.sort(key=lambda o: o["name_first"])
        expected = first_on_topic.get(p, 0)
        for obj in objs:
            if obj["name_first"] > expected:
                problems.append(f"partition {p}: offsets {expected}-{obj['name_first'] - 1} are in no archive object "
                                f"(a gap before {obj['key']})")
            expected = max(expected, obj["name_last"] + 1)
    for p, committed in sorted(obs["committed"].items()):
        if committed is None:
            continue
        part = int(p)
        ends = [o["name_last"] + 1 for o in by_partition.get(part, [])]
        archived_end = max(ends, default=first_on_topic.get(part, 0))
        if committed > archived_end:
            problems.append(f"partition {part}: the group committed offset {committed}, past the archived end "
                            f"{archived_end}: records were committed before they were archived")
        missing = [o for (q, o) in topic if q == part and o < committed and archived[(q, o)] == 0]
        if missing:
            problems.append(f"partition {part}: committed records not archived: offsets {_span(sorted(missing))}")
    unarchived = sorted((r["partition"], r["offset"]) for r in obs["records"]
                        if r["run"] and archived[(r["partition"], r["offset"])] == 0)
    if unarchived:
        problems.append(f"{len(unarchived)} record(s) of the run are in no archive object: {unarchived[:10]}")
    problems += _index_problems(obs)
    return problems


def _index_problems(obs: dict[str, Any]) -> list[str]:
    index = obs["index"]
    if index is None:
        return [f"RTDL wrote no {INDEX}"]
    listed = {o.get("key"): o for objs in (index.get("partitions") or {}).values() for o in objs or []}
    found = {o["key"]: o for o in obs["objects"]}
    problems = [f"the archive index lists {k}, which is not in the archive bucket"
                for k in sorted(set(listed) - set(found))]
    upto = obs.get("indexed_up_to") or {}
    for key in sorted(set(found) - set(listed)):
        obj = found[key]
        end = upto.get(str(obj["partition"]))
        if not isinstance(end, int) or obj["name_first"] is None or obj["name_first"] < end:
            problems.append(f"archive object {key} is not in the archive index, though RTDL's catch-up claims "
                            f"partition {obj['partition']} committed to {end} when it wrote the index")
    for key in sorted(set(listed) & set(found)):
        said, obj = listed[key], found[key]
        if said.get("sha256") != obj["sha256"] or said.get("records") != len(obj["lines"]):
            problems.append(f"the archive index says {key} has sha256 {str(said.get('sha256'))[:12]}… and "
                            f"{said.get('records')} records; it has {obj['sha256'][:12]}… and {len(obj['lines'])}")
    return problems


def _span(offsets: list[int]) -> str:
    if not offsets:
        return "none"
    return f"{offsets[0]}-{offsets[-1]} ({len(offsets)})" if len(offsets) > 3 else ", ".join(map(str, offsets))


def check_archive(result: dict[str, Any]) -> None:
    if result["problems"]:
        raise Finding("P8.archive", result["problems"])


# --- fault: an archive object removed out of band ------------------------------------------------------------


def remove_archive_object(cert: Certification) -> dict[str, Any]:
    """Delete one archive object (as an operator's mistake would), judge again, put the same bytes back."""
    pins = p01.ensure_pinned(cert)
    before = archive(cert)
    objects = sorted(before["observed"]["objects"], key=lambda o: (o["partition"] or 0, o["name_first"] or 0))
    if not objects:
        raise Finding("P8.archive", ["there is no archive object to remove"])
    victim = objects[0]
    bucket = before["observed"]["bucket"]
    body = s3.get_bytes(cert.aws_session, bucket=bucket, key=victim["key"])
    s3.delete(cert.aws_session, bucket=bucket, key=victim["key"])
    try:
        removed = judge_archive(observe_archive(cert, pins, ensure_caught_up(cert)))
    finally:
        s3.overwrite(cert.aws_session, bucket=bucket, key=victim["key"], body=body)
    restored = judge_archive(observe_archive(cert, pins, ensure_caught_up(cert)))
    record = {"removed": {"key": victim["key"], "partition": victim["partition"],
                          "offsets": [victim["name_first"], victim["name_last"]]},
              "problems_while_removed": removed, "problems_after_restore": restored}
    cert.evidence(f"runs/{pins.platform_run_id}/rtdl_core/fault_archive_object_removed.json", record)
    return record


def check_gap_named(record: dict[str, Any]) -> None:
    removed = record["removed"]
    where = re.compile(rf"^partition {removed['partition']}: .*\boffsets {removed['offsets'][0]}\b")
    named = [p for p in record["problems_while_removed"]
             if where.search(p) and ("no archive object" in p or "not archived" in p)]
    if not named:
        raise Finding("P8.fail_closed", [f"removing {removed['key']} was not named as a gap: "
                                         f"{record['problems_while_removed'] or 'no problem found'}"])


def check_restored(record: dict[str, Any]) -> None:
    if record["problems_after_restore"]:
        raise Finding("P8.archive", record["problems_after_restore"])
