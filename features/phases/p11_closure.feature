@phase:P11
Feature: P11 obs/gov closure by a single writer
  The reporter is the single writer of the run's closure: it takes a lock with a fencing token,
  writes the run report, reconciliation, environment conformance and replay anchors, and last the
  write-once run_completed.json, only when every count closes and no PUBLISH_AMBIGUOUS receipt is
  left. Its obs objects are claims: the harness recomputes the reconciliation and the replay
  anchors from the receipts, the topics and the database it reads itself.

  Scenario Outline: A run whose counts cannot close is refused closure
    When the reporter runs for a run with <fault>
    Then the reporter refuses closure naming the fault, writes no run_completed.json and leaves the lock free

    Examples:
      | fault                                                        |
      | an unreconciled PUBLISH_AMBIGUOUS receipt                    |
      | an ADMITTED receipt whose record is not on the traffic topic |

  Scenario: A manual closeout holding the lock makes the reporter fail closed, naming the holder
    When a manual closeout holds the run's lock and the reporter runs
    Then the manual closeout is recorded as runs/<platform_run_id>/obs/p11_manual_closeout.json
    And the reporter exits 1 with conflict evidence naming the manual closeout and no run_completed.json

  Scenario: A stale fencing token is refused by the lock table
    When the manual closeout takes the lock again and presents its earlier token
    Then the fencing attempts are recorded as runs/<platform_run_id>/obs/p11_stale_token.json
    And the write with the stale token is refused and the write with the current token accepted

  Scenario: Two reporters started at once: exactly one closes, the other fails with conflict evidence
    When two reporters are started at once
    Then the contention is recorded as runs/<platform_run_id>/obs/p11_two_reporters.json
    And exactly one reporter closes the run and the other exits 1 naming it in its conflict evidence

  Scenario: A closed run stays closed
    When another reporter runs and the earlier holder writes with its token after closure
    Then each is refused and run_completed.json is unchanged

  Scenario: The reporter's reconciliation and replay anchors equal the harness's recount
    When the harness recomputes the reconciliation from the receipts, topics and database
    Then the harness's recount is recorded as runs/<platform_run_id>/obs/p11_recomputed.json
    And every count closes and equals the reporter's obs/reconciliation.json field by field
    And the replay anchors equal the harness's per-partition offsets and digests
    And run_completed.json vouches for the obs objects as written and names the lock's holder and token
    And every environment conformance check holds, the run's image digest among them
