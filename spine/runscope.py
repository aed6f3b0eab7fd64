"""The run-scope guard: a process works for the run it was launched for, or refuses before any work."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from spine import s3
from spine.errors import NotFound, SpineError, UsageError


@dataclass(frozen=True)
class RunScope:
    """The pinned run (run.json) and the environment the mode was given, checked against each other."""

    platform_run_id: str
    scenario_run_id: str
    run: dict[str, Any]
    evidence: s3.Location
    env: dict[str, str]


def read_env(names: Sequence[str]) -> dict[str, str]:
    """Every name must be set and non-empty; a missing one is bad usage (exit 2)."""
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        raise UsageError(f"missing environment variable{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
    return {name: os.environ[name] for name in names}


def seconds(name: str, default: float) -> float:
    """An optional knob in seconds (unset or empty: ``default``); not a number > 0 is bad usage (exit 2)."""
    raw = os.environ.get(name) or str(default)
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{name}={raw!r} must be a number of seconds") from None
    if value <= 0:
        raise UsageError(f"{name}={raw!r} must be > 0")
    return value


def _field(run: dict[str, Any], path: str) -> Any:
    value: Any = run
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def enter(required_env: Sequence[str]) -> RunScope:
    """Read the environment, load run.json and refuse (exit 1) on any pin that differs."""
    env = read_env(required_env)
    manifest = s3.Location.parse(env["SPINE_RUN_MANIFEST"], name="SPINE_RUN_MANIFEST")
    evidence = s3.Location.parse(env["SPINE_EVIDENCE_ROOT"], name="SPINE_EVIDENCE_ROOT").root
    try:
        raw = s3.get_bytes(manifest.bucket, manifest.prefix)
    except NotFound as exc:
        raise SpineError(f"run scope refused: run manifest {env['SPINE_RUN_MANIFEST']} does not exist") from exc
    try:
        run = json.loads(raw)
    except ValueError as exc:
        raise SpineError(f"run scope refused: run manifest {env['SPINE_RUN_MANIFEST']} is not JSON: {exc}") from exc
    if not isinstance(run, dict):
        raise SpineError(f"run scope refused: run manifest {env['SPINE_RUN_MANIFEST']} is not a JSON object")
    for field, variable in (
        ("platform_run_id", "REQUIRED_PLATFORM_RUN_ID"),
        ("run_config_digest", "SPINE_RUN_CONFIG_DIGEST"),
        ("image.digest", "SPINE_IMAGE_DIGEST"),
    ):
        pinned = _field(run, field)
        if pinned != env[variable]:
            raise SpineError(
                f"run scope refused: run.json {field}={pinned!r} but {variable}={env[variable]!r}"
            )
    run_id = env["REQUIRED_PLATFORM_RUN_ID"]
    # Evidence of this run lands only in this run's folder: nothing shared between runs by accident.
    if not ("/" + evidence.prefix).endswith(f"/runs/{run_id}/"):
        raise SpineError(
            f"run scope refused: SPINE_EVIDENCE_ROOT={env['SPINE_EVIDENCE_ROOT']!r} is not "
            f"s3://<evidence bucket>/runs/{run_id}/"
        )
    scenario = run.get("scenario_run_id")
    if not isinstance(scenario, str) or not scenario:
        raise SpineError(f"run scope refused: run.json scenario_run_id={scenario!r} is not a scenario id")
    return RunScope(platform_run_id=run_id, scenario_run_id=scenario, run=run, evidence=evidence, env=env)
