"""Substrate drills: the evidence bucket refusing writes (D10), drift created out of band (D11).

D10 denies ``s3:PutObject`` on the drill run's prefix of the evidence bucket with a bucket policy: no evidence,
no green. The reporter must not close the run while it cannot write its closure, and the certification's own
mirror (another prefix of the same bucket) keeps writing. D11 creates a NAT gateway and a public-read bucket
policy with boto3, outside Terraform: P0's own posture checks must name both, and pass again once they are
removed; the deleted NAT gateway, which the Tagging API keeps listing, must count as gone for P12.
"""

from __future__ import annotations

import uuid
from typing import Any

from harness import closeout, drills
from harness.aws import AwsSession, arn_status, ec2, s3, tagging
from harness.drills import runs
from harness.errors import HarnessError, SubstrateError
from harness.handles import Bucket
from harness.phases import p00
from harness.session import Certification
from harness.wait import wait_until

DENY_SID = "SpineCertifyD10DenyRunWrites"
PUBLIC_SID = "SpineCertifyD11PublicRead"
DRIFT_BUCKET = "oracle"  # the project bucket D11 makes public-read
PROBE = "drills/evidence-bucket-refuses/probe.json"  # the harness's own write under the denied prefix
BLOCK_PUBLIC_POLICY = "BlockPublicPolicy"  # named in S3's AccessDenied when Block Public Access refuses a policy
NAT_DELETE_TIMEOUT_S = 600.0  # AWS takes about a minute to delete a NAT gateway; the emulator none


# --- bucket policies -------------------------------------------------------------------------------------------


def with_statement(policy: dict[str, Any] | None, statement: dict[str, Any]) -> dict[str, Any]:
    """The bucket's policy with one more statement (a bucket has one policy: the drill adds to what is there)."""
    base = policy or {"Version": "2012-10-17", "Statement": []}
    statements = base.get("Statement", [])
    return {**base, "Statement": [*(statements if isinstance(statements, list) else [statements]), statement]}


def deny_writes(bucket: str, prefix: str) -> dict[str, Any]:
    """An explicit Deny of s3:PutObject for every caller on ``prefix`` of ``bucket`` (objects only)."""
    return {"Sid": DENY_SID, "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
            "Resource": f"arn:aws:s3:::{bucket}/{prefix}*"}


def public_read(bucket: str) -> dict[str, Any]:
    return {"Sid": PUBLIC_SID, "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/*"}


def _restore_policy(aws: AwsSession, bucket: str, before: dict[str, Any] | None) -> dict[str, Any]:
    """Put back the policy the bucket had before the drill (none: delete it); returns what S3 then holds."""
    if before is None:
        s3.delete_policy(aws, bucket=bucket)
    else:
        s3.put_policy(aws, bucket=bucket, document=before)
    after = s3.policy(aws, bucket=bucket)
    return {"restored": after["policy"] == before, **after}


# --- D10: the evidence bucket refuses writes ---------------------------------------------------------------------


def probe_write(aws: AwsSession, *, bucket: str, key: str) -> dict[str, Any]:
    """The harness's own write-once put: refused (with the code S3 answered) or accepted."""
    try:
        s3.put_once(aws, bucket=bucket, key=key, body=b'{"probe": "D10"}')
    except SubstrateError as exc:
        return {"key": key, "refused": True, "code": exc.code, "message": exc.message}
    return {"key": key, "refused": False, "code": None, "message": None}


def judge_denied(obs: dict[str, Any]) -> list[str]:
    """While the run's prefix refused writes: the reporter did not close it, wrote nothing, and the
    certification's own evidence still reached the bucket."""
    problems = []
    reporter = obs["reporter"]
    if reporter["exit_code"] == 0:
        problems.append(f"{reporter['reporter']} exited 0 while the run's evidence prefix refused writes: it closed "
                        "green without evidence")
    elif reporter["exit_code"] is None:
        problems.append(f"{reporter['reporter']} did not end while the run's evidence prefix refused writes")
    if obs["run_completed"]:
        problems.append("run_completed.json exists although the run's evidence prefix refused every write")
    written = sorted(set(obs["obs_after"]) - set(obs["obs_before"]))
    if written:
        problems.append(f"objects appeared under the denied prefix while the deny held: {written[:5]}")
    if (obs["lock"] or {}).get("state") == "CLOSED":
        problems.append(f"the lock table shows the run CLOSED ({obs['lock']}) although none of its closure "
                        "evidence could be written")
    if not obs["mirror"]["present"]:
        problems.append(f"the certification's own evidence written while the deny held is not at "
                        f"s3://{obs['mirror']['bucket']}/{obs['mirror']['key']}: the deny is not scoped to the run")
    return problems


def evidence_bucket_refuses(cert: Certification) -> dict[str, Any]:
    """D10: a bucket policy denies writes to the run's evidence prefix; no evidence, no green."""
    journal = drills.Journal(
        "D10", "evidence-bucket-refuses", "Evidence bucket refusing writes",
        hypothesis="the drill's run is streamed, reconciled and decided; a reporter closes it once with counts equal "
                   "to the harness's recount; the certification's own evidence mirror writes to the same bucket",
        fault="a bucket policy on the evidence bucket with an explicit Deny of s3:PutObject for every principal on "
              "the drill run's prefix runs/<run>/ (the mirror's prefix stays writable)",
    )

    def body(j: drills.Journal) -> None:
        pins = runs.steady_before(cert, j)
        aws = cert.aws_session
        bucket, prefix = s3.split_url(pins.evidence_root)
        before = j.step("steady-state-before", "the evidence bucket's policy before the fault",
                        lambda: s3.policy(aws, bucket=bucket))["policy"]
        try:
            j.step("method", f"put a bucket policy denying s3:PutObject on s3://{bucket}/{prefix}*",
                   lambda: s3.put_policy(aws, bucket=bucket,
                                         document=with_statement(before, deny_writes(bucket, prefix))))
            probe = j.step("method", "the harness's own write under the run's prefix is refused",
                           lambda: probe_write(aws, bucket=bucket, key=prefix + PROBE))
            if not probe["refused"]:
                raise HarnessError(f"the fault did not hold: s3://{bucket}/{probe['key']} was written despite the "
                                   "bucket policy's Deny (the substrate does not enforce bucket policies)")
            obs_before = j.step("observe", "the run's obs/ objects and run_completed.json before the reporter",
                                lambda: runs.obs_objects(cert, pins))
            reporter_id = f"reporter-denied-{uuid.uuid4().hex[:8]}"
            outcome = j.step("observe", "a reporter started for the run while the deny holds",
                             lambda: runs.close(cert, pins, reporter_id))
            obs = j.step("observe", "what the bucket and the lock table hold after it, and whether the "
                         "certification's own mirror still writes", lambda: {
                             "reporter": outcome, "obs_before": obs_before, "obs_after": runs.obs_objects(cert, pins),
                             "run_completed": s3.key_exists(aws, bucket=bucket, key=prefix + "run_completed.json"),
                             "lock": closeout.current(aws, cert.handles.tables["reporter_lock"].name,
                                                      pins.platform_run_id),
                             "probe": probe, "mirror": _mirror_probe(cert, j, probe)})
            j.expect("observe", drills.recorded(cert, j, "denied_observed.json", obs, judge_denied))
        finally:
            restored = j.step("rollback", "restore the evidence bucket's policy as it was before the fault "
                              f"({'none: delete it' if before is None else 'put it back'})",
                              lambda: _restore_policy(aws, bucket, before))
        j.expect("steady-state-after", [] if restored["restored"] else [
            f"the evidence bucket's policy was not restored: {restored['policy']}"])
        runs.steady_after(cert, j, pins)

    return drills.run(cert, journal, body)


def _mirror_probe(cert: Certification, j: drills.Journal, probe: dict[str, Any]) -> dict[str, Any]:
    """Evidence written while the deny holds, mirrored at once: is it in the evidence bucket?"""
    relpath = f"{j.directory}/denied_write.json"
    cert.evidence(relpath, {"platform_run_id": j.platform_run_id, "probe": probe})
    cert.mirror_pending()
    target = cert.mirror_target()
    if target is None:
        raise HarnessError("the evidence bucket does not exist: the certification's mirror cannot be checked")
    key = target.prefix + relpath
    return {"bucket": target.bucket, "key": key,
            "present": s3.key_exists(cert.aws_session, bucket=target.bucket, key=key)}


# --- D11: drift sentinel -----------------------------------------------------------------------------------------


def observe_posture(cert: Certification) -> dict[str, Any]:
    """P0's posture read now: NAT gateways and load balancers in the project's VPCs, each project bucket's
    protections and policy (nothing recorded in P0's evidence: that is P0's own)."""
    return {"network": p00.observe_network(cert),
            "buckets": {role: {"pinned": {"name": b.name, "versioning": b.versioning, "encryption": b.encryption,
                                          "public_access_block": b.public_access_block},
                               "observed": p00.observe_bucket(cert, b)}
                        for role, b in cert.handles.buckets.items()}}


def posture_problems(posture: dict[str, Any]) -> list[str]:
    """P0's judgements of the posture: its NAT check and each bucket's pinned protections."""
    problems = drills.findings(p00.check_no_nat, posture["network"])
    for role, entry in posture["buckets"].items():
        problems += p00.bucket_problems(Bucket(role=role, **entry["pinned"]), entry["observed"])
    return problems


def put_public_policy(aws: AwsSession, bucket: str, before: dict[str, Any] | None) -> dict[str, Any]:
    """The public-read statement added to the bucket's policy out of band. An account or bucket whose Block Public
    Access refuses public policies (AWS: AccessDenied naming BlockPublicPolicy) cannot drift this way: that is
    recorded, not raised; any other refusal is an error."""
    try:
        s3.put_policy(aws, bucket=bucket, document=with_statement(before, public_read(bucket)))
    except SubstrateError as exc:
        if exc.code == "AccessDenied" and BLOCK_PUBLIC_POLICY in exc.message:
            return {"planted": False, "refused": {"code": exc.code, "message": exc.message}}
        raise
    return {"planted": True, "refused": None}


def drift_named(posture: dict[str, Any], planted: dict[str, Any]) -> list[str]:
    """What P0's checks failed to name of the drift created out of band (the public policy only when it could be
    put: ``planted["public_policy"]``)."""
    found = posture_problems(posture)
    missing = []
    if not any(planted["nat_gateway_id"] in p for p in found):
        missing.append(f"P0's NAT check does not name the NAT gateway {planted['nat_gateway_id']} created out of "
                       f"band in {planted['vpc_id']}: {found or 'it passes'}")
    if planted.get("public_policy", True) and not any(planted["bucket"] in p and "public access" in p for p in found):
        missing.append(f"P0's bucket checks do not name the public-read policy put on {planted['bucket']}: "
                       f"{found or 'they pass'}")
    return missing


def teardown_view(aws: AwsSession, tags: dict[str, str], ids: list[str]) -> dict[str, Any]:
    """P12's reading of the planted resources: the Tagging API's listing, each listed ARN described directly."""
    listed = [arn for arn in tagging.find_resources(aws, tags=tags) if any(i in arn for i in ids)]
    return {"ids": ids, "listed": {arn: arn_status.status(aws, arn) for arn in listed}}


def teardown_problems(view: dict[str, Any]) -> list[str]:
    return [f"P12 would count {arn} ({state}) as still present" for arn, state in view["listed"].items()
            if not arn_status.is_gone(state)]


def drift_sentinel(cert: Certification) -> dict[str, Any]:
    """D11: a NAT gateway and a public bucket policy created out of band; P0's drift checks must name both."""
    journal = drills.Journal(
        "D11", "drift-sentinel", "NAT gateway and public bucket policy created out of band",
        hypothesis="no NAT gateway is in the project's VPCs and every project bucket holds its pinned protections, "
                   "none public: P0's network and bucket posture checks pass",
        fault="a NAT gateway with an Elastic IP in the demo VPC, tagged like the demo stack, and a public-read "
              f"bucket policy on the {DRIFT_BUCKET} bucket, both created with boto3 outside Terraform",
    )

    def body(j: drills.Journal) -> None:
        aws, h = cert.aws_session, cert.handles
        demo_tags = {**h.tags, "stack": "demo", "cert_id": cert.cert_id}
        bucket = h.bucket(DRIFT_BUCKET).name
        vpc = j.step("steady-state-before", "the demo stack is applied (its VPC)",
                     lambda: p00.ensure_applied(cert)["stacks"]["demo"]["outputs"]["vpc_id"])
        j.expect("steady-state-before", posture_problems(j.step(
            "steady-state-before", "P0's posture: no NAT gateway in the project's VPCs, every bucket protected",
            lambda: observe_posture(cert))))
        before = j.step("steady-state-before", f"the {bucket} bucket's policy before the fault",
                        lambda: s3.policy(aws, bucket=bucket))["policy"]
        planted: dict[str, Any] = {"bucket": bucket, "vpc_id": vpc}
        try:
            planted.update(j.step("method", f"create a NAT gateway and its Elastic IP in {vpc} with boto3, tagged "
                                  "like the demo stack", lambda: ec2.plant_nat_gateway(
                                      aws, vpc_id=vpc, tags={**demo_tags, "Name": f"{h.name_prefix}-d11-nat"})))
            put = j.step("method", f"put a public-read bucket policy on {bucket} with boto3",
                         lambda: put_public_policy(aws, bucket, before))
            planted["public_policy"] = put["planted"]
            if not put["planted"]:
                cert.waive("D11.public_bucket_policy", f"S3 Block Public Access ({BLOCK_PUBLIC_POLICY}) refused the "
                           f"public-read policy on {bucket}: that drift cannot be created on this substrate, so "
                           "P0's detection of it is not exercised (the NAT gateway half is)")
            held = j.step("observe", "P0's posture read again while the drift holds", lambda: observe_posture(cert))
            j.step("observe", "what P0's NAT and bucket checks name", lambda: posture_problems(held))
            j.expect("observe", drift_named(held, planted))
        finally:
            j.step("rollback", "delete the NAT gateway, release its Elastic IP, restore the bucket's policy",
                   lambda: _remove_drift(aws, planted, before))
        j.expect("steady-state-after", posture_problems(j.step(
            "steady-state-after", "P0's posture: the same checks pass again", lambda: observe_posture(cert))))
        ids = [planted[k] for k in ("nat_gateway_id", "allocation_id") if k in planted]
        j.expect("steady-state-after", teardown_problems(j.step(
            "steady-state-after", "P12's reading: the Tagging API's listing of the removed resources, each described "
            "by its own service", lambda: teardown_view(aws, {"project": h.tags["project"], "stack": "demo"}, ids))))

    return drills.run(cert, journal, body)


def _remove_drift(aws: AwsSession, planted: dict[str, Any], policy_before: dict[str, Any] | None) -> dict[str, Any]:
    removed: dict[str, Any] = {}
    nat, allocation = planted.get("nat_gateway_id"), planted.get("allocation_id")
    if nat:
        ec2.delete_nat_gateway(aws, nat)
        removed["nat_gateway_state"] = wait_until(
            lambda: ec2.nat_gateway_state(aws, nat) == "deleted" and "deleted", timeout_s=NAT_DELETE_TIMEOUT_S,
            backoff_s=0.2, max_backoff_s=10.0, err_msg=f"NAT gateway {nat} was not deleted",
            operation="D11 rollback")
    if allocation:
        def released() -> bool:
            if ec2.address_exists(aws, allocation):
                ec2.release_address(aws, allocation)  # refused while the NAT gateway still holds it: tried again
            return not ec2.address_exists(aws, allocation)
        removed["elastic_ip_released"] = wait_until(released, timeout_s=120.0, backoff_s=0.2, max_backoff_s=5.0,
                                                    err_msg=f"Elastic IP {allocation} was not released",
                                                    operation="D11 rollback")
    removed["bucket_policy"] = _restore_policy(aws, planted["bucket"], policy_before)
    return removed


DRILLS = {"D10": evidence_bucket_refuses, "D11": drift_sentinel}
