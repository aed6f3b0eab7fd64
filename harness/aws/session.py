"""One AWS session per certification: real AWS, or an emulator endpoint (moto)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from harness.errors import NotFound, PreconditionFailed, SubstrateError

_NOT_FOUND = {
    "NoSuchBucket", "NoSuchKey", "404", "NotFound", "ParameterNotFound",
    "ResourceNotFoundException", "ClusterNotFoundException", "RepositoryNotFoundException",
    "NoSuchEntity", "InvalidVpcID.NotFound", "NotFoundException", "NoSuchPublicAccessBlockConfiguration",
    "ServerSideEncryptionConfigurationNotFoundError", "ImageNotFoundException", "NoSuchBucketPolicy",
}  # fmt: skip
_PRECONDITION = {"PreconditionFailed", "412", "ConditionalRequestConflict", "ConditionalCheckFailedException"}

# Credentials the emulator accepts; real AWS uses the default credential chain.
EMULATOR_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@contextlib.contextmanager
def converted(operation: str) -> Iterator[None]:
    """Turn botocore errors into the harness's error tree at the module edge."""
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        err = exc.response.get("Error", {})
        code = str(err.get("Code", "Unknown"))
        message = str(err.get("Message", exc))
        if code in _NOT_FOUND:
            raise NotFound(code, message, operation=operation) from exc
        if code in _PRECONDITION:
            raise PreconditionFailed(code, message, operation=operation) from exc
        raise SubstrateError(code, message, operation=operation) from exc
    except botocore.exceptions.EndpointConnectionError as exc:
        raise SubstrateError("Unreachable", str(exc), operation=operation) from exc
    except botocore.exceptions.NoCredentialsError as exc:
        raise SubstrateError(
            "NoCredentials",
            "no AWS credentials found; export AWS_PROFILE or AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY for the dev_min account",
            operation=operation,
        ) from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise SubstrateError(type(exc).__name__, str(exc), operation=operation) from exc


class AwsSession:
    """Clients for one region and (optionally) one emulator endpoint."""

    def __init__(self, *, region: str, endpoint_url: str | None = None) -> None:
        self.region = region
        self.endpoint_url = endpoint_url
        creds = EMULATOR_CREDENTIALS if endpoint_url else {}
        self._session = boto3.session.Session(region_name=region, **creds)
        self._clients: dict[str, Any] = {}
        self._config = botocore.config.Config(
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
            s3={"addressing_style": "path"} if endpoint_url else {},
        )

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._session.client(
                service, endpoint_url=self.endpoint_url, config=self._config
            )
        return self._clients[service]

    def account_id(self) -> str:
        with converted("sts.get_caller_identity"):
            return str(self.client("sts").get_caller_identity()["Account"])

    def to_json(self) -> dict[str, Any]:
        return {"region": self.region, "endpoint_url": self.endpoint_url}


def probe(endpoint_url: str, *, region: str = "us-east-1") -> str:
    """A real API call against an AWS endpoint; returns the account id it answers with."""
    return AwsSession(region=region, endpoint_url=endpoint_url).account_id()
