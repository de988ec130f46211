"""Alerts and incidents, delivered to pluggable sinks with de-duplication.

    IncidentManager.alert(Alert) ──dedup(key, window)──► sinks: LogSink, JsonlSink, WebhookSink
    IncidentManager.escalate(...) = a CRITICAL alert + an Incident opened in the same sinks;
        a repeat of an open incident's key counts on that incident instead of opening another

A sink that fails is logged and skipped: reporting a problem must not cause another one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from resilience.clock import Clock, SystemClock

__all__ = [
    "Alert",
    "Incident",
    "IncidentManager",
    "IncidentSink",
    "IncidentStatus",
    "JsonlSink",
    "LogSink",
    "Severity",
    "WebhookError",
    "WebhookSink",
]

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    @property
    def log_level(self) -> int:
        return {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR,
                "critical": logging.CRITICAL}[self.value]


class IncidentStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class Alert(BaseModel):
    """Something happened that a person may need to know about."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    severity: Severity
    title: str = Field(min_length=1)
    description: str = ""
    context: dict[str, Any] = Field(default_factory=dict)
    source: str = "resilience"
    created_at: datetime = Field(default_factory=_utcnow)
    dedup_key: str | None = None

    @property
    def key(self) -> str:
        """Repeats share a key: the explicit ``dedup_key``, else source + severity + title."""
        return self.dedup_key or f"{self.source}:{self.severity.value}:{self.title}"

    kind: Literal["alert"] = "alert"


class Incident(BaseModel):
    """A problem that needs follow-up; opened on escalation, resolved later."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12])
    severity: Severity
    title: str = Field(min_length=1)
    description: str = ""
    context: dict[str, Any] = Field(default_factory=dict)
    status: IncidentStatus = IncidentStatus.OPEN
    opened_at: datetime = Field(default_factory=_utcnow)
    resolved_at: datetime | None = None
    resolution: str | None = None
    key: str | None = None
    repeats: int = Field(0, ge=0)
    last_seen: datetime | None = None
    kind: Literal["incident"] = "incident"

    def resolve(self, resolution: str = "") -> Incident:
        return self.model_copy(update={"status": IncidentStatus.RESOLVED, "resolved_at": _utcnow(),
                                       "resolution": resolution})

    def repeated(self) -> Incident:
        """The same problem seen again while open: one more repeat, a newer ``last_seen``."""
        return self.model_copy(update={"repeats": self.repeats + 1, "last_seen": _utcnow()})


@runtime_checkable
class IncidentSink(Protocol):
    """Where alerts and incidents go. ``send`` should not raise; the manager guards it anyway."""

    async def send(self, item: Alert | Incident) -> None: ...


class LogSink:
    """Logs each item at its severity's level, with the JSON as structured ``extra``."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("resilience.incidents.sink")

    async def send(self, item: Alert | Incident) -> None:
        state = f" [{item.status.value}]" if isinstance(item, Incident) else ""
        self.logger.log(item.severity.log_level, "%s %s%s: %s", item.kind, item.title, state,
                        item.description, extra={"incident": item.model_dump(mode="json")})


class JsonlSink:
    """Appends one JSON object per line; a drill report can read the file afterwards."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = asyncio.Lock()

    async def send(self, item: Alert | Incident) -> None:
        line = json.dumps(item.model_dump(mode="json"), sort_keys=True) + "\n"
        async with self._lock:
            await asyncio.to_thread(self._append, line)

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line]


class WebhookError(httpx.HTTPError):
    """The webhook could not be reached; the message names its scheme, host and port only."""


class WebhookSink:
    """POSTs the item as JSON, each attempt bounded by ``timeout``; the manager logs a final failure.

    ``retries`` more attempts (default 0) follow a connection error, a timeout, an HTTP 5xx or 429,
    ``retry_wait`` × attempt seconds apart; any other 4xx is final (retrying cannot fix it).

    ``token`` (a str or pydantic ``SecretStr``) is sent as ``token_header``: "Authorization: Bearer
    <token>" by default, or the bare token in any other header (e.g. ``token_header="X-Token"``).
    The token, every header value and the URL's path and query (a Slack-style URL is itself a
    secret) never appear in the sink's repr or in an error it raises, so never in a log.
    """

    def __init__(self, url: str, *, timeout: float = 2.0, headers: dict[str, str] | None = None,
                 token: str | SecretStr | None = None, token_header: str = "Authorization",
                 retries: int = 0, retry_wait: float = 0.2,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        if retries < 0 or retry_wait < 0:
            raise ValueError(f"WebhookSink: retries and retry_wait must be >= 0, got {retries!r}, {retry_wait!r}")
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.retry_wait = retry_wait
        self.headers = dict(headers or {})
        self.token = SecretStr(token) if isinstance(token, str) else token
        self.token_header = token_header
        self._transport = transport

    @property
    def where(self) -> str:
        """scheme://host:port of the webhook: what is safe to show."""
        u = httpx.URL(self.url)
        return f"{u.scheme}://{u.host}" + (f":{u.port}" if u.port else "")

    def __repr__(self) -> str:
        return f"WebhookSink({self.where!r})"

    def _headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.token is not None:
            secret = self.token.get_secret_value()
            headers[self.token_header] = f"Bearer {secret}" if self.token_header.lower() == "authorization" else secret
        return headers

    def _scrub(self, text: str) -> str:
        secrets = [v for v in self.headers.values() if v]
        if self.token is not None:
            secrets.append(self.token.get_secret_value())
        u = httpx.URL(self.url)
        secrets += [self.url, str(u.raw_path, "ascii") if u.raw_path not in (b"", b"/") else ""]
        for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
            text = text.replace(secret, "**********")
        return text

    async def send(self, item: Alert | Incident) -> None:
        for attempt in range(1, self.retries + 2):
            try:
                await self._post(item)
                return
            except WebhookError:
                if attempt > self.retries:
                    raise
            except httpx.HTTPStatusError as exc:
                if attempt > self.retries or not (exc.response.status_code >= 500 or exc.response.status_code == 429):
                    raise
            log.info("webhook %s: attempt %d of %d failed; retrying", self.where, attempt, self.retries + 1)
            await asyncio.sleep(self.retry_wait * attempt)

    async def _post(self, item: Alert | Incident) -> None:
        async with httpx.AsyncClient(timeout=self.timeout, transport=self._transport) as client:
            try:
                response = await client.post(self.url, json=item.model_dump(mode="json"), headers=self._headers())
            except httpx.HTTPError as exc:
                raise WebhookError(self._scrub(f"webhook {self.where}: {type(exc).__name__}: {exc}")) from None
            if response.is_error:
                raise httpx.HTTPStatusError(f"webhook {self.where}: HTTP {response.status_code}",
                                            request=response.request, response=response)


class IncidentManager:
    """Fans alerts out to sinks, suppressing repeats of the same key within ``dedup_window`` seconds."""

    def __init__(self, sinks: Iterable[IncidentSink] = (), *, dedup_window: float = 300.0,
                 clock: Clock | None = None) -> None:
        if dedup_window < 0:
            raise ValueError(f"IncidentManager.dedup_window must be seconds >= 0, got {dedup_window!r}")
        self.sinks = list(sinks)
        self.dedup_window_ns = round(dedup_window * 1e9)
        self.clock = clock or SystemClock()
        self._last_sent: dict[str, int] = {}
        self.suppressed: dict[str, int] = {}
        self.incidents: dict[str, Incident] = {}
        self._open_by_key: dict[str, str] = {}  # key -> id of the open incident for it

    async def alert(self, alert: Alert) -> bool:
        """Deliver unless a same-key alert went out within the window; True if delivered."""
        now = self.clock.monotonic_ns()
        last = self._last_sent.get(alert.key)
        if last is not None and now - last < self.dedup_window_ns:
            self.suppressed[alert.key] = self.suppressed.get(alert.key, 0) + 1
            return False
        self._last_sent[alert.key] = now
        repeats = self.suppressed.pop(alert.key, 0)
        if repeats:
            alert = alert.model_copy(update={"context": {**alert.context, "suppressed_repeats": repeats}})
        await self._fan_out(alert)
        return True

    async def open_incident(self, incident: Incident) -> Incident:
        """Open `incident`, or count a repeat on the open incident with the same ``key``.

        A repeat is not sent to the sinks again (a retry loop would flood them); it updates
        ``repeats`` and ``last_seen`` of the stored incident, which is returned.
        """
        if incident.key is not None:
            open_id = self._open_by_key.get(incident.key)
            if open_id is not None:
                current = self.incidents[open_id].repeated()
                self.incidents[open_id] = current
                return current
            self._open_by_key[incident.key] = incident.id
        if incident.last_seen is None:
            incident = incident.model_copy(update={"last_seen": incident.opened_at})
        self.incidents[incident.id] = incident
        await self._fan_out(incident)
        return incident

    def open_for(self, key: str) -> Incident | None:
        """The open incident with this key, if any."""
        open_id = self._open_by_key.get(key)
        return None if open_id is None else self.incidents[open_id]

    async def resolve(self, incident_id: str, resolution: str = "") -> Incident:
        incident = self.incidents[incident_id].resolve(resolution)
        self.incidents[incident_id] = incident
        if incident.key is not None and self._open_by_key.get(incident.key) == incident_id:
            del self._open_by_key[incident.key]
        await self._fan_out(incident)
        return incident

    async def resolve_key(self, key: str, resolution: str = "") -> Incident | None:
        """Resolve the open incident with this key (e.g. recovery succeeded); None if there is none."""
        open_id = self._open_by_key.get(key)
        return None if open_id is None else await self.resolve(open_id, resolution)

    async def escalate(self, title: str, description: str = "", context: dict[str, Any] | None = None,
                       *, dedup_key: str | None = None) -> Incident:
        """A critical alert plus an incident: what happens when automatic recovery gives up.

        Incidents are keyed by ``dedup_key`` (else severity + title), so escalating the same
        problem again while its incident is open updates that incident instead of opening another.
        """
        ctx = dict(context or {})
        key = dedup_key or f"{Severity.CRITICAL.value}:{title}"
        await self.alert(Alert(severity=Severity.CRITICAL, title=title, description=description,
                               context=ctx, dedup_key=dedup_key))
        return await self.open_incident(Incident(severity=Severity.CRITICAL, title=title,
                                                 description=description, context=ctx, key=key))

    async def _fan_out(self, item: Alert | Incident) -> None:
        results = await asyncio.gather(*(sink.send(item) for sink in self.sinks), return_exceptions=True)
        for sink, result in zip(self.sinks, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("incident sink %r failed for %s %r: %r", sink, item.kind, item.title, result)
