"""The pytest plugin behind `pytest features/`: options, the session, gates, evidence, Allure."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import allure
import pytest

from harness import ledger as ledger_mod
from harness import progress, redact, report
from harness.errors import HarnessError, PhaseBlocked
from harness.ledger import ScenarioRecord
from harness.session import Certification, Options, preflight

_TAG = re.compile(r"@(?:phase|drill):(\S+)")
_RUNG = "spine_rung"  # the parameter that makes P1..P11 one test per rung of the ladder
_SCENARIO = pytest.StashKey[str]()
_STEPS = pytest.StashKey[list[Any]]()
_EVIDENCE_MARK = pytest.StashKey[int]()  # how many bundle files existed when a scenario began


@dataclass
class _State:
    config: pytest.Config
    cert: Certification | None = None
    interrupted: bool = False
    gates: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    entering: tuple[str, str] | None = None  # (phase, scenario) whose start asks for the certification


_STATE = pytest.StashKey[_State]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("spine-certify", "certification of an event-streaming platform")
    group.addoption("--profile", default="embedded", choices=["embedded", "dev_min"],
                    help="substrate profile to certify (default: embedded, started locally)")
    group.addoption("--handles", default=None, metavar="PATH",
                    help="handles registry (default: infra/handles/<profile>.yaml)")
    group.addoption("--kafka-bootstrap", default=None, metavar="HOST:PORT",
                    help="use an already-running Kafka broker instead of starting Tansu")
    group.addoption("--aws-endpoint", default=None, metavar="URL",
                    help="use an already-running AWS emulator instead of starting moto")
    group.addoption("--reports-dir", default=None, metavar="DIR",
                    help="where certifications/<cert_id>/ is written (default: reports/)")
    group.addoption("--cert-id", default=None, help="certification id (default: cert-<utc time>-<random>)")
    group.addoption("--events", type=int, default=None, metavar="N",
                    help="certify one run of N events instead of the ladder (no rerun, so no reproducibility)")
    group.addoption("--ladder", default="20,200", metavar="N,M,...", type=_sizes,
                    help="run sizes of the ladder, each a run of its own, then a rerun of the last "
                         "(default: 20,200)")
    group.addoption("--seed", type=int, default=42, help="data engine seed of the run (default: 42)")


def _sizes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise pytest.UsageError(f"--ladder {text!r}: give run sizes as N,M,... (e.g. 20,200)") from None


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_STATE] = _State(config=config)


def pytest_bdd_apply_tag(tag: str, function: Any) -> bool | None:
    if tag.startswith(("phase:", "drill:")):
        unit = tag.split(":", 1)[1]
        ledger_mod.order(unit)  # an unknown phase or drill id fails collection loudly
        pytest.mark.phase(unit)(function)
        return True
    return None


def phase_of(item: pytest.Item) -> str | None:
    """The unit a scenario judges: a phase (P7), the reproducibility check or a drill (D3)."""
    marker = item.get_closest_marker("phase")
    return str(marker.args[0]) if marker else None


def gate_of(item: pytest.Item) -> str | None:
    """The ledger gate of a scenario: ``P7 @ run-200`` for a phase judged once per rung."""
    unit = phase_of(item)
    if unit is None:
        return None
    callspec = getattr(item, "callspec", None)
    return ledger_mod.gate_id(unit, callspec.params.get(_RUNG) if callspec is not None else None)


def _rungs(config: pytest.Config) -> tuple[ledger_mod.Rung, ...]:
    try:
        return _options(config).rungs
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from exc


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """P1..P11 run once per rung: each scenario becomes one test per rung (``[run-20]``, ``[run-200]``)."""
    marker = metafunc.definition.get_closest_marker("phase")
    if marker is None or marker.args[0] not in ledger_mod.RUN_PHASES:
        return
    rungs = [r.id for r in _rungs(metafunc.config)]
    metafunc.fixturenames.append(_RUNG)
    metafunc.parametrize(_RUNG, rungs, ids=rungs)


def implemented_phases(features_dir: Path) -> set[str]:
    """Phases with a feature file, whether or not this run selected them."""
    found: set[str] = set()
    for path in features_dir.rglob("*.feature"):
        found.update(_TAG.findall(path.read_text(encoding="utf-8")))
    return found


def _options(config: pytest.Config) -> Options:
    def path(name: str) -> Path | None:
        value = config.getoption(name)
        return Path(value) if value else None

    return Options(
        project_root=config.rootpath,
        profile=config.getoption("profile"),
        handles_path=path("handles"),
        kafka_bootstrap=config.getoption("kafka_bootstrap"),
        aws_endpoint=config.getoption("aws_endpoint"),
        reports_dir=path("reports_dir"),
        cert_id=config.getoption("cert_id"),
        events=config.getoption("events"),
        ladder=config.getoption("ladder"),
        seed=config.getoption("seed"),
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Scenarios run in the ledger's gate order: P(-1), P0, each rung's P1..P11, the reproducibility
    check, the drills, and P12 last.

    Options and the handles file are validated here, before anything starts: a bad one
    stops the run with one message.
    """
    if not any(phase_of(item) for item in items):
        return
    try:
        preflight(_options(config))
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from exc
    gates = ledger_mod.catalog(_rungs(config))
    position = {ledger_mod.gate_id(unit, rung): i for i, (unit, _, rung) in enumerate(gates)}
    if not any(r.rerun_of for r in _rungs(config)):  # one run: nothing to compare, the gate stays NOT_RUN
        unjudgeable = [item for item in items if phase_of(item) == ledger_mod.REPRODUCIBILITY]
        if unjudgeable:
            config.hook.pytest_deselected(items=unjudgeable)
            items[:] = [item for item in items if item not in unjudgeable]
    indexed = list(enumerate(items))
    indexed.sort(key=lambda pair: (-1 if gate_of(pair[1]) is None else position[gate_of(pair[1]) or ""], pair[0]))
    items[:] = [item for _, item in indexed]


def _console_writer(config: pytest.Config) -> Callable[[str], None] | None:
    """Progress lines reach the terminal even while pytest captures the test's output."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capman = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return None

    def write(line: str) -> None:
        if capman is None:
            reporter.write_line(line)
            return
        with capman.global_and_fixture_disabled():
            reporter.write_line(line)

    return write


@pytest.fixture(scope="session")
def cert(request: pytest.FixtureRequest) -> Iterator[Certification]:
    """The certification: substrate up before the first scenario, sealed after the last."""
    config = request.config
    state = config.stash[_STATE]
    progress.set_writer(_console_writer(config))
    certification = Certification(_options(config), implemented=implemented_phases(config.rootpath / "features"))
    state.cert = certification
    try:
        try:
            certification.open()
        except Exception as exc:
            if state.entering is not None:  # the phase that was to start could not be judged
                _record_unstarted(certification, *state.entering, exc)
            if isinstance(exc, HarnessError):
                # Nothing can be certified without the substrate: stop after this one error.
                request.session.shouldstop = f"the substrate did not start: {exc}"
            raise
        yield certification
    finally:
        state.problems = certification.close(interrupted=state.interrupted)
        state.gates = certification.gates()
        progress.set_writer(None)
    if state.problems:
        raise HarnessError("closing the certification: " + "; ".join(state.problems))


def _record_unstarted(certification: Certification, gate: str, scenario: str, exc: Exception) -> None:
    """The certification did not open: the first gate is ERROR, recorded before the bundle is sealed."""
    certification.ledger.enter(gate)
    certification.ledger.record(gate, ScenarioRecord(name=scenario, outcome=ledger_mod.outcome_of(exc),
                                                      duration_s=0.0, message=_message(exc)))


def pytest_bdd_before_scenario(request: pytest.FixtureRequest, feature: Any, scenario: Any) -> None:
    gate = gate_of(request.node)
    request.node.stash[_SCENARIO] = scenario.name
    request.node.stash[_STEPS] = []
    if gate is None:
        allure.dynamic.title(scenario.name)
        return
    unit = phase_of(request.node) or gate
    allure.dynamic.title(f"{gate} · {scenario.name}")
    allure.dynamic.feature(feature.name)
    allure.dynamic.label("phase", unit)
    allure.dynamic.label("gate", gate)
    if " @ " in gate:
        allure.dynamic.parent_suite(gate.split(" @ ", 1)[1])
    state = request.config.stash[_STATE]
    state.entering = (gate, scenario.name)
    certification: Certification = request.getfixturevalue("cert")
    state.entering = None
    certification.begin(certification.ledger[gate])
    request.node.stash[_EVIDENCE_MARK] = len(certification.bundle.written)
    try:
        certification.ledger.enter(gate)
    except PhaseBlocked as exc:  # no step runs: the scenario's category is set here
        allure.dynamic.label("category", report.category_of(exc))
        raise


def pytest_bdd_after_scenario(request: pytest.FixtureRequest, feature: Any, scenario: Any) -> None:
    state = request.config.stash[_STATE]
    certification = state.cert
    if certification is None or _EVIDENCE_MARK not in request.node.stash:
        return
    report.close_scenario(certification, since=request.node.stash[_EVIDENCE_MARK])


def pytest_bdd_before_step(request: pytest.FixtureRequest, step: Any) -> None:
    ctx = allure.step(f"{step.keyword} {step.name}")
    ctx.__enter__()
    request.node.stash.setdefault(_STEPS, []).append(ctx)


def pytest_bdd_after_step(request: pytest.FixtureRequest) -> None:
    steps = request.node.stash.get(_STEPS, [])
    if steps:
        steps.pop().__exit__(None, None, None)


def pytest_bdd_step_error(request: pytest.FixtureRequest, exception: BaseException) -> None:
    steps = request.node.stash.get(_STEPS, [])
    if steps:
        steps.pop().__exit__(type(exception), exception, exception.__traceback__)
    report.record_step_error(request.config.stash[_STATE].cert, exception)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    rep = yield
    phase = gate_of(item)
    certification = item.config.stash[_STATE].cert
    if phase and redact.registered():
        # Captured output and tracebacks reach the console and Allure: mask secrets in them.
        rep.sections = [(title, redact.scrub(text)) for title, text in rep.sections]
        if rep.longrepr is not None:
            text = str(rep.longrepr)
            if redact.scrub(text) != text:
                rep.longrepr = redact.scrub(text)
    closed = item.config.stash[_STATE].gates is not None  # it did not open; `_record_unstarted` recorded this
    if phase and certification is not None and rep.when == "call" and not closed:
        exc = call.excinfo.value if call.excinfo is not None else None
        certification.ledger.record(phase, ScenarioRecord(
            name=item.stash.get(_SCENARIO, item.name),
            outcome=ledger_mod.outcome_of(exc) if exc is not None or rep.passed else "error",
            duration_s=round(rep.duration, 2),
            message=_message(exc),
        ))  # fmt: skip
    return rep


def _message(exc: BaseException | None) -> str:
    """What a scenario raised, secrets masked; a non-harness exception keeps its type (`KeyError: 'x'`)."""
    if exc is None:
        return ""
    text = redact.scrub(str(exc)).strip()
    if isinstance(exc, HarnessError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Runs before the session fixtures are torn down: mark an interrupted certification.
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        session.config.stash[_STATE].interrupted = True


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    results = getattr(config.option, "allure_report_dir", None)
    if state is None or state.cert is None or not results:
        return
    facts = state.cert.env_facts()
    if state.gates is not None:  # the verdict beside the results, so the report says what the console says
        facts["verdict"] = str(state.gates["verdict"])
        report.write_unjudged_phases(Path(results), {**state.gates, "cert_id": state.cert.cert_id},
                                     now_ms=int(time.time() * 1000))
    report.write_allure_metadata(Path(results), facts)
    redact.scrub_tree(Path(results))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    state = terminalreporter.config.stash[_STATE]
    if state.gates is None or state.cert is None:
        return
    terminalreporter.section("spine-certify")
    for line in report.summary_table(state.gates, state.cert.bundle.root):
        terminalreporter.write_line(line)
    for problem in state.problems:
        terminalreporter.write_line(f"problem: {problem}", red=True)
