"""Repeats on real db_outage runs through the CLI (issue 11, item 2): `--repeat 3` makes three real
runs, each in its own fresh environment, and one series whose statistics are checked against an
independent computation (numpy) on the values the three result.json files store; --json validates
against its schema, --junit has the series' testsuite; a --baseline with too short a history says
"not enough history" and leaves the exit code alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from junitparser import JUnitXml, Skipped

from harness.ci_output import SUMMARY_SCHEMA
from harness.env.local import load_state
from tests.integration.test_stop_conditions import chaosdrill

CONFIG = """
[run]
probe_interval = "100ms"
[environment.local.app]
recovery_wait = "100ms"
[load]
users = 4
throughput_per_user = 5
[scenarios.db_outage]
baseline = "2s"
hold = "2s"
after = "1s"
"""


def test_three_real_repeats_and_their_statistics(tmp_path: Path) -> None:
    (tmp_path / "chaosdrill.toml").write_text(CONFIG)
    envs_before = {r["id"] for r in load_state()}
    results = tmp_path / "results"
    proc = chaosdrill("run", "-m", "db_outage", "--results", str(results), "--repeat", "3", "--baseline", "last:5",
                      "--json", "--junit", str(tmp_path / "junit.xml"), cwd=tmp_path, timeout=600)
    doc = json.loads(proc.stdout)
    jsonschema.validate(doc, SUMMARY_SCHEMA)
    assert len(doc["runs"]) == 3 and {r["case"] for r in doc["runs"]} == {"test_db_outage[kill]"}
    [series] = doc["series"]
    # a loaded machine may miss a latency target in some repeat: the series' rule decides, and the
    # exit code is the series' (0 passed, 3 missed), never a regression without history
    assert series["repeats"] == 3 and series["rule"] == "all"
    every = all(r["verdict"] == "passed" for r in doc["runs"])
    assert series["verdict"] == ("passed" if every else "failed"), proc.stderr[-3000:]
    assert proc.returncode == (0 if every else 3), proc.stderr[-3000:]
    assert series["runs"] == [r["run_id"] for r in doc["runs"]]

    # three separate environments: each repeat's result names its own
    stored = [json.loads((results / run_id / "result.json").read_text()) for run_id in series["runs"]]
    assert len({r["environment"]["id"] for r in stored}) == 3

    # statistics against an independent computation on the stored samples
    on_disk = json.loads((results / series["series_id"] / "series.json").read_text())
    for obj in on_disk["objectives"]:
        values = [next(o["achieved"] for o in r["objectives"] if o["name"] == obj["name"]) for r in stored]
        assert obj["samples"] == values
        measured = np.array([v for v in values if v is not None], dtype=float)
        if not measured.size:
            continue
        assert obj["median"] == float(np.median(measured))
        q = 5 if obj["better"] == "higher" else 95
        assert obj["p95"] == float(np.percentile(measured, q, method="inverted_cdf"))
        assert obj["worst"] == float(measured.min() if obj["better"] == "higher" else measured.max())
        if measured.size == 3:  # bootstrap percentile CI of a median of 3: exactly [min, max]
            assert obj["ci95"] == pytest.approx([float(measured.min()), float(measured.max())], rel=1e-12)

    # no history yet: said, and the exit code stays 0
    reg = series["regression"]
    assert reg["status"] == "not enough history"
    assert all(c["status"] == "not enough history" for c in reg["objectives"])
    suite = next(s for s in JUnitXml.fromfile(str(tmp_path / "junit.xml")) if s.name == series["series_id"])
    cases = {c.name: c for c in suite}
    assert "regression: MTTR" in cases and isinstance(cases["regression: MTTR"].result[0], Skipped)
    assert "MTTR" in cases and "median" in cases["MTTR"].system_out

    report = Path(series["report"]).read_text()
    assert report.count("<title>repeat ") >= 3 and "not enough history" in report
    assert [r["id"] for r in load_state() if r["id"] not in envs_before] == []
