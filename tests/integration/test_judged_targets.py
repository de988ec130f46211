"""A real db_outage run judges the targets that were once only validated: the harness's own
PostgreSQL and Redis health checks (resilience.health), the breaker's failed calls before opening
and its wait in OPEN, and the recovery success rate — all in result.json and the report. The
app's escalations reach the [incidents] webhook (a receiver this test runs on 127.0.0.1)."""

from __future__ import annotations

import json

import pytest

from harness.config import parse_config
from harness.env.local import LocalEnvironment
from harness.experiment import FaultExperiment
from harness.faults import KillProcess
from tests.integration.resilience.test_webhook_sink import TOKEN, Hook

CONFIG = {
    "run": {"probe_interval": "100ms", "health_check_interval": "200ms"},
    # a short wait in OPEN, so the breaker waits it out (and tries HALF_OPEN) during a 2.5 s outage
    "environment": {"local": {"app": {"breaker_wait_in_open": "700ms", "recovery_wait": "100ms"}}},
    "targets": {"breaker_wait_in_open": "700ms"},
    "scenarios": {"db_outage": {"baseline": "1s", "hold": "2.5s", "after": "1s"}},
    "load": {"users": 4, "throughput_per_user": 5},
}


def test_db_outage_judges_health_checks_breaker_and_recovery(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ONCALL_TOKEN", TOKEN)
    with Hook() as hook:
        cfg = parse_config({**CONFIG, "incidents": {"sinks": {"oncall": {
            "kind": "webhook", "url": hook.url, "header": "X-Token", "token": "env:ONCALL_TOKEN"}}}})
        with LocalEnvironment(cfg.environment.local, incidents=cfg.incidents) as env:
            outcome = FaultExperiment(cfg, env, results_dir=tmp_path).run(
                "db_outage", lambda tl: KillProcess(env.services["postgres"], timeline=tl, allow=env.allow_list()),
                "PostgreSQL killed and restarted")
    # recovery rounds exhausted while PostgreSQL was down: the app escalated to the webhook
    kinds = {body["kind"] for headers, body in hook.seen if headers.get("x-token") == TOKEN}
    assert kinds == {"alert", "incident"}, hook.seen
    for written in outcome.run_dir.rglob("*"):
        assert not written.is_file() or TOKEN not in written.read_text(errors="replace"), written
    result = json.loads((outcome.run_dir / "result.json").read_text())
    by = {o["name"]: o for o in result["objectives"]}

    pg, redis = by["health check latency p99 (postgres)"], by["health check latency p99 (redis)"]
    assert pg["passed"] is True and pg["target"] == 1.0, pg
    assert redis["passed"] is True and redis["target"] == 0.5, redis
    health = result["measurements"]["fault"]["health"]
    assert health["health.postgres"]["fault_failed"] > 0  # the outage was seen by the check itself
    assert health["health.redis"]["fault_failed"] == 0
    assert by["health check interval (largest gap)"]["passed"] is True

    opened = by["breaker failed calls before opening"]
    assert opened["passed"] is True and 1 <= opened["achieved"] <= 5, opened
    wait = by["breaker wait in OPEN before HALF_OPEN"]
    assert wait["passed"] is True and wait["target"] == pytest.approx(0.7), (wait, result["measurements"]["fault"]["breaker"])
    rate = by["recovery success rate"]
    assert rate["passed"] is True and rate["achieved"] == 1.0, rate

    timeline = (outcome.run_dir / "timeline.csv").read_text()
    assert "health.postgres" in timeline and "health.redis" in timeline
    html = outcome.report.read_text()
    assert "health check latency p99 (postgres)" in html and "breaker wait in OPEN before HALF_OPEN" in html
