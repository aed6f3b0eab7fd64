@phase:P(-1)
Feature: P(-1) packaging readiness
  One platform artifact is built from this checkout, pushed to ECR under the immutable tag
  git-<sha>, and its provenance (tag, digest, source SHA) is recorded. Every entrypoint
  mode answers its contract from the artifact itself, no secret is baked into it, and the
  compute runs only the artifact whose digest was recorded.

  Scenario: The artifact is built and pushed under an immutable tag
    When the platform artifact is built from this checkout and pushed to ECR
    Then ECR holds the image under its git tag with the recorded digest
    And the provenance is recorded as packaging/image_provenance.json

  Scenario: Every declared entrypoint answers its contract from the artifact
    When every mode in the handles is asked for its contract from the artifact
    Then every mode answers with its name, environment and evidence

  Scenario: The artifact holds no secrets
    When the artifact's files and configuration are scanned for secrets
    Then no secret is found

  Scenario: A planted secret fails the scan and names its file
    When an artifact is scanned with an AWS access key id, an AWS secret access key and a Confluent Cloud key and secret planted in three modules
    Then the scan names every planted file

  Scenario: An artifact that is not the recorded one is refused
    When the compute is asked to run a copy with one changed byte, and another build, under the recorded pin
    Then it refuses both before anything runs

  Scenario: Another image under the same tag is refused
    When a different image is pushed under the recorded tag
    Then the registry refuses it
