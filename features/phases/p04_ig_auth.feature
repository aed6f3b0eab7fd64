@phase:P4
Feature: P4 IG auth and health
  The ingestion gate answers health for its run with the bus connected. Its writer boundary is
  fail-closed: a batch without the writer key is refused 401, one with a wrong key 403, and
  nothing of either is published, deduped or receipted. With the writer key, what IG must not
  admit (a schema-invalid event, another run's event) is quarantined, never published. The
  harness consumes the traffic topic itself to prove it.

  Scenario: IG answers health for the run with the bus connected
    When the harness asks IG for its health
    Then IG answers 200 naming the run, its version and a connected bus

  Scenario: Batches without the writer key or with a wrong key are refused and nothing is published
    When the harness sends a batch with no writer key, one with a wrong key and one with the writer key
    Then the batch without a key gets 401 and the batch with a wrong key gets 403
    And nothing of the refused batches is on the traffic topic, in the dedupe table or in the receipts

  Scenario: With the writer key, events IG must not admit are quarantined, not published
    Given the harness sent a batch with no writer key, one with a wrong key and one with the writer key
    Then the schema-invalid event and another run's event get QUARANTINED receipts
    And each is in the quarantine bucket with its reason and none is on the traffic topic
