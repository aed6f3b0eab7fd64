"""Each embedded part starts, answers a real API call, and stops with no leftover process."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from harness import aws, db, redact
from harness.errors import PortInUse, SubstrateError
from harness.kafka import admin
from harness.substrate import MotoServer, PostgresCluster, Substrate, TansuBroker, pid_alive
from harness.substrate.postgres import pg_binary

pytestmark = pytest.mark.substrate


def test_moto_starts_answers_and_stops(workdir: Path) -> None:
    part = MotoServer(workdir=workdir)
    part.start()
    pids = part.pids()
    try:
        assert aws.probe(part.endpoint) == "123456789012"
        assert part.to_json()["endpoint"].startswith("http://127.0.0.1:")
    finally:
        part.stop()
    assert pids and not any(pid_alive(p) for p in pids)
    assert part.log_path.exists()


def test_tansu_starts_answers_and_stops(workdir: Path) -> None:
    part = TansuBroker(workdir=workdir)
    part.start()
    pids = part.pids()
    try:
        assert admin.probe(part.connection())["brokers"] == 1
        created = admin.ensure_topics(part.connection(), {"t.one": 2}, replication_factor=1)
        assert created == {"t.one": "created"}
        assert admin.describe_topics(part.connection(), ["t.one", "t.absent"])["t.one"].partitions == 2
    finally:
        part.stop()
    assert pids and not any(pid_alive(p) for p in pids)


def test_postgres_starts_answers_and_stops_unprivileged(workdir: Path) -> None:
    part = PostgresCluster(workdir=workdir, database="spine_case_labels", user="spine")
    part.start()
    pids = part.pids()
    try:
        assert db.query(part.dsn, "select current_database()") == [("spine_case_labels",)]
        assert {part.password, part.owner_password} <= set(redact.registered())
        # The DSN given to the platform is a plain login role; the owner applies the schema and nothing else.
        assert db.query(part.dsn, "select current_user, rolsuper, rolcreaterole, rolcreatedb from pg_roles "
                                  "where rolname = current_user") == [("spine", False, False, False)]
        db.apply_schema(part.owner_dsn, part.user)
        posture = db.append_only_posture(part.dsn)
        assert posture["tables"]["cases"]["privileges"] == {"SELECT": True, "INSERT": True, "UPDATE": False,
                                                             "DELETE": False, "TRUNCATE": False}
        db.query(part.dsn, "insert into dla_records (decision_id, platform_run_id, event_id, decision, record, "
                           "record_sha256) values ('dec_1', 'run-1', 'evt_1', 'APPROVE', '{}', 'x')")
        refused = db.sqlstate_of(part.owner_dsn, "delete from dla_records")  # the trigger binds the owner too
        assert refused["refused"] and refused["sqlstate"] == "42501" and "append-only" in refused["message"]
    finally:
        part.stop()
    assert pids and not any(pid_alive(p) for p in pids)
    assert part.root is None  # the cluster directory is removed
    assert (workdir / "logs" / "postgres.log").exists()


def test_a_port_already_taken_is_a_clear_error(workdir: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        part = TansuBroker(workdir=workdir, port=port)
        with pytest.raises(PortInUse) as err:
            part.start()
    assert f"127.0.0.1:{port} is already in use" in str(err.value)
    assert part.proc is None  # nothing was spawned


def test_a_broker_that_does_not_start_is_reported_with_its_log(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\necho 'tansu: cannot open storage' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr("harness.substrate.tansu.broker_binary", lambda: str(fake))
    part = TansuBroker(workdir=workdir, ready_timeout_s=10)
    with pytest.raises(SubstrateError) as err:
        part.start()
    assert err.value.code == "Exited"
    assert "exited with code 3" in str(err.value)
    assert "cannot open storage" in str(err.value)


def test_substrate_stops_started_parts_when_a_later_one_fails(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    moto = MotoServer(workdir=workdir)
    monkeypatch.setattr("harness.substrate.postgres.pg_binary", lambda tool: f"/nonexistent/{tool}")
    broken = PostgresCluster(workdir=workdir, database="d", user="u")
    substrate = Substrate([moto, broken])
    with pytest.raises(SubstrateError):
        substrate.start()
    assert len(substrate.started_pids) == 1  # moto ran ...
    assert not any(pid_alive(p) for p in substrate.started_pids)  # ... and is gone
    assert broken.root is None  # nothing of the half-made cluster is left


def test_initdb_is_found_or_the_fix_is_named() -> None:
    assert Path(pg_binary("initdb")).name == "initdb"
