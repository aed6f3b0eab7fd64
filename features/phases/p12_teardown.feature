@phase:P12
Feature: P12 teardown
  The run-scoped demo stack is destroyed while the durable core and the evidence stay.
  Nothing cost-bearing of the demo remains: no ECS services or tasks, no NAT gateway,
  no load balancer, no demo secrets. The post-destroy snapshot is the teardown proof.
  P12 runs last and runs even when earlier phases failed.

  Scenario: The demo stack is destroyed
    When the demo stack is destroyed
    Then the teardown proof is recorded as teardown/teardown_proof.json
    And no demo-tagged resource, execution role or log group remains

  Scenario: Core resources and the evidence are preserved
    Given the teardown proof
    Then every core bucket, table, SSM surface and the ECR repository still exist
    And this certification's evidence is in the evidence bucket

  Scenario: No demo ECS services or tasks remain
    Given the teardown proof
    Then no ECS service or task of the demo is live

  Scenario: No NAT gateway or load balancer remains
    Given the teardown proof
    Then no NAT gateway or load balancer remains in the project's VPCs

  Scenario: Demo secrets are removed from SSM
    Given the teardown proof
    Then the demo SSM secrets are gone
