"""ECS: clusters, services, tasks and task definitions by their pinned names."""

from __future__ import annotations

from typing import Any

from harness.aws.session import AwsSession, converted

_LIVE_TASK = ("PROVISIONING", "PENDING", "ACTIVATING", "RUNNING")


def describe_cluster(aws: AwsSession, name: str) -> dict[str, Any] | None:
    with converted(f"ecs.describe_clusters {name}"):
        clusters = aws.client("ecs").describe_clusters(clusters=[name])["clusters"]
    return {"name": clusters[0]["clusterName"], "status": clusters[0]["status"],
            "arn": clusters[0]["clusterArn"]} if clusters else None


def describe_services(aws: AwsSession, cluster: str, names: list[str]) -> dict[str, dict[str, Any]]:
    """name -> {status, desired, running, task_definition}; missing services are absent."""
    found: dict[str, dict[str, Any]] = {}
    client = aws.client("ecs")
    for i in range(0, len(names), 10):  # the API takes 10 names per call
        with converted(f"ecs.describe_services {cluster}"):
            services = client.describe_services(cluster=cluster, services=names[i : i + 10])["services"]
        for svc in services:
            found[svc["serviceName"]] = {
                "status": svc["status"], "desired": svc.get("desiredCount", 0),
                "running": svc.get("runningCount", 0), "task_definition": svc.get("taskDefinition", ""),
            }
    return found


def list_live_services(aws: AwsSession, cluster: str) -> list[str]:
    """Services that are ACTIVE or DRAINING (a deleted service still lists as INACTIVE)."""
    with converted(f"ecs.list_services {cluster}"):
        arns = aws.client("ecs").list_services(cluster=cluster).get("serviceArns", [])
    if not arns:
        return []
    names = [arn.rsplit("/", 1)[-1] for arn in arns]
    described = describe_services(aws, cluster, names)
    return sorted(n for n, s in described.items() if s["status"] in ("ACTIVE", "DRAINING"))


def list_live_tasks(aws: AwsSession, cluster: str) -> list[dict[str, str]]:
    client = aws.client("ecs")
    with converted(f"ecs.list_tasks {cluster}"):
        arns = client.list_tasks(cluster=cluster).get("taskArns", [])
        if not arns:
            return []
        tasks = client.describe_tasks(cluster=cluster, tasks=arns)["tasks"]
    return [{"arn": t["taskArn"], "status": t["lastStatus"]} for t in tasks if t["lastStatus"] in _LIVE_TASK]


def list_clusters(aws: AwsSession) -> list[str]:
    with converted("ecs.list_clusters"):
        return sorted(aws.client("ecs").list_clusters().get("clusterArns", []))


def active_task_families(aws: AwsSession, families: list[str]) -> dict[str, int]:
    """family -> number of ACTIVE revisions."""
    client = aws.client("ecs")
    found = {}
    for family in families:
        with converted(f"ecs.list_task_definitions {family}"):
            arns = client.list_task_definitions(familyPrefix=family, status="ACTIVE")["taskDefinitionArns"]
        found[family] = sum(1 for a in arns if a.rsplit("/", 1)[-1].rsplit(":", 1)[0] == family)
    return found


def arn_status(aws: AwsSession, arn: str) -> str:
    """ACTIVE / INACTIVE / DRAINING of an ECS cluster, service or task definition ARN."""
    client = aws.client("ecs")
    kind = arn.split(":", 5)[5].split("/", 1)[0]
    with converted(f"ecs.describe {arn}"):
        if kind == "cluster":
            found = client.describe_clusters(clusters=[arn])["clusters"]
        elif kind == "service":
            cluster = arn.split("/")[-2]
            found = client.describe_services(cluster=cluster, services=[arn])["services"]
        elif kind == "task-definition":
            found = [client.describe_task_definition(taskDefinition=arn)["taskDefinition"]]
        else:
            return "UNKNOWN"
    return str(found[0]["status"]) if found else "MISSING"
