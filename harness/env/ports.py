"""Loopback port helpers: every server binds 127.0.0.1 only."""

from __future__ import annotations

import socket
import threading
import time
from collections import deque

LOOPBACK = "127.0.0.1"

# Ports this process handed out recently. The kernel forgets a port once its probe socket closes
# and may hand it out again, so two services of one environment (all picked before any starts)
# could get the same port and the later one would find it "already in use".
_RECENT: deque[int] = deque(maxlen=2048)
_RESERVED: set[int] = set()  # fixed by a config: never handed to another service
_LOCK = threading.Lock()


def free_port(host: str = LOOPBACK) -> int:
    """A port the kernel just handed out on `host`, free at the moment of return, never one a config
    fixed (`reserve`) and, unless a narrow `ip_local_port_range` leaves no other, not one this
    process handed out lately."""
    with _LOCK:
        offered = None
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
            if port in _RESERVED:
                continue
            offered = port
            if port not in _RECENT:
                break
        if offered is None:
            raise OSError(f"the kernel offered only ports reserved by the config on {host}")
        _RECENT.append(offered)
        return offered


def reserve(port: int) -> int:
    """A port the config fixed for a service: `free_port` will not hand it to another one."""
    with _LOCK:
        _RESERVED.add(port)
    return port


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """True when something accepts connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def wait_for_port(port: int, host: str = LOOPBACK, timeout: float = 10.0) -> bool:
    """Poll until host:port accepts a connection or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_in_use(port, host):
            return True
        time.sleep(0.01)
    return False
