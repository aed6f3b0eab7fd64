"""IAM: roles by name (the Tagging API does not list them)."""

from __future__ import annotations

from harness.aws.session import AwsSession, converted
from harness.errors import NotFound


def role_exists(aws: AwsSession, name: str) -> bool:
    try:
        with converted(f"iam.get_role {name}"):
            aws.client("iam").get_role(RoleName=name)
    except NotFound:
        return False
    return True
