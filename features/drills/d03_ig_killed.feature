@drill:D3
Feature: D3 IG killed mid-batch
  Steady state: the drill's own run is streamed through IG, every stream-view event is admitted exactly once,
  every record of the run on the traffic topic has its receipt, and the run closes with counts equal to the
  harness's recount. Fault: while a paced WSP streams the run, IG's process group gets SIGKILL the moment a
  batch's claim is PENDING in ig_dedupe (claimed, its outcome not yet durable). Failing closed: once IG is
  started again on its port, as its service's task, and WSP retries the cut batch, each of its events has
  exactly one ADMITTED receipt and one record on the topic, no record is left without a receipt and no
  dedupe item is left PENDING or ambiguous. Rollback: the new IG serves the run; WSP completes (resumed if it
  gave up retrying). Steady state again: the whole run exactly once, and it closes with the harness's
  recount.

  Scenario: IG killed while it holds a batch's claims loses nothing and admits nothing twice
    When drill D3 runs on a run of its own
    Then its journal is recorded as drills/ig-killed/journal.json
    And the steady state held before the fault
    And the platform failed closed while the fault held: the cut batch is admitted once, with no record left without a receipt
    And the steady state holds again after the rollback
