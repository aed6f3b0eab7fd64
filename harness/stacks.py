"""The two Terraform stacks of the plan: durable `core` and run-scoped `demo`, fed from handles."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from harness.aws.session import EMULATOR_CREDENTIALS
from harness.errors import ConfigError
from harness.terraform import Stack

if TYPE_CHECKING:
    from harness.session import Certification

STACKS = ("core", "demo")

# dev_min takes its secrets from the operator's environment; they never touch a file.
_DEV_MIN_SECRETS = {
    "confluent_bootstrap": "CONFLUENT_BOOTSTRAP",
    "confluent_api_key": "CONFLUENT_API_KEY",
    "confluent_api_secret": "CONFLUENT_API_SECRET",
    "ig_api_key": "SPINE_IG_API_KEY",
    "db_dsn": "SPINE_DB_DSN",
}


def _value(cert: Certification, name: str) -> str:
    if cert.options.profile == "embedded":
        if name == "confluent_bootstrap":
            return cert.broker_endpoint()
        if name == "db_dsn":
            return cert.database_dsn()
        return cert.generated(name)
    env = _DEV_MIN_SECRETS[name]
    value = os.environ.get(env)
    if not value:
        raise ConfigError(f"the dev_min profile needs ${env} (the value for SSM {name}); export it and rerun")
    return value


def check_dev_min_environment() -> None:
    """dev_min values come from the environment: all must be there before anything is applied."""
    missing = [env for env in _DEV_MIN_SECRETS.values() if not os.environ.get(env)]
    if missing:
        raise ConfigError(f"the dev_min profile needs {', '.join('$' + m for m in missing)} "
                          "(the values Terraform writes to SSM); export them and rerun")


def core_variables(cert: Certification) -> tuple[dict[str, Any], dict[str, str]]:
    h = cert.handles
    plain = {
        "region": h.region,
        "aws_endpoint": cert.aws_session.endpoint_url or "",
        "tags": h.tags,
        "buckets": {
            role: {"name": b.name, "versioning": b.versioning, "encryption": b.encryption,
                   "public_access_block": b.public_access_block}
            for role, b in h.buckets.items()
        },
        "dynamodb_tables": {role: {"name": t.name, "hash_key": t.hash_key} for role, t in h.tables.items()},
        "ecr_repository": h.ecr_repository,
        "ecr_tag_mutability": h.ecr_tag_mutability,
        "confluent_ssm": {
            "bootstrap_path": h.ssm["confluent_bootstrap"],
            "api_key_path": h.ssm["confluent_api_key"],
            "api_secret_path": h.ssm["confluent_api_secret"],
        },
        "confluent_bootstrap": _value(cert, "confluent_bootstrap"),
        "budget": dict(h.budget),
    }
    secret = {name: _value(cert, name) for name in ("confluent_api_key", "confluent_api_secret")}
    return plain, secret


def demo_variables(cert: Certification) -> tuple[dict[str, Any], dict[str, str]]:
    h = cert.handles
    plain = {
        "region": h.region,
        "aws_endpoint": cert.aws_session.endpoint_url or "",
        "tags": {**h.tags, "cert_id": cert.cert_id},
        "name_prefix": h.name_prefix,
        "vpc_cidr": h.vpc_cidr,
        "ecs_cluster": h.ecs_cluster,
        "task_families": h.task_families,
        "services": h.services,
        # The packaging phase pins the real image tag; until then tasks name the repository.
        "image": f"{h.ecr_repository}:bootstrap",
        "log_group_prefix": h.log_group_prefix,
        "demo_ssm": {"ig_api_key_path": h.ssm["ig_api_key"], "db_dsn_path": h.ssm["db_dsn"]},
    }
    secret = {name: _value(cert, name) for name in ("ig_api_key", "db_dsn")}
    return plain, secret


def build(cert: Certification, name: str) -> Stack:
    if name not in STACKS:
        raise ConfigError(f"unknown stack {name!r}; stacks are {list(STACKS)}")
    plain, secret = core_variables(cert) if name == "core" else demo_variables(cert)
    aws_env = {}
    if cert.aws_session.endpoint_url:
        aws_env = {
            "AWS_ACCESS_KEY_ID": EMULATOR_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": EMULATOR_CREDENTIALS["aws_secret_access_key"],
            "AWS_DEFAULT_REGION": cert.handles.region,
        }
    root = cert.options.project_root
    return Stack(
        name=name,
        module_dir=root / "infra" / "terraform" / name,
        workdir=cert.workdir / "terraform",
        project_root=root,
        variables=plain,
        secret_variables=secret,
        aws_env=aws_env,
    )
