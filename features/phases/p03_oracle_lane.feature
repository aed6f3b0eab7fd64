@phase:P3
Feature: P3 oracle lane
  The Data Engine writes the scenario's Oracle outputs to the source root; the platform lands
  them S3→S3 write-once (oracle-seed), builds sorted stream views (oracle-sort) and closes
  every output with receipts (oracle-check), all through the compute provider. Receipts and
  the PASS marker are claims: the harness reads every stream view itself and checks order,
  rows, keys and content_hash against the Data Engine's source manifest. Partial, changed or
  local inputs fail closed: no PASS marker.

  Scenario: The oracle lane lands, sorts and closes every output
    When the data engine writes the source root and seed, sort and check run
    Then every job of the lane exits 0
    And the landing manifest proves byte continuity
    And every output has a stream view manifest and a sort receipt
    And the checker receipt says PASS and the PASS marker exists
    And the harness's own reading of every stream view agrees with the source manifest and the receipts

  Scenario: A removed source object fails closed
    When the oracle lane runs with one source object removed
    Then the lane fails closed with no PASS marker

  Scenario: A row changed after landing fails closed
    When the oracle lane runs with one row changed after landing
    Then the lane fails closed with no PASS marker

  Scenario: A local source path is refused
    When the oracle lane runs with a local source path
    Then the lane fails closed with no PASS marker
