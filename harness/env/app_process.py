"""The reference app and the embedded Toxiproxy server as detached child processes."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import httpx

from harness.config import AppConfig, IncidentsConfig
from harness.env.child import ChildProcess
from harness.env.ports import LOOPBACK


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


class AppProcess(ChildProcess):
    """`python -m harness.app`, talking to PostgreSQL and Redis at the given (maybe proxied) addresses."""

    name = "app"

    def __init__(self, base: Path, port: int, pg_dsn: str, redis_url: str, settings: AppConfig | None = None,
                 incidents: IncidentsConfig | None = None) -> None:
        super().__init__(base, port)
        self.pg_dsn = pg_dsn
        self.redis_url = redis_url
        self.settings = settings or AppConfig()
        self.incidents = incidents

    def _incidents_file(self) -> list[str]:
        """`--incidents FILE` when sinks are configured: an owner-only JSON file (a webhook token is
        never put in argv, which every local user can read)."""
        if self.incidents is None or not self.incidents.sinks:
            return []
        self.base.mkdir(parents=True, exist_ok=True)
        path = self.base / "incidents.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(self.incidents.spec(), fh)
        return ["--incidents", str(path)]

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def events(self) -> Path:
        return self.base / "app-events.jsonl"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "harness.app", "--host", LOOPBACK, "--port", str(self.port),
                "--pg-dsn", self.pg_dsn, "--redis-url", self.redis_url, "--events", str(self.events),
                "--breaker-failure-threshold", str(self.settings.breaker_failure_threshold),
                "--breaker-wait-in-open", str(self.settings.breaker_wait_in_open),
                "--recovery-attempts", str(self.settings.recovery_attempts),
                "--recovery-wait", str(self.settings.recovery_wait), *self._incidents_file()]

    def ready(self) -> bool:
        return _answers(f"{self.url}/metrics")


class ToxiproxyProcess(ChildProcess):
    """The embedded Toxiproxy-compatible server (`chaosdrill toxiproxy`) on a loopback API port."""

    name = "toxiproxy"
    start_timeout = 30.0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "harness.cli_main", "toxiproxy", "--host", LOOPBACK, "--port", str(self.port)]

    def ready(self) -> bool:
        return _answers(f"{self.url}/version")
