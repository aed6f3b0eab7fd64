"""Shared fixtures: the project root and a throwaway workdir for substrate parts."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import db, redact
from harness.substrate import MotoServer, PostgresCluster, TansuBroker

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


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """A Tansu broker per test module, stopped when the module ends."""
    part = TansuBroker(workdir=tmp_path_factory.mktemp("tansu"))
    part.start()
    yield part
    part.stop()


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


def platform_checkout(root: Path, files: dict[str, str]) -> Path:
    """A git checkout holding a small `spine/` package (the artifact is built from tracked files)."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    if not (root / ".git").exists():
        subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "platform", "--allow-empty"], check=True)
    return root
