@drill:D10
Feature: D10 evidence bucket refusing writes
  Steady state: the drill's own run is streamed through IG, its ingest reconciles with the receipts
  and the stream view, RTDL, the decision lane and case/labels reach its end, a reporter can close it
  once, and the certification's own evidence mirror writes to the evidence bucket. Fault: a bucket
  policy on the evidence bucket with an explicit Deny of s3:PutObject for every principal on the drill
  run's prefix runs/<run>/ only; the harness's own write there is refused with AccessDenied. Failing
  closed (no evidence, no green): a reporter started for the run exits non-zero, writes no obs/ object
  and no run_completed.json, and the lock table does not show the run CLOSED; the certification's own
  evidence, written and mirrored while the deny holds, reaches the bucket under its own prefix.
  Rollback: the bucket's policy is restored (deleted: it had none). Steady state again: a reporter
  closes the run green and its closure equals the harness's recount.

  Scenario: No evidence, no green: the run closes only once its evidence can be written
    When drill D10 runs on a run of its own
    Then its journal is recorded as drills/evidence-bucket-refuses/journal.json
    And the steady state held before the fault
    And the platform failed closed while the fault held: the reporter exits non-zero and writes no closure while the run's evidence prefix refuses writes
    And the steady state holds again after the rollback
