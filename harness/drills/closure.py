"""Closure drills: two reporters at once (D9)."""

from __future__ import annotations

from typing import Any

from harness import drills
from harness.drills import runs
from harness.phases import p11
from harness.session import Certification


def two_reporters(cert: Certification) -> dict[str, Any]:
    """D9: two reporter jobs for one run started at the same instant; exactly one may close it."""
    journal = drills.Journal(
        "D9", "two-reporters", "Two reporters at once",
        hypothesis="the drill's run is streamed, reconciled and decided; it closes once, by one reporter, with "
                   "counts equal to the harness's recount",
        fault="a second reporter job for the same run, started at the same instant as the first",
    )

    def body(j: drills.Journal) -> None:
        pins = runs.steady_before(cert, j)
        raced = j.step("method", "start two reporters for the run at the same instant",
                       lambda: p11.race_reporters(cert, pins, evidence=f"{j.directory}/reporters.json"),
                       summary=lambda r: {"reporters": [(o["reporter"], o["exit_code"]) for o in r["reporters"]],
                                          "lock": r["lock"]})
        j.expect("observe", j.step("observe", "exactly one closes; the other exits 1 with conflict evidence "
                                   "naming the winner", lambda: drills.findings(p11.check_one_closes, raced)))
        j.step("rollback", "nothing to restore: the loser wrote only its conflict file",
               lambda: runs.obs_objects(cert, pins))
        j.expect("steady-state-after", j.step("steady-state-after", "the run is closed once and the closure equals "
                                              "the harness's recount", lambda: runs.closure_problems(cert, pins)))

    return drills.run(cert, journal, body)


DRILLS = {"D9": two_reporters}
