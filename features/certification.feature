@phase:Reproducibility
Feature: Reproducibility of the rerun
  The ladder certifies a 20-event run, then a 200-event run, then a rerun of the 200-event scenario
  under a new platform_run_id. The rerun must be the same run in everything but what has to differ.
  The harness reads both runs again itself and compares their semantic content: the stream views'
  content hashes it recomputed at P3, the admitted event identities, each event's decision (outcome,
  reasons, policy, features), DLA records, cases and labels, and the counts of its own recount. Run
  ids, the ids derived from them, timestamps of when things happened and offsets are ignored. A
  platform whose decisions depend on wall-clock time or on arrival order differs here.

  Scenario: The rerun of the last rung's scenario under a new run id is semantically the same run
    When the harness compares the last rung's run with its rerun
    Then the comparison is recorded as certification/reproducibility.json
    And the two runs agree on stream views, admitted events, decisions, DLA records, cases, labels and counts

  Scenario: Runs of two different scenarios are told apart, with a semantic diff
    When the harness compares the first rung's run with the rerun
    Then the comparison names the semantic differences
