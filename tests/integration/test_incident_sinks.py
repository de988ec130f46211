"""The incident sinks of `[incidents]`, built as the reference app builds them, reach a real
webhook receiver on 127.0.0.1 (token from env:NAME, a 500 retried) and a JSONL file."""

from __future__ import annotations

import json

from harness.app.sinks import build_sinks
from harness.config import parse_config
from resilience.incidents import IncidentManager
from tests.integration.resilience.test_webhook_sink import TOKEN, Hook


async def test_sinks_from_the_config_reach_the_receiver(tmp_path, monkeypatch) -> None:
    with Hook() as hook:
        await _escalate_through_config_sinks(hook, tmp_path, monkeypatch)


async def _escalate_through_config_sinks(hook: Hook, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HOOK_TOKEN", TOKEN)
    cfg = parse_config({"incidents": {"sinks": {
        "file": {"kind": "jsonl", "path": str(tmp_path / "incidents.jsonl")},
        "log": {"kind": "log"},
        "hook": {"kind": "webhook", "url": hook.url, "retries": 1, "timeout": "1s", "header": "X-Token",
                 "token": "env:HOOK_TOKEN"}}}})
    assert TOKEN not in json.dumps(cfg.model_dump(mode="json"))
    hook.script = [500]
    manager = IncidentManager(build_sinks(cfg.incidents.spec()))
    await manager.escalate("recovery failed", "database_connection exhausted", dedup_key="recovery:db")
    posted = [body for headers, body in hook.seen if headers["x-token"] == TOKEN]
    assert [b["kind"] for b in posted] == ["alert", "alert", "incident"]  # the alert's 500 was retried
    lines = [json.loads(line) for line in (tmp_path / "incidents.jsonl").read_text().splitlines()]
    assert [line["kind"] for line in lines] == ["alert", "incident"]
