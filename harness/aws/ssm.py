"""SSM Parameter Store: read pinned paths; SecureString values are registered as secrets."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness import redact
from harness.aws.session import AwsSession, converted
from harness.errors import NotFound


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    version: int
    value: str = field(repr=False)
    weak: bool = False  # a SecureString too short to be a credential (and to be masked)

    def to_json(self) -> dict[str, object]:
        """Evidence about a parameter never carries a SecureString's value."""
        shown = self.value if self.type == "String" else None
        return {"name": self.name, "type": self.type, "version": self.version, "value": shown, "weak": self.weak}


def get(aws: AwsSession, name: str) -> Parameter:
    with converted(f"ssm.get_parameter {name}"):
        raw = aws.client("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]
    secure = raw["Type"] == "SecureString"
    weak = secure and not redact.register(raw["Value"])
    return Parameter(name=raw["Name"], type=raw["Type"], version=int(raw["Version"]), value=raw["Value"], weak=weak)


def find(aws: AwsSession, name: str) -> Parameter | None:
    try:
        return get(aws, name)
    except NotFound:
        return None


def list_names(aws: AwsSession, *, prefix: str) -> list[str]:
    names: list[str] = []
    with converted(f"ssm.describe_parameters {prefix}"):
        paginator = aws.client("ssm").get_paginator("describe_parameters")
        filters = [{"Key": "Name", "Option": "BeginsWith", "Values": [prefix]}]
        for page in paginator.paginate(ParameterFilters=filters):
            names.extend(p["Name"] for p in page.get("Parameters", []))
    return sorted(names)


def put(aws: AwsSession, name: str, value: str, *, secure: bool) -> None:
    """Write a parameter (used by drills and tests to plant values)."""
    if secure:
        redact.register(value)
    with converted(f"ssm.put_parameter {name}"):
        aws.client("ssm").put_parameter(
            Name=name, Value=value, Type="SecureString" if secure else "String", Overwrite=True
        )
