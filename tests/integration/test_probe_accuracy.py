"""Accuracy: an outage of known length must give an MTTR within two probe intervals of the truth.

A real HTTP server answers 503 for exactly L seconds; the real probe runner samples it every Δ;
measure_fault() must report MTTR = L ± 2Δ and TTD ≤ 2Δ (docs/metrics.md: each is late by at most Δ).
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.measure import measure_fault
from harness.probes import HttpProbe, ProbeRunner
from harness.timeline import FAULT_ACTIVE, FAULT_CLEARED, Timeline


class Switchable(BaseHTTPRequestHandler):
    down = threading.Event()

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(503 if self.down.is_set() else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    Switchable.down.clear()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Switchable)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize(("interval", "outage"), [(0.1, 1.5), (0.05, 0.8)])
def test_mttr_within_two_intervals_of_a_known_outage(server, interval, outage) -> None:
    tl = Timeline()
    with ProbeRunner([HttpProbe("p", server, timeout_s=1)], tl, interval_s=interval):
        time.sleep(0.5)
        t_down = tl.event(FAULT_ACTIVE, "switch").t_ns
        Switchable.down.set()
        time.sleep(outage)
        Switchable.down.clear()
        t_up = tl.event(FAULT_CLEARED, "switch").t_ns
        time.sleep(0.6)
    m = measure_fault(tl, streak=3)
    truth = (t_up - t_down) / 1e9
    assert m.recovered
    assert abs(m.mttr_s - truth) <= 2 * interval, (m.mttr_s, truth)
    assert 0 <= m.time_to_detect_s <= 2 * interval
    assert abs(m.time_to_recover_s - truth) <= 2 * interval


def test_samples_keep_their_schedule_while_the_target_hangs() -> None:
    """A probe that hangs (nothing answers) must not delay later samples: fixed-rate scheduling."""
    import socket

    with socket.socket() as sink:  # accepts connections (kernel backlog) but never answers
        sink.bind(("127.0.0.1", 0))
        sink.listen(64)
        url = f"http://127.0.0.1:{sink.getsockname()[1]}/"
        tl = Timeline()
        with ProbeRunner([HttpProbe("hang", url, timeout_s=0.5)], tl, interval_s=0.1):
            time.sleep(1.05)
    samples = tl.samples
    assert len(samples) >= 9, len(samples)
    gaps = [(b.t_ns - a.t_ns) / 1e9 for a, b in zip(samples, samples[1:], strict=False)]
    assert max(gaps) < 0.25, gaps
    assert all(not s.ok for s in samples)
