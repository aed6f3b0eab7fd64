"""P0 substrate readiness: core + demo apply, no drift, every handle resolves, no NAT, budget."""

from __future__ import annotations

from typing import Any

from harness import db
from harness.aws import budgets, dynamodb, ec2, ecr, ecs, s3, ssm
from harness.aws.policy import wildcard_principal
from harness.compute import Network
from harness.errors import Finding, HarnessError, SubstrateError
from harness.handles import Bucket
from harness.kafka import KafkaConnection, admin
from harness.session import Certification

FAMILIES = ("buckets", "ssm", "topics", "ecs", "dynamodb", "ecr", "database")


def ensure_applied(cert: Certification) -> dict[str, Any]:
    """Apply core, create the pinned topics, apply demo; record the apply snapshot (once)."""
    return cert.once("p0.apply", lambda: _apply(cert))


def ensure_core(cert: Certification) -> dict[str, Any]:
    """Apply the durable core stack (once): packaging needs its ECR repository before P0 runs."""
    return cert.once("p0.core", lambda: _apply_stack(cert, "core"))


def _apply_stack(cert: Certification, name: str) -> dict[str, Any]:
    stack = cert.stack(name)
    stack.init()
    stack.apply()
    return {"runs": stack.history, "outputs": stack.outputs(), "resources": stack.resources()}


def _apply(cert: Certification) -> dict[str, Any]:
    snapshot: dict[str, Any] = {"stacks": {}, "topics": {}, "error": None}
    try:
        snapshot["stacks"]["core"] = ensure_core(cert)
        # Topics come from the registry through the admin client, on the pinned bootstrap.
        snapshot["topics"] = admin.ensure_topics(
            cert.kafka(), cert.handles.topics, replication_factor=cert.handles.replication_factor
        )
        snapshot["stacks"]["demo"] = _apply_stack(cert, "demo")
        snapshot["database_schema"] = _apply_schema(cert)
    except HarnessError as exc:
        snapshot["error"] = str(exc)
        for name in ("core", "demo"):  # what ran is recorded even when it failed
            snapshot["stacks"].setdefault(name, {"runs": cert.stack(name).history})
        raise
    finally:
        # The operation is recorded whether or not it succeeded.
        try:
            snapshot["terraform"] = cert.stack("core").version()
        except HarnessError as exc:
            snapshot["terraform"] = f"unknown ({exc})"
        cert.evidence("substrate/apply_snapshot.json", snapshot)
    return snapshot


def _apply_schema(cert: Certification) -> dict[str, Any]:
    """The platform's tables, applied by the database owner (infra/db/schema.sql); P0 then checks them."""
    owner_dsn = cert.database_owner_dsn()
    if owner_dsn is None:
        return {"applied": False, "reason": "the harness does not own this database: apply infra/db/schema.sql "
                "as its owner (psql -v platform_role=<role> -f infra/db/schema.sql); P0 checks the result"}
    return {"applied": True, **db.apply_schema(owner_dsn, cert.handles.database["user"])}


def demo_network(cert: Certification) -> Network | None:
    """Subnets and security group of the applied demo stack (None before P0 applied it)."""
    snapshot = cert.peek("p0.apply")
    if not snapshot:
        return None
    outputs = snapshot["stacks"]["demo"]["outputs"]
    return Network(subnets=list(outputs["subnet_ids"]), security_groups=[outputs["security_group_id"]])


def check_applied(snapshot: dict[str, Any]) -> None:
    problems = []
    for name in ("core", "demo"):
        stack = snapshot["stacks"].get(name)
        if not stack or "resources" not in stack:
            problems.append(f"{name}: not applied")
        elif not stack["resources"]:
            problems.append(f"{name}: applied but manages no resources")
    problems += [f"topic {t}: {o}" for t, o in snapshot["topics"].items() if o not in ("created", "exists")]
    if problems:
        raise Finding("P0.apply", problems)


def replan(cert: Certification) -> dict[str, Any]:
    ensure_applied(cert)
    result = {}
    for name in ("core", "demo"):
        run = cert.stack(name).plan()
        result[name] = {"exit_code": run.exit_code, "changes": run.changes}
    cert.evidence("substrate/replan.json", result)
    return result


def check_no_changes(result: dict[str, Any]) -> None:
    problems = [
        f"{name}: plan shows changes: {', '.join(r['changes']) or '(exit code 2)'}"
        for name, r in result.items() if r["exit_code"] != 0
    ]  # fmt: skip
    if problems:
        raise Finding("P0.no_drift", problems)


def _entry(handle: str, pinned: Any, observed: Any, problems: list[str]) -> dict[str, Any]:
    return {"handle": handle, "pinned": pinned, "observed": observed, "ok": not problems, "problems": problems}


def observe_bucket(cert: Certification, bucket: Bucket) -> dict[str, Any] | None:
    """What a project bucket enforces, read from S3 (None: it does not exist): protections and bucket policy."""
    if not s3.exists(cert.aws_session, bucket=bucket.name):
        return None
    return {**s3.protections(cert.aws_session, bucket=bucket.name),
            **s3.policy(cert.aws_session, bucket=bucket.name)}


def bucket_problems(bucket: Bucket, observed: dict[str, Any] | None) -> list[str]:
    """A bucket against its pinned protections: versioning, public access block, encryption, no public policy."""
    if observed is None:
        return [f"bucket {bucket.name} does not exist"]
    problems = []
    if bucket.versioning and observed["versioning"] != "Enabled":
        problems.append(f"bucket {bucket.name}: versioning is {observed['versioning']}, pinned Enabled")
    if bucket.public_access_block:
        open_flags = [k for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy",
                                  "RestrictPublicBuckets") if not observed["public_access_block"].get(k)]
        if open_flags:
            problems.append(f"bucket {bucket.name}: public access not blocked ({', '.join(open_flags)})")
        problems += [f"bucket {bucket.name}: its bucket policy grants public access: {grant}"
                     for grant in public_grants(observed.get("policy"))]
    if bucket.encryption not in observed["encryption"]:
        problems.append(f"bucket {bucket.name}: encryption {observed['encryption']}, pinned {bucket.encryption}")
    return problems


# Condition keys that tie a wildcard principal to known callers: AWS does not count such a grant as public.
_NON_PUBLIC_KEYS = frozenset(k.lower() for k in (
    "aws:SourceIp", "aws:SourceVpc", "aws:SourceVpce", "aws:SourceArn", "aws:SourceAccount", "aws:SourceOwner",
    "aws:PrincipalAccount", "aws:PrincipalArn", "aws:PrincipalOrgID", "aws:userid", "s3:DataAccessPointAccount",
    "s3:DataAccessPointArn"))


def public_grants(policy: dict[str, Any] | None) -> list[str]:
    """The statements of a bucket policy that allow anyone (the harness's own reading of the document).

    A grant is public when it allows a wildcard principal (``*``, ``{"AWS": "*"}``) and no condition ties it to
    known callers (a source address, VPC, account, organisation or principal ARN), as AWS's policy status does.
    """
    if not policy:
        return []
    statements = policy.get("Statement", [])
    grants = []
    for i, st in enumerate(statements if isinstance(statements, list) else [statements]):
        if not isinstance(st, dict) or st.get("Effect") != "Allow" or not wildcard_principal(st.get("Principal")):
            continue
        keys = {k.lower() for op in (st.get("Condition") or {}).values() if isinstance(op, dict) for k in op}
        if keys & _NON_PUBLIC_KEYS:
            continue
        grants.append(f"statement {st.get('Sid') or i} allows {st.get('Action') or st.get('NotAction')} on "
                      f"{st.get('Resource') or st.get('NotResource')} to any principal")
    return grants



def _buckets(cert: Certification) -> list[dict[str, Any]]:
    entries = []
    for role, bucket in cert.handles.buckets.items():
        observed = observe_bucket(cert, bucket)
        pinned = {"name": bucket.name, "versioning": bucket.versioning, "encryption": bucket.encryption,
                  "public_access_block": bucket.public_access_block}
        entries.append(_entry(f"s3.buckets.{role}", pinned, observed, bucket_problems(bucket, observed)))
    return entries


def _ssm(cert: Certification) -> list[dict[str, Any]]:
    entries = []
    for role, path in cert.handles.ssm.items():
        problems: list[str] = []
        param = ssm.find(cert.aws_session, path)
        want = "String" if role == "confluent_bootstrap" else "SecureString"
        if param is None:
            problems.append(f"SSM parameter {path} does not exist")
        elif param.type != want:
            problems.append(f"SSM parameter {path} is {param.type}, pinned {want}")
        elif not param.value.strip():
            problems.append(f"SSM parameter {path} is empty")
        elif param.weak:
            problems.append(f"SSM parameter {path} is shorter than 6 characters: not a credential")
        entries.append(_entry(f"ssm.{role}", {"path": path, "type": want},
                              param.to_json() if param else None, problems))
    return entries


def _topics(cert: Certification) -> list[dict[str, Any]]:
    try:
        conn: KafkaConnection | None = cert.kafka()
    except HarnessError as exc:
        conn, reason = None, str(exc)
    if conn is None:
        return [_entry(f"kafka.topics.{t}", n, None, [f"no Kafka connection from SSM: {reason}"])
                for t, n in cert.handles.topics.items()]
    states = admin.describe_topics(conn, list(cert.handles.topics))
    entries = []
    for topic, partitions in cert.handles.topics.items():
        state = states[topic]
        problems = []
        if state.partitions is None:
            problems.append(f"topic {topic} does not exist on {conn.bootstrap}")
        elif state.partitions != partitions:
            problems.append(f"topic {topic} has {state.partitions} partitions, pinned {partitions}")
        entries.append(_entry(f"kafka.topics.{topic}", {"partitions": partitions, "bootstrap_from": "ssm"},
                              {"partitions": state.partitions, "bootstrap": conn.bootstrap}, problems))
    return entries


def _ecs(cert: Certification) -> list[dict[str, Any]]:
    h = cert.handles
    aws = cert.aws_session
    cluster = ecs.describe_cluster(aws, h.ecs_cluster)
    problems = []
    if not cluster or cluster["status"] != "ACTIVE":
        problems.append(f"ECS cluster {h.ecs_cluster} is not ACTIVE: {cluster}")
    entries = [_entry("ecs.cluster", h.ecs_cluster, cluster, problems)]
    revisions = ecs.active_task_families(aws, list(h.task_families.values()))
    for mode, family in h.task_families.items():
        count = revisions.get(family, 0)
        entries.append(_entry(f"ecs.task_families.{mode}", family, {"active_revisions": count},
                              [] if count else [f"task definition family {family} has no ACTIVE revision"]))
    services = ecs.describe_services(aws, h.ecs_cluster, list(h.services.values())) if cluster else {}
    for mode, name in h.services.items():
        svc = services.get(name)
        problems = []
        if svc is None or svc["status"] != "ACTIVE":
            problems.append(f"ECS service {name} is not ACTIVE in {h.ecs_cluster}: {svc}")
        elif h.task_families[mode] not in svc["task_definition"]:
            problems.append(f"ECS service {name} runs {svc['task_definition']}, pinned {h.task_families[mode]}")
        entries.append(_entry(f"ecs.services.{mode}", name, svc, problems))
    return entries


def _dynamodb(cert: Certification) -> list[dict[str, Any]]:
    entries = []
    for role, table in cert.handles.tables.items():
        found = dynamodb.describe_table(cert.aws_session, table.name)
        problems = []
        if found is None:
            problems.append(f"DynamoDB table {table.name} does not exist")
        elif found["status"] != "ACTIVE" or found["hash_key"] != table.hash_key:
            problems.append(f"DynamoDB table {table.name}: {found}, pinned hash key {table.hash_key}")
        entries.append(_entry(f"dynamodb.tables.{role}", {"name": table.name, "hash_key": table.hash_key},
                              found, problems))
    return entries


def _ecr(cert: Certification) -> list[dict[str, Any]]:
    h = cert.handles
    repo = ecr.describe_repository(cert.aws_session, h.ecr_repository)
    problems = []
    if repo is None:
        problems.append(f"ECR repository {h.ecr_repository} does not exist")
    elif repo["tag_mutability"] != h.ecr_tag_mutability:
        problems.append(
            f"ECR repository {h.ecr_repository} tags are {repo['tag_mutability']}, pinned {h.ecr_tag_mutability}"
        )
    return [_entry("ecr.repository", {"name": h.ecr_repository, "tag_mutability": h.ecr_tag_mutability},
                   repo, problems)]


def _database(cert: Certification) -> list[dict[str, Any]]:
    path = cert.handles.ssm["db_dsn"]
    problems: list[str] = []
    observed: dict[str, Any] | None = None
    param = ssm.find(cert.aws_session, path)
    if param is None:
        problems.append(f"no DSN at SSM {path}")
    else:
        try:
            observed = {"server_version": db.probe(param.value), "query": "select version()",
                        "append_only": db.append_only_posture(param.value)}
        except SubstrateError as exc:
            problems.append(f"the database at SSM {path} does not answer: {exc}")
        else:
            problems += _append_only_problems(observed["append_only"], cert.handles.database["user"])
    return [_entry("database", {"dsn_from": path, "name": cert.handles.database["name"]}, observed, problems)]


def _append_only_problems(posture: dict[str, Any], role: str) -> list[str]:
    problems = []
    if posture["role"] != role:
        problems.append(f"the DSN in SSM logs in as {posture['role']!r}, pinned {role!r}")
    if posture["superuser"]:
        problems.append(f"the platform role {posture['role']!r} is a superuser: no privilege can hold it")
    for table, found in posture["tables"].items():
        if not found["exists"]:
            problems.append(f"table {table} does not exist (apply infra/db/schema.sql)")
            continue
        granted = sorted(p for p in ("UPDATE", "DELETE", "TRUNCATE") if found["privileges"][p])
        if granted:
            problems.append(f"the platform role may {'/'.join(granted)} {table}: it must be append-only")
        if not found["privileges"]["INSERT"] or not found["privileges"]["SELECT"]:
            problems.append(f"the platform role cannot INSERT and SELECT {table}")
        if not found["append_only_triggers"]:
            problems.append(f"table {table} has no append-only trigger")
    return problems


_RESOLVERS = {"buckets": _buckets, "ssm": _ssm, "topics": _topics, "ecs": _ecs,
              "dynamodb": _dynamodb, "ecr": _ecr, "database": _database}


def resolve_handles(cert: Certification) -> dict[str, list[dict[str, Any]]]:
    """Resolve every handle against the substrate and record what was observed."""
    ensure_applied(cert)
    resolution = {family: _RESOLVERS[family](cert) for family in FAMILIES}
    cert.evidence("substrate/handle_resolution.json", {
        "handles_source": cert.handles.source,
        "handles_digest": cert.handles.digest,
        "families": resolution,
        "unresolved": [e["handle"] for entries in resolution.values() for e in entries if not e["ok"]],
    })  # fmt: skip
    return resolution


def check_family(resolution: dict[str, list[dict[str, Any]]], family: str) -> None:
    problems = [p for entry in resolution[family] for p in entry["problems"]]
    if problems:
        raise Finding(f"P0.handles.{family}", problems)


def observe_network(cert: Certification) -> dict[str, Any]:
    """NAT gateways and load balancers in the project's VPCs (tag-scoped), read now; nothing recorded."""
    snapshot = ensure_applied(cert)
    aws = cert.aws_session
    vpcs = set(ec2.find_vpcs(aws, tags={"project": cert.handles.tags["project"]}))
    demo_vpc = snapshot["stacks"]["demo"]["outputs"].get("vpc_id")
    if demo_vpc:
        vpcs.add(demo_vpc)
    return {
        "vpc_ids": sorted(vpcs),
        "nat_gateways": ec2.find_nat_gateways(aws, vpc_ids=sorted(vpcs)),
        "load_balancers": ec2.find_load_balancers(aws, vpc_ids=sorted(vpcs)),
    }


def network_posture(cert: Certification) -> dict[str, Any]:
    """P0's network posture, recorded as substrate/network_posture.json."""
    posture = observe_network(cert)
    cert.evidence("substrate/network_posture.json", posture)
    return posture


def check_no_nat(posture: dict[str, Any]) -> None:
    if not posture["vpc_ids"]:
        raise Finding("P0.no_nat", ["no project VPC found: the demo stack's network is missing"])
    nats = [f"NAT gateway {n['id']} ({n['state']}) in {n['vpc_id']}" for n in posture["nat_gateways"]]
    if nats:
        raise Finding("P0.no_nat", nats)


def cost_guardrails(cert: Certification) -> dict[str, Any]:
    ensure_applied(cert)
    budget = budgets.describe_budget(cert.aws_session, account_id=cert.aws_session.account_id(),
                                     name=cert.handles.budget["name"])
    record = {"pinned": cert.handles.budget, "observed": budget}
    cert.evidence("substrate/cost_guardrails.json", record)
    return record


def check_budget(record: dict[str, Any]) -> None:
    pinned, observed = record["pinned"], record["observed"]
    if observed is None:
        raise Finding("P0.budget", [f"budget {pinned['name']} does not exist"])
    problems = []
    if observed["limit"] != float(pinned["limit_usd"]) or observed["unit"] != "USD":
        problems.append(f"budget {pinned['name']} limit is {observed['limit']} {observed['unit']}, "
                        f"pinned {pinned['limit_usd']} USD")
    if not any(n["threshold"] == float(pinned["alert_threshold_percent"]) for n in observed["notifications"]):
        problems.append(f"budget {pinned['name']} has no alert at {pinned['alert_threshold_percent']} %")
    if problems:
        raise Finding("P0.budget", problems)
