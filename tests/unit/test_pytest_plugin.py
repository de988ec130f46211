"""The pytest plugin (harness/pytest_plugin.py) driven by pytester: markers, options, fixtures, the error
hook and exit codes. Inner sessions start no servers: chaos_env is replaced where a test needs one and
FaultExperiment.run is stubbed, so what is tested is the plugin's wiring, not a real run."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

# What the plugin imports lazily, imported once here: pytester restores sys.modules after each inner
# session, so anything first imported inside one would be imported again by every session.
import harness.cleanup  # noqa: F401
import harness.drill  # noqa: F401
import harness.env.external  # noqa: F401
import harness.preflight  # noqa: F401
import reports.run_report  # noqa: F401
from harness.config import SCENARIO_NAMES
from harness.env.local import load_state
from harness.errors import EnvironmentStartError
from harness.experiment import FaultExperiment, RunOutcome
from harness.measure import Objective, Verdict

pytest_plugins = ["pytester"]

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
# One item per scenario function and variant, as `pytest scenarios/` collects them.
SCENARIO_ITEMS = {
    "test_cache_outage.py::test_cache_outage[network]", "test_cache_outage.py::test_cache_outage[kill]",
    "test_db_outage.py::test_db_outage[kill]", "test_db_outage.py::test_db_outage[network]",
    "test_dr_restore.py::test_dr_restore", "test_network_latency.py::test_network_latency",
    "test_network_partition.py::test_network_partition", "test_replica_failover.py::test_replica_failover",
    "test_restore_test.py::test_restore_test",
}


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester whose sessions use a config of their own (never the working directory's)."""
    pytester.makefile(".toml", chaosdrill='[run]\nresults_dir = "inner-results"\n')
    # Plain asserts and no plugins of other tools: an inner session re-imports what it loads (pytester
    # restores sys.modules), and rewriting the harness's modules each time costs more than the test.
    pytester.makeini("[pytest]\naddopts = --assert=plain -p no:hypothesispytest -p no:locust -p no:anyio\n"
                     "asyncio_default_fixture_loop_scope = function\n")
    return pytester


def collected(result: pytest.RunResult) -> set[str]:
    return {line.split("scenarios/", 1)[-1] for line in result.outlines if "::" in line}


# ---------------------------------------------------------------------------------------------- markers
def test_every_scenario_marker_is_registered(inner) -> None:
    result = inner.runpytest("--markers")
    assert result.ret == 0
    for name in SCENARIO_NAMES:
        result.stdout.fnmatch_lines([f"@pytest.mark.{name}: chaosdrill scenario '{name}'"])


def test_strict_markers_select_a_scenario_by_marker(inner) -> None:
    inner.makepyfile("""
        import pytest

        @pytest.mark.db_outage
        def test_db(): pass

        @pytest.mark.cache_outage
        def test_cache(): pass
    """)
    result = inner.runpytest("--strict-markers", "-m", "db_outage", "-q")
    assert result.ret == 0
    result.assert_outcomes(passed=1, deselected=1)


def test_an_unregistered_marker_is_an_error_under_strict_markers(inner) -> None:
    inner.makepyfile("""
        import pytest

        @pytest.mark.db_outgae
        def test_db(): pass
    """)
    result = inner.runpytest("--strict-markers")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*'db_outgae' not found in `markers` configuration option*"])


def test_the_scenarios_collect_each_under_its_own_marker(inner) -> None:
    """Every scenario file collects with the plugin's fixtures, each item marked with its file's scenario,
    so `-m <scenario>` selects exactly that file."""
    inner.makepyfile(marks_plugin="""
        import json
        from pathlib import Path
        from harness.config import SCENARIO_NAMES

        def pytest_collection_modifyitems(items):
            marks = {item.nodeid.split("scenarios/", 1)[-1]: [m.name for m in item.iter_markers()
                                                              if m.name in SCENARIO_NAMES] for item in items}
            Path("marks.json").write_text(json.dumps(marks))
    """)
    inner.syspathinsert()
    result = inner.runpytest(str(SCENARIOS), "-p", "marks_plugin", "--strict-markers", "--collect-only", "-q")
    assert result.ret == 0, result.stdout.str()
    assert collected(result) == SCENARIO_ITEMS
    marks = json.loads((inner.path / "marks.json").read_text())
    assert marks == {item: [item.split(".py", 1)[0].removeprefix("test_")] for item in SCENARIO_ITEMS}
    assert {m for (m,) in marks.values()} == set(SCENARIO_NAMES)


# ---------------------------------------------------------------------------------------------- options
def test_help_lists_the_plugin_options(inner) -> None:
    result = inner.runpytest("--help")
    result.stdout.fnmatch_lines(["chaosdrill chaos scenarios:", "*--chaos-config=FILE*", "*--chaos-results=DIR*",
                                 "*--chaos-no-summary*"])


def test_chaos_config_option_picks_the_file(inner) -> None:
    inner.makefile(".toml", other="[load]\nusers = 3\n")
    inner.makepyfile("""
        def test_config(chaos_config):
            assert chaos_config.load.users == 3
    """)
    inner.runpytest("--chaos-config", "other.toml").assert_outcomes(passed=1)


def test_the_default_config_is_the_working_directorys(inner) -> None:
    inner.makepyfile("""
        from pathlib import Path

        def test_results_dir(chaos_results_dir):
            assert chaos_results_dir == (Path.cwd() / "inner-results").resolve()
    """)
    inner.runpytest().assert_outcomes(passed=1)


def test_chaos_results_option_overrides_the_config(inner) -> None:
    out = inner.path / "elsewhere"
    inner.makepyfile(f"""
        from pathlib import Path

        def test_results_dir(chaos_results_dir):
            assert chaos_results_dir == Path({str(out)!r})
    """)
    inner.runpytest("--chaos-results", str(out)).assert_outcomes(passed=1)


# --------------------------------------------------------------------------------------------- fixtures
STUB_ENV = """
    import pytest
    from types import SimpleNamespace

    FINISHED, PROGRESS = [], []

    @pytest.fixture
    def chaos_env():
        return SimpleNamespace(app_url="http://127.0.0.1:9")  # never contacted: run() is stubbed

    def pytest_chaosdrill_run_finished(outcome):
        FINISHED.append(outcome)

    def pytest_chaosdrill_progress(message):
        PROGRESS.append(message)
"""


@pytest.fixture
def stub_run(monkeypatch, tmp_path):
    """FaultExperiment.run returns a known outcome (and reports one progress step) without running."""
    outcome = RunOutcome(run_id="20260101T000000Z-db_outage-abcdef", run_dir=tmp_path, report=tmp_path / "report.html",
                         verdict=Verdict.PASSED,
                         objectives=[Objective("mttr", 1800.0, 5.2, "s", "lower", True),
                                     Objective("rpo", 900.0, None, "s", "lower", None)])

    def run(self, scenario, fault, description):
        self.progress(f"{scenario}: {description}")
        return outcome

    monkeypatch.setattr(FaultExperiment, "run", run)
    return outcome


def test_chaos_experiment_records_the_outcome_for_hooks_and_summary(inner, stub_run) -> None:
    inner.makeconftest(STUB_ENV)
    inner.makepyfile("""
        import conftest
        from harness.experiment import FaultExperiment

        def test_run(chaos_experiment, chaos_config, chaos_results_dir):
            assert isinstance(chaos_experiment, FaultExperiment)
            assert chaos_experiment.config is chaos_config and chaos_experiment.results_dir == chaos_results_dir
            outcome = chaos_experiment.run("db_outage", None, "stubbed")
            assert conftest.FINISHED == [outcome]
            assert conftest.PROGRESS == ["db_outage: stubbed"]
    """)
    result = inner.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "*= chaosdrill =*",
        f"PASSED        {stub_run.run_id}",
        "    pass  mttr: 5.2 s (target *)",  # units as the report shows them
        "    n/a   rpo: not measured (target *)",
        f"    report: {stub_run.report}",
    ])


def test_no_summary_option_leaves_the_summary_out(inner, stub_run) -> None:
    inner.makeconftest(STUB_ENV)
    inner.makepyfile("""
        def test_run(chaos_experiment):
            chaos_experiment.run("db_outage", None, "stubbed")
    """)
    result = inner.runpytest("--chaos-no-summary")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*= chaosdrill =*")
    result.stdout.no_fnmatch_line("PASSED *")


def test_drill_fixtures_are_recording_runners(inner) -> None:
    inner.makepyfile("""
        from harness.drill import DrillRunner, FailoverRunner

        def test_runners(chaos_drill, chaos_failover, chaos_results_dir):
            assert isinstance(chaos_drill, DrillRunner) and not isinstance(chaos_drill, FailoverRunner)
            assert isinstance(chaos_failover, FailoverRunner)
            assert chaos_drill.results_dir == chaos_failover.results_dir == chaos_results_dir
    """)
    inner.runpytest().assert_outcomes(passed=1)


# ------------------------------------------------------------------------------- error hook, exit codes
ERROR_HOOK = """
    import json
    from pathlib import Path

    def pytest_chaosdrill_error(message, exit_code):
        Path("error-hook.json").write_text(json.dumps([message, exit_code]))
"""


def hook_saw(pytester: pytest.Pytester) -> tuple[str, int]:
    message, code = json.loads((pytester.path / "error-hook.json").read_text())
    return message, code


def test_a_bad_config_stops_the_session_with_exit_2_and_one_line(inner) -> None:
    inner.makefile(".toml", chaosdrill="[load]\nusers = 0\n")
    inner.makeconftest(ERROR_HOOK)
    inner.makepyfile("""
        def test_one(chaos_config): pass
        def test_two(chaos_config): pass
    """)
    result = inner.runpytest()
    assert result.ret == 2
    message, code = hook_saw(inner)
    assert code == 2 and "load.users: Input should be greater than or equal to 1 (got 0)" in message
    result.stdout.fnmatch_lines([f"*chaosdrill: error: {message}*"])
    assert "Traceback" not in result.stdout.str()
    result.assert_outcomes()  # stopped at the first fixture: nothing passed, failed or errored


def test_a_missing_tool_stops_the_session_with_exit_4(inner, monkeypatch) -> None:
    monkeypatch.setenv("CHAOSDRILL_PG_BINDIR", "/nonexistent/bin")
    inner.makeconftest(ERROR_HOOK)
    inner.makepyfile("def test_one(chaos_config): pass")
    result = inner.runpytest()
    assert result.ret == 4
    message, code = hook_saw(inner)
    assert code == 4 and "PostgreSQL binaries not found in /nonexistent/bin" in message


def test_an_environment_that_fails_to_start_stops_the_session_with_its_code(inner, monkeypatch) -> None:
    from harness.env.local import LocalEnvironment

    def refuse(self):
        raise EnvironmentStartError("redis-server exited at start (stubbed)")

    monkeypatch.setattr(LocalEnvironment, "__enter__", refuse)
    inner.makeconftest(ERROR_HOOK)
    inner.makepyfile("def test_one(chaos_env): raise AssertionError('never reached')")
    monkeypatch.setattr(tempfile, "tempdir", str(inner.path))  # where the environment's dir would be made
    before = {r["id"] for r in load_state()}
    result = inner.runpytest()
    assert result.ret == EnvironmentStartError.exit_code == 4
    assert hook_saw(inner) == ("redis-server exited at start (stubbed)", 4)
    assert "never reached" not in result.stdout.str()
    left = [r for r in load_state() if r["id"] not in before]  # the record and dir the constructor made
    assert left == [] and list(inner.path.glob("chaosdrill-env-*")) == []


def test_exit_codes_of_a_scenario_session_are_pytests_otherwise(inner, stub_run) -> None:
    inner.makeconftest(STUB_ENV)
    inner.makepyfile("""
        import pytest

        @pytest.mark.db_outage
        def test_passes(chaos_experiment):
            chaos_experiment.run("db_outage", None, "stubbed")

        @pytest.mark.cache_outage
        def test_fails(chaos_experiment):
            raise AssertionError("missed")
    """)
    assert inner.runpytest("-m", "db_outage").ret == pytest.ExitCode.OK
    assert inner.runpytest("-m", "cache_outage").ret == pytest.ExitCode.TESTS_FAILED
    assert inner.runpytest("-m", "dr_restore").ret == pytest.ExitCode.NO_TESTS_COLLECTED
