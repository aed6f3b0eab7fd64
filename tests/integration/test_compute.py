"""Compute providers: the embedded one runs only the recorded artifact; the ECS one drives the ECS API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import packaging
from harness.aws import AwsSession
from harness.compute import EcsCompute, EmbeddedCompute, Network
from harness.errors import EvidenceError
from harness.substrate import MotoServer
from tests.conftest import platform_checkout

pytestmark = pytest.mark.substrate


@pytest.fixture
def artifact(tmp_path: Path) -> packaging.Artifact:
    root = platform_checkout(tmp_path / "proj", {
        "spine/__init__.py": "",
        "spine/__main__.py": "import os, sys\nprint(sys.argv[1:], os.environ.get('REQUIRED_PLATFORM_RUN_ID'))\n"
                             "sys.exit(4 if 'fail' in sys.argv else 0)\n",
    })
    return packaging.build(root, tmp_path / "artifact", sha="abc123")


def test_embedded_runs_the_mode_from_the_artifact(artifact: packaging.Artifact, tmp_path: Path) -> None:
    compute = EmbeddedCompute(artifact=artifact, recorded_digest=artifact.digest, workdir=tmp_path / "w")
    ok = compute.run("oracle-check", env={"REQUIRED_PLATFORM_RUN_ID": "run-1"}, args=["--contract"])
    assert ok.exit_code == 0 and "['oracle-check', '--contract'] run-1" in ok.stdout
    assert ok.run_id == "run-1"
    bad = compute.run("oracle-check", env={}, args=["fail"])
    assert bad.exit_code == 4 and not bad.ok
    assert [r.exit_code for r in compute.history] == [0, 4]


def test_embedded_enforces_a_timeout(tmp_path: Path) -> None:
    root = platform_checkout(tmp_path / "proj", {"spine/__init__.py": "",
                                                 "spine/__main__.py": "import threading\nthreading.Event().wait(30)\n"})
    artifact = packaging.build(root, tmp_path / "a", sha="x")
    compute = EmbeddedCompute(artifact=artifact, recorded_digest=artifact.digest, workdir=tmp_path / "w")
    result = compute.run("sr", env={}, timeout_s=1)
    assert result.exit_code is None and "timed out after 1s" in result.stderr


def test_embedded_refuses_another_digest(artifact: packaging.Artifact, tmp_path: Path) -> None:
    compute = EmbeddedCompute(artifact=artifact, recorded_digest="sha256:" + "0" * 64, workdir=tmp_path / "w")
    with pytest.raises(EvidenceError, match=r"refusing to run artifact .* recorded provenance pins sha256:000"):
        compute.run("oracle-check", env={})
    assert compute.history == []


def test_embedded_registers_each_run_as_an_ecs_task(artifact: packaging.Artifact, tmp_path: Path,
                                                    moto: MotoServer) -> None:
    aws = AwsSession(region="eu-west-2", endpoint_url=moto.endpoint)
    network = _fargate(aws, "c1", "fam-check")
    compute = EmbeddedCompute(artifact=artifact, recorded_digest=artifact.digest, workdir=tmp_path / "w",
                              aws=aws, cluster="c1", task_families={"oracle-check": "fam-check"},
                              network=lambda: network)
    result = compute.run("oracle-check", env={"REQUIRED_PLATFORM_RUN_ID": "run-2"})
    assert result.task_arn and ":task/c1/" in result.task_arn
    task = aws.client("ecs").describe_tasks(cluster="c1", tasks=[result.task_arn])["tasks"][0]
    assert task["stoppedReason"] == "exit 0"
    assert task["overrides"]["containerOverrides"][0]["command"] == ["oracle-check"]


def _fargate(aws: AwsSession, cluster: str, family: str) -> Network:
    ec2, ecs = aws.client("ec2"), aws.client("ecs")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName=f"g-{family}", Description="g", VpcId=vpc)["GroupId"]
    ecs.create_cluster(clusterName=cluster)
    ecs.register_task_definition(family=family, networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
                                 cpu="256", memory="512",
                                 containerDefinitions=[{"name": "spine", "image": "x", "cpu": 256, "memory": 512}])
    return Network(subnets=[subnet], security_groups=[sg])


def test_ecs_compute_runs_a_task_and_reads_its_exit_code(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    aws = AwsSession(region="eu-west-2", endpoint_url=moto.endpoint)
    ecs = aws.client("ecs")
    network = _fargate(aws, "c2", "fam-sort")
    compute = EcsCompute(aws=aws, cluster="c2", task_families={"oracle-sort": "fam-sort"}, subnets=network.subnets,
                         security_groups=network.security_groups, log_group_prefix="/fp",
                         image="repo/spine:git-abc123", poll_s=0.05)
    result = compute.run("oracle-sort", env={"REQUIRED_PLATFORM_RUN_ID": "run-9"}, timeout_s=20)
    assert result.task_arn and result.provider == "ecs"
    described = ecs.describe_tasks(cluster="c2", tasks=[result.task_arn])["tasks"][0]
    overrides = described["overrides"]["containerOverrides"][0]
    assert overrides["command"] == ["oracle-sort"]
    # It runs a new revision of the pinned family whose image is the pinned artifact.
    assert described["taskDefinitionArn"].endswith("task-definition/fam-sort:2")
    revision = ecs.describe_task_definition(taskDefinition=described["taskDefinitionArn"])["taskDefinition"]
    assert revision["containerDefinitions"][0]["image"] == "repo/spine:git-abc123"
    assert {"name": "REQUIRED_PLATFORM_RUN_ID", "value": "run-9"} in overrides["environment"]
    # The exit code is the container's, as ECS reports it once the task is STOPPED.
    assert described["lastStatus"] == "STOPPED"
    assert result.exit_code == described["containers"][0].get("exitCode")
    assert json.dumps(result.to_json())
    # A task that stops without an exit code (it never ran) is not a success.
    monkeypatch.setattr("harness.aws.ecs.describe_task", lambda aws, **kw: {
        "status": "STOPPED", "exit_code": None, "stopped_reason": "CannotPullContainerError"})
    unknown = compute.run("oracle-sort", env={}, timeout_s=20)
    assert unknown.exit_code is None and not unknown.ok
    assert "exit code unknown: CannotPullContainerError" in unknown.stderr


def test_a_declared_but_unbuilt_mode_is_recognised(tmp_path: Path) -> None:
    root = platform_checkout(tmp_path / "proj", {
        "spine/__init__.py": "",
        "spine/__main__.py": "import sys\nprint(f'{sys.argv[1]}: not implemented', file=sys.stderr)\nsys.exit(3)\n",
    })
    artifact = packaging.build(root, tmp_path / "a", sha="x")
    compute = EmbeddedCompute(artifact=artifact, recorded_digest=artifact.digest, workdir=tmp_path / "w")
    result = compute.run("rtdl", env={})
    assert result.exit_code == 3 and result.not_implemented and not result.ok


def test_the_checkout_never_leaks_into_the_artifact(tmp_path: Path) -> None:
    # The artifact holds only spine/__init__.py: modules of the checkout's spine/ must not resolve.
    root = platform_checkout(tmp_path / "proj", {
        "spine/__init__.py": "",
        "spine/__main__.py": "import importlib.util, sys\n"
                             "print(importlib.util.find_spec('spine.oracle'), importlib.util.find_spec('harness'))\n",
    })
    artifact = packaging.build(root, tmp_path / "a", sha="x")
    compute = EmbeddedCompute(artifact=artifact, recorded_digest=artifact.digest, workdir=tmp_path / "w")
    result = compute.run("sr", env={})
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "None None"
