"""Proxies and their toxics: the model behind the API (upstream's proxy.go, toxic_collection.go,
proxy_collection.go), raising `ApiError`s whose text and status match real Toxiproxy.

A `LiveProxy` owns a listener and its connections; its `ToxicCollection` holds one chain per
direction, each headed by the hidden noop, and forwards every change to the live links.
Listen addresses are parsed, resolved and bound here so that failures read like Go's `net`
errors ("listen tcp 127.0.0.1:8474: bind: address already in use").

Loopback by default: an empty listen host (":8080", "") binds 127.0.0.1, where real
Toxiproxy would bind every interface. Other addresses are bound as asked, not refused.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import socket
from collections.abc import Iterable
from typing import Any

from harness.toxiproxy import gojson
from harness.toxiproxy.gojson import Field, GoJSONError, Struct
from harness.toxiproxy.metrics import ProxyMetrics
from harness.toxiproxy.pipeline import Connection, Link
from harness.toxiproxy.toxics import DOWNSTREAM, NOOP_WRAPPER, TOXICS, UPSTREAM, ToxicWrapper

__all__ = ["ApiError", "LiveProxy", "ProxyCollection", "ToxicCollection", "bind_listener", "check_name"]

_RECONFIGURE_WAIT = 2.0  # seconds an API call waits for live connections to take a toxic change


class ApiError(Exception):
    """An error the API reports as `{"error": message, "status": status}`."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def join(self, cause: str) -> ApiError:
        """Upstream's joinError: "bad request body: <cause>"."""
        return ApiError(f"{self.message}: {cause}", self.status)


ERR_BAD_REQUEST_BODY = ApiError("bad request body", 400)
ERR_MISSING_FIELD = ApiError("missing required field", 400)
ERR_PROXY_NOT_FOUND = ApiError("proxy not found", 404)
ERR_PROXY_EXISTS = ApiError("proxy already exists", 409)
ERR_INVALID_STREAM = ApiError("stream was invalid, can be either upstream or downstream", 400)
ERR_INVALID_TOXIC_TYPE = ApiError("invalid toxic type", 400)
ERR_TOXIC_EXISTS = ApiError("toxic already exists", 409)
ERR_TOXIC_NOT_FOUND = ApiError("toxic not found", 404)

PROXY_SCHEMA = Struct(
    "Proxy",
    (
        Field("name", "string"),
        Field("listen", "string"),
        Field("upstream", "string"),
        Field("enabled", "bool"),
    ),
    "toxiproxy.Proxy",
)
POPULATE_SCHEMA = (
    "array",
    Struct("", PROXY_SCHEMA.fields, 'struct { toxiproxy.Proxy; Enabled *bool "json:\\"enabled\\"" }'),
    '[]struct { toxiproxy.Proxy; Enabled *bool "json:\\"enabled\\"" }',
)
_NOOP_STRUCT = Struct("NoopToxic", (), "toxics.NoopToxic")
TOXIC_SCHEMA = Struct(
    "ToxicWrapper",
    (
        Field("attributes", _NOOP_STRUCT),
        Field("name", "string"),
        Field("type", "string"),
        Field("stream", "string"),
        Field("toxicity", "float32"),
    ),
    "toxics.ToxicWrapper",
)


MAX_NAME_BYTES = 4096  # percent-encoded (up to 3 × as long), a proxy and a toxic name fit any client's URL


def _decode(body: bytes, schema: Any) -> Any:
    try:
        value = gojson.decode(body, schema)
    except GoJSONError as exc:
        raise ERR_BAD_REQUEST_BODY.join(str(exc)) from None
    if value is None and isinstance(schema, Struct):
        return {}  # a JSON null leaves Go's struct as it was: every field absent
    return value


def check_name(name: str, what: str = "proxy") -> None:
    """Refuse (400) a name that no URL could address again, so whatever is created can be read
    and deleted. Upstream accepts these and then cannot route to them (a deliberate difference)."""
    if "/" in name:
        why = "it contains '/'"
    elif name in (".", ".."):
        why = f"'{name}' is a path segment"
    elif len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        why = f"it is longer than {MAX_NAME_BYTES} bytes"
    else:
        return
    raise ApiError(f"invalid {what} name: {why}", 400)


# --- listening, with Go's error wording ---------------------------------------------------------
def _resolver() -> str:
    try:
        with open("/etc/resolv.conf") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    return f"[{parts[1]}]:53" if ":" in parts[1] else f"{parts[1]}:53"
    except OSError:
        pass
    return "127.0.0.1:53"


def _split_host_port(addr: str) -> tuple[str, str]:
    """Go's net.SplitHostPort, raising its messages."""

    def fail(why: str) -> ApiError:
        return ApiError(f"listen tcp: address {addr}: {why}")

    i = addr.rfind(":")
    if i < 0:
        raise fail("missing port in address")
    if addr.startswith("["):
        end = addr.find("]")
        if end < 0:
            raise fail("missing ']' in address")
        if end + 1 == len(addr):
            raise fail("missing port in address")
        if end + 1 != i:
            raise fail("too many colons in address" if addr[end + 1] == ":" else "missing port in address")
        host = addr[1:end]
        if "[" in addr[1:] or "]" in addr[end + 1 :]:
            raise fail("unexpected '[' in address")
    else:
        host = addr[:i]
        if ":" in host:
            raise fail("too many colons in address")
        if "[" in host:
            raise fail("unexpected '[' in address")
        if "]" in host:
            raise fail("unexpected ']' in address")
    return host, addr[i + 1 :]


def _fmt(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


async def resolve_listen(addr: str) -> tuple[str, int]:
    """Host and port the way Go's net.Listen("tcp", addr) would pick them (empty host: loopback)."""
    if addr == "":
        return "127.0.0.1", 0  # Go listens on every interface here; we stay on loopback
    host, port_s = _split_host_port(addr)
    if port_s == "":
        port = 0
    elif port_s.isdigit() and port_s.isascii():
        port = int(port_s)
        if port > 0xFFFF:
            raise ApiError(f"listen tcp: address {port_s}: invalid port")
    else:
        try:
            port = socket.getservbyname(port_s, "tcp")
        except (OSError, UnicodeError):
            raise ApiError(f"listen tcp: lookup tcp/{port_s}: unknown port") from None
    if host == "":
        return "127.0.0.1", port
    try:
        return str(ipaddress.ip_address(host.split("%")[0])), port
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        infos = []
    ips = [i[4][0] for i in infos if i[0] == socket.AF_INET] or [i[4][0] for i in infos]
    if not ips:
        raise ApiError(f"listen tcp: lookup {host} on {_resolver()}: no such host")
    return ips[0], port


async def bind_listener(addr: str) -> tuple[socket.socket, str]:
    """A bound, listening socket for `addr` and its resolved "ip:port"; ApiError(500) as Go words it."""
    ip, port = await resolve_listen(addr)
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Go does on Linux
        sock.bind((ip, port))
        sock.listen(socket.SOMAXCONN)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        why = os.strerror(exc.errno or errno.EINVAL)
        raise ApiError(f"listen tcp {_fmt(ip, port)}: bind: {why[:1].lower()}{why[1:]}") from None
    name = sock.getsockname()
    return sock, _fmt(name[0], name[1])


# --- toxics ----------------------------------------------------------------------------------------
def _direction(stream: str) -> int:
    s = stream.lower()
    if s == "upstream":
        return UPSTREAM
    if s == "downstream":
        return DOWNSTREAM
    raise ERR_INVALID_STREAM


class ToxicCollection:
    """The two chains of one proxy and the live links they drive."""

    def __init__(self, proxy: LiveProxy) -> None:
        self.proxy = proxy
        self.chain: list[list[ToxicWrapper]] = [[NOOP_WRAPPER], [NOOP_WRAPPER]]
        self.links: set[Link] = set()

    def all(self) -> list[ToxicWrapper]:
        return self.chain[UPSTREAM][1:] + self.chain[DOWNSTREAM][1:]

    def find(self, name: str) -> ToxicWrapper | None:
        for w in self.all():
            if w.name == name:
                return w
        return None

    async def _apply(self, op: str, wrapper: ToxicWrapper) -> None:
        tasks = [
            t
            for link in list(self.links)
            if link.direction == wrapper.direction and (t := link.schedule(op, wrapper))
        ]
        if tasks:
            await asyncio.wait(set(tasks), timeout=_RECONFIGURE_WAIT)

    async def add_json(self, body: bytes) -> ToxicWrapper:
        data = _decode(body, TOXIC_SCHEMA)
        stream = data.get("stream")
        stream = "downstream" if stream is None else stream
        toxicity = data.get("toxicity")
        toxicity = 1.0 if toxicity is None else toxicity
        direction = _direction(stream)
        type_ = data.get("type") or ""
        name = data.get("name") or f"{type_}_{stream}"
        cls = TOXICS.get(type_)
        if cls is None:
            raise ERR_INVALID_TOXIC_TYPE
        check_name(name, "toxic")
        if self.find(name) is not None:
            raise ERR_TOXIC_EXISTS
        attrs = self._attributes(body, cls, {})
        wrapper = ToxicWrapper(name, type_, stream, toxicity, direction, cls(**attrs))
        self.chain[direction].append(wrapper)
        await self._apply("add", wrapper)
        return wrapper

    @staticmethod
    def _attributes(body: bytes, cls: type, current: dict[str, int]) -> dict[str, int]:
        """Decode `attributes` against the toxic's Go struct, merged over `current`."""
        raw = gojson.decode(body, Struct("", (Field("attributes", "any"),)))  # syntax already checked
        attrs = raw.get("attributes") if isinstance(raw, dict) else None
        try:
            parsed = gojson.check(attrs, cls.schema(), "attributes", cls.go_name) if attrs is not None else {}
        except GoJSONError as exc:
            raise ERR_BAD_REQUEST_BODY.join(str(exc)) from None
        merged = dict(current)
        merged.update({k: v for k, v in (parsed or {}).items() if v is not None})
        return merged

    async def update_json(self, name: str, body: bytes) -> ToxicWrapper:
        wrapper = self.find(name)
        if wrapper is None:
            raise ERR_TOXIC_NOT_FOUND
        cls = type(wrapper.toxic)
        schema = Struct(cls.go_name, (Field("attributes", "any"), Field("toxicity", "float32")))
        data = _decode(body, schema)
        attrs = self._attributes(body, cls, wrapper.toxic.attributes())
        if data.get("toxicity") is not None:
            wrapper.toxicity = data["toxicity"]
        wrapper.toxic = cls(**attrs)
        await self._apply("update", wrapper)
        return wrapper

    async def remove(self, name: str) -> None:
        wrapper = self.find(name)
        if wrapper is None:
            raise ERR_TOXIC_NOT_FOUND
        self.chain[wrapper.direction].remove(wrapper)
        await self._apply("remove", wrapper)

    async def reset(self) -> None:
        for w in self.all():
            await self.remove(w.name)


# --- proxies ---------------------------------------------------------------------------------------
class LiveProxy:
    """One proxy: listener, connections, toxics. `listen` is the resolved address once started."""

    def __init__(self, name: str, listen: str, upstream: str, metrics: ProxyMetrics | None = None) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.toxics = ToxicCollection(self)
        self.metrics = metrics
        self.connections: set[Connection] = set()
        self._server: asyncio.AbstractServer | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "Logger": {},
            "toxics": [w.to_json() for w in self.toxics.all()],
        }

    async def start(self) -> None:
        """Listen; on failure stay disabled and raise ApiError(500) with Go's text."""
        if self.enabled:
            return
        sock, resolved = await bind_listener(self.listen)
        loop = asyncio.get_running_loop()
        try:
            # backlog: create_server would listen() again with 100, whatever bind_listener asked
            # for; 500 clients connecting at once then overflow the accept queue.
            self._server = await loop.create_server(
                lambda: Connection(self, loop).client, sock=sock, backlog=socket.SOMAXCONN
            )
        except OSError as exc:
            sock.close()
            raise ApiError(f"listen tcp {self.listen}: {exc.strerror or exc}") from None
        self.listen = resolved
        self.enabled = True

    def stop(self) -> None:
        """Close the listener and every connection (upstream's stop())."""
        if not self.enabled:
            return
        self.enabled = False
        if self._server is not None:
            self._server.close()
            self._server = None
        for conn in list(self.connections):
            conn.close(abort=True)

    async def update(self, listen: str, upstream: str, enabled: bool) -> None:
        if listen != self.listen or upstream != self.upstream:
            self.stop()
            self.listen, self.upstream = listen, upstream
        if enabled != self.enabled:
            if enabled:
                await self.start()
            else:
                self.stop()

    # called by Connection
    def connection_started(self, conn: Connection) -> None:
        if not self.enabled:
            conn.abnormal("the proxy was disabled while it connected; closing it")
            conn.close(abort=True)
            return
        self.connections.add(conn)
        for link in (conn.up, conn.down):
            assert link is not None
            self.toxics.links.add(link)
            link.start(self.toxics.chain[link.direction])

    def connection_ended(self, conn: Connection) -> None:
        self.connections.discard(conn)
        for link in (conn.up, conn.down):
            if link is not None:
                self.toxics.links.discard(link)
                if self.metrics is not None:
                    self.metrics.add(self, link)

    def live_links(self) -> Iterable[Link]:
        return list(self.toxics.links)


class ProxyCollection:
    """All proxies by name; API mutations are serialized by one lock."""

    def __init__(self, metrics: ProxyMetrics | None = None) -> None:
        self.proxies: dict[str, LiveProxy] = {}
        self.lock = asyncio.Lock()
        self.metrics = metrics

    def get(self, name: str) -> LiveProxy:
        proxy = self.proxies.get(name)
        if proxy is None:
            raise ERR_PROXY_NOT_FOUND
        return proxy

    def new(self, name: str, listen: str, upstream: str) -> LiveProxy:
        return LiveProxy(name, listen, upstream, self.metrics)

    async def create_json(self, body: bytes) -> LiveProxy:
        data = _decode(body, PROXY_SCHEMA)
        name, upstream = data.get("name") or "", data.get("upstream") or ""
        enabled = data.get("enabled")
        if not name:
            raise ERR_MISSING_FIELD.join("name")
        if not upstream:
            raise ERR_MISSING_FIELD.join("upstream")
        check_name(name)
        if name in self.proxies:
            raise ERR_PROXY_EXISTS
        proxy = self.new(name, data.get("listen") or "", upstream)
        if enabled is None or enabled:
            await proxy.start()
        self.proxies[name] = proxy
        return proxy

    async def update_json(self, name: str, body: bytes) -> LiveProxy:
        proxy = self.get(name)
        data = _decode(body, PROXY_SCHEMA)

        def pick(key: str, current: Any) -> Any:
            v = data.get(key)
            return current if v is None else v

        await proxy.update(
            pick("listen", proxy.listen), pick("upstream", proxy.upstream), pick("enabled", proxy.enabled)
        )
        return proxy

    async def remove(self, name: str) -> None:
        proxy = self.get(name)
        proxy.stop()
        del self.proxies[name]

    async def reset(self) -> None:
        for proxy in list(self.proxies.values()):
            await proxy.start()
            await proxy.toxics.reset()

    async def populate_json(self, body: bytes) -> list[LiveProxy]:
        """Validate every item, then add or replace them one by one, in order (upstream's
        PopulateJson and AddOrReplace). An item that fails to listen stops the run: the items
        before it stay, and `err.proxies` lists them. A name given twice: the last item wins."""
        items = _decode(body, POPULATE_SCHEMA)
        if items is None:
            items = []
        planned: list[tuple[str, str, str, bool]] = []
        for i, item in enumerate(items, 1):
            item = item or {}
            name, upstream = item.get("name") or "", item.get("upstream") or ""
            if not name:
                raise ERR_MISSING_FIELD.join(f"name at proxy {i}")
            if not upstream:
                raise ERR_MISSING_FIELD.join(f"upstream at proxy {i}")
            check_name(name)
            enabled = item.get("enabled")
            planned.append((name, item.get("listen") or "", upstream, True if enabled is None else enabled))
        done: list[LiveProxy] = []
        for name, listen, upstream, enabled in planned:
            proxy = self.new(name, listen, upstream)
            try:
                existing = self.proxies.get(name)
                if existing is not None:
                    compare = listen
                    if enabled:
                        ip, port = await resolve_listen(listen)
                        compare = _fmt(ip, port)
                    if existing.listen in (compare, listen) and existing.upstream == upstream:
                        done.append(existing)
                        continue
                    existing.stop()
                if enabled:
                    await proxy.start()
            except ApiError as exc:
                exc.proxies = done  # type: ignore[attr-defined]
                raise
            self.proxies[name] = proxy
            done.append(proxy)
        return done

    async def close(self) -> None:
        for proxy in self.proxies.values():
            proxy.stop()
