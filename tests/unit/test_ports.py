"""Loopback ports handed out to the services of an environment, all picked before any of them starts."""

from __future__ import annotations

from harness.env.ports import free_port


def test_free_port_never_hands_out_a_recent_port_twice() -> None:
    # 1500 draws from the kernel's ~14k bind(0) ports repeat one almost surely (birthday bound);
    # a repeat is two services of one environment on one port, the later one failing to start.
    ports = [free_port() for _ in range(1500)]
    assert len(set(ports)) == len(ports)
