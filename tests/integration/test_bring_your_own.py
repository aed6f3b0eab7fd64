"""--kafka-bootstrap and --aws-endpoint: the session uses running parts and leaves them running."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import aws, cli, handles
from harness.aws import capabilities
from harness.errors import ConfigError, SubstrateError
from harness.session import Options, build_substrate
from harness.substrate import ExternalAws, ExternalKafka, MotoServer, PostgresCluster, TansuBroker, free_port
from harness.wait import wait_until

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


@pytest.fixture
def stock_moto(tmp_path: Path) -> Iterator[str]:
    """moto's own `moto_server` from the venv, as a new user would start it: no Budgets extensions."""
    port = free_port()
    log = (tmp_path / "moto_server.log").open("wb")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: aws.probe(url), timeout_s=60, err_msg="moto_server did not answer")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_a_stock_moto_server_is_refused_before_anything_is_applied(tmp_path: Path, stock_moto: str) -> None:
    part = ExternalAws(workdir=tmp_path, endpoint_url=stock_moto)
    with pytest.raises(SubstrateError) as caught:
        part.start()
    message = str(caught.value)
    assert caught.value.code == "MissingOperations"
    assert "does not implement 2 operation(s)" in message
    assert "budgets:DescribeSubscribersForNotification (Terraform's aws_budgets_budget (read after create))" in message
    assert "budgets:ListTagsForResource" in message and "budgets:DescribeBudget" not in message
    assert "Run without --aws-endpoint" in message


def test_the_harness_moto_server_implements_every_probed_operation(moto: MotoServer) -> None:
    assert capabilities.missing(moto.endpoint) == []


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
