@drill:D5
Feature: D5 Decision-lane redelivery from an earlier offset
  Hypothesis: the drill's own run is streamed, reconciled and decided: one decision on the decision topic and one
  DLA row per admitted event, one case per REVIEW/DECLINE decision with a label per reason, and the decision
  lane's group at the ends of the rtdl topic. Fault: the lane is stopped, its consumer group is moved back by an
  operator's offset commit to the middle of the run's enriched events on each partition of the rtdl topic (an
  earlier offset, not 0), and the lane is started again, so the second half of every partition is delivered to
  it again. Failing closed: the lane consumes back to the ends and the redelivered events add nothing, by the
  harness's own reading of the group's offsets, the decision topic and the database: the same distinct decisions
  and decision records, no decision id twice, the same DLA rows, no new case and no new label. Rollback: nothing
  to restore, the lane runs with its group at the ends. Steady state again: ingest reconciles, cases are complete,
  and the run closes with the harness's recount.

  Scenario: A redelivery of the rtdl topic from the middle adds no decision, DLA row, case or label
    When drill D5 runs on a run of its own
    Then its journal is recorded as drills/lane-redelivery/journal.json
    And the steady state held before the fault
    And the platform failed closed while the fault held: the redelivered events add no decision, DLA row, case or label and the group returns to the ends
    And the steady state holds again after the rollback
