@drill:D6
Feature: D6 stale READY of a previous run on the control topic
  Steady state: the drill's own run is pinned, its oracle lane passed and its daemons run; no READY
  of it is on the control topic, so nothing of it is streamed; once SR publishes the run's own READY,
  its WSP streams the stream view, ingest reconciles, RTDL, the decision lane and case/labels reach
  its end and it closes once. Fault: READY records of a previous run, in SR's exact record shape
  (keyed by a run id, compact sorted JSON, message id the digest of the content), are published on the
  control topic before the drill run's WSP starts (the previous run's own READY, the same keyed by
  this run, this run's id over the previous scenario) and while it waits (this run's id, scenario,
  config and image over the previous run's Oracle root and checker receipt). Failing closed: while
  only stale READYs are on the topic, IG receives no request of the run, WSP writes nothing and keeps
  waiting, and no record of the run or of the previous run reaches the traffic topic. Rollback: the
  topic is append-only, so the stale records stay; SR publishes the run's own READY. Steady state
  again: WSP streams on that READY and names it, every event of the stream view is received after
  it, and the run settles and closes with the harness's recount.

  Scenario: A stale READY never starts a stream, and the run still streams on its own READY
    When drill D6 runs on a run of its own
    Then its journal is recorded as drills/stale-ready/journal.json
    And the steady state held before the fault
    And the platform failed closed while the fault held: WSP sends nothing and keeps waiting while only stale READYs are on the control topic
    And the steady state holds again after the rollback
