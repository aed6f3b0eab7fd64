@phase:P5
Feature: P5 SR gate and READY
  The scenario runner is the run-readiness authority: it verifies the run's Oracle lane by
  reference (checker PASS, the PASS marker, the pins), takes the run's lease, writes the run
  facts view and publishes READY on the control topic keyed by the run id. The harness consumes
  the control topic itself: READY exists only after the Oracle PASS, a re-emit leaves one
  distinct READY, and a run SR must refuse gets no READY and a refusal that names why.

  Scenario: READY is published after the Oracle PASS and matches the run's pins
    When the scenario runner gates the run
    Then exactly one distinct READY for the run is on the control topic, after the Oracle PASS, matching the pins

  Scenario: A duplicate READY send leaves exactly one distinct READY
    Given the scenario runner gated the run
    When the scenario runner gates the run again
    Then the control topic still holds exactly one distinct READY for the run

  Scenario: A second scenario runner while the lease is held is refused
    Given the scenario runner gated the run
    When the scenario runner gates the run while another holder owns its lease
    Then the scenario runner refuses naming the holder and publishes nothing

  Scenario Outline: The scenario runner refuses <case>
    When the scenario runner is asked to gate <case>
    Then it exits 1 naming why, and no READY exists for that run

    Examples:
      | case                       |
      | a closed run               |
      | another run's Oracle pins  |
      | a run with no Oracle PASS  |
