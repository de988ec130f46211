"""Replica failover drill on real servers: promoted replica serves, rows lost and failover time measured."""

from __future__ import annotations

import json

import pytest

from harness.config import parse_config
from harness.drill import DrillStatus, FailoverRunner
from harness.env.local import load_state
from harness.measure import Verdict

pytestmark = pytest.mark.timeout(120)


def test_failover_promotes_the_replica_and_measures_loss(tmp_path):
    before = {r["id"] for r in load_state()}
    cfg = parse_config({"run": {"results_dir": str(tmp_path)}, "targets": {"rpo": "2s", "rto": "60s"},
                        "drill": {"warmup": 1, "hold": 1, "load": False}})
    outcome = FailoverRunner(cfg, tmp_path).run()
    m = outcome.measurements
    assert outcome.status is DrillStatus.COMPLETED, outcome.error
    assert outcome.verdict is Verdict.PASSED, outcome.objectives
    assert m.rto_s is not None and m.steps["start"] is not None and m.steps["restore"] is None
    assert 0 <= m.rows_lost <= 3  # streaming replication: at most what was in flight
    assert m.rpo_s is not None and m.rpo_s < 1.0
    result = json.loads((outcome.run_dir / "result.json").read_text())
    assert result["scenario"] == "replica_failover" and result["environment"]["replica"]["port"]
    assert outcome.report.is_file()
    assert {r["id"] for r in load_state()} == before
