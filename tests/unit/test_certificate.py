"""certificate.json says what the bundle holds; `verify` names any certificate that does not."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness import certificate, evidence
from harness.ledger import PHASES


def gates(verdict: str = "CERTIFIED", status: str = "DONE") -> dict[str, Any]:
    return {"cert_id": "cert-c", "profile": "embedded", "claim": "embedded profile only", "verdict": verdict,
            "failed": [], "errored": [], "blocked": [], "not_implemented": [], "not_run": [],
            "phases": [{"phase_id": pid, "status": status, "waived": {"P7.broker_watermark": "why"} if pid == "P7"
                        else {}} for pid, _ in PHASES]}


def sealed(tmp_path: Path, *, mutate: Callable[[dict[str, Any]], None] | None = None) -> Path:
    bundle = evidence.Bundle(tmp_path / "cert-c", cert_id="cert-c")
    bundle.write_json("packaging/image_provenance.json", {"tag": "git-abc", "digest": "sha256:" + "1" * 64,
                                                          "source_sha": "abc", "repository": "r", "wheel": "w"})
    bundle.write_json("runs/run-c/run.json", {"platform_run_id": "run-c", "scenario_run_id": "scn", "events": 20,
                                              "run_config_digest": "d"})
    g = gates()
    bundle.write_json("gates.json", g)
    cert = certificate.build(bundle.root, g)
    if mutate:
        mutate(cert)
    bundle.write_json(certificate.CERTIFICATE, cert)
    bundle.seal(mirror=None)
    return bundle.root


def test_the_certificate_states_verdict_phases_runs_image_and_waivers(tmp_path: Path) -> None:
    root = sealed(tmp_path)
    cert = json.loads((root / certificate.CERTIFICATE).read_text())
    assert (cert["verdict"], cert["profile"], cert["phases"]["P11"]) == ("CERTIFIED", "embedded", "DONE")
    assert cert["runs"] == [{"platform_run_id": "run-c", "scenario_run_id": "scn", "events": 20,
                             "run_config_digest": "d"}]
    assert cert["image"] == {"tag": "git-abc", "digest": "sha256:" + "1" * 64, "source_sha": "abc", "repository": "r"}
    assert cert["waived"] == {"P7.broker_watermark": "why"}
    report, _ = evidence.verify_local(root)
    assert report.ok and report.certificate == []


@pytest.mark.parametrize(("mutate", "named"), [
    pytest.param(lambda c: c.update(verdict="CERTIFIED ", failed=["P3"]), "says verdict 'CERTIFIED '", id="verdict"),
    pytest.param(lambda c: c["phases"].update(P8="NOT_IMPLEMENTED"), "gate statuses", id="phase-status"),
    pytest.param(lambda c: c.update(evidence_digest="0" * 64), "issued for other evidence", id="other-evidence"),
    pytest.param(lambda c: c.update(profile="dev_min"), "says profile 'dev_min'", id="profile"),
])
def test_a_certificate_that_misstates_the_bundle_fails_verify(tmp_path: Path, mutate: Callable[[dict[str, Any]], None],
                                                              named: str) -> None:
    # Sealed as issued: the manifest's digests hold, only the certificate's claims are wrong.
    report, _ = evidence.verify_local(sealed(tmp_path, mutate=mutate))
    assert not report.ok and not report.changed
    assert any(named in line for line in report.lines()), report.lines()


def test_a_certification_bundle_without_its_certificate_fails_verify(tmp_path: Path) -> None:
    bundle = evidence.Bundle(tmp_path / "cert-c", cert_id="cert-c")
    bundle.write_json("gates.json", gates())
    bundle.seal(mirror=None)
    report, _ = evidence.verify_local(bundle.root)
    assert report.certificate == ["certificate.json is missing or not JSON"] and not report.ok
