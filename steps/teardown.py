"""P12 teardown steps."""

from __future__ import annotations

from typing import Any

from pytest_bdd import given, then, when

from harness.phases import p12
from harness.session import Certification


@when("the demo stack is destroyed", target_fixture="teardown_proof")
@given("the teardown proof", target_fixture="teardown_proof")
def _(cert: Certification) -> dict[str, Any]:
    return p12.proof(cert)


@then("no demo-tagged resource, execution role or log group remains")
def _(teardown_proof: dict[str, Any]) -> None:
    p12.check_destroyed(teardown_proof)


@then("every core bucket, table, SSM surface and the ECR repository still exist")
def _(teardown_proof: dict[str, Any]) -> None:
    p12.check_core_preserved(teardown_proof)


@then("this certification's evidence is in the evidence bucket")
def _(teardown_proof: dict[str, Any]) -> None:
    p12.check_evidence_preserved(teardown_proof)


@then("no ECS service or task of the demo is live")
def _(teardown_proof: dict[str, Any]) -> None:
    p12.check_no_ecs(teardown_proof)


@then("no NAT gateway or load balancer remains in the project's VPCs")
def _(teardown_proof: dict[str, Any]) -> None:
    p12.check_no_nat_or_lb(teardown_proof)


@then("the demo SSM secrets are gone")
def _(cert: Certification, teardown_proof: dict[str, Any]) -> None:
    p12.check_demo_secrets_gone(teardown_proof, cert)
