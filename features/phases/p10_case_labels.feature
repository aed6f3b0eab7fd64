@phase:P10
Feature: P10 case and labels in the managed database
  Every REVIEW or DECLINE decision opens one case with one label per reason, in the database
  whose DSN is pinned in SSM. The tables are append-only in the database itself: the platform
  role may read and insert, and the database refuses its UPDATE and DELETE. The summary is a
  claim; the harness queries the database at the DSN it reads from SSM.

  Scenario: One case per REVIEW or DECLINE decision, each with its labels
    When the harness queries the cases and labels of the run at the DSN in SSM
    Then the case observation is recorded as runs/<platform_run_id>/case_labels/cases_observed.json
    And every REVIEW and DECLINE decision has exactly one case, and APPROVE none
    And every case carries one label per reason of its decision
    And case/labels' summary equals the harness's count

  Scenario: The platform writes to the managed database the DSN in SSM names
    When the harness queries the cases and labels of the run at the DSN in SSM
    Then the database reached through SSM is the pinned one, and case/labels is connected to it as the platform role

  Scenario: UPDATE and DELETE are refused by the database, not by the platform
    When the harness tries to update and delete cases and labels as the platform role and as the owner
    Then the attempts are recorded as runs/<platform_run_id>/case_labels/append_only_refusals.json
    And the database refuses every attempt with insufficient privilege and no row changes
