"""What the harness reads in a resource policy (AWS's JSON policy language), shared by its judge and its emulator."""

from __future__ import annotations

from typing import Any


def wildcard_principal(principal: Any) -> bool:
    """A statement's Principal is everyone: ``"*"`` or ``{"AWS": "*"}`` (alone or in a list)."""
    if principal == "*":
        return True
    if isinstance(principal, dict):
        aws = principal.get("AWS")
        return aws == "*" or (isinstance(aws, list) and "*" in aws)
    return False
