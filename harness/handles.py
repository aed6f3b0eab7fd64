"""Profiles and the handles registry: every pinned name, validated before anything runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from harness import canonical
from harness.errors import ConfigError

PROFILES = ("embedded", "dev_min")
MODES = (
    "oracle-seed", "oracle-sort", "oracle-check", "sr", "wsp",
    "ig", "rtdl", "decision-lane", "case-labels", "reporter",
)  # fmt: skip
BUCKET_ROLES = ("oracle_source", "oracle", "evidence", "archive", "quarantine")
TABLE_ROLES = ("tf_lock", "ig_dedupe", "sr_lease", "reporter_lock")
TOPIC_ROLES = ("control", "traffic", "rtdl", "decision", "case", "audit")
SSM_ROLES = ("confluent_bootstrap", "confluent_api_key", "confluent_api_secret", "ig_api_key", "db_dsn")
SECURE_SSM_ROLES = ("confluent_api_key", "confluent_api_secret", "ig_api_key", "db_dsn")
DEMO_SSM_ROLES = ("ig_api_key", "db_dsn")

# The schema: a dict is a record with exactly these keys; ("map", T) is name -> T;
# a tuple of types is the accepted scalar types.
_STR = (str,)
_INT = (int,)
_NUM = (int, float)
_BOOL = (bool,)
_BUCKET = {"name": _STR, "versioning": _BOOL, "encryption": _STR, "public_access_block": _BOOL}
_TABLE = {"name": _STR, "hash_key": _STR}
SCHEMA: dict[str, Any] = {
    "profile": _STR,
    "region": _STR,
    "name_prefix": _STR,
    "tags": ("map", _STR),
    "s3": {
        "buckets": {role: _BUCKET for role in BUCKET_ROLES},
        "oracle_root": _STR,
        "evidence_prefix": _STR,
    },
    "ssm": {role: _STR for role in SSM_ROLES},
    "kafka": {"replication_factor": _INT, "topics": ("map", _INT), "roles": {role: _STR for role in TOPIC_ROLES}},
    "ecs": {
        "cluster": _STR,
        "task_families": {mode: _STR for mode in MODES},
        "services": ("map", _STR),
    },
    "dynamodb": {"tables": {role: _TABLE for role in TABLE_ROLES}},
    "ecr": {"repository": _STR, "tag_mutability": _STR},
    "network": {"vpc_cidr": _STR},
    "logs": {"group_prefix": _STR},
    "database": {"name": _STR, "user": _STR},
    "thresholds": {"rtdl_caught_up_lag_max": _INT},
    "budget": {
        "name": _STR,
        "limit_usd": _NUM,
        "alert_threshold_percent": _NUM,
        "alert_email": _STR,
    },
}


@dataclass(frozen=True)
class Bucket:
    role: str
    name: str
    versioning: bool
    encryption: str
    public_access_block: bool


@dataclass(frozen=True)
class Table:
    role: str
    name: str
    hash_key: str


@dataclass(frozen=True)
class Handles:
    """The validated registry of one profile. Built only by :func:`load`."""

    source: str
    profile: str
    region: str
    name_prefix: str
    tags: dict[str, str]
    buckets: dict[str, Bucket]
    oracle_root: str
    evidence_prefix: str
    ssm: dict[str, str]
    topics: dict[str, int]
    topic_roles: dict[str, str]
    replication_factor: int
    ecs_cluster: str
    task_families: dict[str, str]
    services: dict[str, str]
    tables: dict[str, Table]
    ecr_repository: str
    ecr_tag_mutability: str
    vpc_cidr: str
    log_group_prefix: str
    database: dict[str, str]
    thresholds: dict[str, int]
    budget: dict[str, Any]

    def bucket(self, role: str) -> Bucket:
        return self.buckets[role]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def digest(self) -> str:
        """sha256 of the canonical registry (without the file it came from)."""
        record = self.to_json()
        record.pop("source")
        return canonical.digest_of(record)


def _type_name(types: tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in types)


def _check(node: Any, spec: Any, key: str, errors: list[str]) -> None:
    if isinstance(spec, dict):
        if not isinstance(node, dict):
            errors.append(f"{key}: expected a mapping with keys {sorted(spec)}, got {node!r}")
            return
        for name in node:
            if name not in spec:
                errors.append(
                    f"{key}.{name}: unknown key; remove it or use one of {sorted(spec)}"
                )
        for name, sub in spec.items():
            if name not in node:
                errors.append(f"{key}.{name}: missing handle; add it (see infra/handles/*.yaml)")
            else:
                _check(node[name], sub, f"{key}.{name}", errors)
    elif isinstance(spec, tuple) and spec and spec[0] == "map":
        if not isinstance(node, dict) or not node:
            errors.append(f"{key}: expected a non-empty mapping of name -> value, got {node!r}")
            return
        for name, value in node.items():
            _check(value, spec[1], f"{key}.{name}", errors)
    else:
        ok = isinstance(node, spec) and not (isinstance(node, bool) and bool not in spec)
        if not ok:
            errors.append(
                f"{key}: expected {_type_name(spec)}, got {type(node).__name__} {node!r}"
            )
        elif isinstance(node, str) and not node.strip():
            errors.append(f"{key}: must not be empty")


def _check_semantics(raw: dict[str, Any], errors: list[str]) -> None:
    if raw["profile"] not in PROFILES:
        errors.append(f"profile: {raw['profile']!r} is not one of {list(PROFILES)}")
    for role, path in raw["ssm"].items():
        if not path.startswith("/"):
            errors.append(f"ssm.{role}: SSM path {path!r} must start with '/'")
    for topic, partitions in raw["kafka"]["topics"].items():
        if partitions < 1:
            errors.append(f"kafka.topics.{topic}: partitions must be >= 1, got {partitions}")
    for role, topic in raw["kafka"]["roles"].items():
        if topic not in raw["kafka"]["topics"]:
            errors.append(f"kafka.roles.{role}: {topic!r} is not one of kafka.topics")
    if raw["kafka"]["replication_factor"] < 1:
        errors.append("kafka.replication_factor: must be >= 1")
    for mode in raw["ecs"]["services"]:
        if mode not in MODES:
            errors.append(f"ecs.services.{mode}: not an entrypoint mode; use one of {list(MODES)}")
    if raw["ecr"]["tag_mutability"] not in ("IMMUTABLE", "MUTABLE"):
        errors.append("ecr.tag_mutability: must be IMMUTABLE or MUTABLE")
    if not raw["s3"]["oracle_root"].endswith("/"):
        errors.append("s3.oracle_root: a prefix must end with '/'")
    if not raw["s3"]["evidence_prefix"].endswith("/"):
        errors.append("s3.evidence_prefix: a prefix must end with '/'")


def load(path: str | Path, *, profile: str | None = None) -> Handles:
    """Load and validate a handles file; every problem is reported at once."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: handles file not found; pass --handles PATH to an existing file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}); fix the syntax") from exc
    errors: list[str] = []
    _check(raw, SCHEMA, "<root>", errors)
    if not errors:
        _check_semantics(raw, errors)
    if not errors and profile is not None and raw["profile"] != profile:
        errors.append(
            f"profile: the file is for {raw['profile']!r} but --profile is {profile!r}; "
            f"pass --handles infra/handles/{profile}.yaml"
        )
    if errors:
        listing = "\n".join(f"  {path}: {e.replace('<root>.', '')}" for e in errors)
        raise ConfigError(f"invalid handles file {path} ({len(errors)} problem(s)):\n{listing}")
    s3, ecs = raw["s3"], raw["ecs"]
    return Handles(
        source=str(path),
        profile=raw["profile"],
        region=raw["region"],
        name_prefix=raw["name_prefix"],
        tags=dict(raw["tags"]),
        buckets={role: Bucket(role=role, **spec) for role, spec in s3["buckets"].items()},
        oracle_root=s3["oracle_root"],
        evidence_prefix=s3["evidence_prefix"],
        ssm=dict(raw["ssm"]),
        topics=dict(raw["kafka"]["topics"]),
        topic_roles=dict(raw["kafka"]["roles"]),
        replication_factor=raw["kafka"]["replication_factor"],
        ecs_cluster=ecs["cluster"],
        task_families=dict(ecs["task_families"]),
        services=dict(ecs["services"]),
        tables={role: Table(role=role, **spec) for role, spec in raw["dynamodb"]["tables"].items()},
        ecr_repository=raw["ecr"]["repository"],
        ecr_tag_mutability=raw["ecr"]["tag_mutability"],
        vpc_cidr=raw["network"]["vpc_cidr"],
        log_group_prefix=raw["logs"]["group_prefix"],
        database=dict(raw["database"]),
        thresholds=dict(raw["thresholds"]),
        budget=dict(raw["budget"]),
    )


def default_path(profile: str, root: Path) -> Path:
    return root / "infra" / "handles" / f"{profile}.yaml"
