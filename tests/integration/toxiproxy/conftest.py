"""Fixtures: a Toxiproxy API (ours in a thread, or a real one when TOXIPROXY_URL is set) and an echo upstream."""

from __future__ import annotations

import os
import socket
import time

import pytest

from harness.toxiproxy import ToxiproxyClient
from harness.toxiproxy.server import ThreadedToxiproxyServer
from tests.helpers.echo import EchoServer

REAL_URL = os.environ.get("TOXIPROXY_URL")


@pytest.fixture(scope="session")
def toxiproxy_url():
    """The API under test: a real Toxiproxy when TOXIPROXY_URL is set, else our embedded server."""
    if REAL_URL:
        yield REAL_URL.rstrip("/")
        return
    with ThreadedToxiproxyServer(port=0) as server:
        yield server.url


@pytest.fixture
def tp(toxiproxy_url):
    """A client on a clean server: no proxies before or after the test."""
    with ToxiproxyClient(toxiproxy_url) as client:
        for name in client.proxies():
            client.delete_proxy(name)
        yield client
        for name in client.proxies():
            client.delete_proxy(name)


@pytest.fixture
def echo():
    with EchoServer() as server:
        yield server


@pytest.fixture
def echo_proxy(tp, echo):
    """A proxy named "echo" in front of the echo server."""
    return tp.create_proxy("echo", upstream=echo.address)


def connect(proxy, timeout: float = 5.0) -> socket.socket:
    s = socket.create_connection((proxy.host, proxy.port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_all(s: socket.socket, n: int, timeout: float = 5.0) -> bytes:
    """Read until n bytes, EOF or timeout."""
    s.settimeout(timeout)
    out = b""
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        try:
            d = s.recv(n - len(out))
        except TimeoutError:
            break
        if not d:
            break
        out += d
    return out
