"""One certification: profile, handles, substrate, stacks, evidence bundle and gate ledger."""

from __future__ import annotations

import atexit
import contextlib
import logging
import secrets
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from harness import canonical, certificate, mirror, progress, redact
from harness import handles as handles_mod
from harness import ledger as ledger_mod
from harness.aws import AwsSession, s3, ssm
from harness.errors import ConfigError, EvidenceError, HarnessError, SubstrateError
from harness.evidence import Bundle, MirrorTarget
from harness.handles import Handles
from harness.kafka import KafkaConnection
from harness.ledger import Ledger, PhaseRecord, Rung
from harness.substrate import (
    ExternalAws,
    ExternalKafka,
    MotoServer,
    Part,
    PostgresCluster,
    Substrate,
    TansuBroker,
    pid_alive,
)  # fmt: skip
from harness.terraform import Stack

if TYPE_CHECKING:
    from harness.compute import Compute, JobResult
    from harness.packaging import Artifact

log = logging.getLogger(__name__)
T = TypeVar("T")
_CERTIFICATION_WIDE = ("pm1.", "p0.", "p12.")  # memo keys shared by every rung and drill


def new_cert_id() -> str:
    return f"cert-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Options:
    project_root: Path
    profile: str = "embedded"
    handles_path: Path | None = None
    kafka_bootstrap: str | None = None
    aws_endpoint: str | None = None
    reports_dir: Path | None = None
    cert_id: str | None = None
    events: int | None = None  # one run of this many events instead of the ladder
    ladder: tuple[int, ...] = (20, 200)  # one run per size, then a rerun of the last
    seed: int = 42
    drill_events: int = 20

    def __post_init__(self) -> None:
        if self.events is not None and self.events < 1:
            raise ConfigError(f"--events {self.events} must be >= 1")
        self.rungs  # noqa: B018  (validates --ladder)
        if self.profile not in handles_mod.PROFILES:
            raise ConfigError(f"--profile {self.profile!r} is not one of {list(handles_mod.PROFILES)}")
        if self.kafka_bootstrap is not None and ":" not in self.kafka_bootstrap:
            raise ConfigError(f"--kafka-bootstrap {self.kafka_bootstrap!r} must be HOST:PORT")
        if self.aws_endpoint is not None and not self.aws_endpoint.startswith(("http://", "https://")):
            raise ConfigError(f"--aws-endpoint {self.aws_endpoint!r} must be an http(s) URL")


    @property
    def rungs(self) -> tuple[Rung, ...]:
        """``--events N``: one run (``run-N``); otherwise the ladder's runs and a rerun of the last."""
        if self.events is not None:
            return ledger_mod.ladder([self.events], rerun=False)
        return ledger_mod.ladder(self.ladder)


def build_substrate(options: Options, handles: Handles, workdir: Path, *, detached: bool = False) -> Substrate:
    """The parts of one profile. dev_min owns no local part: AWS and Kafka are real."""
    if options.profile == "dev_min":
        return Substrate([])
    parts: list[Part] = []
    if options.aws_endpoint:
        parts.append(ExternalAws(workdir=workdir, endpoint_url=options.aws_endpoint))
    else:
        parts.append(MotoServer(workdir=workdir, detached=detached))
    if options.kafka_bootstrap:
        parts.append(ExternalKafka(workdir=workdir, bootstrap=options.kafka_bootstrap))
    else:
        parts.append(TansuBroker(workdir=workdir, detached=detached))
    parts.append(PostgresCluster(workdir=workdir, database=handles.database["name"], user=handles.database["user"]))
    return Substrate(parts)


def preflight(options: Options) -> None:
    """Everything that can be checked before a substrate starts; each problem is one HarnessError."""
    from harness.terraform import terraform_binary

    root = options.project_root
    handles_mod.load(options.handles_path or handles_mod.default_path(options.profile, root), profile=options.profile)
    terraform_binary()
    if options.cert_id:
        bundle = (options.reports_dir or root / "reports") / "certifications" / options.cert_id
        if bundle.exists() and any(bundle.iterdir()):
            raise EvidenceError(f"evidence bundle {bundle} already exists; evidence is write-once: "
                                "certify under a new --cert-id (the default is unique)")
    if options.profile == "dev_min":
        from harness.stacks import check_dev_min_environment

        check_dev_min_environment()


@dataclass
class _Memo:
    value: Any = None
    error: BaseException | None = None


@dataclass
class Certification:
    options: Options
    implemented: set[str]
    cert_id: str = ""
    handles: Handles = field(init=False)
    bundle: Bundle = field(init=False)
    ledger: Ledger = field(init=False)
    substrate: Substrate = field(init=False)
    aws: AwsSession | None = None
    current_phase: str | None = None  # the unit being judged (P7, D3): finding ids name it
    current_gate: str | None = None  # its gate in the ledger (P7 @ run-200)
    scope: str | None = None  # the rung or drill whose run the current gate works on
    artifact: Artifact | None = None
    compute: Compute | None = None
    _memo: dict[str, _Memo] = field(default_factory=dict)
    _scope_end: list[Callable[[], None]] = field(default_factory=list)
    _mirrored: set[str] = field(default_factory=set)
    _stacks: dict[str, Stack] = field(default_factory=dict)
    _generated: dict[str, str] = field(default_factory=dict)
    _closed: bool = False
    _jobs: int = 0

    def __post_init__(self) -> None:
        # Everything that can be validated is validated before anything starts.
        root = self.options.project_root
        handles_path = self.options.handles_path or handles_mod.default_path(self.options.profile, root)
        self.handles = handles_mod.load(handles_path, profile=self.options.profile)
        self.cert_id = self.options.cert_id or new_cert_id()
        reports = self.options.reports_dir or root / "reports"
        self.workdir = root / ".spine-certify" / "work" / self.cert_id
        self.bundle = Bundle(reports / "certifications" / self.cert_id, cert_id=self.cert_id)
        self.ledger = Ledger(self.implemented, rungs=self.options.rungs)
        if self.options.profile == "dev_min":
            from harness.stacks import check_dev_min_environment

            check_dev_min_environment()
        self.substrate = build_substrate(self.options, self.handles, self.workdir)
        self.started = time.time()

    # -- lifecycle -------------------------------------------------------------------------
    def open(self) -> None:
        atexit.register(self._atexit)
        redact.install_log_scrubbing()
        with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
            signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
        progress.say(f"certification {self.cert_id} (profile {self.options.profile}, handles {self.handles.source})")
        self.substrate.start()
        endpoint = self._aws_endpoint()
        self.aws = AwsSession(region=self.handles.region, endpoint_url=endpoint)
        target = self.mirror_target()
        if target is not None and s3.list_keys(self.aws, bucket=target.bucket, prefix=target.prefix):
            raise EvidenceError(
                f"s3://{target.bucket}/{target.prefix} already holds evidence of {self.cert_id}; evidence is "
                "write-once: certify under a new --cert-id (the default is unique)"
            )
        if self.options.profile == "embedded":
            for name in ("confluent_api_key", "confluent_api_secret", "ig_api_key"):
                self._generated[name] = secrets.token_urlsafe(32)
                redact.register(self._generated[name])

    def _aws_endpoint(self) -> str | None:
        for part in self.substrate.parts:
            if isinstance(part, (MotoServer, ExternalAws)):
                return part.endpoint
        return None

    def _atexit(self) -> None:
        if not self._closed:
            self.substrate.stop()

    def close(self, *, interrupted: bool = False) -> list[str]:
        """Seal the bundle, mirror it, stop the substrate. Returns problems (never raises early)."""
        if self._closed:
            return []
        self._closed = True
        problems: list[str] = []
        self.ledger.close_all(interrupted=interrupted)
        self.end_scope()
        if self.compute is not None:  # daemons and watched jobs never outlive the certification
            problems += [f"stop platform process {p}" for p in self.compute.stop_all()]
        try:
            self._write_closing_evidence()
            target = self.mirror_target()
            self.bundle.seal(mirror=target)
            if target is not None:
                problems += self._mirror(final=True)
            else:
                problems.append("evidence mirror skipped: the evidence bucket does not exist")
        except HarnessError as exc:
            problems.append(str(exc))
        finally:
            problems += [f"stop {p}" for p in self.substrate.stop()]
            platform_pids = [p.pid for p in self.compute.started] if self.compute is not None else []
            leftovers = [pid for pid in [*self.substrate.started_pids, *platform_pids] if pid_alive(pid)]
            if leftovers:
                problems.append(f"substrate processes still running: {leftovers}")
            self._forget_state()
        return problems

    def _forget_state(self) -> None:
        """Embedded Terraform state holds the run's generated secrets and dies with the emulator."""
        if self.options.profile == "embedded":
            for state in (self.workdir / "terraform").glob("*/terraform.tfstate*"):
                state.unlink()

    def _write_closing_evidence(self) -> None:
        self.bundle.write_json("substrate/substrate.json", {
            "profile": self.options.profile,
            "cert_id": self.cert_id,
            "handles": {"source": self.handles.source, "digest": self.handles.digest},
            **self.substrate.to_json(),
        })  # fmt: skip
        for part in self.substrate.parts:
            if part.log_path is not None and part.log_path.exists():
                self.bundle.copy_file(f"substrate/logs/{part.name}.log", part.log_path)
        for started in self.compute.started if self.compute is not None else []:
            if started.service:  # a daemon's whole output, secrets masked
                self.bundle.write_bytes(f"platform/{started.log_path.name}", started.output().encode("utf-8"))
        for stack in self._stacks.values():
            if stack.log_path.exists():
                self.bundle.copy_file(f"substrate/logs/{stack.log_path.name}", stack.log_path)
        gates = self.gates()
        self.bundle.write_json("gates.json", gates)
        self.bundle.write_json(certificate.CERTIFICATE, certificate.build(self.bundle.root, gates))

    def gates(self) -> dict[str, Any]:
        return {
            "cert_id": self.cert_id,
            "profile": self.options.profile,
            "claim": f"{self.options.profile} profile only" + (
                " (local compute and emulated AWS; this is not a dev_min certificate)"
                if self.options.profile == "embedded" else ""
            ),
            "started_at": datetime.fromtimestamp(self.started, UTC).isoformat(),
            "ended_at": datetime.now(UTC).isoformat(),
            **self.ledger.to_json(),
        }

    # -- evidence --------------------------------------------------------------------------
    def evidence(self, relpath: str, record: Any) -> Path:
        """Write one evidence record for the current phase (canonical JSON, write-once, scrubbed)."""
        return self.evidence_bytes(relpath, canonical.dumps(record))

    def evidence_bytes(self, relpath: str, data: bytes) -> Path:
        """Write one evidence file as it is (write-once, scrubbed) and book it to the current phase."""
        path = self.bundle.write_bytes(relpath, data)
        if self.current_gate:
            self.ledger.add_evidence(self.current_gate, relpath)
        return path

    def waive(self, check: str, reason: str) -> None:
        """A check this substrate cannot judge: WAIVED with its reason, visibly, never PASSED."""
        if self.current_gate:
            self.ledger[self.current_gate].waived[check] = reason
        progress.say(f"WAIVED {check}: {reason}")

    def job_log(self, platform_run_id: str, result: JobResult) -> Path:
        """A job's whole stdout and stderr, in the bundle beside the run's other evidence."""
        self._jobs += 1
        rel = f"runs/{platform_run_id}/compute/{self._jobs:03d}-{result.mode}.log"
        text = (f"$ {' '.join(result.argv)}\n# exit {result.exit_code} in {result.duration_s}s"
                f" (task {result.task_arn})\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}\n")
        return self.evidence_bytes(rel, text.encode("utf-8"))

    def mirror_target(self) -> MirrorTarget | None:
        if self.aws is None:
            return None  # the substrate never started
        bucket = self.handles.bucket("evidence").name
        try:
            if not s3.exists(self.aws, bucket=bucket):
                return None
        except SubstrateError:
            return None
        return MirrorTarget(bucket=bucket, prefix=f"{self.handles.evidence_prefix}{self.cert_id}/",
                            region=self.handles.region, endpoint_url=self.aws.endpoint_url)

    def _mirror(self, *, final: bool = False) -> list[str]:
        target = self.mirror_target()
        if target is None:
            return []
        pending = [p for p in self.bundle.written if p not in self._mirrored]
        try:
            mirror.put_files(self.aws_session, target, self.bundle.root, pending, done=self._mirrored)
        except (EvidenceError, SubstrateError) as exc:
            return [str(exc)]
        if final:
            progress.say(f"evidence mirrored write-once to s3://{target.bucket}/{target.prefix} "
                         f"({len(self._mirrored)} objects)")
        return []

    @property
    def mirrored(self) -> frozenset[str]:
        """Bundle files already mirrored to the evidence bucket."""
        return frozenset(self._mirrored)

    def mirror_pending(self) -> None:
        """Mirror files written so far (after each scenario, once the evidence bucket exists)."""
        problems = self._mirror()
        if problems:
            raise EvidenceError("; ".join(problems))

    # -- substrate access ------------------------------------------------------------------
    @property
    def aws_session(self) -> AwsSession:
        if self.aws is None:
            raise HarnessError("the certification is not open: the substrate was never started")
        return self.aws

    def kafka(self) -> KafkaConnection:
        """The Kafka connection the platform is told about: the pinned SSM surfaces."""
        bootstrap = ssm.get(self.aws_session, self.handles.ssm["confluent_bootstrap"]).value
        if self.options.profile == "embedded":
            return KafkaConnection(bootstrap=bootstrap, fast_groups=True)
        key = ssm.get(self.aws_session, self.handles.ssm["confluent_api_key"]).value
        secret = ssm.get(self.aws_session, self.handles.ssm["confluent_api_secret"]).value
        return KafkaConnection(bootstrap=bootstrap, security_protocol="SASL_SSL", api_key=key, api_secret=secret)

    def broker_endpoint(self) -> str:
        for part in self.substrate.parts:
            if isinstance(part, (TansuBroker, ExternalKafka)):
                return part.endpoint
        raise HarnessError("no local broker in this profile")

    def database_dsn(self) -> str:
        """The platform role's DSN (what the demo stack puts in SSM)."""
        return self._postgres().dsn

    def database_owner_dsn(self) -> str | None:
        """The owner's DSN, for applying the schema; None where the harness does not own the database."""
        for part in self.substrate.parts:
            if isinstance(part, PostgresCluster):
                return part.owner_dsn
        return None

    def _postgres(self) -> PostgresCluster:
        for part in self.substrate.parts:
            if isinstance(part, PostgresCluster):
                return part
        raise HarnessError("no local database in this profile")

    @property
    def compute_provider(self) -> Compute:
        if self.compute is None:
            raise HarnessError("no platform artifact: P(-1) packaging did not produce one in this certification")
        return self.compute

    @property
    def artifact_digest(self) -> str:
        if self.artifact is None:
            raise HarnessError("no platform artifact: P(-1) packaging did not produce one in this certification")
        return self.artifact.digest

    def generated(self, name: str) -> str:
        return self._generated[name]

    def stack(self, name: str) -> Stack:
        if name not in self._stacks:
            from harness import stacks

            self._stacks[name] = stacks.build(self, name)
        return self._stacks[name]

    # -- gates and scopes -----------------------------------------------------------------
    def begin(self, record: PhaseRecord) -> None:
        """The gate about to run: a rung or drill scope that ends runs its clean-ups (its daemons stop)."""
        scope = record.rung or (record.phase_id if record.kind == "drill" else None)
        if scope != self.scope:
            self.end_scope()
        self.current_phase, self.current_gate, self.scope = record.phase_id, record.gate, scope

    def end_scope(self) -> None:
        """Run the current scope's clean-ups, last registered first; a failing one is logged, not raised."""
        while self._scope_end:
            action = self._scope_end.pop()
            try:
                action()
            except Exception as exc:  # a clean-up that fails must not hide the next gate's verdict
                log.warning("clean-up of %s failed: %s", self.scope, exc)
                progress.say(f"clean-up of {self.scope} failed: {exc}")

    def at_scope_end(self, action: Callable[[], None]) -> None:
        """Run ``action`` when the current rung or drill ends (or when the certification closes)."""
        self._scope_end.append(action)

    @contextlib.contextmanager
    def in_scope(self, scope: str | None) -> Iterator[None]:
        """Look at another rung's memoised results (its pins, its observations) without ending this one."""
        saved, self.scope = self.scope, scope
        try:
            yield
        finally:
            self.scope = saved

    def rung(self, rung_id: str | None = None) -> Rung | None:
        wanted = rung_id or self.scope
        return next((r for r in self.options.rungs if r.id == wanted), None)

    @property
    def events(self) -> int:
        """Events in the current run: its rung's size; a drill's run uses ``drill_events``."""
        rung = self.rung()
        return rung.events if rung is not None else self.options.drill_events

    @property
    def run_slug(self) -> str | None:
        """What the current rung or drill adds to a platform run id (n20, n200-rerun, d3)."""
        rung = self.rung()
        if rung is not None:
            return rung.slug
        return self.scope.lower() if self.scope else None

    def _key(self, key: str) -> str:
        return key if self.scope is None or key.startswith(_CERTIFICATION_WIDE) else f"{self.scope}/{key}"

    def once(self, key: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` once per rung or drill (per certification for P(-1), P0 and P12 keys);
        later calls get its value or its error again."""
        key = self._key(key)
        memo = self._memo.get(key)
        if memo is None:
            memo = self._memo[key] = _Memo()
            try:
                memo.value = fn()
            except BaseException as exc:
                memo.error = exc
        if memo.error is not None:
            raise memo.error
        return memo.value

    def peek(self, key: str) -> Any:
        """The value ``once(key, ...)`` produced, or None when it has not run or failed."""
        memo = self._memo.get(self._key(key))
        return None if memo is None or memo.error is not None else memo.value

    def env_facts(self) -> dict[str, str]:
        facts = {"profile": self.options.profile, "cert_id": self.cert_id, "handles": self.handles.source}
        for part in self.substrate.parts:
            facts[f"substrate.{part.name}"] = part.version()
        return facts


def _sigterm_to_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
