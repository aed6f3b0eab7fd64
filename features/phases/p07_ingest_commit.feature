@phase:P7
Feature: P7 ingest commit
  IG commits the run's ingest: receipt and quarantine summaries and a Kafka offsets snapshot.
  They are claims. The harness consumes the traffic topic from the beginning and reconciles it
  with IG's durable receipts and the stream view itself: every ADMITTED receipt is exactly one
  record at its partition and offset, no record lacks a receipt, nothing quarantined or
  duplicate reached the topic, the topic holds exactly the stream view's events, and no
  PUBLISH_AMBIGUOUS outcome is left unreconciled. Offsets come from delivery reports.

  Scenario: IG commits summaries that equal the harness's recount of its receipts
    When IG commits the run's ingest
    Then the IG summaries are recorded as runs/<platform_run_id>/ingest/receipt_summary.json
    And IG's receipt and quarantine summaries equal the harness's recount of the receipts

  Scenario: Every ADMITTED receipt is exactly one record on the topic, and every record has a receipt
    When the harness reconciles the traffic topic with IG's receipts
    Then the reconciliation is recorded as runs/<platform_run_id>/ingest/reconciliation.json
    And every ADMITTED receipt names a record holding its event, and no record of the run lacks a receipt

  Scenario: Nothing quarantined or duplicate reached the topic
    When the harness reconciles the traffic topic with IG's receipts
    Then no quarantined or duplicate event is on the topic and no event is on it twice

  Scenario: The topic holds exactly the stream view's events for the run
    When the harness reconciles the traffic topic with IG's receipts
    Then the run's events on the topic are the stream view's events, field by field

  Scenario: No publish outcome is left ambiguous
    When the harness reconciles the traffic topic with IG's receipts
    Then every PUBLISH_AMBIGUOUS receipt is reconciled with the topic

  Scenario: The offsets snapshot is the delivery reports' and the broker's answer is a cross-check
    When the harness reconciles the traffic topic with IG's receipts
    Then IG's offsets snapshot equals the acknowledged end offsets, with the broker's watermark beside them

  Scenario: A record written around IG fails the reconciliation, named by partition and offset
    When a well-formed event is written to the traffic topic around IG
    Then the harness's reconciliation names the record as one without a receipt
