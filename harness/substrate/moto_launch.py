"""Entry point of the embedded moto server, with the Budgets operations moto 5 lacks and S3 bucket-policy denials.

The AWS provider reads a budget's notification subscribers and tags after every create
and refresh; moto answers neither, so Terraform would wait forever. This adds
DescribeSubscribersForNotification and the Budgets tag operations, backed by moto's own
budget model, so the budget really is created by Terraform and read back by the harness.

moto (since 5.0.12, getmoto/moto#7840) refuses an object request that a bucket policy explicitly
denies, but with a bare 403 and no error document (botocore reads the code ``403``, not
``AccessDenied``), and it names the action from the HTTP method alone: CreateMultipartUpload and
CompleteMultipartUpload (POST) are never matched by a Deny of ``s3:PutObject``, HEAD is ``s3:HeadObject``.
``_key_response`` below evaluates a bucket policy's explicit Deny statements first, with the action
AWS authorises for the request (``s3_action``), and answers AWS's ``403 AccessDenied`` error (HEAD: a
bare 403, as AWS). Supported: ``Action``/``NotAction`` and ``Resource``/``NotResource`` with ``*`` and
``?`` wildcards, a wildcard ``Principal`` (``*`` or ``{"AWS": "*"}``, which AWS applies to every caller,
the bucket owner included); a statement with a condition or a named principal is not applied here.
moto's own bucket-policy answer (``FakeBucket.get_permission``, also used by DeleteObjects) is replaced by
the same evaluation: moto answers DENIED for any statement whose condition it cannot match, even an Allow.

It runs only inside the server process (`python -m harness.substrate.moto_launch`).
"""

from __future__ import annotations

import fnmatch
import json
import sys
from typing import Any
from urllib.parse import parse_qs, urlparse

from moto.budgets.exceptions import NotFoundException
from moto.budgets.models import Budget
from moto.budgets.responses import BudgetsResponse
from moto.iam.access_control import PermissionResult
from moto.s3.exceptions import S3AccessDeniedError
from moto.s3.models import FakeBucket
from moto.s3.responses import S3Response
from moto.server import main

from harness.aws.policy import wildcard_principal

_TAGS: dict[str, list[dict[str, str]]] = {}  # budget ARN -> tags
_original_create = BudgetsResponse.create_budget
_original_delete = BudgetsResponse.delete_budget
_original_key_response = S3Response._key_response


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


# (HTTP method, a query parameter present or None) -> the IAM action AWS authorises for an object request;
# the first row whose parameter is in the query wins.
_S3_ACTIONS: tuple[tuple[str, str | None, str], ...] = (
    ("PUT", "acl", "s3:PutObjectAcl"), ("PUT", "tagging", "s3:PutObjectTagging"),
    ("PUT", "retention", "s3:PutObjectRetention"), ("PUT", "legal-hold", "s3:PutObjectLegalHold"),
    ("PUT", None, "s3:PutObject"),  # PutObject, CopyObject, UploadPart
    ("POST", "uploads", "s3:PutObject"), ("POST", "uploadId", "s3:PutObject"),  # Create/CompleteMultipartUpload
    ("POST", "restore", "s3:RestoreObject"), ("POST", "select", "s3:GetObject"),
    ("GET", "acl", "s3:GetObjectAcl"), ("GET", "tagging", "s3:GetObjectTagging"),
    ("GET", "uploadId", "s3:ListMultipartUploadParts"), ("GET", None, "s3:GetObject"),
    ("HEAD", None, "s3:GetObject"),
    ("DELETE", "uploadId", "s3:AbortMultipartUpload"), ("DELETE", "tagging", "s3:DeleteObjectTagging"),
    ("DELETE", None, "s3:DeleteObject"),
)


def s3_action(method: str, query: dict[str, Any]) -> str | None:
    """The IAM action of an object request (None: a method AWS does not authorise as an object action)."""
    for verb, parameter, action in _S3_ACTIONS:
        if verb == method.upper() and (parameter is None or parameter in query):
            return action
    return None


def _matches(patterns: Any, value: str, *, case_sensitive: bool) -> bool:
    """IAM wildcards: ``*`` any run of characters, ``?`` one character; actions compare case-insensitively."""
    for pattern in patterns if isinstance(patterns, list) else [patterns]:
        if not isinstance(pattern, str):
            continue
        if case_sensitive and fnmatch.fnmatchcase(value, pattern.replace("[", "[[]")):
            return True
        if not case_sensitive and fnmatch.fnmatchcase(value.lower(), pattern.lower().replace("[", "[[]")):
            return True
    return False



def _statement_applies(st: Any, effect: str, action: str, resource: str) -> bool:
    """A statement of ``effect`` that applies to every caller for ``action`` on ``resource``."""
    if not isinstance(st, dict) or st.get("Effect") != effect or st.get("Condition"):
        return False  # a condition is not evaluated here: the statement is not applied
    if not wildcard_principal(st.get("Principal")) or ("Action" not in st and "NotAction" not in st):
        return False
    if "Action" in st and not _matches(st["Action"], action, case_sensitive=False):
        return False
    if "NotAction" in st and _matches(st["NotAction"], action, case_sensitive=False):
        return False
    if "Resource" in st and not _matches(st["Resource"], resource, case_sensitive=True):
        return False
    return not ("NotResource" in st and _matches(st["NotResource"], resource, case_sensitive=True))


def _statements(policy: dict[str, Any]) -> list[Any]:
    statements = policy.get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


def denied_by(policy: dict[str, Any], action: str, resource: str) -> str | None:
    """The Sid (or index) of the first explicit Deny statement of ``policy`` that applies, else None."""
    for i, st in enumerate(_statements(policy)):
        if _statement_applies(st, "Deny", action, resource):
            return str(st.get("Sid") or i)
    return None


def _parsed_policy(raw: Any) -> dict[str, Any]:
    try:
        policy = json.loads(raw)
    except (TypeError, ValueError):
        return {}
    return policy if isinstance(policy, dict) else {}


def get_permission(self: FakeBucket, action: str, resource: str) -> PermissionResult:
    """moto's bucket-policy answer, with the statements evaluated as above: an unevaluated condition no longer
    turns a statement into a denial (moto answers DENIED for any statement whose condition it cannot match)."""
    if self.policy is None:
        return PermissionResult.NEUTRAL
    policy = _parsed_policy(self.policy)
    if denied_by(policy, action, resource) is not None:
        return PermissionResult.DENIED
    if any(_statement_applies(st, "Allow", action, resource) for st in _statements(policy)):
        return PermissionResult.PERMITTED
    return PermissionResult.NEUTRAL


def _key_response(self: S3Response, request: Any, full_url: str) -> Any:
    """An object request a bucket policy explicitly denies gets AWS's 403 AccessDenied; others go on to moto."""
    query = parse_qs(urlparse(full_url).query, keep_blank_values=True)
    action = s3_action(request.method, query)
    bucket_name = self.parse_bucket_name_from_url(request, full_url)
    bucket = self.backend.buckets.get(bucket_name)
    if action is not None and bucket is not None and bucket.policy:
        resource = f"arn:{bucket.partition}:s3:::{bucket_name}/{self.parse_key_name()}"
        if denied_by(_parsed_policy(bucket.policy), action, resource) is not None:
            if request.method.upper() == "HEAD":
                return 403, {}, ""  # AWS answers HEAD without a body
            raise S3AccessDeniedError()
    return _original_key_response(self, request, full_url)


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
    S3Response._key_response = _key_response  # type: ignore[method-assign]
    FakeBucket.get_permission = get_permission  # type: ignore[method-assign]


if __name__ == "__main__":
    install()
    main(sys.argv[1:])
