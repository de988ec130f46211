"""Loopback ports handed out to the services of an environment, all picked before any of them starts."""

from __future__ import annotations

from harness.env.ports import free_port


def test_free_port_never_hands_out_a_recent_port_twice() -> None:
    # 1500 draws from the kernel's ~14k bind(0) ports repeat one almost surely (birthday bound);
    # a repeat is two services of one environment on one port, the later one failing to start.
    ports = [free_port() for _ in range(1500)]
    assert len(set(ports)) == len(ports)


class _Kernel:
    """bind(0) answering from a script of ports (what a kernel could do), to test the choices made on them."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports

    def socket(self, *args):
        kernel = self

        class _Sock:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def bind(self, addr):
                self.port = kernel.ports.pop(0) if len(kernel.ports) > 1 else kernel.ports[0]

            def getsockname(self):
                return ("127.0.0.1", self.port)

        return _Sock()


def test_a_port_the_config_fixed_is_not_handed_to_another_service(monkeypatch) -> None:
    from harness.env import ports

    ports.reserve(40001)
    monkeypatch.setattr(ports.socket, "socket", _Kernel([40001, 40001, 40003]).socket)
    assert ports.free_port() == 40003


def test_a_narrow_port_range_still_gets_a_port_not_an_error(monkeypatch) -> None:
    """When every port the kernel offers was handed out lately (a tiny ip_local_port_range), its offer
    is taken, an error would stop a long session the kernel could still serve; a reserved port never."""
    import pytest

    from harness.env import ports

    ports.reserve(40005)
    monkeypatch.setattr(ports.socket, "socket", _Kernel([40005, 40007]).socket)
    assert ports.free_port() == 40007
    assert ports.free_port() == 40007  # handed out lately, but the only offer left
    monkeypatch.setattr(ports.socket, "socket", _Kernel([40005]).socket)
    with pytest.raises(OSError, match="only ports reserved"):
        ports.free_port()
