"""PostgreSQL access (case/labels DB): the only place psycopg is imported."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import psycopg

from harness import redact
from harness.errors import SubstrateError


def _operation(dsn: str, what: str) -> str:
    parts = urlsplit(dsn)
    return f"postgres {what} ({parts.hostname}:{parts.port}{parts.path})"


def query(dsn: str, sql: str, params: tuple[Any, ...] = (), *, timeout_s: float = 10.0) -> list[tuple[Any, ...]]:
    """Run one statement and return its rows (empty for statements without a result)."""
    try:
        with psycopg.connect(dsn, connect_timeout=max(1, int(timeout_s)), autocommit=True) as conn:
            cur = conn.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []
    except psycopg.Error as exc:
        raise SubstrateError(
            type(exc).__name__, redact.scrub(str(exc)).strip(), operation=_operation(dsn, "query")
        ) from exc


def probe(dsn: str) -> str:
    """A real query; returns the server version string."""
    rows = query(dsn, "select version()")
    return str(rows[0][0])
