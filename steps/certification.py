"""Ladder steps: the reproducibility of the rerun."""

from __future__ import annotations

from typing import Any

from pytest_bdd import then, when

from harness import reproducibility
from harness.errors import Finding
from harness.phases import rerun
from harness.session import Certification


@when("the harness compares the last rung's run with its rerun", target_fixture="comparison")
def _(cert: Certification) -> dict[str, Any]:
    return rerun.compared(cert)


@when("the harness compares the first rung's run with the rerun", target_fixture="comparison")
def _(cert: Certification) -> dict[str, Any]:
    return rerun.compared_across_scenarios(cert)


@then("the comparison is recorded as certification/reproducibility.json")
def _(cert: Certification) -> None:
    if not cert.bundle.has(rerun.EVIDENCE):
        raise Finding("Reproducibility.evidence", [f"no {rerun.EVIDENCE} in the bundle"])


@then("the two runs agree on stream views, admitted events, decisions, DLA records, cases, labels and counts")
def _(comparison: dict[str, Any]) -> None:
    reproducibility.check(comparison)


@then("the comparison names the semantic differences")
def _(comparison: dict[str, Any]) -> None:
    if comparison["identical"] or not comparison["differences"]:
        raise Finding("Reproducibility.fail_closed", [
            f"runs {comparison['first']} and {comparison['second']} are of different scenarios, yet the comparison "
            "found no difference: it cannot tell two runs apart"])
