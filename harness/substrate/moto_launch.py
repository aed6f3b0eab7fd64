"""Entry point of the embedded moto server, with the Budgets operations moto 5 lacks.

The AWS provider reads a budget's notification subscribers and tags after every create
and refresh; moto answers neither, so Terraform would wait forever. This adds
DescribeSubscribersForNotification and the Budgets tag operations, backed by moto's own
budget model, so the budget really is created by Terraform and read back by the harness.
It runs only inside the server process (`python -m harness.substrate.moto_launch`).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from moto.budgets.exceptions import NotFoundException
from moto.budgets.models import Budget
from moto.budgets.responses import BudgetsResponse
from moto.server import main

_TAGS: dict[str, list[dict[str, str]]] = {}  # budget ARN -> tags
_original_create = BudgetsResponse.create_budget
_original_delete = BudgetsResponse.delete_budget


def _arn(self: BudgetsResponse, name: str) -> str:
    return f"arn:aws:budgets::{self._get_param('AccountId') or self.current_account}:budget/{name}"


def create_budget(self: BudgetsResponse) -> str:
    result: str = _original_create(self)
    name = self._get_param("Budget")["BudgetName"]
    _TAGS[_arn(self, name)] = list(self._get_param("ResourceTags") or [])
    return result


def delete_budget(self: BudgetsResponse) -> str:
    result: str = _original_delete(self)
    _TAGS.pop(_arn(self, self._get_param("BudgetName")), None)
    return result


def describe_subscribers_for_notification(self: BudgetsResponse) -> str:
    account_id = self._get_param("AccountId")
    wanted = self._get_param("Notification")
    name = self._get_param("BudgetName")
    budget: Budget | None = self.backend.budgets.get(account_id, {}).get(name)
    if budget is None:  # AWS answers NotFoundException for a budget that does not exist
        raise NotFoundException(f"Unable to get budget: {name} - the budget doesn't exist.")
    for notification in budget.notifications:
        if all(notification.details.get(k) == v for k, v in wanted.items()):
            return json.dumps({"Subscribers": notification.subscribers})
    return json.dumps({"Subscribers": []})


def list_tags_for_resource(self: BudgetsResponse) -> str:
    return json.dumps({"ResourceTags": _TAGS.get(self._get_param("ResourceARN"), [])})


def tag_resource(self: BudgetsResponse) -> str:
    arn = self._get_param("ResourceARN")
    tags = {t["Key"]: t["Value"] for t in _TAGS.get(arn, [])}
    tags.update({t["Key"]: t["Value"] for t in self._get_param("ResourceTags") or []})
    _TAGS[arn] = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
    return json.dumps({})


def untag_resource(self: BudgetsResponse) -> str:
    arn = self._get_param("ResourceARN")
    drop = set(self._get_param("ResourceTagKeys") or [])
    _TAGS[arn] = [t for t in _TAGS.get(arn, []) if t["Key"] not in drop]
    return json.dumps({})


def install() -> None:
    patches: dict[str, Any] = {
        "create_budget": create_budget,
        "delete_budget": delete_budget,
        "describe_subscribers_for_notification": describe_subscribers_for_notification,
        "list_tags_for_resource": list_tags_for_resource,
        "tag_resource": tag_resource,
        "untag_resource": untag_resource,
    }
    for name, fn in patches.items():
        setattr(BudgetsResponse, name, fn)


if __name__ == "__main__":
    install()
    main(sys.argv[1:])
