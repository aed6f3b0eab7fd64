"""The embedded emulator honours an explicit Deny of a bucket policy as AWS does: 403 AccessDenied, matching keys only.

D10 refuses the drill run's writes to the evidence bucket with such a policy while the certification's own
mirror, under another prefix of the same bucket, keeps writing (harness/substrate/moto_launch.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import pytest

from harness.aws import AwsSession, s3
from harness.errors import SubstrateError
from harness.substrate import MotoServer
from harness.substrate.moto_launch import denied_by, s3_action

pytestmark = pytest.mark.substrate
BUCKET = "deny-policy-evidence"
RUN_PREFIX = "runs/run-1-d10/"


def _deny(bucket: str, prefix: str, action: Any = "s3:PutObject", **extra: Any) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "DenyRunWrites", "Effect": "Deny", "Principal": "*", "Action": action,
         "Resource": f"arn:aws:s3:::{bucket}/{prefix}*", **extra}]}


@pytest.fixture
def aws(moto: MotoServer) -> Iterator[AwsSession]:
    session = AwsSession(region="eu-west-2", endpoint_url=moto.endpoint)
    client = session.client("s3")
    if not s3.exists(session, bucket=BUCKET):
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-2"})
    yield session
    client.delete_bucket_policy(Bucket=BUCKET)


def _refused(call: Any) -> dict[str, Any]:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    return {"code": caught.value.response["Error"]["Code"],
            "status": caught.value.response["ResponseMetadata"]["HTTPStatusCode"]}


def test_an_explicit_deny_of_put_object_refuses_matching_keys_with_access_denied(aws: AwsSession) -> None:
    client = aws.client("s3")
    client.put_object(Bucket=BUCKET, Key="certifications/c1/before.json", Body=b"{}")
    s3.put_policy(aws, bucket=BUCKET, document=_deny(BUCKET, RUN_PREFIX))
    access_denied = {"code": "AccessDenied", "status": 403}

    assert _refused(lambda: client.put_object(Bucket=BUCKET, Key=f"{RUN_PREFIX}obs/a.json", Body=b"1")) \
        == access_denied
    assert _refused(lambda: client.put_object(Bucket=BUCKET, Key=f"{RUN_PREFIX}run_completed.json", Body=b"1",
                                              IfNoneMatch="*")) == access_denied
    assert _refused(lambda: client.copy_object(Bucket=BUCKET, Key=f"{RUN_PREFIX}copy.json", CopySource={
        "Bucket": BUCKET, "Key": "certifications/c1/before.json"})) == access_denied
    assert _refused(lambda: client.create_multipart_upload(Bucket=BUCKET, Key=f"{RUN_PREFIX}big.bin")) \
        == access_denied
    with pytest.raises(SubstrateError, match="AccessDenied"):  # the harness's own write sees the same refusal
        s3.put_once(aws, bucket=BUCKET, key=f"{RUN_PREFIX}probe.json", body=b"{}")
    assert s3.list_keys(aws, bucket=BUCKET, prefix=RUN_PREFIX) == []

    # Other prefixes of the same bucket, and reads, are not denied.
    s3.put_once(aws, bucket=BUCKET, key="certifications/c1/gates.json", body=b"{}")
    s3.put_once(aws, bucket=BUCKET, key="runs/run-2/run.json", body=b"{}")
    assert s3.get_bytes(aws, bucket=BUCKET, key="certifications/c1/gates.json") == b"{}"
    assert s3.policy(aws, bucket=BUCKET)["policy"] == _deny(BUCKET, RUN_PREFIX)

    s3.delete_policy(aws, bucket=BUCKET)
    assert s3.policy(aws, bucket=BUCKET) == {"policy": None}
    s3.put_once(aws, bucket=BUCKET, key=f"{RUN_PREFIX}obs/a.json", body=b"1")
    assert s3.list_keys(aws, bucket=BUCKET, prefix=RUN_PREFIX) == [f"{RUN_PREFIX}obs/a.json"]


def test_a_deny_of_other_actions_or_with_a_condition_lets_the_write_through(aws: AwsSession) -> None:
    client = aws.client("s3")
    s3.put_policy(aws, bucket=BUCKET, document=_deny(BUCKET, "runs/", action="s3:GetObject"))
    client.put_object(Bucket=BUCKET, Key="runs/x/written.json", Body=b"1")
    assert _refused(lambda: client.get_object(Bucket=BUCKET, Key="runs/x/written.json")) \
        == {"code": "AccessDenied", "status": 403}
    assert _refused(lambda: client.head_object(Bucket=BUCKET, Key="runs/x/written.json"))["status"] == 403
    s3.put_policy(aws, bucket=BUCKET, document=_deny(BUCKET, "runs/", action="s3:Put*", Condition={
        "Bool": {"aws:SecureTransport": "false"}}))
    client.put_object(Bucket=BUCKET, Key="runs/x/conditioned.json", Body=b"1")


def test_the_action_of_each_object_request_is_the_one_aws_authorises() -> None:
    assert s3_action("PUT", {}) == "s3:PutObject"
    assert s3_action("PUT", {"uploadId": ["u"], "partNumber": ["1"]}) == "s3:PutObject"
    assert s3_action("POST", {"uploads": [""]}) == "s3:PutObject"
    assert s3_action("POST", {"uploadId": ["u"]}) == "s3:PutObject"
    assert s3_action("PUT", {"tagging": [""]}) == "s3:PutObjectTagging"
    assert s3_action("HEAD", {}) == "s3:GetObject"
    assert s3_action("DELETE", {"uploadId": ["u"]}) == "s3:AbortMultipartUpload"
    assert s3_action("OPTIONS", {}) is None


def test_a_deny_statement_applies_by_action_resource_and_wildcard_principal_only() -> None:
    arn = f"arn:aws:s3:::{BUCKET}/{RUN_PREFIX}obs/a.json"
    policy = _deny(BUCKET, RUN_PREFIX)
    assert denied_by(policy, "s3:PutObject", arn) == "DenyRunWrites"
    assert denied_by(policy, "S3:putobject", arn) == "DenyRunWrites"  # actions compare case-insensitively
    assert denied_by(policy, "s3:GetObject", arn) is None
    assert denied_by(policy, "s3:PutObject", f"arn:aws:s3:::{BUCKET}/certifications/c1/x") is None
    assert denied_by(_deny(BUCKET, RUN_PREFIX, action=["s3:Get*", "s3:Put*"]), "s3:PutObject", arn)
    assert denied_by({"Statement": [{"Effect": "Deny", "Principal": "*", "NotAction": "s3:GetObject",
                                     "Resource": "*"}]}, "s3:PutObject", arn) == "0"
    assert denied_by({"Statement": {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "s3:*",
                                    "NotResource": f"arn:aws:s3:::{BUCKET}/certifications/*"}},
                     "s3:PutObject", arn) == "0"
    named = json.loads(json.dumps(policy))
    named["Statement"][0]["Principal"] = {"AWS": "arn:aws:iam::123456789012:role/other"}
    assert denied_by(named, "s3:PutObject", arn) is None  # a named principal is not evaluated: not applied
    allowed = json.loads(json.dumps(policy))
    allowed["Statement"][0]["Effect"] = "Allow"
    assert denied_by(allowed, "s3:PutObject", arn) is None
