@phase:P0
Feature: P0 substrate readiness
  The core (durable) and demo (run-scoped) Terraform stacks apply on the substrate, show
  no drift on a second plan, and every handle pinned in the registry resolves to a real
  resource with its pinned protections. No NAT gateway is introduced and a budget
  guardrail exists.

  Scenario: Core and demo stacks apply from a clean substrate
    When the core and demo stacks are applied
    Then both stacks manage resources and the pinned topics exist
    And the apply snapshot is recorded as substrate/apply_snapshot.json

  Scenario: A second plan shows no changes
    Given the core and demo stacks are applied
    When both stacks are planned again
    Then neither plan shows a change

  Scenario: Every pinned handle resolves to a live resource
    Given the core and demo stacks are applied
    When every handle in the registry is resolved against the substrate
    Then the handle resolution is recorded as substrate/handle_resolution.json
    And every bucket exists with its pinned protections
    And every SSM path is readable, Confluent bootstrap, key and secret included
    And every topic exists with its pinned partition count
    And the ECS cluster, task families and services exist
    And every DynamoDB table exists with its pinned key
    And the ECR repository exists with immutable tags
    And the database named by the DSN in SSM answers as a role that may only read and append its tables

  Scenario: No NAT gateway in the project's VPCs
    Given the core and demo stacks are applied
    When the network posture of the project's VPCs is observed
    Then no NAT gateway exists in any project VPC

  Scenario: The budget guardrail exists
    Given the core and demo stacks are applied
    When the cost guardrails are observed
    Then the pinned budget exists with its limit and alert threshold
