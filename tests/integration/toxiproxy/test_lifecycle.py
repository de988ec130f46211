"""No connection outlives its toxic (issue 12, item 3).

A toxic may hold a stream's end: `slow_close` holds the FIN for its delay, `reset_peer` sleeps
on the EOF that triggered it, `timeout` holds everything. Removing, changing or resetting the
toxic (or disabling or deleting the proxy) must still hand that end on, so the client sees its
close (or reset) and the proxy's two descriptors go. Runs on a server of its own, so the test
can look at the proxy's connection set and the process's descriptors.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time

import pytest

from harness.toxiproxy import ToxiproxyClient
from harness.toxiproxy.server import ThreadedToxiproxyServer
from tests.helpers.echo import EchoServer
from tests.integration.toxiproxy.conftest import connect, recv_all

pytestmark = pytest.mark.skipif(bool(os.environ.get("TOXIPROXY_URL")), reason="inspects the embedded server")


@pytest.fixture(scope="module")
def server():
    with ThreadedToxiproxyServer() as srv:
        yield srv


@pytest.fixture
def client(server):
    with ToxiproxyClient(server.url) as tp:
        yield tp
        for name in tp.proxies():
            tp.delete_proxy(name)


@pytest.fixture
def echo():
    with EchoServer() as e:
        yield e


def live(server, name: str) -> int:
    proxy = server.server.collection.proxies.get(name)
    return len(proxy.connections) if proxy is not None else 0


def wait_until(pred, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def ended(s: socket.socket, timeout: float = 5.0) -> str:
    """Read until the connection ends: "eof", "reset", or "open" if it did not within `timeout`."""
    s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not s.recv(65536):
                return "eof"
        except ConnectionResetError:
            return "reset"
        except TimeoutError:
            return "open"
    return "open"


HOLDERS = [
    pytest.param("slow_close", {"delay": 600_000}, id="slow_close"),
    pytest.param("reset_peer", {"timeout": 600_000}, id="reset_peer"),
    pytest.param("timeout", {"timeout": 0}, id="timeout"),
]
ENDINGS = ["remove", "update", "reset", "disable", "delete"]


@pytest.mark.parametrize("stream", ["upstream", "downstream"])
@pytest.mark.parametrize("ending", ENDINGS)
@pytest.mark.parametrize(("kind", "attributes"), HOLDERS)
def test_a_toxic_holding_the_end_hands_it_on_when_it_goes(server, client, echo, kind, attributes, ending, stream):
    p = client.create_proxy("hold", upstream=echo.address)
    s = connect(p)
    s.sendall(b"x")
    assert recv_all(s, 1) == b"x"
    client.add_toxic("hold", kind, name="t", stream=stream, attributes=attributes)
    s.shutdown(socket.SHUT_WR)  # the toxic now holds (or will hold) this stream's end
    time.sleep(0.2)
    if ending == "remove":
        client.remove_toxic("hold", "t")
    elif ending == "update":
        client.update_toxic("hold", "t", attributes={k: 1 for k in attributes})
    elif ending == "reset":
        client.reset()
    elif ending == "disable":
        client.disable_proxy("hold")
    else:
        client.delete_proxy("hold")
    assert ended(s) in ("eof", "reset")
    s.close()
    assert wait_until(lambda: live(server, "hold") == 0), "the proxy still holds the connection"


TOGGLED = [
    ("latency", {"latency": 30, "jitter": 10}),
    ("bandwidth", {"rate": 20}),
    ("slow_close", {"delay": 300}),
    ("timeout", {"timeout": 0}),
    ("reset_peer", {"timeout": 20}),
    ("slicer", {"average_size": 64, "size_variation": 32, "delay": 200}),
    ("limit_data", {"bytes": 300}),
    ("noop", {}),
]
TOGGLE_SECONDS = 7.5  # × 8 types = one minute of toggling under traffic
CLIENTS = 12


def _describe(server, name: str) -> str:
    """The connections a proxy still holds, and where each of their links stands."""
    proxy = server.server.collection.proxies.get(name)
    out = []
    for conn in list(proxy.connections if proxy else [])[:5]:
        links = []
        for link in (conn.up, conn.down):
            if link is not None:
                links.append(
                    f"dir={link.direction} done={link.done} eof_in={link.eof_in} fast={link.fast} "
                    f"stubs={[(w.type, st.closed, st.saw_eof, len(st.input)) for w, st in zip(link.wrappers, link.stubs, strict=False)]} "
                    f"ops={list(link._ops)}"
                )
        out.append(f"client_lost={conn.client.lost} up_lost={conn.upstream.lost if conn.upstream else None} {links}")
    return f"{len(proxy.connections) if proxy else 0} connections left: " + " | ".join(out)


def _fds() -> list[str]:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.append(f"{fd}:{os.readlink(f'/proc/self/fd/{fd}')}")
        except OSError:
            pass
    return out


def test_toggling_every_toxic_under_traffic_leaves_nothing_open(server, client, echo):
    """Clients connect, send, half-close and read to the end, again and again, while each toxic type
    in turn is added and removed on a random stream every few tens of ms (and, now and then, the
    proxy is reset). Every connection must end; afterwards the proxy holds none and the process
    has no descriptor beyond those it had before."""
    p = client.create_proxy("toggle", upstream=echo.address)
    # warm up: the first timed toxic gives the server's loop its one fine-clock timerfd
    client.add_toxic("toggle", "latency", name="t", attributes={"latency": 1})
    s = connect(p)
    s.sendall(b"w")
    assert recv_all(s, 1) == b"w"
    s.close()
    client.remove_toxic("toggle", "t")
    assert wait_until(lambda: live(server, "toggle") == 0)
    fds_before = _fds()
    stats = {"done": 0, "unclosed": 0, "errors": 0}
    lock = threading.Lock()
    stop = threading.Event()

    def traffic(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            try:
                s = connect(p)
            except OSError:
                with lock:
                    stats["errors"] += 1
                continue
            try:
                payload = rng.randbytes(rng.randrange(1, 2000))
                how = rng.random()
                try:
                    s.sendall(payload)
                    if how < 0.1:  # gone at once: the proxy must notice and close both sides
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
                        how = "gone"
                    else:
                        if how < 0.3:
                            time.sleep(rng.uniform(0.0, 0.1))
                        s.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                if how != "gone":
                    how = ended(s, timeout=20.0)
            finally:
                s.close()
            with lock:
                stats["unclosed" if how == "open" else "done"] += 1

    threads = [threading.Thread(target=traffic, args=(i,), daemon=True) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    rng = random.Random(12)
    toggles = 0
    for kind, attributes in TOGGLED:
        until = time.monotonic() + TOGGLE_SECONDS
        while time.monotonic() < until:
            stream = rng.choice(["upstream", "downstream"])
            client.add_toxic("toggle", kind, name="t", stream=stream, attributes=attributes)
            time.sleep(rng.uniform(0.01, 0.15))
            if rng.random() < 0.1:
                client.reset()
            else:
                client.remove_toxic("toggle", "t")
            toggles += 1
            time.sleep(rng.uniform(0.0, 0.05))
    stop.set()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert toggles > 100 and stats["done"] > 200, (toggles, stats)
    assert stats["unclosed"] == 0, stats
    assert wait_until(lambda: live(server, "toggle") == 0), _describe(server, "toggle")
    assert wait_until(lambda: len(_fds()) <= len(fds_before)), sorted(set(_fds()) - set(fds_before))
