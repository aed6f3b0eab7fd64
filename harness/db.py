"""PostgreSQL access (case/labels DB): the only place psycopg is imported."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import psycopg.sql

from harness import redact
from harness.errors import HarnessError, SubstrateError


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


_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def identifier(name: str) -> str:
    """A role or database name as a quoted identifier; anything but a plain lower-case name is refused."""
    if not _IDENT.match(name):
        raise HarnessError(f"{name!r} is not a plain PostgreSQL name (lower-case letters, digits, _)")
    return f'"{name}"'


def create_role(admin_dsn: str, role: str, password: str) -> None:
    """A login role with a password and no other attribute (no superuser, no createdb, no createrole)."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        statement = psycopg.sql.SQL("create role {} login password {}").format(
            psycopg.sql.Identifier(role), psycopg.sql.Literal(password))
        try:
            conn.execute(statement)
        except psycopg.Error as exc:
            raise SubstrateError(type(exc).__name__, redact.scrub(str(exc)).strip(),
                                 operation=_operation(admin_dsn, "create role")) from exc


def apply_script(dsn: str, script: str, *, operation: str, timeout_s: float = 30.0) -> None:
    """Run a whole SQL script (several statements, no parameters) in one transaction."""
    try:
        with psycopg.connect(dsn, connect_timeout=max(1, int(timeout_s))) as conn, conn.transaction():
            conn.execute(script.encode())
    except psycopg.Error as exc:
        raise SubstrateError(type(exc).__name__, redact.scrub(str(exc)).strip(),
                             operation=_operation(dsn, operation)) from exc


def sqlstate_of(dsn: str, sql: str, params: tuple[Any, ...] = ()) -> dict[str, Any]:
    """Try one statement in a transaction that is always rolled back: the SQLSTATE and message it got
    (``refused: False`` and the row count when the database let it through)."""
    try:
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            try:
                cur = conn.execute(sql, params)
                outcome: dict[str, Any] = {"refused": False, "sqlstate": None, "error": None, "rowcount": cur.rowcount}
            except psycopg.Error as exc:
                outcome = {"refused": True, "sqlstate": exc.sqlstate, "error": type(exc).__name__,
                           "message": redact.scrub(str(exc)).strip().splitlines()[0]}
            conn.rollback()
            return outcome
    except psycopg.OperationalError as exc:
        raise SubstrateError(type(exc).__name__, redact.scrub(str(exc)).strip(),
                             operation=_operation(dsn, "connect")) from exc


SCHEMA = Path(__file__).resolve().parent.parent / "infra" / "db" / "schema.sql"
APPEND_ONLY_TABLES = ("dla_records", "cases", "case_labels")


def apply_schema(owner_dsn: str, platform_role: str, *, path: Path = SCHEMA) -> dict[str, Any]:
    """Apply the platform's schema as the database owner, the platform role bound to ``:"platform_role"``."""
    script = path.read_text().replace(':"platform_role"', identifier(platform_role))
    apply_script(owner_dsn, script, operation=f"apply {path.name}")
    return {"script": str(path.name), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "platform_role": platform_role}


def append_only_posture(dsn: str) -> dict[str, Any]:
    """What the database says about the role of ``dsn`` and the append-only tables (catalog queries only)."""
    role, superuser = query(dsn, "select current_user, rolsuper from pg_roles where rolname = current_user")[0]
    tables: dict[str, Any] = {}
    for table in APPEND_ONLY_TABLES:
        exists = query(dsn, "select to_regclass(%s) is not null", (f"public.{table}",))[0][0]
        if not exists:
            tables[table] = {"exists": False}
            continue
        privileges = {p: bool(query(dsn, "select has_table_privilege(current_user, %s, %s)", (table, p))[0][0])
                      for p in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")}
        triggers = [r[0] for r in query(
            dsn, "select tgname from pg_trigger where tgrelid = %s::regclass and not tgisinternal "
                 "and tgfoid = 'spine_append_only'::regproc order by tgname", (table,))]
        tables[table] = {"exists": True, "privileges": privileges, "append_only_triggers": triggers}
    return {"role": role, "superuser": bool(superuser), "tables": tables}
