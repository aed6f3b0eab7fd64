@drill:D8
Feature: D8 Database unavailable while cases open
  Hypothesis: the drill's own run streams through IG; the decision lane records one DLA row and publishes one
  decision per admitted event, case/labels opens one case per REVIEW/DECLINE decision with one label per reason,
  every daemon runs, and the run closes once with the harness's recount. Fault: PostgreSQL is stopped (pg_ctl stop
  -m fast: every session ended, transactions in flight rolled back) the moment the decision lane records the run's
  first DLA row, mid-stream, with decisions still to record and cases still to open; a reporter is run for the
  run while it is down. Failing closed: no green closure while the database is down (the reporter exits non-zero
  and no run_completed.json exists), and once it is back the daemons have recovered by retrying their
  connection and nothing was lost or duplicated: one decision and one DLA row per admitted event, exactly one case
  per REVIEW/DECLINE decision with a label per reason, case/labels connected again. Rollback: PostgreSQL started
  again on the same data directory and port. Steady state again: ingest reconciles, cases are complete, and the
  run closes with the harness's recount.

  Scenario: With the database down nothing closes, and once it is back every case opens exactly once
    When drill D8 runs on a run of its own
    Then its journal is recorded as drills/database-unavailable/journal.json
    And the steady state held before the fault
    And the platform failed closed while the fault held: no reporter closes the run while the database is down, and the daemons recover with one case per flagged decision
    And the steady state holds again after the rollback
