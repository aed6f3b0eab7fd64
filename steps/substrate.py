"""P0 substrate readiness steps."""

from __future__ import annotations

from typing import Any

from pytest_bdd import given, then, when

from harness.phases import p00
from harness.session import Certification


@given("the core and demo stacks are applied", target_fixture="apply_snapshot")
def _(cert: Certification) -> dict[str, Any]:
    return p00.ensure_applied(cert)


@when("the core and demo stacks are applied", target_fixture="apply_snapshot")
def _(cert: Certification) -> dict[str, Any]:
    return p00.ensure_applied(cert)


@then("both stacks manage resources and the pinned topics exist")
def _(apply_snapshot: dict[str, Any]) -> None:
    p00.check_applied(apply_snapshot)


@when("both stacks are planned again", target_fixture="replan")
def _(cert: Certification) -> dict[str, Any]:
    return p00.replan(cert)


@then("neither plan shows a change")
def _(replan: dict[str, Any]) -> None:
    p00.check_no_changes(replan)


@when("every handle in the registry is resolved against the substrate", target_fixture="resolution")
def _(cert: Certification) -> dict[str, Any]:
    return p00.resolve_handles(cert)


@then("every bucket exists with its pinned protections")
def _(resolution: dict[str, Any]) -> None:
    p00.check_family(resolution, "buckets")


@then("every SSM path is readable, Confluent bootstrap, key and secret included")
def _(resolution: dict[str, Any]) -> None:
    p00.check_family(resolution, "ssm")


@then("every topic exists with its pinned partition count")
def _(resolution: dict[str, Any]) -> None:
    p00.check_family(resolution, "topics")


@then("the ECS cluster, task families and services exist")
def _(resolution: dict[str, Any]) -> None:
    p00.check_family(resolution, "ecs")


@then("every DynamoDB table exists with its pinned key")
def _(resolution: dict[str, Any]) -> None:
    p00.check_family(resolution, "dynamodb")


@then("the ECR repository exists with immutable tags")
def _(resolution: dict[str, Any]) -> None:
    p00.check_family(resolution, "ecr")


@then("the database named by the DSN in SSM answers as a role that may only read and append its tables")
def _(resolution: dict[str, Any]) -> None:
    p00.check_family(resolution, "database")


@when("the network posture of the project's VPCs is observed", target_fixture="posture")
def _(cert: Certification) -> dict[str, Any]:
    return p00.network_posture(cert)


@then("no NAT gateway exists in any project VPC")
def _(posture: dict[str, Any]) -> None:
    p00.check_no_nat(posture)


@when("the cost guardrails are observed", target_fixture="guardrails")
def _(cert: Certification) -> dict[str, Any]:
    return p00.cost_guardrails(cert)


@then("the pinned budget exists with its limit and alert threshold")
def _(guardrails: dict[str, Any]) -> None:
    p00.check_budget(guardrails)
