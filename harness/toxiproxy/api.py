"""The Toxiproxy HTTP API on a small hand-written HTTP/1.1 server over asyncio streams.

Hand-written rather than aiohttp because compatibility is byte-level: which responses carry
`X-Toxiproxy-Request-Id` (only routed ones), a 405 with no body and no Content-Type, a 404 of
exactly "404 page not found\\n", errors as `text/plain` JSON with a trailing newline while
successes have none, gorilla/mux's 301 for unclean paths. A framework would add or normalise
some of these. The API is low-volume, so a plain stream reader is fast enough.

    request ─► route (path, then method) ─► Mozilla check ─► handler ─► response
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from urllib.parse import quote, unquote_to_bytes

from harness.toxiproxy import gojson
from harness.toxiproxy.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from harness.toxiproxy.metrics import ProxyMetrics
from harness.toxiproxy.proxy import ERR_TOXIC_NOT_FOUND, ApiError, ProxyCollection

__all__ = ["ApiHandler", "LINE_LIMIT", "VERSION"]

log = logging.getLogger(__name__)

VERSION = "2.12.0"  # the Toxiproxy release whose API we reproduce (see docs/toxiproxy.md)
_MAX_HEADER = (1 << 20) + 4096  # request line plus headers, as Go's DefaultMaxHeaderBytes (+ its slack)
LINE_LIMIT = _MAX_HEADER  # the stream reader's limit: one line may use the whole header budget
_MAX_BODY = 16 * 1024 * 1024
_IDLE_TIMEOUT = 60.0
_READ_TIMEOUT = 15.0
_REASONS = {
    100: "Continue",
    200: "OK",
    201: "Created",
    204: "No Content",
    301: "Moved Permanently",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Request Entity Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}
_B32 = "0123456789abcdefghijklmnopqrstuv"
_xid_counter = itertools.count(int.from_bytes(os.urandom(3), "big"))
_xid_machine = os.urandom(3)


def request_id() -> str:
    """An rs/xid: 4 B time, 3 B machine, 2 B pid, 3 B counter, in 20 base32hex characters."""
    raw = (
        int(time.time()).to_bytes(4, "big")
        + _xid_machine
        + (os.getpid() & 0xFFFF).to_bytes(2, "big")
        + (next(_xid_counter) & 0xFFFFFF).to_bytes(3, "big")
    )
    n = int.from_bytes(raw, "big") << 4  # 96 bits -> 100 bits, 20 groups of 5
    return "".join(_B32[(n >> (5 * (19 - i))) & 31] for i in range(20))


class Request:
    __slots__ = ("method", "target", "path", "headers", "body", "version")

    def __init__(self, method: str, target: str, version: str, headers: dict[str, str], body: bytes) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = body
        # Percent-decoded bytes, read as UTF-8 (Go compares the raw bytes with names, which are
        # UTF-8); the target was read as Latin-1, so encoding it back gives the bytes sent.
        raw = target.split("?", 1)[0].encode("latin-1", "replace")
        self.path = unquote_to_bytes(raw).decode("utf-8", "replace")


class Response:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, body: bytes = b"", headers: list[tuple[str, str]] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or []

    def encode(self, keep_alive: bool, head: bool = False) -> bytes:
        """The response bytes; a HEAD answer has the headers a GET would, and never a body."""
        lines = [f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'Status')}"]
        lines += [f"{k}: {v}" for k, v in self.headers]
        lines.append(f"Date: {formatdate(usegmt=True)}")
        if self.status != 204:
            lines.append(f"Content-Length: {len(self.body)}")
        if not keep_alive:
            lines.append("Connection: close")
        header = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        return header if head else header + self.body


def _json_response(obj: object, status: int = 200) -> Response:
    return Response(status, gojson.dumps(obj), [("Content-Type", "application/json")])


def _http_error(text: str, status: int) -> Response:
    """Go's http.Error: text/plain, nosniff, body plus newline."""
    return Response(
        status,
        (text + "\n").encode(),
        [("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff")],
    )


def _api_error(err: ApiError) -> Response:
    return _http_error(gojson.dumps({"error": err.message, "status": err.status}).decode(), err.status)


def clean_path(p: str) -> str:
    """Go's path.Clean, keeping a trailing slash, as gorilla/mux does before routing."""
    if not p.startswith("/"):
        p = "/" + p
    out: list[str] = []
    for seg in p.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(seg)
    cleaned = "/" + "/".join(out)
    if p.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


Handler = Callable[..., Awaitable[Response]]


class ApiHandler:
    """Routes and handlers; one instance serves every API connection of a server."""

    def __init__(self, collection: ProxyCollection, metrics: ProxyMetrics | None = None) -> None:
        self.collection = collection
        self.metrics = metrics
        self.routes: list[tuple[re.Pattern[str], dict[str, Handler]]] = [
            (re.compile(r"/reset"), {"POST": self.reset}),
            (re.compile(r"/proxies"), {"GET": self.proxy_index, "POST": self.proxy_create}),
            (re.compile(r"/populate"), {"POST": self.populate}),
            (
                re.compile(r"/proxies/([^/]+)"),
                {
                    "GET": self.proxy_show,
                    "POST": self.proxy_update,
                    "PATCH": self.proxy_update,
                    "DELETE": self.proxy_delete,
                },
            ),
            (re.compile(r"/proxies/([^/]+)/toxics"), {"GET": self.toxic_index, "POST": self.toxic_create}),
            (
                re.compile(r"/proxies/([^/]+)/toxics/([^/]+)"),
                {
                    "GET": self.toxic_show,
                    "POST": self.toxic_update,
                    "PATCH": self.toxic_update,
                    "DELETE": self.toxic_delete,
                },
            ),
            (re.compile(r"/version"), {"GET": self.version}),
        ]
        self._metrics_route = re.compile(r"/metrics")

    # --- routing -------------------------------------------------------------------------------
    async def dispatch(self, req: Request) -> Response:
        cleaned = clean_path(req.path)
        if cleaned != req.path:
            query = req.target.split("?", 1)[1] if "?" in req.target else ""
            location = quote(cleaned, safe="/:@!$&'()*+,;=-._~") + ("?" + query if query else "")
            return Response(301, b"", [("Location", location)])
        method_mismatch = False
        for pattern, methods in self.routes:
            m = pattern.fullmatch(req.path)
            if m is None:
                continue
            handler = methods.get(req.method)
            if handler is None:
                method_mismatch = True
                continue
            return await self._routed(req, handler, m.groups())
        if self.metrics is not None and self._metrics_route.fullmatch(req.path):
            return await self._routed(req, self.metrics_handler, ())
        if method_mismatch:
            return Response(405)
        return _http_error("404 page not found", 404)

    async def _routed(self, req: Request, handler: Handler, args: tuple[str, ...]) -> Response:
        rid = ("X-Toxiproxy-Request-Id", request_id())
        if req.headers.get("user-agent", "").startswith("Mozilla/"):
            resp = _http_error("User agent not allowed", 403)
        else:
            try:
                resp = await handler(req, *args)
            except ApiError as err:
                resp = _api_error(err)
        resp.headers.append(rid)
        return resp

    # --- handlers ------------------------------------------------------------------------------
    async def version(self, req: Request) -> Response:
        body = b'{"version": "' + VERSION.encode() + b'"}\n'
        return Response(200, body, [("Content-Type", "application/json;charset=utf-8")])

    async def metrics_handler(self, req: Request) -> Response:
        assert self.metrics is not None
        return Response(200, self.metrics.render(self.collection), [("Content-Type", METRICS_CONTENT_TYPE)])

    async def proxy_index(self, req: Request) -> Response:
        # Go's json.Marshal writes map keys sorted
        return _json_response({name: p.to_json() for name, p in sorted(self.collection.proxies.items())})

    async def proxy_create(self, req: Request) -> Response:
        async with self.collection.lock:
            proxy = await self.collection.create_json(req.body)
            return _json_response(proxy.to_json(), 201)

    async def populate(self, req: Request) -> Response:
        async with self.collection.lock:
            try:
                proxies = await self.collection.populate_json(req.body)
            except ApiError as err:
                done = getattr(err, "proxies", None)
                body = {
                    "error": err.message,
                    "status": err.status,
                    "proxies": [p.to_json() for p in done] if done else None,
                }
                return _json_response(body, err.status)
            return _json_response({"proxies": [p.to_json() for p in proxies] or None}, 201)

    async def proxy_show(self, req: Request, name: str) -> Response:
        return _json_response(self.collection.get(name).to_json())

    async def proxy_update(self, req: Request, name: str) -> Response:
        async with self.collection.lock:
            proxy = await self.collection.update_json(name, req.body)
            return _json_response(proxy.to_json())

    async def proxy_delete(self, req: Request, name: str) -> Response:
        async with self.collection.lock:
            await self.collection.remove(name)
            return Response(204)

    async def reset(self, req: Request) -> Response:
        async with self.collection.lock:
            await self.collection.reset()
            return Response(204)

    async def toxic_index(self, req: Request, name: str) -> Response:
        return _json_response([w.to_json() for w in self.collection.get(name).toxics.all()])

    async def toxic_create(self, req: Request, name: str) -> Response:
        async with self.collection.lock:
            wrapper = await self.collection.get(name).toxics.add_json(req.body)
            return _json_response(wrapper.to_json())

    async def toxic_show(self, req: Request, name: str, toxic: str) -> Response:
        wrapper = self.collection.get(name).toxics.find(toxic)
        if wrapper is None:
            raise ERR_TOXIC_NOT_FOUND
        return _json_response(wrapper.to_json())

    async def toxic_update(self, req: Request, name: str, toxic: str) -> Response:
        async with self.collection.lock:
            wrapper = await self.collection.get(name).toxics.update_json(toxic, req.body)
            return _json_response(wrapper.to_json())

    async def toxic_delete(self, req: Request, name: str, toxic: str) -> Response:
        async with self.collection.lock:
            await self.collection.get(name).toxics.remove(toxic)
            return Response(204)

    # --- HTTP/1.1 --------------------------------------------------------------------------------
    async def serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer requests until the client closes. Every request gets an answer: a request that
        cannot be parsed gets Go's plain 400 (or 413, 431) and the connection is closed."""
        try:
            while True:
                try:
                    line = await asyncio.wait_for(reader.readline(), _IDLE_TIMEOUT)
                except ValueError:  # a request line longer than the whole header budget
                    await self._refuse(writer, 431)
                    return
                except TimeoutError:
                    return
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    continue  # tolerated before a request line, as Go does
                try:
                    req = await asyncio.wait_for(self._read_request(line, reader, writer), _READ_TIMEOUT)
                except _BadRequest as exc:
                    await self._refuse(writer, exc.status)
                    return
                conn_hdr = req.headers.get("connection", "").lower()
                keep = "close" not in conn_hdr and (req.version == "HTTP/1.1" or "keep-alive" in conn_hdr)
                try:
                    resp = await self.dispatch(req)
                except Exception as exc:  # never let a bug kill the API; answer like Go's apiError
                    log.error("toxiproxy API: %s %.200s failed: %r", req.method, req.target, exc)
                    resp = _api_error(ApiError(f"internal error: {type(exc).__name__}: {exc}", 500))
                writer.write(resp.encode(keep, head=req.method == "HEAD"))
                await writer.drain()
                if not keep:
                    return
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    @staticmethod
    async def _refuse(writer: asyncio.StreamWriter, status: int) -> None:
        """Go's answer to a request it cannot parse: plain text, then the connection closes."""
        body = f"{status} {_REASONS[status]}".encode()
        writer.write(Response(status, body, [("Content-Type", "text/plain; charset=utf-8")]).encode(False))
        await writer.drain()

    async def _read_request(
        self, line: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Request:
        try:
            method, target, version = line.decode("latin-1").rstrip("\r\n").split(" ")
        except ValueError:
            raise _BadRequest(400) from None
        if not version.startswith("HTTP/1.") or not method.isalpha() or not method.isascii() or not target:
            raise _BadRequest(400)
        headers: dict[str, str] = {}
        size = len(line)
        while True:
            try:
                h = await reader.readline()
            except ValueError:  # one header line longer than the whole budget
                raise _BadRequest(431) from None
            size += len(h)
            if size > _MAX_HEADER:
                raise _BadRequest(431)
            if h in (b"\r\n", b"\n", b""):
                break
            name, sep, value = h.decode("latin-1").partition(":")
            if not sep or not name.strip() or name != name.strip():
                raise _BadRequest(400)
            key = name.lower()
            headers[key] = (
                f"{headers[key]}, {value.strip()}"
                if key in headers and key != "user-agent"
                else value.strip()
            )
        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = b""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            parts = []
            total = 0
            while True:
                try:
                    size_line = await reader.readline()
                except ValueError:
                    raise _BadRequest(400) from None
                n = _chunk_size(size_line)
                if n == 0:
                    while True:  # trailers, up to the blank line
                        try:
                            t = await reader.readline()
                        except ValueError:
                            raise _BadRequest(431) from None
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                total += n
                if total > _MAX_BODY:
                    raise _BadRequest(413)
                parts.append(await reader.readexactly(n))
                if await reader.readexactly(2) != b"\r\n":
                    raise _BadRequest(400)
            body = b"".join(parts)
        elif "content-length" in headers:
            value = headers["content-length"]
            if not (value.isdigit() and value.isascii()):
                raise _BadRequest(400)
            n = int(value)
            if n > _MAX_BODY:
                raise _BadRequest(413)
            body = await reader.readexactly(n)
        return Request(method, target, version, headers, body)


def _chunk_size(line: bytes) -> int:
    """A chunk-size line's size (hex digits only, as Go); _BadRequest(400) for anything else."""
    text = line.split(b";", 1)[0].strip()
    if not text or len(text) > 16 or text.strip(b"0123456789abcdefABCDEF"):
        raise _BadRequest(400)
    return int(text, 16)


class _BadRequest(Exception):
    def __init__(self, status: int) -> None:
        self.status = status
