"""--kafka-bootstrap and --aws-endpoint: the session uses running parts and leaves them running."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import cli, handles
from harness.errors import ConfigError, SubstrateError
from harness.session import Options, build_substrate
from harness.substrate import ExternalAws, ExternalKafka, MotoServer, PostgresCluster, TansuBroker, free_port

pytestmark = pytest.mark.substrate


def test_external_parts_replace_the_embedded_ones(project_root: Path, tmp_path: Path, moto: MotoServer,
                                                  broker: TansuBroker) -> None:
    options = Options(project_root=project_root, kafka_bootstrap=broker.endpoint, aws_endpoint=moto.endpoint)
    h = handles.load(project_root / "infra/handles/embedded.yaml")
    substrate = build_substrate(options, h, tmp_path)
    kinds = [type(p) for p in substrate.parts]
    assert kinds == [ExternalAws, ExternalKafka, PostgresCluster]
    aws_part, kafka_part = substrate.parts[0], substrate.parts[1]
    aws_part.start()
    kafka_part.start()
    assert "account 123456789012" in aws_part.version()
    kafka_part.stop()
    aws_part.stop()
    assert moto.pids() and broker.pids()  # not ours to stop


def test_an_unreachable_external_broker_is_named(tmp_path: Path) -> None:
    part = ExternalKafka(workdir=tmp_path, bootstrap=f"127.0.0.1:{free_port()}")
    with pytest.raises(SubstrateError, match=r"--kafka-bootstrap 127\.0\.0\.1:\d+ does not answer"):
        part.start()


def test_bad_option_values_are_refused(project_root: Path) -> None:
    with pytest.raises(ConfigError, match="must be HOST:PORT"):
        Options(project_root=project_root, kafka_bootstrap="localhost")
    with pytest.raises(ConfigError, match="must be an http"):
        Options(project_root=project_root, aws_endpoint="127.0.0.1:5000")
    with pytest.raises(ConfigError, match="--profile 'prod'"):
        Options(project_root=project_root, profile="prod")


def test_up_prints_endpoints_and_down_stops_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, project_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from harness.substrate import pid_alive

    (tmp_path / "infra" / "handles").mkdir(parents=True)
    (tmp_path / "infra/handles/embedded.yaml").write_text((project_root / "infra/handles/embedded.yaml").read_text())
    monkeypatch.setenv("SPINE_CERTIFY_ROOT", str(tmp_path))
    try:
        assert cli.main(["up"]) == 0
        out = capsys.readouterr().out
        state = json.loads((tmp_path / ".spine-certify/up.json").read_text())
        pids = [pid for part in state["parts"] for pid in part["pids"]]
        assert len(pids) == 3 and all(pid_alive(p) for p in pids)
        assert "moto" in out and "tansu" in out and "spine:***@127.0.0.1" in out
        assert state["postgres"]["dsn"].split(":")[2].split("@")[0] not in out  # the password stays in the file
        assert cli.main(["up"]) == 2  # already up
    finally:
        assert cli.main(["down"]) == 0
    assert not any(pid_alive(p) for p in pids)
    assert not (tmp_path / ".spine-certify/up.json").exists()
