"""The case/labels database for the platform: the only psycopg user of spine.

The DSN comes from SSM (``SPINE_SSM_DB_DSN``) and never reaches a log line, an error or evidence.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg

from spine import aws
from spine.errors import SpineError

TABLES = ("dla_records", "cases", "case_labels")


def _safe(exc: psycopg.Error, dsn: str) -> str:
    """The driver's message without the DSN or its password (psycopg may quote the connection string)."""
    message = " ".join(str(exc).split())
    for secret in {dsn, *dsn.split("@", 1)[:1]}:
        if secret:
            message = message.replace(secret, "<dsn>")
    return f"{type(exc).__name__}: {message}"


def connect(env: dict[str, str], mode: str) -> psycopg.Connection[Any]:
    """A connection as the platform role, named ``spine-<mode>`` in pg_stat_activity (not autocommit)."""
    dsn = aws.secret(env["SPINE_SSM_DB_DSN"])
    try:
        return psycopg.connect(dsn, application_name=f"spine-{mode}", connect_timeout=10)
    except psycopg.Error as exc:
        raise SpineError(f"database at SSM {env['SPINE_SSM_DB_DSN']} refused the connection: {_safe(exc, dsn)}") \
            from None


@contextlib.contextmanager
def transaction(conn: psycopg.Connection[Any], operation: str) -> Iterator[psycopg.Cursor[Any]]:
    """One transaction: committed when the block ends, rolled back (and a SpineError) on a database error."""
    try:
        with conn.transaction(), conn.cursor() as cur:
            yield cur
    except psycopg.Error as exc:
        raise SpineError(f"database {operation}: {type(exc).__name__}: {' '.join(str(exc).split())}") from None


def query(conn: psycopg.Connection[Any], sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """A read in its own short transaction."""
    with transaction(conn, "read") as cur:
        cur.execute(sql.encode(), params)
        return list(cur.fetchall())


def facts(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """The database as the platform sees it: name, role, server version."""
    rows = query(conn, "select current_database(), current_user, current_setting('server_version')")
    database, role, version = rows[0]
    return {"database": database, "role": role, "server_version": version}
