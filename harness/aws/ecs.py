"""ECS: clusters, services, tasks and task definitions by their pinned names."""

from __future__ import annotations

from typing import Any

from harness.aws.session import AwsSession, converted
from harness.errors import SubstrateError

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


def start_task_record(aws: AwsSession, *, cluster: str, family: str, started_by: str) -> str:
    """Register a run of ``family`` as an ECS task (the embedded profile's record of local compute)."""
    with converted(f"ecs.run_task {family}"):
        tasks = aws.client("ecs").run_task(cluster=cluster, taskDefinition=family, count=1,
                                           startedBy=started_by)["tasks"]
    if not tasks:
        raise SubstrateError("NoTask", f"run_task of {family} started nothing", operation="ecs.run_task")
    return str(tasks[0]["taskArn"])


def stop_task_record(aws: AwsSession, *, cluster: str, task_arn: str, reason: str) -> None:
    with converted(f"ecs.stop_task {task_arn}"):
        aws.client("ecs").stop_task(cluster=cluster, task=task_arn, reason=reason)


def run_task(aws: AwsSession, *, cluster: str, family: str, subnets: list[str], security_groups: list[str],
             command: list[str], environment: dict[str, str], started_by: str, group: str | None = None,
             tags: dict[str, str] | None = None) -> str:
    """RunTask on Fargate with the mode's command and environment; returns the task ARN.

    ``family`` may be a family name (its latest ACTIVE revision) or a task definition ARN.
    """
    extra: dict[str, Any] = {}
    if group:
        extra["group"] = group  # service:<name> for a service's task
    if tags:
        extra["tags"] = [{"key": k, "value": v} for k, v in sorted(tags.items())]
    with converted(f"ecs.run_task {family}"):
        response = aws.client("ecs").run_task(
            cluster=cluster, taskDefinition=family, launchType="FARGATE", count=1, startedBy=started_by, **extra,
            networkConfiguration={"awsvpcConfiguration": {
                "subnets": subnets, "securityGroups": security_groups, "assignPublicIp": "ENABLED"}},
            overrides={"containerOverrides": [{
                "name": "spine", "command": command,
                "environment": [{"name": k, "value": v} for k, v in sorted(environment.items())]}]},
        )
    if response.get("failures") or not response.get("tasks"):
        raise SubstrateError("RunTaskFailed", str(response.get("failures")), operation=f"ecs.run_task {family}")
    return str(response["tasks"][0]["taskArn"])


def describe_task(aws: AwsSession, *, cluster: str, task_arn: str) -> dict[str, Any]:
    """lastStatus, stoppedReason and the first container's exit code (None until known)."""
    with converted(f"ecs.describe_tasks {task_arn}"):
        tasks = aws.client("ecs").describe_tasks(cluster=cluster, tasks=[task_arn])["tasks"]
    if not tasks:
        return {"status": "MISSING", "exit_code": None, "stopped_reason": None}
    task = tasks[0]
    containers = task.get("containers") or [{}]
    return {"status": task.get("lastStatus"), "exit_code": containers[0].get("exitCode"),
            "stopped_reason": task.get("stoppedReason")}


_REGISTER_KEYS = ("family", "taskRoleArn", "executionRoleArn", "networkMode", "containerDefinitions", "volumes",
                  "placementConstraints", "requiresCompatibilities", "cpu", "memory", "runtimePlatform")


def register_revision(aws: AwsSession, *, family: str, image: str) -> str:
    """A new revision of ``family`` whose containers run ``image``; returns its ARN."""
    client = aws.client("ecs")
    with converted(f"ecs.describe_task_definition {family}"):
        current = client.describe_task_definition(taskDefinition=family)["taskDefinition"]
    spec = {k: current[k] for k in _REGISTER_KEYS if current.get(k)}
    spec["containerDefinitions"] = [{**c, "image": image} for c in current["containerDefinitions"]]
    with converted(f"ecs.register_task_definition {family}"):
        registered = client.register_task_definition(**spec)["taskDefinition"]
    return str(registered["taskDefinitionArn"])


def service_tasks(aws: AwsSession, *, cluster: str, service: str) -> list[dict[str, Any]]:
    """Tasks of a service that are meant to run (desired RUNNING), with their tags."""
    client = aws.client("ecs")
    with converted(f"ecs.list_tasks {service}"):
        arns = client.list_tasks(cluster=cluster, serviceName=service, desiredStatus="RUNNING").get("taskArns", [])
        if not arns:
            return []
        tasks = client.describe_tasks(cluster=cluster, tasks=arns, include=["TAGS"])["tasks"]
    # A service's tasks carry group `service:<name>`; the emulator's list_tasks ignores serviceName, so the
    # group is checked here too (a no-op on ECS itself).
    return [{"arn": t["taskArn"], "group": t.get("group"), "desired_status": t.get("desiredStatus"),
             "last_status": t.get("lastStatus"), "task_definition": t.get("taskDefinitionArn"),
             "tags": {tag["key"]: tag["value"] for tag in t.get("tags", [])}} for t in tasks
            if t.get("group") == f"service:{service}" and t.get("desiredStatus") == "RUNNING"]
