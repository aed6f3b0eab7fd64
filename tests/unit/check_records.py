"""Shared by the phase-check tests: a recorded observation, mutated the way a lying platform would."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from harness.errors import Finding

Record = dict[str, Any]
Mutation = Callable[[Record], object]
Check = Callable[[Record], None]

RUN = "run-20260101t000000z-abc123"
OTHER_RUN = "run-20260101t000000z-abc123-another-run"
SCENARIO = "scn-seed42-n20"


def mutated(record: Record, mutate: Mutation) -> Record:
    changed = copy.deepcopy(record)
    mutate(changed)
    return changed


def fails(check: Check, record: Record, match: str) -> Finding:
    with pytest.raises(Finding, match=match) as caught:
        check(record)
    return caught.value
