"""A moto server per module and a fresh `Lane` (own buckets and run id) per test."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest
from spine_bus import Bus
from spine_lane import Lane

from harness import db
from harness.substrate import MotoServer, PostgresCluster, TansuBroker
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


@pytest.fixture(scope="session")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresCluster]:
    """One PostgreSQL cluster for the session with the platform schema applied by its owner.

    ``pg.dsn`` is the platform role's DSN (SELECT and INSERT only), ``pg.owner_dsn`` the owner's.
    """
    cluster = PostgresCluster(workdir=tmp_path_factory.mktemp("pg"), database="spine_case_labels", user="spine")
    cluster.start()
    try:
        db.apply_schema(cluster.owner_dsn, cluster.user)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def bus(moto: MotoServer, broker: TansuBroker) -> Bus:
    """The bus surfaces of one module: moto's SSM and tables, the module's broker."""
    return Bus(aws_endpoint=moto.endpoint, bootstrap=broker.endpoint)
