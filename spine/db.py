"""The case/labels database for the platform: the only psycopg user of spine.

The DSN comes from SSM (``SPINE_SSM_DB_DSN``) and never reaches a log line, an error or evidence. A job
connects once and fails on any database error; a daemon holds a ``Session``, which outlives the server
going away (contract §6: a daemon whose database connection is lost retries it).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import psycopg

from spine import aws, log, runscope
from spine.errors import SpineError

TABLES = ("dla_records", "cases", "case_labels")
RETRY_S = 300.0  # SPINE_DB_RETRY_S: how long a daemon waits for a lost database before it exits 1
T = TypeVar("T")


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


class Interrupted(SpineError):
    """The daemon was told to stop while it waited for its database: nothing of the batch in hand was committed."""


class Session:
    """A daemon's connection as the platform role, held for its life and made again when the server goes away.

    ``run`` executes one transaction. When the connection is lost (the server stopped, restarted or dropped it)
    or cannot be made again, it reconnects with backoff for up to ``SPINE_DB_RETRY_S`` seconds and runs the whole
    transaction again, so callers give it only idempotent work; past that window it raises (exit 1). A database
    error on a live connection (a refused statement) raises at once. The first connection is made at start and a
    refusal there is final: a daemon that cannot reach its database at start refuses to serve.
    """

    def __init__(self, env: dict[str, str], mode: str, stop: threading.Event) -> None:
        self.env, self.mode, self.stop = env, mode, stop
        self.retry_s = runscope.seconds("SPINE_DB_RETRY_S", RETRY_S)
        self.conn: psycopg.Connection[Any] | None = connect(env, mode)
        self.reconnects = 0  # connections made again after a loss: a transaction in doubt may have committed

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _lost(self) -> bool:
        return self.conn is None or self.conn.closed or self.conn.broken

    def run(self, operation: str, work: Callable[[psycopg.Cursor[Any]], T]) -> T:
        """``work`` in one transaction, run again on a new connection until it commits or the retry window ends."""
        deadline: float | None = None
        delay = 0.25
        while True:
            reason = ""
            if self.conn is None:
                try:
                    self.conn = connect(self.env, self.mode)
                except SpineError as exc:
                    reason = str(exc)
                else:
                    self.reconnects += 1
                    log.info("database_reconnected", operation=operation, reconnects=self.reconnects)
            if self.conn is not None:
                try:
                    with self.conn.transaction(), self.conn.cursor() as cur:
                        return work(cur)
                except psycopg.Error as exc:
                    reason = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
                    if not self._lost():
                        raise SpineError(f"database {operation}: {reason}") from None
                    with contextlib.suppress(psycopg.Error):
                        self.conn.close()
                    self.conn = None
            now = time.monotonic()
            if deadline is None:
                deadline = now + self.retry_s
                log.info("database_lost", operation=operation, reason=reason, retry_s=self.retry_s)
            if now >= deadline:
                raise SpineError(f"database {operation}: no connection for {self.retry_s:g} s (SPINE_DB_RETRY_S): "
                                 f"{reason}")
            if self.stop.wait(min(delay, deadline - now)):
                raise Interrupted(f"database {operation}: stopped while waiting for the database ({reason})")
            delay = min(delay * 2, 2.0)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """A read in its own short transaction (retried like any other)."""

        def read(cur: psycopg.Cursor[Any]) -> list[tuple[Any, ...]]:
            cur.execute(sql.encode(), params)
            return list(cur.fetchall())

        return self.run("read", read)

    def facts(self) -> dict[str, Any]:
        database, role, version = self.query(
            "select current_database(), current_user, current_setting('server_version')")[0]
        return {"database": database, "role": role, "server_version": version}
