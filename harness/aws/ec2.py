"""EC2 networking: the project's VPCs and the NAT gateways in them."""

from __future__ import annotations

from typing import Any

from harness.aws.session import AwsSession, converted
from harness.errors import SubstrateError

_LIVE_NAT = ("pending", "available", "deleting", "failed")


def _tag_filters(tags: dict[str, str]) -> list[dict[str, Any]]:
    return [{"Name": f"tag:{k}", "Values": [v]} for k, v in sorted(tags.items())]


def _tag_specs(kind: str, tags: dict[str, str] | None) -> list[dict[str, Any]]:
    return [{"ResourceType": kind, "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())]}] if tags else []


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


def create_nat_gateway(aws: AwsSession, *, vpc_id: str, tags: dict[str, str] | None = None) -> str:
    """Plant a NAT gateway in a VPC (fault injection for drills and tests); ``plant_nat_gateway`` says more."""
    return plant_nat_gateway(aws, vpc_id=vpc_id, tags=tags)["nat_gateway_id"]


def plant_nat_gateway(aws: AwsSession, *, vpc_id: str, tags: dict[str, str] | None = None) -> dict[str, str]:
    """A public NAT gateway in the VPC's first subnet with a new Elastic IP, both carrying ``tags``.

    Out of band (no stack knows it): fault injection for drills and tests. Returns the ids and the subnet.
    """
    client = aws.client("ec2")
    with converted("ec2.create_nat_gateway"):
        subnets = client.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
        if not subnets:
            raise SubstrateError("NoSubnet", f"VPC {vpc_id} has no subnet", operation="ec2.create_nat_gateway")
        subnet = sorted(s["SubnetId"] for s in subnets)[0]
        allocation = client.allocate_address(Domain="vpc",
                                             TagSpecifications=_tag_specs("elastic-ip", tags))["AllocationId"]
        nat = client.create_nat_gateway(SubnetId=subnet, AllocationId=allocation,
                                        TagSpecifications=_tag_specs("natgateway", tags))
    return {"nat_gateway_id": str(nat["NatGateway"]["NatGatewayId"]), "allocation_id": str(allocation),
            "subnet_id": subnet, "vpc_id": vpc_id}


def nat_gateway_state(aws: AwsSession, nat_gateway_id: str) -> str | None:
    """The gateway's state as EC2 describes it (a deleted one stays listed as ``deleted``); None: unknown id."""
    with converted(f"ec2.describe_nat_gateways {nat_gateway_id}"):
        found = aws.client("ec2").describe_nat_gateways(NatGatewayIds=[nat_gateway_id]).get("NatGateways", [])
    return str(found[0]["State"]) if found else None


def delete_nat_gateway(aws: AwsSession, nat_gateway_id: str) -> None:
    with converted(f"ec2.delete_nat_gateway {nat_gateway_id}"):
        aws.client("ec2").delete_nat_gateway(NatGatewayId=nat_gateway_id)


def release_address(aws: AwsSession, allocation_id: str) -> None:
    """Release an Elastic IP (refused while a NAT gateway still holds it)."""
    with converted(f"ec2.release_address {allocation_id}"):
        aws.client("ec2").release_address(AllocationId=allocation_id)


def address_exists(aws: AwsSession, allocation_id: str) -> bool:
    try:
        with converted(f"ec2.describe_addresses {allocation_id}"):
            found = aws.client("ec2").describe_addresses(AllocationIds=[allocation_id]).get("Addresses", [])
    except SubstrateError as exc:
        if "NotFound" in exc.code:
            return False
        raise
    return bool(found)


def find_load_balancers(aws: AwsSession, *, vpc_ids: list[str] | None = None) -> list[dict[str, str]]:
    found = []
    with converted("elbv2.describe_load_balancers"):
        for page in aws.client("elbv2").get_paginator("describe_load_balancers").paginate():
            for lb in page.get("LoadBalancers", []):
                if vpc_ids is None or lb.get("VpcId") in vpc_ids:
                    found.append({"arn": lb["LoadBalancerArn"], "name": lb["LoadBalancerName"],
                                  "vpc_id": lb.get("VpcId", "")})
    return found
