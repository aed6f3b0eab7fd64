@phase:P9
Feature: P9 decision lane and decision log audit
  The decision lane turns each enriched event into exactly one decision on the decision topic and
  appends one write-once DLA record per decision, keyed by a deterministic decision id, so a
  redelivered event adds neither. Its summary is a claim. The harness consumes the decision topic,
  reads the DLA rows in the database at the DSN in SSM, and scores the decisions against the Data
  Engine's ground truth (fraud_pattern) it reads from the stream view itself.

  Scenario: Exactly one decision and one identical DLA record per admitted event
    When the harness consumes the decision topic and reads the DLA
    Then the decision observation is recorded as runs/<platform_run_id>/decision_lane/decisions_observed.json
    And every admitted event has exactly one decision, with the contract's decision id and well-formed reasons
    And every decision is the contract's policy applied to the features the harness recomputes from the traffic topic
    And every decision has exactly one DLA record holding the published bytes, and every DLA record a decision
    And the decision lane's summary equals the harness's count

  Scenario: Every injected fraud pattern is flagged, with precision and recall in evidence
    When the harness consumes the decision topic and reads the DLA
    Then the decision scores are recorded as runs/<platform_run_id>/decision_lane/scores.json
    And every fraud pattern the Data Engine injected is flagged at least once

  Scenario: A redelivery from offset 0 adds no decision and no DLA record
    When the decision lane's group is rewound to offset 0 and the lane restarted
    Then the redelivery is recorded as runs/<platform_run_id>/decision_lane/redelivery.json
    And the lane consumed every enriched event again and the decision topic and DLA hold what they held before

  Scenario: An attempt to overwrite a DLA record is refused by the database
    When the harness, as the platform role, tries to update, delete and re-insert a DLA record
    Then the attempts are recorded as runs/<platform_run_id>/decision_lane/dla_overwrite_refused.json
    And the database refuses each attempt and the DLA record is unchanged
