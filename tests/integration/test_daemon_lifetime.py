"""Platform daemons never outlive the certification: not after a stop, not after Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from harness import packaging, redact
from harness.compute import EmbeddedCompute
from harness.substrate import pid_alive
from harness.wait import wait_until
from tests.conftest import platform_checkout

pytestmark = [pytest.mark.substrate]
ROOT = Path(__file__).resolve().parents[2]


def _platform_pids(run_id: str, *, mode: str | None = None) -> list[int]:
    """Processes of the platform artifact (``-m spine [mode]``) working for ``run_id``, found in /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in cmdline]
        is_platform = "spine" in args and (mode is None or args[args.index("spine") + 1:][:1] == [mode])
        if is_platform and f"REQUIRED_PLATFORM_RUN_ID={run_id}".encode() in environ and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def test_stop_all_ends_a_started_daemon(tmp_path: Path) -> None:
    forever = "import threading\nthreading.Event().wait(600)\n"
    root = platform_checkout(tmp_path / "proj", {"spine/__init__.py": "", "spine/__main__.py": forever})
    artifact = packaging.build(root, tmp_path / "artifact", sha="abc123")
    compute = EmbeddedCompute(artifact=artifact, recorded_digest=artifact.digest, workdir=tmp_path / "w")
    daemon = compute.start("ig", env={"REQUIRED_PLATFORM_RUN_ID": "run-lifetime"})
    assert daemon.alive()
    assert compute.stop_all() == []
    assert not daemon.alive() and not pid_alive(daemon.pid)
    assert daemon.exit_code is not None and daemon.ended_at is not None


@pytest.mark.slow
def test_ctrl_c_during_a_certification_stops_the_ig_daemon_and_its_key_is_nowhere(tmp_path: Path) -> None:
    cert_id = f"cert-lifetime-{uuid.uuid4().hex[:6]}"
    run_id = cert_id.replace("cert-", "run-", 1) + "-n20"  # the ladder's first rung
    key_file = tmp_path / "writer-key"
    env = {**os.environ, "SPINE_WRITER_KEY_OUT": str(key_file),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", str(ROOT / "features"), "--rootdir", str(ROOT), "--cert-id", cert_id,
         "--reports-dir", str(tmp_path), "-p", "no:cacheprovider", "-p", "writer_key", "-q",
         "--alluredir", str(tmp_path / "allure-results")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    reconciled = tmp_path / "certifications" / cert_id / "runs" / run_id / "ingest" / "reconciliation.json"
    try:
        # Interrupted once IG, WSP and the harness have all used the writer key (P4, P6, P7), while IG serves.
        daemons = wait_until(lambda: proc.poll() is None and reconciled.exists() and
                             _platform_pids(run_id, mode="ig"), timeout_s=900, backoff_s=0.5,
                             err_msg="the certification never reached P7 with its IG daemon running")
        os.kill(proc.pid, signal.SIGINT)
        output = proc.communicate(timeout=300)[0].decode(errors="replace")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode != 0, output[-2000:]
    assert [pid for pid in daemons if pid_alive(pid)] == [], output[-2000:]
    assert _platform_pids(run_id) == []
    bundle = tmp_path / "certifications" / cert_id
    # Stopped by the certification itself before it sealed the bundle (not merely by dying with its parent).
    logs = [p.read_text() for p in (bundle / "platform").glob("*-ig.log")]
    assert logs and all('"event": "stopped"' in text for text in logs), logs
    gates = json.loads((bundle / "gates.json").read_text())
    key = key_file.read_text()
    assert len(key) >= 32
    workdir = ROOT / ".spine-certify" / "work" / cert_id
    for tree in (bundle, tmp_path / "allure-results", workdir):
        assert redact.find_in_tree(tree, key) == [], tree
    assert key not in output
    assert gates["verdict"] != "CERTIFIED"
    assert any("interrupted" in note for phase in gates["phases"] for note in phase["notes"])
