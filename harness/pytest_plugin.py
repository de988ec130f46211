"""chaosdrill's pytest plugin (entry point `pytest11`): options, scenario markers, fixtures, summary.

Thin on purpose, like pytest-benchmark's plugin.py: the work happens in harness.experiment;
this module only wires config, environment and results into pytest.

    --chaos-config FILE     chaosdrill.toml (default ./chaosdrill.toml or built-in defaults)
    --chaos-results DIR     where run directories go (default from config: chaosdrill-results)
    --chaos-repeat N        run every fault scenario N times, each in a fresh environment
                            (default run.repeat of the config: 1)
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from harness.config import SCENARIO_NAMES, Config, load_config
from harness.errors import HarnessError

OUTCOMES_KEY = pytest.StashKey[list]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaosdrill", "chaosdrill chaos scenarios")
    group.addoption("--chaos-config", default=None, metavar="FILE",
                    help="chaosdrill.toml to use. Default: ./chaosdrill.toml if present, else built-in defaults")
    group.addoption("--chaos-results", default=None, metavar="DIR",
                    help="directory for run results and reports. Default: run.results_dir of the config")
    group.addoption("--chaos-repeat", default=None, type=int, metavar="N",
                    help="run each fault scenario N times, each repeat in a fresh environment (ids …-repeatK). "
                         "Default: run.repeat of the config (1)")
    group.addoption("--chaos-no-summary", action="store_true", default=False,
                    help="do not print the chaosdrill summary (the chaosdrill CLI prints its own)")


def pytest_addhooks(pluginmanager) -> None:
    from harness import hookspec

    pluginmanager.add_hookspecs(hookspec)


def pytest_configure(config: pytest.Config) -> None:
    for name in SCENARIO_NAMES:
        config.addinivalue_line("markers", f"{name}: chaosdrill scenario '{name}'")
    config.stash[OUTCOMES_KEY] = []


def _repeats(config: pytest.Config) -> int:
    n = config.getoption("--chaos-repeat")
    if n is None:
        try:
            n = load_config(config.getoption("--chaos-config")).run.repeat
        except HarnessError:
            n = 1  # chaos_config reports the bad config when the first scenario starts
    return max(1, int(n))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Repeats: every scenario using `chaos_experiment` runs N times ("test_db_outage[kill-repeat2]"),
    each repeat with its own fresh `chaos_env` (function scope), so no state is carried over."""
    if "chaos_repeat" in metafunc.fixturenames:
        n = _repeats(metafunc.config)
        if n > 1:
            metafunc.parametrize("chaos_repeat", range(1, n + 1), ids=[f"repeat{i}" for i in range(1, n + 1)])


@pytest.fixture
def chaos_repeat() -> int:
    """This run's repeat index (1..N; 1 without repeats). Parametrized by pytest_generate_tests."""
    return 1


@pytest.fixture(scope="session")
def chaos_config(pytestconfig: pytest.Config) -> Config:
    """The run's validated configuration, checked against the machine before anything starts.

    The first chaosdrill fixture of a session also undoes what a killed earlier run left behind
    (faults, environments, Locust), wherever the scenarios live."""
    from harness.cleanup import cleanup_all
    from harness.preflight import preflight

    try:
        config = load_config(pytestconfig.getoption("--chaos-config"))
        for line in cleanup_all():
            pytestconfig.get_terminal_writer().line(f"chaosdrill cleanup: {line}")
        preflight(config)
    except HarnessError as exc:
        _stop_session(exc, pytestconfig)
    return config


def _stop_session(exc: HarnessError, config: pytest.Config):
    """Bad input or a missing tool: one line and the error's exit code, not a traceback per scenario."""
    from harness.redact import redact

    message = redact(str(exc))
    config.hook.pytest_chaosdrill_error(message=message, exit_code=exc.exit_code)
    pytest.exit(f"chaosdrill: error: {message}", returncode=exc.exit_code)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing scenario's traceback and captured output never show a secret of the config."""
    from harness.redact import known, redact

    report = (yield).get_result()
    if not known():
        return
    if report.longrepr is not None:
        text = str(report.longrepr)
        if redact(text) != text:
            report.longrepr = redact(text)
    report.sections = [(title, redact(body)) for title, body in report.sections]


@pytest.fixture(scope="session")
def chaos_results_dir(pytestconfig: pytest.Config, chaos_config: Config) -> Path:
    return Path(pytestconfig.getoption("--chaos-results") or chaos_config.run.results_dir).resolve()


@pytest.fixture
def chaos_case_selected() -> None:
    """Runs before the environment starts. A scenario overrides it to skip a case its config does not
    select (a variant), so that case costs no environment: an override may call `pytest.skip`."""


@pytest.fixture
def chaos_env(chaos_config: Config, pytestconfig: pytest.Config, chaos_case_selected: None):
    """The scenario's environment: a fresh local one (PostgreSQL, Redis, app; always torn down), or
    with `environment.kind = "external"` your own stack from `[services]` (checked, never stopped)."""
    from harness.env.external import ExternalEnvironment
    from harness.env.local import LocalEnvironment

    try:
        env = (ExternalEnvironment(chaos_config) if chaos_config.environment.kind == "external"
               else LocalEnvironment(chaos_config.environment.local, incidents=chaos_config.incidents))
    except HarnessError as exc:
        _stop_session(exc, pytestconfig)  # a constructor that raises has removed its record and dir
    try:
        env.__enter__()
    except BaseException as exc:
        with contextlib.suppress(Exception):  # the start's error is the one to report; cleanup finds the record
            env.__exit__(None, None, None)  # idempotent: its record and dir go too, whatever the start left
        if isinstance(exc, HarnessError):
            _stop_session(exc, pytestconfig)
        raise
    try:
        yield env
    finally:
        env.__exit__(None, None, None)


@pytest.fixture
def chaos_experiment(chaos_config: Config, chaos_env, chaos_results_dir: Path, pytestconfig: pytest.Config,
                     request: pytest.FixtureRequest, chaos_repeat: int):
    """Runs a held fault under load and probes and records the outcome for the session summary.

    The outcome carries the scenario's test id as its `case` ("test_db_outage[kill]"), which repeats
    and baselines group by. A run interrupted by SIGINT/SIGTERM is recorded (aborted) before the
    interruption goes on to end the session."""
    from harness.experiment import FaultExperiment
    from harness.interrupt import Interrupted

    outcomes = pytestconfig.stash[OUTCOMES_KEY]
    hook = pytestconfig.hook
    case = case_of(request.node)

    class Recording(FaultExperiment):
        def run(self, *args, **kwargs):
            try:
                outcome = super().run(*args, **kwargs)
            except Interrupted as exc:
                if exc.outcome is not None:
                    outcomes.append(exc.outcome)
                    hook.pytest_chaosdrill_run_finished(outcome=exc.outcome)
                raise
            outcomes.append(outcome)
            hook.pytest_chaosdrill_run_finished(outcome=outcome)
            return outcome

    experiment = Recording(chaos_config, chaos_env, chaos_results_dir,
                           progress=lambda message: hook.pytest_chaosdrill_progress(message=message))
    experiment.case = case
    return experiment


def case_of(item) -> str:
    """A scenario's test id without the repeat index: "test_db_outage[kill]" (of "…[kill-repeat2]")."""
    name = item.name
    if "[" in name:
        base, params = name[:-1].split("[", 1)
        kept = [p for p in params.split("-") if not p.startswith("repeat")]
        name = f"{base}[{'-'.join(kept)}]" if kept else base
    return name


def _recording_runner(cls, chaos_config: Config, chaos_results_dir: Path, pytestconfig: pytest.Config):
    """An instance of the drill runner `cls` whose outcome joins the session summary and the CLI."""
    outcomes = pytestconfig.stash[OUTCOMES_KEY]
    hook = pytestconfig.hook

    class Recording(cls):
        def run(self):
            outcome = super().run()
            outcomes.append(outcome)
            hook.pytest_chaosdrill_run_finished(outcome=outcome)
            return outcome

    return Recording(chaos_config, chaos_results_dir,
                     progress=lambda message: hook.pytest_chaosdrill_progress(message=message))


@pytest.fixture
def chaos_drill(chaos_config: Config, chaos_results_dir: Path, pytestconfig: pytest.Config):
    """A DR drill runner (harness.drill): builds its own source and fresh environments, tears both down."""
    from harness.drill import DrillRunner

    return _recording_runner(DrillRunner, chaos_config, chaos_results_dir, pytestconfig)


@pytest.fixture
def chaos_failover(chaos_config: Config, chaos_results_dir: Path, pytestconfig: pytest.Config):
    """A replica failover drill runner (harness.drill.FailoverRunner): primary, streaming replica, kill, promote."""
    from harness.drill import FailoverRunner

    return _recording_runner(FailoverRunner, chaos_config, chaos_results_dir, pytestconfig)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    outcomes = config.stash.get(OUTCOMES_KEY, [])
    if not outcomes or config.getoption("--chaos-no-summary"):
        return
    from reports.run_report import format_value

    terminalreporter.section("chaosdrill")
    for o in outcomes:
        terminalreporter.line(f"{o.verdict.value.upper():13} {o.run_id}")
        for obj in o.objectives:  # the report's human units (ms/s/min/h, %, yes/no)
            mark = {True: "pass", False: "FAIL", None: "n/a "}[obj.passed]
            bound = "≤" if obj.better == "lower" else "≥" if obj.better == "higher" else "≈"
            terminalreporter.line(f"    {mark}  {obj.name}: {format_value(obj.achieved, obj.unit)} "
                                  f"(target {bound} {format_value(obj.target, obj.unit)})")
        if o.report:
            terminalreporter.line(f"    report: {o.report}")
