"""A pytest plugin that injects faults into a certification run (loaded with `-p faults`).

- plants a NAT gateway in the demo VPC before P0's network check;
- overwrites a pinned SecureString with a known secret (behind the harness's back, with
  raw boto3) before handle resolution, then prints and logs that secret from inside the
  run, so the test can prove it is masked everywhere the run writes.
Facts for the test go to $SPINE_FAULTS_OUT.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import boto3

from harness.aws import ec2
from harness.phases import p00

OUT = Path(os.environ["SPINE_FAULTS_OUT"])
SECRET = os.environ["SPINE_FAULTS_SECRET"]


def _record(**facts: Any) -> None:
    current = json.loads(OUT.read_text()) if OUT.exists() else {}
    current.update(facts)
    OUT.write_text(json.dumps(current))


def pytest_bdd_before_scenario(request: Any, feature: Any, scenario: Any) -> None:
    if scenario.name.startswith("Every pinned handle resolves"):
        cert = request.getfixturevalue("cert")
        p00.ensure_applied(cert)
        raw = boto3.client("ssm", region_name=cert.handles.region, endpoint_url=cert.aws_session.endpoint_url,
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        raw.put_parameter(Name=cert.handles.ssm["confluent_api_secret"], Value=SECRET,
                          Type="SecureString", Overwrite=True)
        _record(pids=cert.substrate.pids(), cert_id=cert.cert_id)
    if scenario.name == "No NAT gateway in the project's VPCs":
        cert = request.getfixturevalue("cert")
        vpc = p00.ensure_applied(cert)["stacks"]["demo"]["outputs"]["vpc_id"]
        _record(nat_gateway=ec2.create_nat_gateway(cert.aws_session, vpc_id=vpc), vpc_id=vpc)
        print(f"planted secret in captured stdout: {SECRET}")
        logging.getLogger("harness.faults").warning("planted secret in a log record: %s", SECRET)
