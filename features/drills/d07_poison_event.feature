@drill:D7
Feature: D7 poison (schema-invalid) event
  Steady state: the drill's own run is streamed through IG, every stream-view event is admitted exactly once
  and decided once, and the run closes with counts equal to the harness's recount. Fault: while a paced WSP
  streams the run, one request with the writer key carries schema-invalid events: a missing envelope field,
  a missing payload field, a wrong type in the payload, a number for the event id, and a value that is not
  an object. Failing closed: each is QUARANTINED with a quarantine object holding it and its reason; none is
  on the traffic, rtdl or decision topic, none has a DLA row or a case. Rollback: nothing to undo; WSP
  streams on. Steady state again: every stream-view event is admitted exactly once, and the run closes with
  the quarantined events counted and the counts equal to the harness's recount.

  Scenario: Poison events are quarantined, reach nothing downstream, and the run still closes with the recount
    When drill D7 runs on a run of its own
    Then its journal is recorded as drills/poison-event/journal.json
    And the steady state held before the fault
    And the platform failed closed while the fault held: every poison event is quarantined and reaches no topic, decision, DLA row or case
    And the steady state holds again after the rollback
