"""A private PostgreSQL cluster on loopback (initdb/pg_ctl), run unprivileged when root."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from harness import db, redact
from harness.errors import SubstrateError, ToolMissing
from harness.substrate.base import Part, ensure_port_free, free_port, pid_alive

_INSTALL_FIX = "install PostgreSQL (`make setup` runs `apt-get install -y postgresql`)"


def pg_binary(tool: str) -> str:
    found = shutil.which(tool)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"), reverse=True)
    if candidates:
        return candidates[0]
    raise ToolMissing(tool, _INSTALL_FIX)


def run_as(argv: list[str], *, os_user: str, operation: str) -> str:
    """Run a PostgreSQL tool, as ``os_user`` when invoked as root (initdb and pg_ctl refuse root)."""
    if os.geteuid() == 0:
        argv = [shutil.which("runuser") or "runuser", "-u", os_user, "--", *argv]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SubstrateError("SpawnFailed", f"{argv[0]}: {exc}", operation=operation) from exc
    if proc.returncode != 0:
        raise SubstrateError(
            f"exit {proc.returncode}", redact.scrub((proc.stderr or proc.stdout).strip()), operation=operation
        )
    return proc.stdout


def stop_data_dir(data_dir: Path, *, os_user: str = "postgres") -> None:
    """`pg_ctl stop -m fast` on a cluster directory (also for clusters left by `spine-certify up`)."""
    run_as([pg_binary("pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"], os_user=os_user,
           operation="stop postgres")


class PostgresCluster(Part):
    name = "postgres"

    def __init__(self, *, workdir: Path, database: str, user: str, owner: str | None = None,
                 port: int | None = None, os_user: str = "postgres") -> None:
        super().__init__(workdir=workdir)
        self.port = port or free_port()
        self.database = database
        self.user = user  # the platform role: the DSN in SSM; no superuser, no ownership
        self.owner = owner or f"{user}_owner"  # the cluster's superuser and the database's owner
        self.password = secrets.token_urlsafe(24)
        self.owner_password = secrets.token_urlsafe(24)
        for value in (self.password, self.owner_password):
            redact.register(value)
        self._as_root = os.geteuid() == 0
        self.os_user = os_user
        self.root: Path | None = None
        self._pid: int | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    @property
    def owner_dsn(self) -> str:
        """The owner's DSN: the schema (infra/db/schema.sql) is applied with it, never given to the platform."""
        return f"postgresql://{self.owner}:{self.owner_password}@127.0.0.1:{self.port}/{self.database}"

    @property
    def data_dir(self) -> Path:
        assert self.root is not None, "postgres cluster not initialised"
        return self.root / "data"

    @property
    def kept_log(self) -> Path:
        return self.workdir / "logs" / "postgres.log"

    @property
    def log_path(self) -> Path | None:
        if self.root is not None:
            return self.root / "postgres.log"
        return self.kept_log if self.kept_log.exists() else None

    def _run(self, argv: list[str], operation: str) -> str:
        return run_as(argv, os_user=self.os_user, operation=operation)

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()  # a half-made cluster (and its password file) is never left behind
            raise

    def _start(self) -> None:
        operation = "start postgres"
        began = time.monotonic()
        initdb = pg_binary("initdb")
        pg_binary("pg_ctl")  # both tools, or ToolMissing before anything is made
        ensure_port_free(self.port, operation=operation)
        # The cluster lives outside the project tree: the postgres user must own and reach it.
        self.root = Path(tempfile.mkdtemp(prefix="spine-certify-pg-"))
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.owner_password + "\n")
        pwfile.chmod(0o600)
        if self._as_root:
            try:
                owner = pwd.getpwnam(self.os_user)
            except KeyError as exc:
                raise SubstrateError(
                    "NoUser", f"running as root needs the unprivileged user {self.os_user!r}; {_INSTALL_FIX}",
                    operation=operation,
                ) from exc
            self.root.chmod(0o755)
            for path in (self.root, pwfile):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        self._run(
            [initdb, "-D", str(self.data_dir), "-U", self.owner, f"--pwfile={pwfile}",
             "-A", "scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"],
            f"{operation}: initdb",
        )  # fmt: skip
        pwfile.unlink()
        self._pg_ctl_start(f"{operation}: pg_ctl start")
        admin_dsn = f"postgresql://{self.owner}:{self.owner_password}@127.0.0.1:{self.port}/postgres"
        db.create_role(admin_dsn, self.user, self.password)
        db.query(admin_dsn, f'create database "{self.database}" owner "{self.owner}"')
        db.query(admin_dsn, f'grant connect on database "{self.database}" to "{self.user}"')
        db.probe(self.dsn)
        self.ready_s = round(time.monotonic() - began, 3)

    def _pg_ctl_start(self, operation: str) -> None:
        assert self.root is not None, "postgres cluster not initialised"
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
        self._run(
            [pg_binary("pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_path), "-o", options,
             "-w", "-t", "30", "start"],
            operation,
        )  # fmt: skip
        pidfile = self.data_dir / "postmaster.pid"
        self._pid = int(pidfile.read_text().splitlines()[0])

    @property
    def serving(self) -> bool:
        """The server process runs (it may be stopped by ``stop_server`` while the cluster is kept)."""
        return bool(self._pid and pid_alive(self._pid))

    def stop_server(self) -> None:
        """An outage: `pg_ctl stop -m fast` (every session ended, in-flight transactions rolled back), keeping the
        data directory, the roles, the port and the passwords for ``start_server``."""
        operation = "stop postgres server"
        if self.root is None:
            raise SubstrateError("NotStarted", "the postgres cluster was never started", operation=operation)
        if self.serving:
            stop_data_dir(self.data_dir, os_user=self.os_user)
        self._pid = None

    def start_server(self) -> None:
        """The same cluster served again: the same data directory on the same port, ready when the platform role's
        DSN answers a query."""
        operation = "start postgres server"
        if self.root is None:
            raise SubstrateError("NotStarted", "the postgres cluster was never started", operation=operation)
        if self.serving:
            return
        # No bind probe of the port: the sessions the stop ended leave it in TIME_WAIT, which PostgreSQL's own
        # listener (SO_REUSEADDR) accepts; a port really taken fails pg_ctl start, named in its error.
        self._pg_ctl_start(f"{operation}: pg_ctl start")
        db.probe(self.dsn)

    def stop(self) -> None:
        if self.root is None:
            return
        try:
            if self._pid and pid_alive(self._pid):
                stop_data_dir(self.data_dir, os_user=self.os_user)
        finally:
            self._pid = None
            # The cluster is disposable; its log is kept beside the other parts' logs.
            server_log = self.root / "postgres.log"
            if server_log.exists():
                self.kept_log.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(server_log, self.kept_log)
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def pids(self) -> list[int]:
        return [self._pid] if self._pid and pid_alive(self._pid) else []

    def version(self) -> str:
        out = subprocess.run([pg_binary("pg_ctl"), "--version"], capture_output=True, text=True, check=False)
        return out.stdout.strip() or "postgres (unknown version)"
