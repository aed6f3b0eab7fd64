"""What a bring-your-own AWS endpoint implements, asked before anything is applied to it.

Each operation the certification needs from an emulator is called once against a resource that
does not exist: an endpoint that implements it answers with the service's own error (e.g.
NotFoundException) or a result; one that does not answers 5xx or an unknown-operation error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3.session
import botocore.config
import botocore.exceptions

from harness.aws.session import EMULATOR_CREDENTIALS

_ACCOUNT = "123456789012"
_NOTIFICATION = {"NotificationType": "ACTUAL", "ComparisonOperator": "GREATER_THAN", "Threshold": 80.0}
_UNKNOWN = ("InvalidAction", "UnknownOperation", "UnknownOperationException", "NotImplemented",
            "InternalFailure", "InternalError")

# (service, operation, who needs it, the call against a resource that does not exist)
OPERATIONS: tuple[tuple[str, str, str, Callable[[Any], Any]], ...] = (
    ("budgets", "DescribeBudget", "P0 budget guardrail",
     lambda c: c.describe_budget(AccountId=_ACCOUNT, BudgetName="spine-certify-probe")),
    ("budgets", "DescribeSubscribersForNotification", "Terraform's aws_budgets_budget (read after create)",
     lambda c: c.describe_subscribers_for_notification(AccountId=_ACCOUNT, BudgetName="spine-certify-probe",
                                                       Notification=_NOTIFICATION)),
    ("budgets", "ListTagsForResource", "Terraform's aws_budgets_budget (tags)",
     lambda c: c.list_tags_for_resource(ResourceARN=f"arn:aws:budgets::{_ACCOUNT}:budget/spine-certify-probe")),
    ("resourcegroupstaggingapi", "GetResources", "P12 teardown proof",
     lambda c: c.get_resources(TagFilters=[{"Key": "spine-certify-probe", "Values": ["x"]}])),
    ("ecs", "DescribeClusters", "P0, P2, P12", lambda c: c.describe_clusters(clusters=["spine-certify-probe"])),
    ("ecr", "DescribeRepositories", "P(-1), P0",
     lambda c: c.describe_repositories(repositoryNames=["spine-certify-probe"])),
)


def missing(endpoint_url: str, *, region: str = "us-east-1") -> list[str]:
    """`service:Operation (who needs it)` for each operation the endpoint does not implement."""
    session = boto3.session.Session(region_name=region, **EMULATOR_CREDENTIALS)
    config = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5,
                                    read_timeout=20)
    clients: dict[str, Any] = {}
    lacking = []
    for service, operation, needed_by, call in OPERATIONS:
        client = clients.setdefault(service, session.client(service, endpoint_url=endpoint_url, config=config))
        try:
            call(client)
        except botocore.exceptions.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if status >= 500 or code in _UNKNOWN or code.isdigit():
                lacking.append(f"{service}:{operation} ({needed_by})")
    return lacking
