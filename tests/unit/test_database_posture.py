"""P0's database check: the DSN in SSM logs in as the pinned platform role, which may only read and append."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from harness.phases import p00

TABLES = ("dla_records", "cases", "case_labels")


def posture() -> dict[str, Any]:
    """What harness.db.append_only_posture reports for a database with infra/db/schema.sql applied."""
    privileges = {"SELECT": True, "INSERT": True, "UPDATE": False, "DELETE": False, "TRUNCATE": False}
    return {"role": "spine", "superuser": False,
            "tables": {t: {"exists": True, "privileges": dict(privileges),
                           "append_only_triggers": [f"{t}_append_only", f"{t}_no_truncate"]} for t in TABLES}}


def test_the_applied_schema_passes() -> None:
    assert p00._append_only_problems(posture(), "spine") == []


Mutation = Callable[[dict[str, Any]], None]


@pytest.mark.parametrize(("mutate", "expected"), [
    pytest.param(lambda p: p.update(role="spine_owner"), "the DSN in SSM logs in as 'spine_owner', pinned 'spine'",
                 id="other-role"),
    pytest.param(lambda p: p.update(superuser=True), "the platform role 'spine' is a superuser", id="superuser"),
    pytest.param(lambda p: p["tables"].update(cases={"exists": False}),
                 "table cases does not exist (apply infra/db/schema.sql)", id="missing-table"),
    pytest.param(lambda p: p["tables"]["dla_records"]["privileges"].update(UPDATE=True),
                 "the platform role may UPDATE dla_records: it must be append-only", id="update-granted"),
    pytest.param(lambda p: p["tables"]["case_labels"]["privileges"].update(DELETE=True, TRUNCATE=True),
                 "the platform role may DELETE/TRUNCATE case_labels", id="delete-truncate-granted"),
    pytest.param(lambda p: p["tables"]["cases"]["privileges"].update(INSERT=False),
                 "the platform role cannot INSERT and SELECT cases", id="no-insert"),
    pytest.param(lambda p: p["tables"]["cases"].update(append_only_triggers=[]),
                 "table cases has no append-only trigger", id="no-trigger"),
])
def test_each_weakness_is_named(mutate: Mutation, expected: str) -> None:
    observed = copy.deepcopy(posture())
    mutate(observed)
    problems = p00._append_only_problems(observed, "spine")
    assert any(expected in p for p in problems), problems
