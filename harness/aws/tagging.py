"""The Resource Groups Tagging API: every tagged resource of a stack, whatever its service."""

from __future__ import annotations

from harness.aws.session import AwsSession, converted


def find_resources(aws: AwsSession, *, tags: dict[str, str]) -> list[str]:
    """ARNs of resources carrying every one of ``tags``."""
    filters = [{"Key": k, "Values": [v]} for k, v in sorted(tags.items())]
    arns: list[str] = []
    with converted("tagging.get_resources"):
        for page in aws.client("resourcegroupstaggingapi").get_paginator("get_resources").paginate(
            TagFilters=filters
        ):
            arns.extend(r["ResourceARN"] for r in page.get("ResourceTagMappingList", []))
    return sorted(arns)
