@drill:D4
Feature: D4 RTDL killed before committing offsets
  Hypothesis: the drill's own run streams through IG into RTDL, which archives every consumed record once,
  publishes one enriched event per event of the run and commits only offsets it archived; the decision lane
  decides each event once, case/labels opens its cases, and the run closes with the harness's recount.
  Fault: while the run is streamed (WSP paced, one event a request, so RTDL archives and commits batch after
  batch), the harness looks at the run's archive every few milliseconds with RTDL frozen (SIGSTOP), RTDL running
  only between looks; when a new archive object has appeared and the archive bucket and the broker show archived
  records past its group's committed offset (consumed and archived, not committed) its process group is SIGKILLed. Failing closed: no offset stood past what was archived,
  nothing was committed after the kill, and after the restart nothing was lost or duplicated by the harness's
  own reading: the archive has no gap and no overlap (records archived before the crash are not archived again),
  the group reaches the acknowledged ends, every admitted event has its enriched event (a copy published again
  holds the same bytes) and exactly one decision and one DLA row. Rollback: RTDL started again as its service's
  task. Steady state again: ingest reconciles, cases are complete, and the run closes with the harness's recount.

  Scenario: RTDL killed between its archive write and its commit loses and duplicates nothing
    When drill D4 runs on a run of its own
    Then its journal is recorded as drills/rtdl-killed/journal.json
    And the steady state held before the fault
    And the platform failed closed while the fault held: nothing committed past the archive, then no gap, no overlap and one decision per event after the restart
    And the steady state holds again after the rollback
