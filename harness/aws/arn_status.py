"""Live or gone: a resource ARN described directly by its own service.

The Resource Groups Tagging API keeps listing resources after they are deleted (ECS clusters and
services, deregistered task definitions, deleted NAT gateways, ...). A teardown proof therefore
describes every listed ARN with its own service and reports the state that service gives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.aws import ecs
from harness.aws.session import AwsSession, converted
from harness.errors import NotFound, SubstrateError

MISSING = "MISSING"
PRESENT = "PRESENT"
# States that mean the resource no longer exists (or is on its way out and no longer billed as live).
GONE = frozenset({MISSING, "INACTIVE", "DELETE_IN_PROGRESS", "deleted", "DEREGISTERED"})

# EC2 resource type in an ARN → (describe call, id parameter, result list key, state field or None)
_EC2: dict[str, tuple[str, str, str, str | None]] = {
    "natgateway": ("describe_nat_gateways", "NatGatewayIds", "NatGateways", "State"),
    "vpc": ("describe_vpcs", "VpcIds", "Vpcs", "State"),
    "subnet": ("describe_subnets", "SubnetIds", "Subnets", "State"),
    "security-group": ("describe_security_groups", "GroupIds", "SecurityGroups", None),
    "internet-gateway": ("describe_internet_gateways", "InternetGatewayIds", "InternetGateways", None),
    "route-table": ("describe_route_tables", "RouteTableIds", "RouteTables", None),
    "elastic-ip": ("describe_addresses", "AllocationIds", "Addresses", None),
    "network-interface": ("describe_network_interfaces", "NetworkInterfaceIds", "NetworkInterfaces", "Status"),
}


def status(aws: AwsSession, arn: str) -> str:
    """The state the resource's own service reports: e.g. ``available``, ``deleted``, ``ACTIVE``,
    ``INACTIVE``, ``PRESENT``, ``MISSING``; ``UNDESCRIBED <service>`` when no direct describe is known
    (counted as present: a teardown proof does not guess that something is gone)."""
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return f"UNDESCRIBED {arn}"
    service, resource = parts[2], parts[5]
    describe = _DESCRIBERS.get(service)
    if describe is None:
        return f"UNDESCRIBED {service}"
    try:
        return describe(aws, arn, resource)
    except NotFound:
        return MISSING


def is_gone(state: str) -> bool:
    return state in GONE


def _ec2(aws: AwsSession, arn: str, resource: str) -> str:
    kind, _, ident = resource.partition("/")
    spec = _EC2.get(kind)
    if spec is None:
        return f"UNDESCRIBED ec2 {kind}"
    call, param, key, field = spec
    try:
        with converted(f"ec2.{call} {ident}"):
            found = getattr(aws.client("ec2"), call)(**{param: [ident]}).get(key, [])
    except SubstrateError as exc:
        if "NotFound" in exc.code or "Malformed" in exc.code:
            return MISSING
        raise
    if not found:
        return MISSING
    return str(found[0].get(field, PRESENT)) if field else PRESENT


def _ecs(aws: AwsSession, arn: str, resource: str) -> str:
    return ecs.arn_status(aws, arn)


def _iam(aws: AwsSession, arn: str, resource: str) -> str:
    kind, _, name = resource.partition("/")
    if kind != "role":
        return f"UNDESCRIBED iam {kind}"
    with converted(f"iam.get_role {name}"):
        aws.client("iam").get_role(RoleName=name.rsplit("/", 1)[-1])
    return PRESENT


def _logs(aws: AwsSession, arn: str, resource: str) -> str:
    name = resource.removeprefix("log-group:").removesuffix(":*")
    with converted(f"logs.describe_log_groups {name}"):
        groups = aws.client("logs").describe_log_groups(logGroupNamePrefix=name).get("logGroups", [])
    return PRESENT if any(g["logGroupName"] == name for g in groups) else MISSING


def _ssm(aws: AwsSession, arn: str, resource: str) -> str:
    name = "/" + resource.removeprefix("parameter/").lstrip("/")
    with converted(f"ssm.get_parameter {name}"):
        aws.client("ssm").get_parameter(Name=name)
    return PRESENT


def _elbv2(aws: AwsSession, arn: str, resource: str) -> str:
    with converted(f"elbv2.describe_load_balancers {arn}"):
        found: list[dict[str, Any]] = aws.client("elbv2").describe_load_balancers(
            LoadBalancerArns=[arn]).get("LoadBalancers", [])
    return str(found[0].get("State", {}).get("Code", PRESENT)) if found else MISSING


_DESCRIBERS: dict[str, Callable[[AwsSession, str, str], str]] = {
    "ec2": _ec2, "ecs": _ecs, "iam": _iam, "logs": _logs, "ssm": _ssm, "elasticloadbalancing": _elbv2,
}
