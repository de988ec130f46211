"""The bundled scenario files that no other test runs, run as a user runs them: `pytest scenarios/`
through the plugin, on fresh local environments, with short timings. Each must pass (no skip).

Where the rest run: db_outage[kill] in test_cli.py (`chaosdrill run -m db_outage`); dr_restore and
replica_failover through their scenario files in test_drill.py and test_replica_failover.py.
"""

from __future__ import annotations

import json

import pytest

from harness.env.local import load_state
from harness.faults.firewall import has_net_admin
from tests.helpers.scenarios import outcomes, run_scenarios

TIMING = 'baseline = "1s"\nhold = "1.5s"\nafter = "1s"\n'
QUICK = f"""
[run]
probe_interval = "100ms"
[environment.local.app]
recovery_wait = "100ms"
[load]
users = 4
throughput_per_user = 5
[targets]
# The breaker's fail-fast p99 (design target 100 ms) is scheduling noise when make test shares the
# 2 cores with itself (289 ms seen at load 6); here each scenario must break and heal, within 1 s.
breaker_decision = "1s"
[scenarios.db_outage]
{TIMING}variants = ["network"]
[scenarios.cache_outage]
{TIMING}
[scenarios.network_latency]
{TIMING}
[scenarios.network_partition]
{TIMING}
"""
# What runs here: the db_outage variant test_cli.py leaves out, and every variant of the other three.
EXPECTED = {"test_db_outage[network]": "db_outage", "test_cache_outage[network]": "cache_outage",
            "test_cache_outage[kill]": "cache_outage", "test_network_latency": "network_latency",
            "test_network_partition": "network_partition"}

# network_partition changes the firewall: without root or CAP_NET_ADMIN it skips, saying so.
PARTITION = "passed" if has_net_admin() else "skipped"

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    work = tmp_path_factory.mktemp("scenarios")
    before = {r["id"] for r in load_state()}
    proc = run_scenarios(work, QUICK, "-m", "db_outage or cache_outage or network_latency or network_partition",
                         # the repo is the rootdir (pyproject.toml): node ids are relative to it
                         "--deselect", "scenarios/test_db_outage.py::test_db_outage[kill]")
    return work, proc, before


def test_every_scenario_not_run_elsewhere_passes(session) -> None:
    work, proc, _ = session
    assert proc.returncode == 0, proc.stdout + proc.stderr
    expected = dict.fromkeys(EXPECTED, "passed") | {"test_network_partition": PARTITION}
    assert outcomes(work) == expected, proc.stdout


def test_each_run_left_a_passed_result_and_a_report(session) -> None:
    work, proc, _ = session
    results = [json.loads(p.read_text()) for p in (work / "chaosdrill-results").glob("*/result.json")]
    ran = [s for name, s in EXPECTED.items() if name != "test_network_partition" or PARTITION == "passed"]
    assert sorted(r["scenario"] for r in results) == sorted(ran), proc.stdout
    assert all(r["verdict"] == "passed" for r in results), [(r["scenario"], r["verdict"]) for r in results]
    assert all((p.parent / "report.html").is_file() for p in (work / "chaosdrill-results").glob("*/result.json"))


def test_the_session_left_no_environment(session) -> None:
    _, _, before = session
    assert {r["id"] for r in load_state()} - before == set()



def test_a_variant_the_config_does_not_select_starts_no_environment(tmp_path, monkeypatch) -> None:
    """The unselected variant is skipped before its environment starts: an environment would SIGKILL
    the session here (the crash point right after an environment is recorded)."""
    from harness.crashpoints import CRASH_ENV
    from harness.env.local import teardown_recorded

    before = {r["id"] for r in load_state()}
    monkeypatch.setenv(CRASH_ENV, "env.after_record")
    try:
        proc = run_scenarios(tmp_path, '[scenarios.db_outage]\nvariants = ["kill"]\n', "-m", "db_outage",
                             "-k", "network", timeout=120)
    finally:
        for record in load_state():
            if record["id"] not in before:
                teardown_recorded(record)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert outcomes(tmp_path) == {"test_db_outage[network]": "skipped"}
    assert "variant 'network' not selected" in proc.stdout
