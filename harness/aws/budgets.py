"""AWS Budgets: the cost guardrail."""

from __future__ import annotations

from typing import Any

from harness.aws.session import AwsSession, converted
from harness.errors import NotFound


def describe_budget(aws: AwsSession, *, account_id: str, name: str) -> dict[str, Any] | None:
    client = aws.client("budgets")
    try:
        with converted(f"budgets.describe_budget {name}"):
            budget = client.describe_budget(AccountId=account_id, BudgetName=name)["Budget"]
    except NotFound:
        return None
    with converted(f"budgets.describe_notifications_for_budget {name}"):
        notes = client.describe_notifications_for_budget(AccountId=account_id, BudgetName=name)
    return {
        "name": budget["BudgetName"],
        "limit": float(budget["BudgetLimit"]["Amount"]),
        "unit": budget["BudgetLimit"]["Unit"],
        "time_unit": budget["TimeUnit"],
        "notifications": [
            {"type": n["NotificationType"], "threshold": float(n["Threshold"])}
            for n in notes.get("Notifications", [])
        ],
    }
