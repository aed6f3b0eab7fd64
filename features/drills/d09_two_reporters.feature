@drill:D9
Feature: D9 two reporters at once
  Steady state: the drill's own run is streamed through IG, its ingest reconciles with the receipts
  and the stream view, RTDL, the decision lane and case/labels reach its end, and it can be closed
  once. Fault: two reporter jobs for the run start at the same instant. Failing closed: exactly one
  takes the lock and closes the run; the other exits 1 and writes conflict evidence naming the
  winner, never a second run_completed.json. Rollback: nothing to restore. Steady state again: the
  run is closed once, and the reporter's reconciliation equals the harness's own recount of the
  receipts, the three topics and the database.

  Scenario: Of two reporters started at once exactly one closes the run, and the closure is the harness's recount
    When drill D9 runs on a run of its own
    Then its journal is recorded as drills/two-reporters/journal.json
    And the steady state held before the fault
    And the platform failed closed while the fault held: one reporter closes, the other exits 1 naming the winner
    And the steady state holds again after the rollback
