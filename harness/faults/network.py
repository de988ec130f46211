"""Network faults through any Toxiproxy API (a real Toxiproxy 2.x or the embedded server).

One class per toxic, named after its wire type, with the `stream`/`toxicity` of Toxiproxy's
ToxicWrapper; `ProxyDown` disables a whole proxy (toxiproxy-ruby's `down`)::

    client ──► proxy "pg" (listen 127.0.0.1:P) ──[upstream toxics]──► upstream 127.0.0.1:5432
           ◄──────────────────────────────────[downstream toxics]──◄

    with LatencyToxic("pg", latency=200, jitter=20, api=url, timeline=tl):
        ...   # every downstream byte of "pg" is 200 ± 20 ms late

Toxics get a name of their own (`chaosdrill_<type>_<stream>_<id>`) so cleanup removes exactly ours.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, ClassVar
from urllib.parse import urlsplit

import psutil

from harness.env.procs import listeners
from harness.errors import FaultRefused
from harness.faults.base import AllowList, Fault, require_loopback
from harness.faults.journal import undo_action
from harness.toxiproxy.client import DEFAULT_URL, ToxiproxyClient
from harness.toxiproxy.errors import AlreadyExists, ProxyNotFound, ToxicNotFound, ToxiproxyUnreachable
from harness.toxiproxy.models import STREAMS, Proxy

__all__ = [
    "BandwidthToxic",
    "LatencyToxic",
    "LimitDataToxic",
    "ProxyDown",
    "ResetPeerToxic",
    "SlicerToxic",
    "SlowCloseToxic",
    "TimeoutToxic",
    "ToxicFault",
]


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class _ProxyFault(Fault):
    """Shared by toxics and ProxyDown: which API, which proxy, and the loopback/allow-list checks."""

    def __init__(self, proxy: str, *, api: str | ToxiproxyClient = DEFAULT_URL, **kw: Any) -> None:
        super().__init__(**kw)
        self.proxy = proxy
        self._client = api if isinstance(api, ToxiproxyClient) else None
        self._owns_client = self._client is None
        self.api = api.url if isinstance(api, ToxiproxyClient) else str(api).rstrip("/")
        self.proxy_info: Proxy | None = None
        self.server: list[Any] | None = None

    def target_label(self) -> str:
        return self.proxy

    def client(self) -> ToxiproxyClient:
        if self._client is None:
            self._client = ToxiproxyClient(self.api)
        return self._client

    def _release(self) -> None:
        """Close a client this fault opened itself (after its revert)."""
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None

    def _check_api(self) -> None:
        require_loopback(urlsplit(self.api).hostname or "", f"{self.label}: Toxiproxy API {self.api}")

    def _prepare(self) -> None:
        self._check_api()
        self.server = _api_server(self.api)
        try:
            self.proxy_info = self.client().get_proxy(self.proxy)
        except ProxyNotFound:
            names = ", ".join(sorted(self.client().proxies())) or "none"
            raise FaultRefused(f"{self.label}: proxy {self.proxy!r} not found in {names} ({self.api})") from None

    def _check(self, allow: AllowList | None) -> None:
        assert self.proxy_info is not None
        upstream = _host_port(self.proxy_info.upstream)
        listen = _host_port(self.proxy_info.listen)
        require_loopback(upstream[0], f"{self.label}: upstream")
        if allow is not None and not (allow.has_endpoint(*upstream) or allow.has_endpoint(*listen)):
            allow.check_endpoint(*upstream, self.label)


class ToxicFault(_ProxyFault):
    """A toxic held on a proxy for the duration of the block."""

    type: ClassVar[str]

    def __init__(self, proxy: str, *, stream: str = "downstream", toxicity: float = 1.0,
                 name: str | None = None, attributes: dict[str, Any] | None = None, **kw: Any) -> None:
        super().__init__(proxy, **kw)
        if stream not in STREAMS:
            raise ValueError(f"stream must be one of: {', '.join(STREAMS)}; got: {stream!r}")
        if not 0.0 <= toxicity <= 1.0:
            raise ValueError(f"toxicity must be within 0.0..1.0; got: {toxicity!r}")
        self.stream = stream
        self.toxicity = toxicity
        self.attributes = dict(attributes or {})
        self.name = name or f"chaosdrill_{self.type}_{stream}_{self.id}"
        self._conflict = False

    def target_label(self) -> str:
        return f"{self.proxy}, {self.stream}"

    def _check(self, allow: AllowList | None) -> None:
        super()._check(allow)
        assert self.proxy_info is not None
        if any(t.name == self.name for t in self.proxy_info.toxics):
            raise FaultRefused(f"{self.label}: proxy {self.proxy!r} already has a toxic named {self.name!r}")

    def journal_record(self) -> dict[str, Any]:
        return {"type": "toxic", "api": self.api, "proxy": self.proxy, "toxic": self.name, "server": self.server}

    def _apply(self) -> None:
        try:
            self.client().add_toxic(self.proxy, self.type, name=self.name, stream=self.stream,
                                    toxicity=self.toxicity, attributes=self.attributes)
        except AlreadyExists:
            self._conflict = True  # someone else's toxic of that name: never remove it
            raise

    def _revert(self) -> None:
        try:
            if not self._conflict:
                _remove_toxic(self.client(), self.proxy, self.name)
        finally:
            self._release()

    def __repr__(self) -> str:
        return f"<{self.label} {self.type} {self.attributes} toxicity={self.toxicity} {self.state.value}>"


def _remove_toxic(client: ToxiproxyClient, proxy: str, toxic: str) -> bool:
    try:
        client.remove_toxic(proxy, toxic)
    except (ToxicNotFound, ProxyNotFound):
        return False
    return True


class LatencyToxic(ToxicFault):
    """Delay every chunk by `latency` ± `jitter` ms."""

    type = "latency"

    def __init__(self, proxy: str, *, latency: int, jitter: int = 0, **kw: Any) -> None:
        super().__init__(proxy, attributes={"latency": int(latency), "jitter": int(jitter)}, **kw)


class BandwidthToxic(ToxicFault):
    """Cap throughput at `rate` KB/s (1 KB = 1000 bytes)."""

    type = "bandwidth"

    def __init__(self, proxy: str, *, rate: int, **kw: Any) -> None:
        super().__init__(proxy, attributes={"rate": int(rate)}, **kw)


class SlowCloseToxic(ToxicFault):
    """Hold the FIN back for `delay` ms."""

    type = "slow_close"

    def __init__(self, proxy: str, *, delay: int, **kw: Any) -> None:
        super().__init__(proxy, attributes={"delay": int(delay)}, **kw)


class TimeoutToxic(ToxicFault):
    """Drop all data; close after `timeout` ms (0: hold the connection open forever)."""

    type = "timeout"

    def __init__(self, proxy: str, *, timeout: int = 0, **kw: Any) -> None:
        super().__init__(proxy, attributes={"timeout": int(timeout)}, **kw)


class ResetPeerToxic(ToxicFault):
    """Reset the connection (RST) `timeout` ms after the first data."""

    type = "reset_peer"

    def __init__(self, proxy: str, *, timeout: int = 0, **kw: Any) -> None:
        super().__init__(proxy, attributes={"timeout": int(timeout)}, **kw)


class SlicerToxic(ToxicFault):
    """Cut data into `average_size` ± `size_variation` byte pieces, `delay` microseconds apart."""

    type = "slicer"

    def __init__(self, proxy: str, *, average_size: int, size_variation: int = 0, delay: int = 0,
                 **kw: Any) -> None:
        attrs = {"average_size": int(average_size), "size_variation": int(size_variation), "delay": int(delay)}
        super().__init__(proxy, attributes=attrs, **kw)


class LimitDataToxic(ToxicFault):
    """Close the connection after `bytes` bytes."""

    type = "limit_data"

    def __init__(self, proxy: str, *, bytes: int, **kw: Any) -> None:  # noqa: A002 - the wire name
        super().__init__(proxy, attributes={"bytes": int(bytes)}, **kw)


class ProxyDown(_ProxyFault):
    """Disable a proxy (listener and every open connection closed); re-enable it on the way out."""

    def journal_record(self) -> dict[str, Any]:
        return {"type": "proxy_disabled", "api": self.api, "proxy": self.proxy, "server": self.server}

    def _apply(self) -> None:
        self.client().disable_proxy(self.proxy)

    def _revert(self) -> None:
        try:
            _enable(self.client(), self.proxy)
        finally:
            self._release()


def _enable(client: ToxiproxyClient, proxy: str) -> bool:
    try:
        client.enable_proxy(proxy)
    except ProxyNotFound:
        return False
    return True


def _api_server(api: str) -> list[Any] | None:
    """[pid, start time] of the process serving the Toxiproxy API on this host (the embedded server,
    or a real one on loopback), so cleanup can tell "API down for a moment" from "server gone"."""
    port = urlsplit(api).port
    pid = listeners({port}).get(port) if port else None
    if pid is None:
        return None
    try:
        return [pid, psutil.Process(pid).create_time()]
    except psutil.Error:
        return None


def _server_gone(record: dict[str, Any]) -> bool:
    """True when the recorded API server process no longer runs (same pid and start time)."""
    server = record.get("server")
    if not server:
        return False  # unknown server: it may come back, so keep the entry
    pid, start = int(server[0]), server[1]
    try:
        proc = psutil.Process(pid)
        return abs(proc.create_time() - float(start)) > 0.01 or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


@contextlib.contextmanager
def _api(record: dict[str, Any]) -> Iterator[ToxiproxyClient]:
    require_loopback(urlsplit(record["api"]).hostname or "", f"Toxiproxy API {record['api']}")
    with ToxiproxyClient(record["api"]) as client:
        yield client


def _via_api(record: dict[str, Any], what: str, act: Callable[[ToxiproxyClient], bool]) -> bool | str:
    """Run an undo against the recorded API. Unreachable because its (embedded) server died with
    the harness: nothing of the fault is left, so say so (a str) instead of failing forever."""
    try:
        with _api(record) as client:
            return act(client)
    except ToxiproxyUnreachable:
        if _server_gone(record):
            return f"{what} gone with its server (pid {record['server'][0]} no longer runs; {record['api']} unreachable)"
        raise


@undo_action("toxic")
def undo_toxic(record: dict[str, Any]) -> str:
    what = f"toxic {record['toxic']} of proxy {record['proxy']} at {record['api']}"
    removed = _via_api(record, what, lambda client: _remove_toxic(client, record["proxy"], record["toxic"]))
    return removed if isinstance(removed, str) else f"{'removed' if removed else 'already gone:'} {what}"


@undo_action("proxy_disabled")
def undo_proxy_disabled(record: dict[str, Any]) -> str:
    what = f"proxy {record['proxy']} at {record['api']}"
    found = _via_api(record, f"disabled {what}", lambda client: _enable(client, record["proxy"]))
    return found if isinstance(found, str) else f"{'enabled' if found else 'no longer exists:'} {what}"
