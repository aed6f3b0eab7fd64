@drill:D2
Feature: D2 broker unavailable mid-stream
  Steady state: the drill's own run is streamed through IG onto the traffic topic, every stream-view event is
  admitted exactly once, and the run closes with counts equal to the harness's recount. Fault: while a paced
  WSP streams the run, the embedded broker's process group is stopped with SIGSTOP (its storage is in
  memory: it is never restarted), then continued with SIGCONT. Failing closed: IG reports its bus down; an
  event sent while the broker is stopped is refused (503) or answered PUBLISH_AMBIGUOUS, never ADMITTED, and
  no receipt answered while it was stopped claims a record produced after it stopped; a reporter started
  while it is stopped exits 1 with refusal evidence, writes no run_completed.json and leaves the lock free.
  Rollback: SIGCONT, then WSP resumed: a publish left ambiguous is reconciled when its event is sent again
  (against the traffic topic: admitted at its one record, or published now). Steady state again: every
  stream-view event has exactly one ADMITTED receipt and one record, no ambiguity is left unreconciled, and
  the run closes with the harness's recount. A certification without a broker of the harness's own
  (--kafka-bootstrap, dev_min) cannot judge this drill: it ends ERROR, never passed.

  Scenario: A frozen broker leaves nothing admitted without a delivery report and no closure, and the run reconciles after it
    When drill D2 runs on a run of its own
    Then its journal is recorded as drills/broker-unavailable/journal.json
    And the steady state held before the fault
    And the platform failed closed while the fault held: nothing is admitted without a delivery report and no reporter closes the run
    And the steady state holds again after the rollback
