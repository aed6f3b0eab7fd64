@drill:D11
Feature: D11 NAT gateway and public bucket policy created out of band
  Steady state: no NAT gateway is in the project's VPCs and every project bucket holds its pinned
  protections (versioning, encryption, public access block, no public bucket policy): P0's network
  and bucket posture checks pass. This drill needs no platform run. Fault: drift created with boto3
  outside Terraform: a NAT gateway with an Elastic IP in the demo VPC, both tagged like the demo
  stack, and a public-read bucket policy (Allow s3:GetObject to any principal) on the Oracle bucket.
  Failing closed: the same P0 checks, read again, name the NAT gateway and the bucket's public policy
  (where S3 Block Public Access refuses the public policy, as AWS does, that drift cannot be created:
  the policy half is WAIVED with the refusal as its reason, never passed).
  Rollback: the NAT gateway is deleted (the emulator keeps listing it, state deleted), its Elastic IP
  released and the bucket's policy restored. Steady state again: the same checks pass, and what the
  Tagging API still lists of the removed resources is gone as P12 describes it.

  Scenario: P0's drift checks name a NAT gateway and a public bucket policy created out of band
    When drill D11 runs on a run of its own
    Then its journal is recorded as drills/drift-sentinel/journal.json
    And the steady state held before the fault
    And the platform failed closed while the fault held: P0's checks name the NAT gateway and the public bucket policy
    And the steady state holds again after the rollback
