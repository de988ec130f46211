"""The reference app's incident sinks, built from the `[incidents]` spec the harness hands over
(`IncidentsConfig.spec()`, as a private JSON file: a webhook token must not sit in argv)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from resilience.incidents import IncidentSink, JsonlSink, LogSink, WebhookSink


def build_sinks(spec: dict[str, Any] | None) -> list[IncidentSink]:
    """log / jsonl / webhook sinks, in the order configured; none for an empty or missing spec."""
    sinks: list[IncidentSink] = []
    for s in (spec or {}).get("sinks", ()):
        if s["kind"] == "log":
            sinks.append(LogSink())
        elif s["kind"] == "jsonl":
            sinks.append(JsonlSink(s["path"]))
        elif s["kind"] == "webhook":
            sinks.append(WebhookSink(s["url"], timeout=float(s.get("timeout", 2.0)), retries=int(s.get("retries", 0)),
                                     token=s.get("token"), token_header=s.get("header") or "Authorization"))
        else:
            raise ValueError(f"unknown incident sink kind {s['kind']!r}; allowed: log, jsonl, webhook")
    return sinks


def read_spec(path: str | Path | None) -> dict[str, Any] | None:
    return None if path is None else json.loads(Path(path).read_text())
