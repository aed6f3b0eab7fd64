"""ECR: the platform image repository and its tag policy."""

from __future__ import annotations

from typing import Any

from harness.aws.session import AwsSession, converted
from harness.errors import NotFound


def describe_repository(aws: AwsSession, name: str) -> dict[str, Any] | None:
    try:
        with converted(f"ecr.describe_repositories {name}"):
            repo = aws.client("ecr").describe_repositories(repositoryNames=[name])["repositories"][0]
    except NotFound:
        return None
    return {"name": repo["repositoryName"], "uri": repo["repositoryUri"],
            "tag_mutability": repo.get("imageTagMutability", "MUTABLE")}
