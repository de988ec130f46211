"""Replica failover drill on real servers, through its scenario file (scenarios/test_replica_failover.py
and the plugin's chaos_failover, as `pytest scenarios/ -m replica_failover` runs it): the promoted
replica serves, rows lost and failover time are measured."""

from __future__ import annotations

import json

import pytest

from harness.env.local import load_state
from tests.helpers.scenarios import outcomes, run_scenarios

pytestmark = pytest.mark.timeout(180)

CONFIG = """
[targets]
rpo = "2s"
rto = "60s"
[drill]
warmup = 1
hold = 1
load = false
"""


def test_failover_promotes_the_replica_and_measures_loss(tmp_path):
    before = {r["id"] for r in load_state()}
    proc = run_scenarios(tmp_path, CONFIG, "-m", "replica_failover", timeout=150)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert outcomes(tmp_path) == {"test_replica_failover": "passed"}
    (run_dir,) = (tmp_path / "chaosdrill-results").iterdir()
    result = json.loads((run_dir / "result.json").read_text())
    m = result["measurements"]["drill"]
    assert result["measurements"]["status"] == "completed", result["measurements"]["error"]
    assert result["verdict"] == "passed", result["objectives"]
    assert m["rto_s"] is not None and m["steps"]["start"] is not None and m["steps"]["restore"] is None
    assert 0 <= m["rows_lost"] <= 3  # streaming replication: at most what was in flight
    assert m["rpo_s"] is not None and m["rpo_s"] < 1.0
    assert result["scenario"] == "replica_failover" and result["environment"]["replica"]["port"]
    assert (run_dir / "report.html").is_file()
    assert f"report: {run_dir / 'report.html'}" in proc.stdout  # the plugin's summary
    assert {r["id"] for r in load_state()} == before
