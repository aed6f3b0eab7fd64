"""P10 case/labels: one case per REVIEW/DECLINE decision with its labels, in the managed database the DSN
in SSM names, append-only by the database's own refusal.

`case_labels/summary.json` is a claim. The harness queries PostgreSQL at the DSN it reads from SSM:
the cases, labels and DLA rows, who is connected (pg_stat_activity), and what the database answers
when the platform role tries to UPDATE or DELETE.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from harness import db, pipeline
from harness.errors import Finding, HarnessError
from harness.phases import claims, p01, p09
from harness.session import Certification

SUMMARY = "case_labels/summary.json"
FAMILIES = ("cases", "labels", "managed_db", "summary")
CLAIM_TIMEOUT_S = 180.0


def ensure_cases(cert: Certification) -> dict[str, Any]:
    return cert.once("p10.cases", lambda: _cases(cert))


def _cases(cert: Certification) -> dict[str, Any]:
    pins = p01.ensure_pinned(cert)
    decided = p09.ensure_decided(cert)
    claim = claims.wait(cert, pins, SUMMARY, timeout_s=CLAIM_TIMEOUT_S, who="case/labels")
    obs = observe(cert, pins, decisions=[d["value"] for d in decided["observed"]["decisions"]], claim=claim)
    verdict = judge(obs)
    cert.evidence(f"runs/{pins.platform_run_id}/case_labels/cases_observed.json", {"observed": obs,
                                                                                   "problems": verdict})
    return {"observed": obs, "problems": verdict}


def observe(cert: Certification, pins: p01.Pins, *, decisions: list[dict[str, Any]],
            claim: dict[str, Any] | None) -> dict[str, Any]:
    run = pins.platform_run_id
    url = p09.dsn(cert)
    return {
        "platform_run_id": run,
        "dsn_ssm_path": cert.handles.ssm["db_dsn"],
        "pinned": {"database": cert.handles.database["name"], "role": cert.handles.database["user"]},
        "database": pipeline.database_facts(url),
        "sessions": pipeline.sessions(url),
        "decisions": [{k: d.get(k) for k in ("decision_id", "event_id", "card_id", "decision", "reasons")}
                      for d in decisions],
        "dla": [{k: r[k] for k in ("decision_id", "event_id", "decision")} for r in pipeline.dla_rows(url, run)],
        "cases": pipeline.case_rows(url, run),
        "labels": pipeline.label_rows(url, run),
        "claim": claim,
    }


def judge(obs: dict[str, Any]) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {f: [] for f in FAMILIES}
    decisions = {d["decision_id"]: d for d in obs["decisions"]}
    flagged = {i: d for i, d in decisions.items() if d["decision"] in ("REVIEW", "DECLINE")}
    dla_flagged = {r["decision_id"] for r in obs["dla"] if r["decision"] in ("REVIEW", "DECLINE")}
    if set(flagged) != dla_flagged:
        problems["cases"].append(f"the decision topic flags {len(flagged)} decisions, the DLA {len(dla_flagged)}")
    per_decision = Counter(c["decision_id"] for c in obs["cases"])
    cases = {c["case_id"]: c for c in obs["cases"]}
    problems["cases"] += [f"decision {i} ({d['decision']}, event {d['event_id']}) has no case"
                          for i, d in sorted(flagged.items()) if per_decision[i] == 0]
    problems["cases"] += [f"decision {i} has {n} cases" for i, n in sorted(per_decision.items()) if n > 1]
    for c in obs["cases"]:
        d = decisions.get(c["decision_id"])
        if d is None:
            problems["cases"].append(f"case {c['case_id']} names decision {c['decision_id']}, which is not on the "
                                     "decision topic")
            continue
        if d["decision"] == "APPROVE":
            problems["cases"].append(f"case {c['case_id']} was opened for an APPROVE decision ({c['decision_id']})")
        if c["case_id"] != pipeline.case_id(c["decision_id"]):
            problems["cases"].append(f"case {c['case_id']} of {c['decision_id']}: the contract's id is "
                                     f"{pipeline.case_id(c['decision_id'])}")
        differs = {k: (c[k], d[k]) for k in ("event_id", "card_id", "decision") if c[k] != d[k]}
        if differs:
            problems["cases"].append(f"case {c['case_id']} differs from its decision (case, decision): {differs}")

    labels: dict[str, set[str]] = {}
    for label in obs["labels"]:
        labels.setdefault(label["case_id"], set()).add(label["label"])
        if label["case_id"] not in cases:
            problems["labels"].append(f"label {label['label_id']} names case {label['case_id']}, which does not "
                                      "exist")
        elif label["label_id"] != pipeline.label_id(label["case_id"], label["label"]):
            problems["labels"].append(f"label {label['label_id']} ({label['label']} of {label['case_id']}): the "
                                      f"contract's id is {pipeline.label_id(label['case_id'], label['label'])}")
    for c in obs["cases"]:
        d = decisions.get(c["decision_id"])
        want = set((d or {}).get("reasons") or [])
        got = labels.get(c["case_id"], set())
        if d is not None and got != want:
            problems["labels"].append(f"case {c['case_id']} has labels {sorted(got)}, its decision's reasons are "
                                      f"{sorted(want)}")

    facts, pinned = obs["database"], obs["pinned"]
    if facts["database"] != pinned["database"] or facts["role"] != pinned["role"]:
        problems["managed_db"].append(f"the DSN in SSM {obs['dsn_ssm_path']} reaches database {facts['database']!r} "
                                      f"as {facts['role']!r}; pinned {pinned['database']!r} as {pinned['role']!r}")
    lane = [s for s in obs["sessions"] if s["application_name"] == "spine-case-labels"]
    if not lane:
        problems["managed_db"].append("case/labels holds no connection to this database (no spine-case-labels "
                                      f"session in pg_stat_activity: {obs['sessions']})")
    problems["managed_db"] += [f"case/labels is connected to {s['database']!r} as {s['role']!r}, not to "
                               f"{facts['database']!r} as {facts['role']!r}" for s in lane
                               if (s["database"], s["role"]) != (facts["database"], facts["role"])]

    claim = obs["claim"]
    if claim is None:
        problems["summary"].append(f"case/labels wrote no {SUMMARY}")
    else:
        if claim.get("cases") != len(obs["cases"]) or claim.get("labels") != len(obs["labels"]):
            problems["summary"].append(f"the summary claims {claim.get('cases')} cases and {claim.get('labels')} "
                                       f"labels; the database holds {len(obs['cases'])} and {len(obs['labels'])}")
        if claim.get("dsn_ssm_path") != obs["dsn_ssm_path"]:
            problems["summary"].append(f"case/labels says it used the DSN at {claim.get('dsn_ssm_path')!r}, the "
                                       f"pinned path is {obs['dsn_ssm_path']!r}")
        if (claim.get("database"), claim.get("role")) != (facts["database"], facts["role"]):
            problems["summary"].append(f"case/labels says it wrote to {claim.get('database')!r} as "
                                       f"{claim.get('role')!r}; the DSN in SSM reaches {facts['database']!r} as "
                                       f"{facts['role']!r}")
    return problems


def check(result: dict[str, Any], *families: str) -> None:
    problems = [f"{family}: {p}" for family in families for p in result["problems"][family]]
    if problems:
        raise Finding(f"P10.{'+'.join(families)}", problems)


# --- the database refuses UPDATE and DELETE -----------------------------------------------------------------


def mutation_attempts(cert: Certification) -> dict[str, Any]:
    """As the platform role (the DSN in SSM), and as the owner where the harness holds it: UPDATE and DELETE."""
    pins = p01.ensure_pinned(cert)
    result = ensure_cases(cert)
    cases, labels = result["observed"]["cases"], result["observed"]["labels"]
    if not cases or not labels:
        raise HarnessError("the run opened no case with a label: there is no row to try to change")
    case, label = cases[0], labels[0]
    roles = {"platform": p09.dsn(cert)}
    owner = cert.database_owner_dsn()
    if owner is not None:
        roles["owner"] = owner
    attempts: dict[str, dict[str, Any]] = {}
    for who, url in roles.items():
        attempts[f"{who}: update cases"] = db.sqlstate_of(
            url, "update cases set decision = 'REVIEW', card_id = 'changed' where case_id = %s", (case["case_id"],))
        attempts[f"{who}: delete cases"] = db.sqlstate_of(url, "delete from cases where case_id = %s",
                                                          (case["case_id"],))
        attempts[f"{who}: update case_labels"] = db.sqlstate_of(
            url, "update case_labels set label = 'changed' where label_id = %s", (label["label_id"],))
        attempts[f"{who}: delete case_labels"] = db.sqlstate_of(url, "delete from case_labels where label_id = %s",
                                                                (label["label_id"],))
    after = ensure_cases_now(cert, pins)
    record = {"platform_run_id": pins.platform_run_id, "roles": {w: pipeline.database_facts(u)["role"]
                                                                   for w, u in roles.items()},
              "attempts": attempts, "rows_before": {"cases": cases, "labels": labels}, "rows_after": after}
    cert.evidence(f"runs/{pins.platform_run_id}/case_labels/append_only_refusals.json", record)
    return record


def ensure_cases_now(cert: Certification, pins: p01.Pins) -> dict[str, Any]:
    url = p09.dsn(cert)
    run = pins.platform_run_id
    return {"cases": pipeline.case_rows(url, run), "labels": pipeline.label_rows(url, run)}


def check_refused(record: dict[str, Any]) -> None:
    problems = [f"{name} was not refused by the database: {outcome}" for name, outcome in record["attempts"].items()
                if not outcome["refused"]]
    problems += [f"{name} was refused with SQLSTATE {outcome['sqlstate']}, not 42501 (insufficient privilege): "
                 f"{outcome.get('message')}" for name, outcome in record["attempts"].items()
                 if outcome["refused"] and outcome["sqlstate"] != "42501"]
    if record["rows_after"] != record["rows_before"]:
        problems.append("the cases or labels changed after the attempts")
    if problems:
        raise Finding("P10.append_only", problems)
