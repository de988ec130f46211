"""The bundled scenario files that no other test runs, run as a user runs them: `pytest scenarios/`
through the plugin, on fresh local environments, with short timings. Each must pass (no skip).

Where the rest run: db_outage[kill] in test_cli.py (`chaosdrill run -m db_outage`); dr_restore and
replica_failover through their scenario files in test_drill.py and test_replica_failover.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.env.local import load_state
from harness.faults.firewall import has_net_admin

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
TIMING = 'baseline = "1s"\nhold = "1.5s"\nafter = "1s"\n'
QUICK = f"""
[run]
probe_interval = "100ms"
[environment.local.app]
recovery_wait = "100ms"
[load]
users = 4
throughput_per_user = 5
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
    (work / "chaosdrill.toml").write_text(QUICK)
    before = {r["id"] for r in load_state()}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(SCENARIOS), "-p", "no:cacheprovider", "-q", "-rs", "--strict-markers",
         "-m", "db_outage or cache_outage or network_latency or network_partition",
         "--deselect", "scenarios/test_db_outage.py::test_db_outage[kill]",  # rootdir: the repo (pyproject.toml)
         "--junitxml", str(work / "junit.xml")],
        cwd=work, capture_output=True, text=True, timeout=540)
    return work, proc, before


def outcomes(junit: Path) -> dict[str, str]:
    """Test name → passed / failed / error / skipped, from the inner session's JUnit XML."""
    found = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        found[case.get("name")] = kinds[0] if kinds else "passed"
    return found


def test_every_scenario_not_run_elsewhere_passes(session) -> None:
    work, proc, _ = session
    assert proc.returncode == 0, proc.stdout + proc.stderr
    expected = dict.fromkeys(EXPECTED, "passed") | {"test_network_partition": PARTITION}
    assert outcomes(work / "junit.xml") == expected, proc.stdout


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
