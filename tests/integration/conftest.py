"""Real substrate parts for integration tests, stopped when the tests end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.substrate import MotoServer


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    part = MotoServer(workdir=tmp_path_factory.mktemp("moto"))
    part.start()
    yield part
    part.stop()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path / "work"
