"""Shared fixtures: the project root and a throwaway workdir for substrate parts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import redact
from harness.substrate import MotoServer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def project_root() -> Path:
    return ROOT


@pytest.fixture(autouse=True)
def _fresh_secrets() -> Iterator[None]:
    redact.clear()
    yield
    redact.clear()


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A moto server per test module, stopped when the module ends."""
    part = MotoServer(workdir=tmp_path_factory.mktemp("moto"))
    part.start()
    yield part
    part.stop()
