@drill:D1
Feature: D1 IG writer key rotated mid-stream
  Steady state: the drill's own run is streamed through IG with the writer key from SSM, every stream-view
  event is admitted exactly once, and the run closes with counts equal to the harness's recount. Fault:
  while a paced WSP streams the run, the SecureString at ssm.ig_api_key is given a new random value (never
  written to evidence). Failing closed: within the contract's second IG refuses the old key with 401/403; an
  event sent with the old key after that has no receipt, no dedupe item and no record on the topic; no
  request of the WSP holding the old key is receipted after the rotation took effect, and that WSP stops on
  the refusal. Rollback: WSP resumed, reading the new key from SSM. Steady state again: every stream-view event
  has exactly one ADMITTED receipt and one record on the traffic topic, and the run closes with the harness's
  recount.

  Scenario: A rotated writer key refuses the old one within a second, and the run completes with the new one
    When drill D1 runs on a run of its own
    Then its journal is recorded as drills/ig-key-rotation/journal.json
    And the steady state held before the fault
    And the platform failed closed while the fault held: the old key is refused and nothing sent with it after the rotation is admitted
    And the steady state holds again after the rollback
