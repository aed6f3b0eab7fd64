@phase:P2
Feature: P2 daemon bring-up
  Every daemon the platform implements runs from the pinned artifact on the compute provider as
  its ECS service's task: exactly one replica, tagged with the run, answering readiness. A daemon
  started for another run refuses before it serves. The readiness snapshot is evidence.

  Scenario: Every daemon of the run runs with one replica, tagged with the run
    When the run's daemons are started on the compute provider
    Then the readiness snapshot is recorded as runs/<platform_run_id>/daemons/readiness.json
    And every daemon's process runs and answers readiness for the run
    And every daemon's service has exactly one task meant to run
    And every daemon's task is tagged with the run

  Scenario: A daemon started for another run refuses before serving
    Given the run's daemons are started on the compute provider
    When the ingestion gate is started for another run id
    Then it exits refusing the run scope and never answered health
