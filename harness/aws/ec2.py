"""EC2 networking: the project's VPCs and the NAT gateways in them."""

from __future__ import annotations

from typing import Any

from harness.aws.session import AwsSession, converted

_LIVE_NAT = ("pending", "available", "deleting", "failed")


def _tag_filters(tags: dict[str, str]) -> list[dict[str, Any]]:
    return [{"Name": f"tag:{k}", "Values": [v]} for k, v in sorted(tags.items())]


def find_vpcs(aws: AwsSession, *, tags: dict[str, str]) -> list[str]:
    with converted("ec2.describe_vpcs"):
        vpcs = aws.client("ec2").describe_vpcs(Filters=_tag_filters(tags))["Vpcs"]
    return sorted(v["VpcId"] for v in vpcs)


def find_nat_gateways(aws: AwsSession, *, vpc_ids: list[str] | None = None) -> list[dict[str, str]]:
    """NAT gateways that are not deleted, in the given VPCs (or anywhere when None)."""
    filters: list[dict[str, Any]] = [{"Name": "state", "Values": list(_LIVE_NAT)}]
    if vpc_ids is not None:
        if not vpc_ids:
            return []
        filters.append({"Name": "vpc-id", "Values": vpc_ids})
    found = []
    with converted("ec2.describe_nat_gateways"):
        for page in aws.client("ec2").get_paginator("describe_nat_gateways").paginate(Filter=filters):
            for nat in page.get("NatGateways", []):
                found.append({"id": nat["NatGatewayId"], "vpc_id": nat.get("VpcId", ""), "state": nat["State"]})
    return sorted(found, key=lambda n: n["id"])


def create_nat_gateway(aws: AwsSession, *, vpc_id: str) -> str:
    """Plant a NAT gateway in a VPC (fault injection for drills and tests)."""
    client = aws.client("ec2")
    with converted("ec2.create_nat_gateway"):
        subnets = client.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
        allocation = client.allocate_address(Domain="vpc")["AllocationId"]
        nat = client.create_nat_gateway(SubnetId=subnets[0]["SubnetId"], AllocationId=allocation)
    return str(nat["NatGateway"]["NatGatewayId"])


def find_load_balancers(aws: AwsSession, *, vpc_ids: list[str] | None = None) -> list[dict[str, str]]:
    found = []
    with converted("elbv2.describe_load_balancers"):
        for page in aws.client("elbv2").get_paginator("describe_load_balancers").paginate():
            for lb in page.get("LoadBalancers", []):
                if vpc_ids is None or lb.get("VpcId") in vpc_ids:
                    found.append({"arn": lb["LoadBalancerArn"], "name": lb["LoadBalancerName"],
                                  "vpc_id": lb.get("VpcId", "")})
    return found
