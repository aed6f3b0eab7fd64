"""P8 RTDL core, P9 decision lane + DLA and P10 case/labels steps."""

from __future__ import annotations

from typing import Any

from pytest_bdd import then, when

from harness.phases import p08, p09, p10
from harness.session import Certification


@when("the harness reads RTDL's committed offsets and the acknowledged end offsets", target_fixture="lag")
def _(cert: Certification) -> dict[str, Any]:
    return p08.ensure_caught_up(cert)


@then("every partition's lag is within RTDL_CAUGHT_UP_LAG_MAX and RTDL's claim agrees with the broker")
def _(lag: dict[str, Any]) -> None:
    p08.check_caught_up(lag)


@when("the harness reads every archive object of the run beside the whole traffic topic", target_fixture="archive")
def _(cert: Certification) -> dict[str, Any]:
    return p08.archive(cert)


@then("the archive objects hold every consumed record once, with the topic's bytes, and the index lists them all")
@then("no committed offset passes the archived records")
def _(archive: dict[str, Any]) -> None:
    p08.check_archive(archive)


@when("an archive object is removed from the archive bucket out of band", target_fixture="removed")
def _(cert: Certification) -> dict[str, Any]:
    return p08.remove_archive_object(cert)


@then("the harness names the removed offsets as a gap in the archive")
def _(removed: dict[str, Any]) -> None:
    p08.check_gap_named(removed)


@then("with the object put back the archive passes again")
def _(removed: dict[str, Any]) -> None:
    p08.check_restored(removed)


@when("the harness consumes the decision topic and reads the DLA", target_fixture="decided")
def _(cert: Certification) -> dict[str, Any]:
    return p09.ensure_decided(cert)


@then("every admitted event has exactly one decision, with the contract's decision id and well-formed reasons")
def _(decided: dict[str, Any]) -> None:
    p09.check(decided, "decisions")


@then("every decision is the contract's policy applied to the features the harness recomputes from the traffic topic")
def _(decided: dict[str, Any]) -> None:
    p09.check(decided, "policy")


@then("every decision has exactly one DLA record holding the published bytes, and every DLA record a decision")
def _(decided: dict[str, Any]) -> None:
    p09.check(decided, "dla")


@then("the decision lane's summary equals the harness's count")
def _(decided: dict[str, Any]) -> None:
    p09.check(decided, "summary")


@then("every fraud pattern the Data Engine injected is flagged at least once")
def _(decided: dict[str, Any]) -> None:
    p09.check(decided, "ground_truth")


@when("the decision lane's group is rewound to offset 0 and the lane restarted", target_fixture="redelivery")
def _(cert: Certification) -> dict[str, Any]:
    return p09.redeliver(cert)


@then("the lane consumed every enriched event again and the decision topic and DLA hold what they held before")
def _(redelivery: dict[str, Any]) -> None:
    p09.check_redelivery(redelivery)


@when("the harness, as the platform role, tries to update, delete and re-insert a DLA record",
      target_fixture="dla_attempts")
def _(cert: Certification) -> dict[str, Any]:
    return p09.overwrite_dla(cert)


@then("the database refuses each attempt and the DLA record is unchanged")
def _(dla_attempts: dict[str, Any]) -> None:
    p09.check_overwrite_refused(dla_attempts)


@when("the harness queries the cases and labels of the run at the DSN in SSM", target_fixture="cases")
def _(cert: Certification) -> dict[str, Any]:
    return p10.ensure_cases(cert)


@then("every REVIEW and DECLINE decision has exactly one case, and APPROVE none")
def _(cases: dict[str, Any]) -> None:
    p10.check(cases, "cases")


@then("every case carries one label per reason of its decision")
def _(cases: dict[str, Any]) -> None:
    p10.check(cases, "labels")


@then("case/labels' summary equals the harness's count")
def _(cases: dict[str, Any]) -> None:
    p10.check(cases, "summary")


@then("the database reached through SSM is the pinned one, and case/labels is connected to it as the platform role")
def _(cases: dict[str, Any]) -> None:
    p10.check(cases, "managed_db")


@when("the harness tries to update and delete cases and labels as the platform role and as the owner",
      target_fixture="case_attempts")
def _(cert: Certification) -> dict[str, Any]:
    return p10.mutation_attempts(cert)


@then("the database refuses every attempt with insufficient privilege and no row changes")
def _(case_attempts: dict[str, Any]) -> None:
    p10.check_refused(case_attempts)
