"""The run report renders in headless Chromium (docs/recipes.md §9): DOM after load, screenshot, PDF."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from harness.config import Config
from harness.measure import LOAD_SNAPSHOT, judge_fault, measure_fault, verdict
from harness.results import RunRecord, write_run
from harness.timeline import FAULT_ACTIVE, FAULT_APPLY_START, FAULT_CLEARED, Sample, Timeline
from reports.run_report import format_duration, render_run_report

CHROMIUM = shutil.which("chromium")
MS = 1_000_000


def synthetic_run(run_dir: Path) -> Path:
    tl = Timeline()
    t0 = tl.anchor_ns
    for i in range(80):
        bad = 20 <= i < 45
        tl.add_sample(Sample(t0 + i * 100 * MS, "app_health", not bad, (3 + i % 5) * MS, "HTTP 503" if bad else None,
                             not bad))
        tl.event(LOAD_SNAPSHOT, "locust", t_ns=t0 + i * 100 * MS, requests=5, failures=3 if bad else 0)
    tl.event(FAULT_APPLY_START, "KillProcess(postgres)", t_ns=t0 + 1950 * MS)
    tl.event(FAULT_ACTIVE, "KillProcess(postgres)", t_ns=t0 + 1990 * MS)
    tl.event(FAULT_CLEARED, "KillProcess(postgres)", t_ns=t0 + 4400 * MS)
    cfg = Config()
    m = measure_fault(tl, streak=3, deadline_s=60)
    objectives = judge_fault(m, cfg.targets)
    record = RunRecord(run_id="test-run", scenario="db_outage", started_at="2026-11-22T08:00:00+00:00",
                       finished_at="2026-11-22T08:00:08+00:00", verdict=verdict(objectives).value,
                       objectives=[o.__dict__ for o in objectives], measurements={"fault": m.to_dict()},
                       config=cfg.model_dump(mode="json"),
                       environment={"kind": "local", "id": "env-test", "description": "synthetic <b>outage</b>",
                                    "versions": {"postgres": "15"}},
                       load={"users": 2, "duration_s": 8.0, "requests": 400, "failures": 75, "rps": 50.0,
                             "p50_ms": 3.0, "p95_ms": 9.0, "p99_ms": 12.0,
                             "endpoints": [{"name": "/orders", "method": "GET", "requests": 400, "failures": 75,
                                            "p50_ms": 3.0, "p95_ms": 9.0, "p99_ms": 12.0}]})
    write_run(run_dir, record, tl)
    return render_run_report(run_dir)


def chromium(*args: str, url: str, cwd: Path) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="chaosdrill-chromium-")
    try:
        return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                               "--no-first-run", "--disable-background-networking", "--disable-component-update",
                               "--disable-sync", f"--user-data-dir={profile}", *args, url],
                              capture_output=True, text=True, timeout=120, cwd=cwd)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def test_report_content_is_escaped_and_complete(tmp_path) -> None:
    html = synthetic_run(tmp_path / "run").read_text()
    assert "synthetic &lt;b&gt;outage&lt;/b&gt;" in html, "user text is escaped"
    assert html.count("<svg") == 3  # probe latency, probe success, load
    assert "Targets vs achieved" in html and "MTTR" in html
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["verdict"] in html


# In CI `make test` has installed chromium, so a missing one is a failure there, not a skip.
@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="chromium not installed (make deps installs it)")
def test_report_renders_in_headless_chromium(tmp_path) -> None:
    report = synthetic_run(tmp_path / "run")
    dom = chromium("--dump-dom", url=report.as_uri(), cwd=tmp_path)
    assert dom.returncode == 0, dom.stderr[-500:]
    assert "Targets vs achieved" in dom.stdout and dom.stdout.count("<svg") == 3
    shot = tmp_path / "shot.png"
    chromium("--window-size=1100,2400", f"--screenshot={shot}", url=report.as_uri(), cwd=tmp_path)
    assert shot.stat().st_size > 20_000  # a real picture, not a blank page
    pdf = tmp_path / "report.pdf"
    chromium(f"--print-to-pdf={pdf}", "--no-pdf-header-footer", url=report.as_uri(), cwd=tmp_path)
    assert pdf.read_bytes()[:5] == b"%PDF-"


@pytest.mark.parametrize(("seconds", "text"), [(None, "—"), (0.0042, "4.2 ms"), (2.5, "2.5 s"), (75, "1 min 15 s"),
                                               (1800, "30 min"), (14400, "4 h")])
def test_durations_read_naturally(seconds, text) -> None:
    assert format_duration(seconds) == text


def test_a_result_from_before_load_latency_per_window_still_renders(tmp_path) -> None:
    synthetic_run(tmp_path)
    data = json.loads((tmp_path / "result.json").read_text())
    for window in data["measurements"]["fault"]["load"].values():
        for key in ("p50_ms", "p95_ms", "p99_ms"):
            window.pop(key)
    data["host"].pop("locust")
    (tmp_path / "result.json").write_text(json.dumps(data))
    html = render_run_report(tmp_path).read_text()
    assert "Window (by request start)" in html


def test_a_damaged_result_is_one_line_not_a_traceback(tmp_path) -> None:
    import subprocess
    import sys

    synthetic_run(tmp_path)
    data = json.loads((tmp_path / "result.json").read_text())
    del data["objectives"][0]["target"]
    (tmp_path / "result.json").write_text(json.dumps(data))
    proc = subprocess.run([sys.executable, "-m", "harness.cli_main", "report", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr  # a damaged run directory is bad input
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "objectives[0]: missing key 'target'" in lines[0], proc.stderr


def test_a_weak_secret_equal_to_our_own_names_leaves_the_run_readable(tmp_path) -> None:
    """A password "postgres" (or "chaosdrill") is masked in every value, yet result.json keeps its keys,
    timeline.csv its header, and the report renders (it once failed on `versions.<masked>`)."""
    from harness import redact

    redact.register("postgres")
    try:
        report = synthetic_run(tmp_path / "run")
    finally:
        redact.clear()
    doc = json.loads((tmp_path / "run" / "result.json").read_text())
    assert "postgres" in doc["environment"]["versions"]
    timeline = (tmp_path / "run" / "timeline.csv").read_text()
    assert timeline.splitlines()[0].startswith("t_ns,") and "KillProcess(**********)" in timeline
    assert "KillProcess(postgres)" not in timeline and report.is_file()
