"""A moto server per module and a fresh `Lane` (own buckets and run id) per test."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest
from spine_lane import Lane

from harness.substrate import MotoServer

_counter = itertools.count()


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    part = MotoServer(workdir=tmp_path_factory.mktemp("moto"))
    part.start()
    yield part
    part.stop()


@pytest.fixture
def lane(moto: MotoServer) -> Lane:
    return Lane(endpoint=moto.endpoint, run_id=f"run-t{next(_counter):03d}-{os.getpid()}")
