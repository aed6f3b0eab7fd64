@phase:P8
Feature: P8 RTDL core catch-up and archive durability
  RTDL consumes the run's traffic in its consumer group, archives every consumed record to the
  archive bucket and commits an offset only once the archive object holding it is durable. Its
  catch-up and archive index are claims. The harness computes the lag itself: the acknowledged
  end offsets from IG's delivery reports minus the group's committed offsets it reads from the
  broker, against the pinned RTDL_CAUGHT_UP_LAG_MAX. It reads every archive object and the whole
  traffic topic and proves they hold the same records: no gap, no overlap, the same bytes.

  Scenario: RTDL is caught up within the pinned lag, by the harness's own reading of the group
    When the harness reads RTDL's committed offsets and the acknowledged end offsets
    Then RTDL's catch-up claim is recorded as runs/<platform_run_id>/rtdl_core/catch_up.json
    And the lag observation is recorded as runs/<platform_run_id>/rtdl_core/lag_observed.json
    And every partition's lag is within RTDL_CAUGHT_UP_LAG_MAX and RTDL's claim agrees with the broker

  Scenario: The archive holds exactly the topic's records and no offset was committed before its archive object
    When the harness reads every archive object of the run beside the whole traffic topic
    Then the archive observation is recorded as runs/<platform_run_id>/rtdl_core/archive_observed.json
    And the archive objects hold every consumed record once, with the topic's bytes, and the index lists them all
    And no committed offset passes the archived records

  Scenario: An archive object removed out of band is named as a gap, and the archive passes once it is back
    When an archive object is removed from the archive bucket out of band
    Then the harness names the removed offsets as a gap in the archive
    And with the object put back the archive passes again
