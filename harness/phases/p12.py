"""P12 teardown: destroy demo, keep core and evidence, prove nothing cost-bearing remains."""

from __future__ import annotations

from typing import Any

from harness.aws import arn_status, dynamodb, ec2, ecr, ecs, iam, logs, s3, ssm, tagging
from harness.errors import Finding, SubstrateError
from harness.session import Certification


def ensure_destroyed(cert: Certification) -> dict[str, Any]:
    """Destroy the demo stack (once); a failed destroy is recorded, not hidden."""
    return cert.once("p12.destroy", lambda: _destroy(cert))


def _destroy(cert: Certification) -> dict[str, Any]:
    stack = cert.stack("demo")
    # Resources the demo stack held before destroy: the proof checks each is gone.
    try:
        before = stack.resources() if (stack.dir / "terraform.tfstate").exists() else []
    except SubstrateError:
        before = []
    outcome: dict[str, Any]
    try:
        run = stack.destroy()
        outcome = {"ok": True, "exit_code": run.exit_code, "duration_s": run.duration_s, "error": None}
    except SubstrateError as exc:
        outcome = {"ok": False, "exit_code": None, "duration_s": None, "error": str(exc)}
    outcome["resources_before"] = before
    return outcome


def proof(cert: Certification) -> dict[str, Any]:
    """The post-destroy snapshot (once): Tagging API plus direct describes."""
    return cert.once("p12.proof", lambda: _proof(cert))


def _proof(cert: Certification) -> dict[str, Any]:
    destroy = ensure_destroyed(cert)
    h, aws = cert.handles, cert.aws_session
    project = {"project": h.tags["project"]}
    demo_vpcs = sorted({r["id"].rsplit("/", 1)[-1] for r in destroy["resources_before"] if r["type"] == "aws_vpc"}
                       | set(ec2.find_vpcs(aws, tags=project)))
    demo_tagged = tagging.find_resources(aws, tags={**project, "stack": "demo"})
    demo_ssm = {role: ssm.find(aws, h.ssm[role]) is not None for role in ("ig_api_key", "db_dsn")}
    cluster = ecs.describe_cluster(aws, h.ecs_cluster)
    live_cluster = cluster is not None and cluster["status"] == "ACTIVE"
    prefix = h.evidence_prefix + cert.cert_id + "/"
    evidence_bucket = h.bucket("evidence").name
    record = {
        "destroy": destroy,
        "tagging_api": {
            "demo": demo_tagged,
            # The Tagging API keeps listing deleted resources (ECS clusters and services, deregistered
            # task definitions, deleted NAT gateways): each listed ARN is described by its own service.
            "demo_status": {arn: arn_status.status(aws, arn) for arn in demo_tagged},
            "core": tagging.find_resources(aws, tags={**project, "stack": "core"}),
        },
        "direct": {
            "ecs_cluster": cluster,
            "ecs_live_services": ecs.list_live_services(aws, h.ecs_cluster) if live_cluster else [],
            "ecs_live_tasks": ecs.list_live_tasks(aws, h.ecs_cluster) if live_cluster else [],
            "vpc_ids": demo_vpcs,
            "nat_gateways": ec2.find_nat_gateways(aws, vpc_ids=demo_vpcs),
            "load_balancers": ec2.find_load_balancers(aws, vpc_ids=demo_vpcs),
            "demo_ssm_present": demo_ssm,
            "execution_roles": {
                r["id"]: iam.role_exists(aws, r["id"].rsplit("/", 1)[-1])
                for r in destroy["resources_before"] if r["type"] == "aws_iam_role"
            },
            "log_groups": logs.list_groups(aws, prefix=h.log_group_prefix),
            "ecr_repository": ecr.describe_repository(aws, h.ecr_repository),
            "core_buckets": {b.name: s3.exists(aws, bucket=b.name) for b in h.buckets.values()},
            "core_tables": {t.name: dynamodb.describe_table(aws, t.name) is not None for t in h.tables.values()},
            "core_ssm_present": {
                h.ssm[r]: ssm.find(aws, h.ssm[r]) is not None
                for r in ("confluent_bootstrap", "confluent_api_key", "confluent_api_secret")
            },
            "evidence_mirrored_before": sorted(cert.mirrored),
            "evidence_keys": [k[len(prefix):] for k in s3.list_keys(aws, bucket=evidence_bucket, prefix=prefix)]
            if s3.exists(aws, bucket=evidence_bucket) else None,
        },
    }
    cert.evidence("teardown/teardown_proof.json", record)
    return record


def check_destroyed(record: dict[str, Any]) -> None:
    problems = []
    if not record["destroy"]["ok"]:
        problems.append(f"terraform destroy of the demo stack failed: {record['destroy']['error']}")
    problems += [f"demo-tagged resource still present: {arn} ({status})"
                 for arn, status in record["tagging_api"]["demo_status"].items() if not arn_status.is_gone(status)]
    problems += [f"IAM role still present: {arn}" for arn, live in record["direct"]["execution_roles"].items() if live]
    problems += [f"log group still present: {g}" for g in record["direct"]["log_groups"]]
    if problems:
        raise Finding("P12.demo_destroyed", problems)


def check_core_preserved(record: dict[str, Any]) -> None:
    d = record["direct"]
    problems = [f"core bucket {b} is gone" for b, ok in d["core_buckets"].items() if not ok]
    problems += [f"core table {t} is gone" for t, ok in d["core_tables"].items() if not ok]
    problems += [f"core SSM parameter {p} is gone" for p, ok in d["core_ssm_present"].items() if not ok]
    if d["ecr_repository"] is None:
        problems.append("the ECR repository is gone")
    if problems:
        raise Finding("P12.core_preserved", problems)


def check_evidence_preserved(record: dict[str, Any]) -> None:
    d = record["direct"]
    if d["evidence_keys"] is None:
        raise Finding("P12.evidence_preserved", ["the evidence bucket is gone"])
    if not d["evidence_mirrored_before"]:
        raise Finding("P12.evidence_preserved", ["no evidence of this certification was mirrored before teardown"])
    lost = sorted(set(d["evidence_mirrored_before"]) - set(d["evidence_keys"]))
    if lost:
        raise Finding("P12.evidence_preserved", [f"mirrored evidence lost: {rel}" for rel in lost])


def check_no_ecs(record: dict[str, Any]) -> None:
    d = record["direct"]
    problems = [f"ECS service still live: {s}" for s in d["ecs_live_services"]]
    problems += [f"ECS task still live: {t['arn']} ({t['status']})" for t in d["ecs_live_tasks"]]
    if problems:
        raise Finding("P12.no_ecs", problems)


def check_no_nat_or_lb(record: dict[str, Any]) -> None:
    d = record["direct"]
    problems = [f"NAT gateway {n['id']} ({n['state']}) remains in {n['vpc_id']}" for n in d["nat_gateways"]]
    problems += [f"load balancer {lb['name']} remains ({lb['arn']})" for lb in d["load_balancers"]]
    if problems:
        raise Finding("P12.no_nat_lb", problems)


def check_demo_secrets_gone(record: dict[str, Any], cert: Certification) -> None:
    problems = [f"demo SSM parameter {cert.handles.ssm[role]} still exists"
                for role, present in record["direct"]["demo_ssm_present"].items() if present]
    if problems:
        raise Finding("P12.demo_secrets", problems)
