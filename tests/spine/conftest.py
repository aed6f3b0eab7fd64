"""A moto server per module and a fresh `Lane` (own buckets and run id) per test."""

from __future__ import annotations

import itertools
import os

import pytest
from spine_bus import Bus
from spine_lane import Lane

from harness.substrate import MotoServer, TansuBroker
from spine.engine import generate, render

_counter = itertools.count()


@pytest.fixture
def lane(moto: MotoServer) -> Lane:
    return Lane(endpoint=moto.endpoint, run_id=f"run-t{next(_counter):03d}-{os.getpid()}")


@pytest.fixture(scope="session")
def scenario_files() -> dict[str, bytes]:
    """The engine's files for the lanes' scenario (seed 7, 300 events), rendered in-process once."""
    return render(generate(Lane.seed, Lane.events), seed=Lane.seed, events=Lane.events,
                  scenario_run_id=f"scn-seed{Lane.seed}-n{Lane.events}").files


@pytest.fixture
def sourced(lane: Lane, scenario_files: dict[str, bytes]) -> Lane:
    """A lane whose source already holds the engine's scenario."""
    lane.put_source(scenario_files)
    return lane


@pytest.fixture(scope="module")
def bus(moto: MotoServer, broker: TansuBroker) -> Bus:
    """The bus surfaces of one module: moto's SSM and tables, the module's broker."""
    return Bus(aws_endpoint=moto.endpoint, bootstrap=broker.endpoint)
