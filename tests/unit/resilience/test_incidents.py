"""Incidents: models, sinks (log, JSONL, webhook through a mock transport), de-duplication."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from pydantic import ValidationError

from resilience.clock import FakeClock
from resilience.incidents import (
    Alert,
    Incident,
    IncidentManager,
    IncidentStatus,
    JsonlSink,
    LogSink,
    Severity,
    WebhookSink,
)


class ListSink:
    def __init__(self) -> None:
        self.items = []

    async def send(self, item) -> None:
        self.items.append(item)


class BrokenSink:
    async def send(self, item) -> None:
        raise OSError("disk full")


def test_models_are_strict_values():
    alert = Alert(severity="warning", title="slow db", context={"p95_ms": 900})
    assert alert.severity is Severity.WARNING and alert.key == "resilience:warning:slow db"
    with pytest.raises(ValidationError):
        Alert(severity="urgent", title="x")
    with pytest.raises(ValidationError):
        Alert(severity="info", title="x", colour="red")
    with pytest.raises(ValidationError):
        alert.title = "y"
    incident = Incident(severity=Severity.CRITICAL, title="db down")
    done = incident.resolve("restarted")
    assert incident.status is IncidentStatus.OPEN and done.status is IncidentStatus.RESOLVED
    assert done.resolved_at >= done.opened_at and done.id == incident.id


async def test_dedup_within_window_then_again_after():
    clock = FakeClock()
    sink = ListSink()
    mgr = IncidentManager([sink], dedup_window=60, clock=clock)
    alert = Alert(severity="error", title="redis down")
    assert await mgr.alert(alert)
    clock.advance(30)
    assert not await mgr.alert(alert)
    assert not await mgr.alert(alert.model_copy(update={"description": "still"}))
    assert await mgr.alert(Alert(severity="error", title="pg down"))
    clock.advance(31)
    assert await mgr.alert(alert)
    assert [a.title for a in sink.items] == ["redis down", "pg down", "redis down"]
    assert sink.items[-1].context["suppressed_repeats"] == 2


async def test_explicit_dedup_key_and_zero_window():
    sink = ListSink()
    mgr = IncidentManager([sink], dedup_window=0, clock=FakeClock())
    for _ in range(3):
        assert await mgr.alert(Alert(severity="info", title="tick", dedup_key="k"))
    assert len(sink.items) == 3
    with pytest.raises(ValueError, match="dedup_window must be seconds >= 0"):
        IncidentManager(dedup_window=-1)


async def test_escalate_writes_alert_and_incident_to_jsonl(tmp_path, caplog):
    path = tmp_path / "incidents" / "log.jsonl"
    jsonl = JsonlSink(path)
    mgr = IncidentManager([jsonl, BrokenSink(), LogSink()], clock=FakeClock())
    with caplog.at_level(logging.WARNING):
        incident = await mgr.escalate("recovery failed", "3 attempts", {"strategy": "db"})
    rows = jsonl.read()
    assert [r["kind"] for r in rows] == ["alert", "incident"]
    assert rows[0]["severity"] == "critical" and rows[1]["context"] == {"strategy": "db"}
    assert "disk full" in caplog.text  # the broken sink is logged, the others still delivered
    assert "recovery failed" in caplog.text
    resolved = await mgr.resolve(incident.id, "fixed by hand")
    assert json.loads(path.read_text().splitlines()[-1])["status"] == "resolved"
    assert mgr.incidents[incident.id] == resolved


async def test_webhook_posts_json():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, json.loads(request.content), request.headers["x-token"]))
        return httpx.Response(204)

    sink = WebhookSink("http://127.0.0.1:9/hook", headers={"x-token": "t"}, transport=httpx.MockTransport(handler))
    await sink.send(Alert(severity="critical", title="down"))
    assert seen[0][0] == "/hook" and seen[0][1]["title"] == "down" and seen[0][2] == "t"


async def test_webhook_error_is_contained_by_manager(caplog):
    sink = WebhookSink("http://127.0.0.1:9/hook", transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    with pytest.raises(httpx.HTTPStatusError):
        await sink.send(Alert(severity="info", title="x"))
    other = ListSink()
    mgr = IncidentManager([sink, other], clock=FakeClock())
    with caplog.at_level(logging.WARNING):
        await mgr.alert(Alert(severity="info", title="x"))
    assert len(other.items) == 1 and "500" in caplog.text


async def test_escalating_the_same_key_reuses_the_open_incident():
    sink = ListSink()
    mgr = IncidentManager([sink], clock=FakeClock())
    first = await mgr.escalate("recovery failed", dedup_key="recovery:db")
    again = await mgr.escalate("recovery failed", "round 2", dedup_key="recovery:db")
    third = await mgr.escalate("recovery failed", dedup_key="recovery:db")
    other = await mgr.escalate("cache recovery failed", dedup_key="recovery:cache")
    assert again.id == third.id == first.id and other.id != first.id
    assert third.repeats == 2 and third.last_seen >= first.last_seen >= first.opened_at
    assert len(mgr.incidents) == 2 and mgr.open_for("recovery:db") == third
    incidents = [i for i in sink.items if i.kind == "incident"]
    assert [i.title for i in incidents] == ["recovery failed", "cache recovery failed"]  # repeats not re-sent


async def test_without_dedup_key_incidents_are_keyed_by_title_and_reopen_after_resolve():
    mgr = IncidentManager([ListSink()], clock=FakeClock())
    a = await mgr.escalate("pg down")
    assert (await mgr.escalate("pg down")).id == a.id
    assert await mgr.resolve_key(a.key, "back") is not None and mgr.open_for(a.key) is None
    b = await mgr.escalate("pg down")
    assert b.id != a.id and b.repeats == 0
    assert mgr.incidents[a.id].status is IncidentStatus.RESOLVED and await mgr.resolve_key("nope") is None
