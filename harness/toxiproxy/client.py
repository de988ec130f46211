"""A thin client for the Toxiproxy HTTP API (real Toxiproxy 2.x or our embedded server).

Each public method builds a `_Call` (method, path, body, how to read the answer); the sync and
async clients differ only in how they send it, so the two cannot drift apart. Every httpx error
and every non-2xx answer is translated in one place, `_raise_for`, into the `ToxiproxyError`
tree, keeping the server's own error text.

    with ToxiproxyClient("http://127.0.0.1:8474") as tp:
        p = tp.create_proxy("pg", listen="127.0.0.1:0", upstream="127.0.0.1:5432")
        tp.add_toxic("pg", "latency", attributes={"latency": 200})
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from harness.toxiproxy.errors import (
    AlreadyExists,
    BadRequest,
    ProxyNotFound,
    ToxicNotFound,
    ToxiproxyError,
    ToxiproxyServerError,
    ToxiproxyUnreachable,
)
from harness.toxiproxy.models import Proxy, Toxic

__all__ = ["AsyncToxiproxyClient", "ToxiproxyClient", "DEFAULT_URL", "DEFAULT_TIMEOUT"]

DEFAULT_URL = "http://127.0.0.1:8474"
# Upstream's API has a 25 s handler timeout; our calls should fail well before a drill stalls.
DEFAULT_TIMEOUT = 10.0
_USER_AGENT = "chaosdrill-toxiproxy-client"  # never "Mozilla/...": the server answers those with 403


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    parse: Callable[[httpx.Response], Any]
    body: Any = None
    has_body: bool = False


def _q(name: str) -> str:
    return quote(name, safe="")


def _raise_for(response: httpx.Response) -> None:
    """Map a non-2xx answer to the exception tree; the one boundary for HTTP statuses."""
    if response.is_success:
        return
    status = response.status_code
    text = response.text
    body: Any = None
    message = text.strip()
    try:
        body = json.loads(text)
        if isinstance(body, dict) and "error" in body:
            message = str(body["error"])
    except ValueError:
        pass
    if status == 400:
        exc: ToxiproxyError = BadRequest(message, status, body=body)
    elif status == 404:
        exc = (ToxicNotFound if "toxic" in message else ProxyNotFound)(message, status, body=body)
    elif status == 409:
        exc = AlreadyExists(message, status, body=body)
    elif status >= 500:
        exc = ToxiproxyServerError(message, status, body=body)
    else:
        exc = ToxiproxyError(message, status, body=body)
    if isinstance(body, dict) and isinstance(body.get("proxies"), list):
        exc.proxies = [Proxy.from_json(p) for p in body["proxies"]]
    raise exc


def _unreachable(exc: httpx.HTTPError, url: str) -> ToxiproxyUnreachable:
    return ToxiproxyUnreachable(f"toxiproxy at {url} unreachable: {type(exc).__name__}: {exc}")


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise ToxiproxyServerError(
            f"invalid JSON from server: {response.text[:200]!r}", response.status_code
        ) from exc


def _none(_: httpx.Response) -> None:
    return None


def _proxy(r: httpx.Response) -> Proxy:
    return Proxy.from_json(_json(r))


def _toxic(r: httpx.Response) -> Toxic:
    return Toxic.from_json(_json(r))


def _proxy_spec(p: Proxy | Mapping[str, Any]) -> dict[str, Any]:
    return p.to_json() if isinstance(p, Proxy) else dict(p)


class _Api:
    """Every route of the API, as `_Call`s; subclasses decide how to send them."""

    def _do(self, call: _Call) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def version(self) -> str:
        """The server's version string, e.g. "2.12.0"."""
        return self._do(_Call("GET", "/version", lambda r: _json(r).get("version", "")))

    def proxies(self) -> dict[str, Proxy]:
        """All proxies by name."""
        return self._do(
            _Call("GET", "/proxies", lambda r: {k: Proxy.from_json(v) for k, v in _json(r).items()})
        )

    def create_proxy(
        self, name: str, *, upstream: str, listen: str = "127.0.0.1:0", enabled: bool = True
    ) -> Proxy:
        """Create a proxy (201); `listen` defaults to a free loopback port."""
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled}
        return self._do(_Call("POST", "/proxies", _proxy, body, True))

    def get_proxy(self, name: str) -> Proxy:
        return self._do(_Call("GET", f"/proxies/{_q(name)}", _proxy))

    def update_proxy(
        self,
        name: str,
        *,
        listen: str | None = None,
        upstream: str | None = None,
        enabled: bool | None = None,
    ) -> Proxy:
        """PATCH: only the given fields change; a new listen/upstream restarts the listener."""
        body = {
            k: v
            for k, v in (("listen", listen), ("upstream", upstream), ("enabled", enabled))
            if v is not None
        }
        return self._do(_Call("PATCH", f"/proxies/{_q(name)}", _proxy, body, True))

    def enable_proxy(self, name: str) -> Proxy:
        return self.update_proxy(name, enabled=True)

    def disable_proxy(self, name: str) -> Proxy:
        """Close the listener and every open connection of the proxy."""
        return self.update_proxy(name, enabled=False)

    def delete_proxy(self, name: str) -> None:
        return self._do(_Call("DELETE", f"/proxies/{_q(name)}", _none))

    def populate(self, proxies: Iterable[Proxy | Mapping[str, Any]]) -> list[Proxy]:
        """Create or replace many proxies; unchanged ones keep their toxics."""
        body = [_proxy_spec(p) for p in proxies]
        return self._do(
            _Call(
                "POST",
                "/populate",
                lambda r: [Proxy.from_json(p) for p in _json(r).get("proxies") or ()],
                body,
                True,
            )
        )

    def toxics(self, proxy: str) -> list[Toxic]:
        """Upstream toxics first, then downstream, each in insertion order."""
        return self._do(
            _Call("GET", f"/proxies/{_q(proxy)}/toxics", lambda r: [Toxic.from_json(t) for t in _json(r)])
        )

    def add_toxic(
        self,
        proxy: str,
        type: str,
        *,
        name: str | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
        attributes: Mapping[str, Any] | None = None,
    ) -> Toxic:
        """Add a toxic; the server names it "{type}_{stream}" when `name` is None."""
        body: dict[str, Any] = {
            "type": type,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": dict(attributes or {}),
        }
        if name is not None:
            body["name"] = name
        return self._do(_Call("POST", f"/proxies/{_q(proxy)}/toxics", _toxic, body, True))

    def get_toxic(self, proxy: str, name: str) -> Toxic:
        return self._do(_Call("GET", f"/proxies/{_q(proxy)}/toxics/{_q(name)}", _toxic))

    def update_toxic(
        self,
        proxy: str,
        name: str,
        *,
        attributes: Mapping[str, Any] | None = None,
        toxicity: float | None = None,
    ) -> Toxic:
        """Merge `attributes` into the toxic's and optionally change toxicity; type/stream cannot change."""
        body: dict[str, Any] = {}
        if attributes is not None:
            body["attributes"] = dict(attributes)
        if toxicity is not None:
            body["toxicity"] = toxicity
        return self._do(_Call("PATCH", f"/proxies/{_q(proxy)}/toxics/{_q(name)}", _toxic, body, True))

    def remove_toxic(self, proxy: str, name: str) -> None:
        return self._do(_Call("DELETE", f"/proxies/{_q(proxy)}/toxics/{_q(name)}", _none))

    def reset(self) -> None:
        """Enable every proxy and remove all toxics (proxies are kept)."""
        return self._do(_Call("POST", "/reset", _none))

    def metrics(self) -> str:
        """Prometheus text; a server without its metrics flag answers 404 (`ProxyNotFound`)."""
        return self._do(_Call("GET", "/metrics", lambda r: r.text))


def _request_kwargs(call: _Call) -> dict[str, Any]:
    if not call.has_body:
        return {}
    return {"content": json.dumps(call.body).encode(), "headers": {"Content-Type": "application/json"}}


class ToxiproxyClient(_Api):
    """Synchronous client; use as a context manager or call `close()`."""

    def __init__(
        self, url: str = DEFAULT_URL, *, timeout: float = DEFAULT_TIMEOUT, transport: Any = None
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, timeout=timeout, headers={"User-Agent": _USER_AGENT}, transport=transport
        )

    def _do(self, call: _Call) -> Any:
        try:
            response = self._http.request(call.method, call.path, **_request_kwargs(call))
        except httpx.HTTPError as exc:
            raise _unreachable(exc, self.url) from exc
        _raise_for(response)
        return call.parse(response)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ToxiproxyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ToxiproxyClient({self.url!r})"


class AsyncToxiproxyClient(_Api):
    """The same API, every method awaitable; `async with` or `await aclose()`."""

    def __init__(
        self, url: str = DEFAULT_URL, *, timeout: float = DEFAULT_TIMEOUT, transport: Any = None
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.url, timeout=timeout, headers={"User-Agent": _USER_AGENT}, transport=transport
        )

    async def _send(self, call: _Call) -> Any:
        try:
            response = await self._http.request(call.method, call.path, **_request_kwargs(call))
        except httpx.HTTPError as exc:
            raise _unreachable(exc, self.url) from exc
        _raise_for(response)
        return call.parse(response)

    def _do(self, call: _Call) -> Any:
        return self._send(call)

    async def enable_proxy(self, name: str) -> Proxy:  # type: ignore[override]
        return await self.update_proxy(name, enabled=True)

    async def disable_proxy(self, name: str) -> Proxy:  # type: ignore[override]
        return await self.update_proxy(name, enabled=False)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncToxiproxyClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncToxiproxyClient({self.url!r})"
