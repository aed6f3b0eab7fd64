"""Teardown tells live from gone by describing each ARN the Tagging API lists with its own service."""

from __future__ import annotations

from typing import Any

import pytest

from harness.aws import AwsSession, arn_status, tagging
from harness.errors import Finding
from harness.phases import p12
from harness.substrate import MotoServer

pytestmark = pytest.mark.substrate
TAGS = [{"Key": "project", "Value": "arn-status"}, {"Key": "stack", "Value": "demo"}]


@pytest.fixture
def aws(moto: MotoServer) -> AwsSession:
    return AwsSession(region="eu-west-2", endpoint_url=moto.endpoint)


def _nat(aws: AwsSession) -> tuple[str, str]:
    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.77.1.0/24")["Subnet"]["SubnetId"]
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(SubnetId=subnet, AllocationId=allocation,
                                 TagSpecifications=[{"ResourceType": "natgateway", "Tags": TAGS}])
    return vpc, str(nat["NatGateway"]["NatGatewayId"])


def _listed(aws: AwsSession, fragment: str) -> str:
    listed = [a for a in tagging.find_resources(aws, tags={"project": "arn-status", "stack": "demo"}) if fragment in a]
    assert len(listed) == 1, listed
    return listed[0]


def _proof(demo_status: dict[str, str]) -> dict[str, Any]:
    return {"destroy": {"ok": True, "error": None}, "tagging_api": {"demo_status": demo_status},
            "direct": {"execution_roles": {}, "log_groups": []}}


def test_a_deleted_nat_gateway_still_listed_by_the_tagging_api_is_gone(aws: AwsSession) -> None:
    _, nat = _nat(aws)
    arn = _listed(aws, nat)
    assert arn_status.status(aws, arn) == "available"
    with pytest.raises(Finding, match=f"demo-tagged resource still present: {arn} \\(available\\)"):
        p12.check_destroyed(_proof({arn: arn_status.status(aws, arn)}))
    aws.client("ec2").delete_nat_gateway(NatGatewayId=nat)
    assert _listed(aws, nat) == arn  # the Tagging API keeps listing it
    state = arn_status.status(aws, arn)
    assert state == "deleted" and arn_status.is_gone(state)
    p12.check_destroyed(_proof({arn: state}))


def test_iam_logs_and_ssm_resources_are_described_directly(aws: AwsSession) -> None:
    iam, logs, ssm = aws.client("iam"), aws.client("logs"), aws.client("ssm")
    role = iam.create_role(RoleName="arn-status-role", AssumeRolePolicyDocument="{}", Tags=TAGS)["Role"]["Arn"]
    logs.create_log_group(logGroupName="/arn-status/demo")
    group = logs.describe_log_groups(logGroupNamePrefix="/arn-status/demo")["logGroups"][0]["arn"]
    ssm.put_parameter(Name="/arn-status/demo/key", Value="v", Type="String")
    arns = {"iam": role, "logs": group, "ssm": "arn:aws:ssm:eu-west-2:123456789012:parameter/arn-status/demo/key"}
    assert {kind: arn_status.status(aws, arn) for kind, arn in arns.items()} == dict.fromkeys(arns, "PRESENT")
    iam.delete_role(RoleName="arn-status-role")
    logs.delete_log_group(logGroupName="/arn-status/demo")
    ssm.delete_parameter(Name="/arn-status/demo/key")
    assert {kind: arn_status.status(aws, arn) for kind, arn in arns.items()} == dict.fromkeys(arns, "MISSING")


def test_a_resource_without_a_known_describe_counts_as_present(aws: AwsSession) -> None:
    arn = "arn:aws:kinesis:eu-west-2:123456789012:stream/left-behind"
    state = arn_status.status(aws, arn)
    assert state == "UNDESCRIBED kinesis" and not arn_status.is_gone(state)
    with pytest.raises(Finding, match="UNDESCRIBED kinesis"):
        p12.check_destroyed(_proof({arn: state}))
