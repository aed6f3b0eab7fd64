@phase:P1
Feature: P1 run pinning
  Before any job or daemon starts, the run is pinned in runs/<platform_run_id>/run.json:
  platform and scenario run ids, the run config digest, the image provenance, the number
  of events and the handles digest, written write-once to the evidence bucket. A job
  launched with another config or image digest refuses to run.

  Scenario: The run manifest is written before any job starts
    When the run is pinned
    Then run.json in the evidence bucket holds the pins, and no job of the run started before it

  Scenario: Pinning the same run again fails closed
    Given the run is pinned
    When the same run id is pinned again
    Then the second pin is refused and run.json is unchanged

  Scenario: A job with another run config digest refuses to run
    Given the run is pinned
    When a job is started with a different run config digest
    Then the job refuses, naming the config digest

  Scenario: A job with another image digest refuses to run
    Given the run is pinned
    When a job is started with a different image digest
    Then the job refuses, naming the image digest
