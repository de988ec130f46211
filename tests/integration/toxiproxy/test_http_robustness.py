"""HTTP robustness of the embedded API (issue 12, item 4), property-based over raw sockets.

Whatever the request (any method, any path including non-Latin-1 and undecodable bytes, long
header lines, bad chunk sizes, JSON null, JSON nested far deeper than Python's stack), the
server answers it with a well-formed HTTP response and keeps a keep-alive connection usable;
it never answers 5xx except for a listen failure, never logs a traceback or an error, and
every proxy it created can be read and deleted through the API.

Proxies are created disabled or on 127.0.0.1:0 only, so nothing binds anything but loopback.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.toxiproxy.server import ThreadedToxiproxyServer

pytestmark = pytest.mark.skipif(bool(os.environ.get("TOXIPROXY_URL")), reason="reads the embedded server's log")


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.bad: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.bad.append(f"{record.name}: {record.getMessage()[:300]}")


@pytest.fixture(scope="module")
def server():
    records = _Records()
    root = logging.getLogger()
    root.addHandler(records)
    try:
        with ThreadedToxiproxyServer() as srv:
            srv.records = records  # type: ignore[attr-defined]
            yield srv
    finally:
        root.removeHandler(records)


# --- a raw HTTP/1.1 client -----------------------------------------------------------------------
class Conn:
    def __init__(self, port: int) -> None:
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def _fill(self) -> bool:
        d = self.s.recv(65536)
        self.buf += d
        return bool(d)

    def response(self, head: bool = False) -> tuple[int, dict[str, str], bytes]:
        """One response; AssertionError if the server closed or sent something that is not one."""
        while b"\r\n\r\n" not in self.buf:
            assert self._fill(), f"connection dropped without an answer (got {self.buf[:100]!r})"
        raw, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = raw.decode("latin-1").split("\r\n")
        version, status, _ = lines[0].split(" ", 2)
        assert version == "HTTP/1.1", lines[0]
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(": ")
            headers[k.lower()] = v
        n = 0 if head or status in ("204", "304") else int(headers.get("content-length", "0"))
        while len(self.buf) < n:
            assert self._fill(), "connection dropped in the middle of a body"
        body, self.buf = self.buf[:n], self.buf[n:]
        return int(status), headers, body

    def send(self, data: bytes) -> None:
        self.s.sendall(data)

    def close(self) -> None:
        self.s.close()


def request(method: str, target: bytes, body: bytes = b"", headers: list[bytes] | None = None,
            chunked: list[bytes] | None = None) -> bytes:
    out = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"User-Agent: fuzz"]
    out += headers or []
    if chunked is not None:
        out.append(b"Transfer-Encoding: chunked")
        return b"\r\n".join(out) + b"\r\n\r\n" + b"".join(chunked)
    out.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(out) + b"\r\n\r\n" + body


def enc(name: str) -> bytes:
    return quote(name.encode("utf-8", "surrogatepass"), safe="").encode()


def path_of(name: str) -> bytes:
    return b"/proxies/" + enc(name)


# --- strategies ------------------------------------------------------------------------------------
NAMES = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["a/b", ".", "..", "../x", "a%2Fb", "é", "x y", "?", "#", "\u2028", "\ud800", "😀"]),
    st.integers(4090, 4200).map(lambda n: "n" * n),
)
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=6))


def nested(depth: int, key: bool) -> bytes:
    inner = (b'{"zzz":' * depth + b"1" + b"}" * depth) if key else (b"[" * depth + b"]" * depth)
    return b'{"name":"deep","upstream":"127.0.0.1:9","enabled":false,"attributes":' + inner + b"}"


BODIES = st.one_of(
    st.just(b"null"),
    st.just(b""),
    st.builds(nested, st.sampled_from([1, 999, 1001, 5000, 10000, 10001, 50000]), st.booleans()),
    st.fixed_dictionaries(
        {"name": NAMES, "upstream": st.sampled_from(["127.0.0.1:9", "x"])},
        optional={"enabled": st.just(False), "listen": st.sampled_from(["127.0.0.1:0", "127.0.0.1", ""])},
    ).map(lambda d: json.dumps({**d, "enabled": d.get("enabled", False)}).encode()),
    st.lists(
        st.fixed_dictionaries({"name": NAMES, "upstream": st.just("127.0.0.1:9"), "enabled": st.just(False)}),
        max_size=3,
    ).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {}, optional={"type": st.sampled_from(["noop", "latency", "x"]), "name": NAMES, "attributes": SCALAR}
    ).map(lambda d: json.dumps(d).encode()),
    st.binary(max_size=30),
)
TARGETS = st.one_of(
    st.sampled_from([b"/proxies", b"/populate", b"/reset", b"/version", b"/toxics", b"/", b"/metrics"]),
    NAMES.map(path_of),
    NAMES.map(lambda n: path_of(n) + b"/toxics"),
    st.tuples(NAMES, NAMES).map(lambda t: path_of(t[0]) + b"/toxics/" + enc(t[1])),
    NAMES.map(lambda n: b"/proxies/" + n.encode("utf-8", "surrogatepass")),  # raw bytes, not Latin-1
    st.binary(min_size=1, max_size=20).filter(lambda b: b" " not in b and b"\r" not in b and b"\n" not in b)
    .map(lambda b: b"/" + b),
)
METHODS = st.sampled_from(["GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS"])
EXTRA = st.sampled_from([None, "long header", "huge header", "close"])
HEADERS = {
    None: [],
    "long header": [b"X-Long: " + b"a" * 70_000],
    "huge header": [b"X-Huge: " + b"a" * (1 << 20)],
    "close": [b"Connection: close"],
}
CHUNKS = st.one_of(
    st.none(),
    st.lists(st.binary(min_size=1, max_size=10), max_size=3).map(
        lambda parts: [b"%x\r\n" % len(p) + p + b"\r\n" for p in parts] + [b"0\r\n\r\n"]
    ),
    st.sampled_from([b"-5", b"+5", b"0x5", b"zz", b"", b"1" * 40]).map(lambda size: [size + b"\r\nhello\r\n0\r\n\r\n"]),
)
CALL = st.tuples(METHODS, TARGETS, BODIES, EXTRA, CHUNKS)


def check_answer(server, conn: Conn, method: str, status: int, headers: dict[str, str], body: bytes) -> None:
    assert 200 <= status < 600
    if status >= 500:
        assert json.loads(body)["error"].startswith("listen tcp"), body[:300]
    assert server.records.bad == [], server.records.bad


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(calls=st.lists(CALL, min_size=1, max_size=5))
def test_every_request_gets_an_answer(server, calls):
    port = server.port
    try:
        conn = Conn(port)
        for method, target, body, extra, chunks in calls:
            conn.send(request(method, target, body, HEADERS[extra], chunks))
            status, headers, resp = conn.response(head=method == "HEAD")
            check_answer(server, conn, method, status, headers, resp)
            if headers.get("connection") == "close":
                conn.close()
                conn = Conn(port)
                continue
            # the connection is still in step: the next answer is the next request's
            conn.send(request("GET", b"/version"))
            status, _, resp = conn.response()
            assert (status, resp) == (200, b'{"version": "2.12.0"}\n')
        conn.close()
    finally:
        every_created_name_can_be_read_and_deleted(port)


def every_created_name_can_be_read_and_deleted(port: int) -> None:
    conn = Conn(port)
    try:
        conn.send(request("GET", b"/proxies"))
        status, _, body = conn.response()
        assert status == 200
        for name in json.loads(body):
            conn.send(request("GET", path_of(name) + b"/toxics"))
            status, _, toxics = conn.response()
            assert status == 200, name
            for toxic in json.loads(toxics):
                conn.send(request("DELETE", path_of(name) + b"/toxics/" + enc(toxic["name"])))
                assert conn.response()[0] == 204, (name, toxic["name"])
            conn.send(request("DELETE", path_of(name)))
            assert conn.response()[0] == 204, name
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /proxies/\xc3\xa9\xe2\x82\xac HTTP/1.1\r\n\r\n", 404),
        (b"GET //proxies/\xe2\x82\xac HTTP/1.1\r\n\r\n", 301),
        (b"GET /" + b"a" * (2 << 20) + b" HTTP/1.1\r\n\r\n", 431),
        (b"POST /proxies HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", 400),
        (b"POST /proxies HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"GET /proxies HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", 200),
        (b"POST /proxies HTTP/1.1\r\nContent-Length: 4\r\n\r\nnull", 400),
        (b"POST /proxies HTTP/1.1\r\nContent-Length: 20002\r\n\r\n" + b"[" * 10001 + b"]" * 10001, 400),
    ],
    ids=["non-latin-1", "non-latin-1-redirect", "request-line-2MiB", "negative-chunk", "negative-length",
         "header-70KiB", "json-null", "nested-10001"],
)
def test_known_bad_requests(server, raw, status):
    conn = Conn(server.port)
    try:
        conn.send(raw)
        got, headers, body = conn.response()
        assert got == status, body[:200]
        if status == 301:
            assert headers["location"] == "/proxies/%E2%82%AC"
        if raw.endswith(b"]" * 10001):
            assert json.loads(body)["error"] == "bad request body: invalid character '[' exceeded max depth"
    finally:
        conn.close()
    assert server.records.bad == []


def test_head_has_no_body_and_the_connection_stays_in_step(server):
    conn = Conn(server.port)
    try:
        for target in (b"/nope", b"/version", b"/proxies"):
            conn.send(request("HEAD", target))
            status, headers, _ = conn.response(head=True)
            assert status in (404, 405)
            conn.send(request("GET", b"/version"))
            status, _, body = conn.response()
            assert (status, body) == (200, b'{"version": "2.12.0"}\n')
    finally:
        conn.close()
