"""Many connections through one proxy (issue 12, item 5).

The cause of the resets seen with 500 concurrent connections: every proxied connection holds two
descriptors, so under the common soft limit of 1024 the proxy's connect to the upstream failed
with EMFILE and the client's connection was closed (a reset, with its data unread), silently.
The server now raises its soft limit to the hard one at start (as Go's runtime does), listens
with a full backlog, and logs why it closes any connection abnormally.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import socket
import subprocess
import sys
import time

import pytest

from harness.env.ports import free_port, wait_for_port
from harness.toxiproxy import ToxiproxyClient
from harness.toxiproxy.server import ThreadedToxiproxyServer
from tests.integration.toxiproxy.conftest import connect

pytestmark = pytest.mark.skipif(bool(os.environ.get("TOXIPROXY_URL")), reason="embedded server only")

ECHO = r"""
import asyncio, sys
class E(asyncio.Protocol):
    def connection_made(self, t): self.t = t
    def data_received(self, d): self.t.write(d)
    def eof_received(self): self.t.close()
async def main():
    await asyncio.get_running_loop().create_server(E, "127.0.0.1", int(sys.argv[1]), backlog=4096)
    await asyncio.Event().wait()
asyncio.run(main())
"""
CONNS = 500


def _soft_limit(n: int):  # type: ignore[no-untyped-def]
    def set_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    return set_limit


@pytest.fixture
def processes(tmp_path):
    """An echo upstream and `serve()` started under a soft descriptor limit of 1024."""
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 4 * CONNS:
        pytest.skip("the hard descriptor limit is too low for this test")
    up_port, api_port = free_port(), free_port()
    log = (tmp_path / "proxy.log").open("wb")
    procs = [
        subprocess.Popen([sys.executable, "-c", ECHO, str(up_port)]),
        subprocess.Popen(
            [sys.executable, "-c", "import logging; logging.basicConfig(level=logging.WARNING);"
             f"from harness.toxiproxy.server import serve; serve('127.0.0.1', {api_port})"],
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=_soft_limit(1024),
        ),
    ]
    try:
        assert wait_for_port(up_port) and wait_for_port(api_port)
        yield up_port, api_port, tmp_path / "proxy.log"
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        log.close()


async def _burst(port: int, n: int) -> dict[str, int]:
    """n connections at once, each pushing data as soon as it is connected, then echo checked."""
    out = {"ok": 0, "reset": 0, "eof": 0, "bad": 0}

    async def one(i: int) -> None:
        payload = (f"{i:06d}" * 2000).encode()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(payload)
            got = await reader.readexactly(len(payload))
            writer.write_eof()
            tail = await reader.read()
            writer.close()
            out["ok" if got == payload and tail == b"" else "bad"] += 1
        except ConnectionResetError:
            out["reset"] += 1
        except asyncio.IncompleteReadError:
            out["eof"] += 1

    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), 120)
    return out


def test_500_concurrent_connections_none_reset_under_a_1024_descriptor_limit(processes):
    up_port, api_port, log_path = processes
    with ToxiproxyClient(f"http://127.0.0.1:{api_port}") as tp:
        proxy = tp.create_proxy("many", upstream=f"127.0.0.1:{up_port}")
        for _ in range(2):
            assert asyncio.run(_burst(proxy.port, CONNS)) == {"ok": CONNS, "reset": 0, "eof": 0, "bad": 0}
    log = log_path.read_text(errors="replace")
    assert "socket error" not in log and "cannot connect" not in log, log[-2000:]


def test_the_proxy_logs_why_it_closes_a_connection(echo, caplog):
    """An upstream that refuses, a client that resets: each abnormal close is logged with its reason."""
    dead = free_port()
    with ThreadedToxiproxyServer() as server, ToxiproxyClient(server.url) as tp, \
            caplog.at_level(logging.WARNING, logger="harness.toxiproxy"):
        p = tp.create_proxy("refused", upstream=f"127.0.0.1:{dead}")
        s = connect(p)
        s.settimeout(5)
        try:
            assert s.recv(1) == b""
        except ConnectionResetError:
            pass
        s.close()
        q = tp.create_proxy("reset", upstream=echo.address)
        s = connect(q)
        s.sendall(b"x")
        assert s.recv(1) == b"x"
        s.sendall(b"echoed back, and left unread here")
        time.sleep(0.2)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        s.close()  # RST
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "socket error" not in caplog.text:
            time.sleep(0.05)
    assert "proxy refused: connection from" in caplog.text
    assert f"cannot connect to upstream 127.0.0.1:{dead}: " in caplog.text
    assert "proxy reset: connection from" in caplog.text and "client socket error" in caplog.text


def test_the_server_raises_its_descriptor_limit():
    from harness.toxiproxy.server import raise_fd_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
        assert raise_fd_limit() == hard or hard == resource.RLIM_INFINITY
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] in (hard, min(1024, hard))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
