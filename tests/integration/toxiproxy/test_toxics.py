"""What a client sees through each toxic (docs/toxiproxy.md), via a real TCP echo upstream.

Timing is checked loosely: these prove behaviour; bench/bench_toxiproxy.py measures accuracy.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from tests.integration.toxiproxy.conftest import connect, recv_all


def roundtrip(proxy, payload: bytes = b"hello", expect: int | None = None, timeout: float = 5.0):
    """Send payload on a fresh connection; return (bytes back, seconds, how it ended)."""
    s = connect(proxy)
    try:
        t0 = time.monotonic()
        s.sendall(payload)
        data, end = b"", "open"
        s.settimeout(timeout)
        want = len(payload) if expect is None else expect
        while len(data) < want:
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                end = "reset"
                break
            except TimeoutError:
                end = "open"
                break
            if not d:
                end = "eof"
                break
            data += d
        return data, time.monotonic() - t0, end
    finally:
        s.close()


def test_no_toxic_and_noop_echo(tp, echo_proxy):
    assert roundtrip(echo_proxy)[0] == b"hello"
    tp.add_toxic("echo", "noop")
    data, took, _ = roundtrip(echo_proxy)
    assert data == b"hello" and took < 0.5


def test_timeout_zero_holds_connection_open(tp, echo_proxy):
    tp.add_toxic("echo", "timeout", attributes={"timeout": 0})
    data, took, end = roundtrip(echo_proxy, timeout=1.0)
    assert (data, end) == (b"", "open") and took >= 0.9


@pytest.mark.parametrize("stream", ["downstream", "upstream"])
def test_timeout_closes_after_delay(tp, echo_proxy, stream):
    tp.add_toxic("echo", "timeout", stream=stream, attributes={"timeout": 500})
    data, took, end = roundtrip(echo_proxy)
    assert (data, end) == (b"", "eof")
    assert 0.45 <= took < 2.0


@pytest.mark.parametrize(("stream", "timeout"), [("downstream", 0), ("downstream", 500), ("upstream", 500)])
def test_reset_peer(tp, echo_proxy, stream, timeout):
    tp.add_toxic("echo", "reset_peer", stream=stream, attributes={"timeout": timeout})
    data, took, end = roundtrip(echo_proxy)
    assert (data, end) == (b"", "reset")
    assert took < 0.3 if timeout == 0 else 0.45 <= took < 2.0


def test_limit_data_downstream(tp, echo_proxy):
    tp.add_toxic("echo", "limit_data", attributes={"bytes": 10})
    data, _, end = roundtrip(echo_proxy, b"x" * 100)
    assert (data, end) == (b"x" * 10, "eof")


def test_limit_data_upstream(tp, echo_proxy):
    tp.add_toxic("echo", "limit_data", stream="upstream", attributes={"bytes": 10})
    data, _, end = roundtrip(echo_proxy, b"x" * 100)
    assert end == "eof" and len(data) <= 10


@pytest.mark.parametrize("stream", ["downstream", "upstream"])
def test_slow_close_delays_fin(tp, echo_proxy, stream):
    """Upstream: the client's FIN reaches the echo server late, so its FIN comes back late too."""
    tp.add_toxic("echo", "slow_close", stream=stream, attributes={"delay": 500})
    s = connect(echo_proxy)
    t0 = time.monotonic()
    s.shutdown(socket.SHUT_WR)
    assert recv_all(s, 1) == b""
    assert time.monotonic() - t0 >= 0.45
    s.close()


@pytest.mark.skipif(
    bool(os.environ.get("TOXIPROXY_URL")), reason="real Toxiproxy drops the reply (no half-close)"
)
def test_half_close_delivers_reply_in_flight(echo_proxy):
    """Deliberate deviation: a clean FIN is passed on as a half-close, so the echo arrives."""
    for _ in range(5):
        s = connect(echo_proxy)
        s.sendall(b"hello")
        s.shutdown(socket.SHUT_WR)
        assert recv_all(s, 10) == b"hello"
        s.close()


@pytest.mark.parametrize(("stream", "min_reads"), [("downstream", 30), ("upstream", 10)])
def test_slicer_slices(tp, echo_proxy, stream, min_reads):
    """Upstream: the echo server gets (and echoes) one slice at a time, 1 ms apart."""
    tp.add_toxic("echo", "slicer", stream=stream, attributes={"average_size": 10, "size_variation": 5, "delay": 1000})
    s = connect(echo_proxy)
    payload = bytes(i % 251 for i in range(1000))
    s.sendall(payload)
    t0, reads, got = time.monotonic(), 0, b""
    s.settimeout(5)
    while len(got) < 1000:
        d = s.recv(65536)
        assert d
        got += d
        reads += 1
    assert got == payload
    assert reads >= min_reads and time.monotonic() - t0 >= 0.05  # >= 67 slices, 1 ms apart
    s.close()


@pytest.mark.parametrize("stream", ["downstream", "upstream"])
def test_latency(tp, echo_proxy, stream):
    tp.add_toxic("echo", "latency", stream=stream, attributes={"latency": 200})
    data, took, _ = roundtrip(echo_proxy)
    assert data == b"hello" and took >= 0.19


def test_latency_on_both_streams_adds_up(tp, echo_proxy):
    tp.add_toxic("echo", "latency", stream="upstream", attributes={"latency": 150})
    tp.add_toxic("echo", "latency", stream="downstream", attributes={"latency": 150})
    data, took, _ = roundtrip(echo_proxy)
    assert data == b"hello" and took >= 0.29


def test_latency_with_jitter_stays_in_range(tp, echo_proxy):
    tp.add_toxic("echo", "latency", attributes={"latency": 100, "jitter": 50})
    for _ in range(3):
        data, took, _ = roundtrip(echo_proxy)
        assert data == b"hello" and 0.045 <= took < 0.5


def test_latency_toxicity_zero_is_noop(tp, echo_proxy):
    tp.add_toxic("echo", "latency", toxicity=0, attributes={"latency": 100})
    data, took, _ = roundtrip(echo_proxy)
    assert data == b"hello" and took < 0.09


@pytest.mark.parametrize("stream", ["downstream", "upstream"])
def test_bandwidth_paces_in_slices(tp, echo_proxy, stream):
    """1 KB/s: 1000 bytes take about a second either way (upstream: the echo server gets them paced)."""
    tp.add_toxic("echo", "bandwidth", stream=stream, attributes={"rate": 1})
    s = connect(echo_proxy)
    payload = bytes(i % 251 for i in range(1000))
    s.sendall(payload)
    t0, reads, got = time.monotonic(), 0, b""
    s.settimeout(5)
    while len(got) < 1000:
        d = s.recv(65536)
        assert d
        got += d
        reads += 1
    assert got == payload
    assert time.monotonic() - t0 >= 0.85 and reads >= 5
    s.close()


def test_toxics_change_on_a_live_connection_without_loss(tp, echo_proxy):
    s = connect(echo_proxy)
    s.sendall(b"a")
    assert recv_all(s, 1) == b"a"
    tp.add_toxic("echo", "latency", name="l", attributes={"latency": 150})
    t0 = time.monotonic()
    s.sendall(b"b")
    assert recv_all(s, 1) == b"b" and time.monotonic() - t0 >= 0.14
    tp.add_toxic("echo", "slicer", name="s", attributes={"average_size": 3, "delay": 10})
    tp.update_toxic("echo", "l", attributes={"latency": 0})
    payload = bytes(range(256)) * 64
    s.sendall(payload)
    assert recv_all(s, len(payload)) == payload
    tp.remove_toxic("echo", "l")
    tp.remove_toxic("echo", "s")
    t0 = time.monotonic()
    s.sendall(b"c")
    assert recv_all(s, 1) == b"c" and time.monotonic() - t0 < 0.1
    s.close()


def test_removing_a_toxic_mid_stream_keeps_order(tp, echo_proxy):
    """Bytes held by a latency toxic when it is removed are delivered, in order."""
    tp.add_toxic("echo", "latency", name="l", attributes={"latency": 300})
    s = connect(echo_proxy)
    got: list[bytes] = []
    total = 200_000
    reader = threading.Thread(target=lambda: got.append(recv_all(s, total, timeout=10)))
    reader.start()
    payload = bytes(i % 251 for i in range(total))
    for i in range(0, total, 10_000):
        s.sendall(payload[i : i + 10_000])
        if i == 100_000:
            tp.remove_toxic("echo", "l")
    reader.join(15)
    assert got and got[0] == payload
    s.close()


def test_disable_closes_existing_connections(tp, echo_proxy):
    s = connect(echo_proxy)
    s.sendall(b"x")
    assert recv_all(s, 1) == b"x"
    tp.disable_proxy("echo")
    s.settimeout(2)
    try:
        assert s.recv(1) == b""
    except ConnectionResetError:
        pass
    with pytest.raises(OSError):
        socket.create_connection((echo_proxy.host, echo_proxy.port), timeout=1).recv(1)
    tp.enable_proxy("echo")
    assert roundtrip(echo_proxy)[0] == b"hello"


@pytest.mark.parametrize("toxic", [None, "latency"])
def test_slow_reader_does_not_grow_buffers_unbounded(tp, echo_proxy, toxic):
    """The client never reads: the proxy must stop reading too, so sends soon block."""
    if toxic:
        tp.add_toxic("echo", toxic, stream="upstream", attributes={"latency": 1})
    s = connect(echo_proxy)
    s.settimeout(1.0)
    chunk, sent = b"\0" * 65536, 0
    try:
        while sent < 512 * 2**20:
            sent += s.send(chunk)
    except (TimeoutError, BlockingIOError):
        pass
    # kernel buffers on 4 sockets plus our bounded channels; far below what was offered
    assert sent < 96 * 2**20, f"proxy accepted {sent / 2**20:.0f} MiB from a client that never reads"
    s.close()


# -- backpressure, measured on a server in a process of its own ---------------------------------

@pytest.fixture(scope="module")
def server_process(tmp_path_factory):
    """`chaosdrill toxiproxy` as a subprocess, so its RSS is the proxy's memory alone."""
    if os.environ.get("TOXIPROXY_URL"):
        pytest.skip("measures the embedded server's memory")
    from harness.env.app_process import ToxiproxyProcess
    from harness.env.ports import free_port

    proc = ToxiproxyProcess(tmp_path_factory.mktemp("toxiproxy"), free_port())
    proc.start()
    yield proc
    proc.stop()


BACKPRESSURE = [
    pytest.param(None, None, id="no toxic"),
    pytest.param("latency", {"latency": 100}, id="downstream latency"),
    pytest.param("bandwidth", {"rate": 100}, id="downstream bandwidth"),
    pytest.param("slicer", {"average_size": 64, "size_variation": 32, "delay": 10}, id="downstream slicer"),
]


@pytest.mark.parametrize(("toxic", "attributes"), BACKPRESSURE)
def test_a_client_that_never_reads_does_not_grow_the_server(server_process, echo, toxic, attributes):
    """The client writes and never reads; the echo upstream's replies back up to the proxy, which
    must stop reading from both sides instead of buffering: the server's RSS stays bounded."""
    import psutil

    from harness.toxiproxy import ToxiproxyClient

    budget, offered = 64 * 2**20, 512 * 2**20
    with ToxiproxyClient(server_process.url) as client:
        proxy = client.create_proxy(f"bp_{toxic or 'none'}", upstream=echo.address)
        try:
            if toxic:
                client.add_toxic(proxy.name, toxic, stream="downstream", attributes=attributes)
            rss = psutil.Process(server_process.pid).memory_info
            s = connect(proxy)
            s.settimeout(1.0)
            base, peak, sent = rss().rss, 0, 0
            chunk = b"\0" * 2**20
            stop = time.monotonic() + 10  # a bound on the test, not an assertion
            try:
                while sent < offered and time.monotonic() < stop:
                    sent += s.send(chunk)
                    peak = max(peak, rss().rss)
            except (TimeoutError, BlockingIOError):
                pass  # the proxy stopped reading: what we wanted
            for _ in range(10):  # anything held in a toxic's queue would show up now
                peak = max(peak, rss().rss)
                time.sleep(0.05)
            s.close()
        finally:
            client.delete_proxy(proxy.name)
    grown = peak - base
    assert grown < budget, (f"server RSS grew {grown / 2**20:.0f} MiB while a client that never reads "
                            f"offered {sent / 2**20:.0f} MiB")
    assert sent < offered, f"the proxy accepted all {sent / 2**20:.0f} MiB from a client that never reads"


# -- toxics of one type stack (issue 12, item 1): a chain in insertion order, each toxic's output
# -- the next one's input, on either stream ------------------------------------------------------

@pytest.mark.parametrize("stream", ["downstream", "upstream"])
@pytest.mark.parametrize(("count", "latency", "least"), [(2, 100, 0.18), (3, 50, 0.135)])
def test_latency_toxics_on_one_stream_add_up(tp, echo_proxy, stream, count, latency, least):
    """Each latency toxic counts from when the previous one released the data: 2 × 100 ms ≈ 200 ms."""
    for i in range(count):
        tp.add_toxic("echo", "latency", name=f"l{i}", stream=stream, attributes={"latency": latency})
    for _ in range(2):
        data, took, _ = roundtrip(echo_proxy)
        assert data == b"hello" and took >= least, took


@pytest.mark.parametrize("stream", ["downstream", "upstream"])
def test_slow_close_toxics_stack(tp, echo_proxy, stream):
    for i in range(2):
        tp.add_toxic("echo", "slow_close", name=f"s{i}", stream=stream, attributes={"delay": 250})
    s = connect(echo_proxy)
    t0 = time.monotonic()
    s.shutdown(socket.SHUT_WR)
    assert recv_all(s, 1) == b""
    assert time.monotonic() - t0 >= 0.45
    s.close()


@pytest.mark.parametrize("stream", ["downstream", "upstream"])
def test_chain_runs_in_insertion_order(tp, echo_proxy, stream):
    """limit_data(20) → slicer(4-byte pieces) → latency(150) → limit_data(10): the client gets the
    first 10 bytes, sliced, late, then the close that the last toxic in the chain decided."""
    tp.add_toxic("echo", "limit_data", name="first", stream=stream, attributes={"bytes": 20})
    tp.add_toxic("echo", "slicer", name="cut", stream=stream, attributes={"average_size": 4, "delay": 1000})
    tp.add_toxic("echo", "latency", name="late", stream=stream, attributes={"latency": 150})
    tp.add_toxic("echo", "limit_data", name="second", stream=stream, attributes={"bytes": 10})
    payload = bytes(range(100))
    data, took, end = roundtrip(echo_proxy, payload, expect=100)
    assert end == "eof" and took >= 0.14
    if stream == "downstream":
        assert data == payload[:10]
    else:  # the upstream got 10 bytes, then the whole connection closed (as with one limit_data)
        assert len(data) <= 10 and data == payload[: len(data)]


@pytest.mark.parametrize("stream", ["downstream", "upstream"])
def test_two_limit_data_toxics_the_smaller_wins(tp, echo_proxy, stream):
    tp.add_toxic("echo", "limit_data", name="a", stream=stream, attributes={"bytes": 50})
    tp.add_toxic("echo", "limit_data", name="b", stream=stream, attributes={"bytes": 7})
    data, _, end = roundtrip(echo_proxy, b"y" * 100, expect=100)
    assert end == "eof" and data == b"y" * (7 if stream == "downstream" else len(data)) and len(data) <= 7


@pytest.mark.parametrize("stream", ["downstream", "upstream"])
def test_two_bandwidth_toxics_the_slower_wins(tp, echo_proxy, stream):
    tp.add_toxic("echo", "bandwidth", name="fast", stream=stream, attributes={"rate": 1000})
    tp.add_toxic("echo", "bandwidth", name="slow", stream=stream, attributes={"rate": 2})
    payload = bytes(i % 251 for i in range(1000))
    data, took, _ = roundtrip(echo_proxy, payload)
    assert data == payload and took >= 0.4
