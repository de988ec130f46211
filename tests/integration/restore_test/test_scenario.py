"""`pytest scenarios/ -m restore_test` as a user runs it: with no [restore_test] source configured the
scenario restores a demo repository it makes with plain pgbackrest commands; the run is an ordinary
result (scenario "restore_test") and nothing is left running."""

from __future__ import annotations

import json

import pytest

from harness.env.local import load_state
from tests.helpers.scenarios import outcomes, run_scenarios

pytestmark = pytest.mark.timeout(400)


def test_the_restore_test_scenario_runs_self_contained(tmp_path):
    before = {r["id"] for r in load_state()}
    proc = run_scenarios(tmp_path, "[targets]\nrto = \"120s\"\n", "-m", "restore_test", timeout=360)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert set(outcomes(tmp_path).values()) == {"passed"}
    results = list((tmp_path / "chaosdrill-results").glob("*/result.json"))
    assert len(results) == 1
    doc = json.loads(results[0].read_text())
    assert doc["scenario"] == "restore_test" and doc["verdict"] == "passed"
    assert doc["measurements"]["restore_test"]["source"]["stanza"] == "demo"
    assert {r["id"] for r in load_state()} <= before  # the demo source and the restored environment are gone
