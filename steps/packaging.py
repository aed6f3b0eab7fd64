"""P(-1) packaging steps."""

from __future__ import annotations

from typing import Any

from pytest_bdd import then, when

from harness.phases import pm1
from harness.session import Certification


@when("the platform artifact is built from this checkout and pushed to ECR", target_fixture="provenance")
def _(cert: Certification) -> dict[str, Any]:
    return pm1.ensure_packaged(cert)


@then("ECR holds the image under its git tag with the recorded digest")
def _(cert: Certification, provenance: dict[str, Any]) -> None:
    pm1.check_pushed(cert, provenance)


@when("every mode in the handles is asked for its contract from the artifact", target_fixture="contracts")
def _(cert: Certification) -> dict[str, Any]:
    return pm1.contracts(cert)


@then("every mode answers with its name, environment and evidence")
def _(contracts: dict[str, Any]) -> None:
    pm1.check_contracts(contracts)


@when("the artifact's files and configuration are scanned for secrets", target_fixture="scan")
def _(cert: Certification) -> dict[str, Any]:
    return pm1.scan(cert)


@then("no secret is found")
def _(scan: dict[str, Any]) -> None:
    pm1.check_no_secrets(scan)


@when("an artifact is scanned with an AWS access key id, an AWS secret access key and a Confluent Cloud key and "
      "secret planted in three modules", target_fixture="planted")
def _(cert: Certification) -> dict[str, Any]:
    return pm1.planted_secret_scan(cert)


@then("the scan names every planted file")
def _(planted: dict[str, Any]) -> None:
    pm1.check_planted_found(planted)


@when("the compute is asked to run a copy with one changed byte, and another build, under the recorded pin",
      target_fixture="tampered")
def _(cert: Certification) -> dict[str, Any]:
    return pm1.tampered_run(cert)


@then("it refuses both before anything runs")
def _(tampered: dict[str, Any]) -> None:
    pm1.check_tampered_refused(tampered)


@when("a different image is pushed under the recorded tag", target_fixture="repush")
def _(cert: Certification) -> dict[str, Any]:
    return pm1.repush(cert)


@then("the registry refuses it")
def _(repush: dict[str, Any]) -> None:
    pm1.check_repush_refused(repush)
