"""Stream-filter pieces without sockets: channel bounds, slicer cuts, stub interrupts, the fine
clock, and a link switching between its fast path and its chain."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest
import uvloop

from harness.toxiproxy.pipeline import INTERRUPTED, Channel, Chunk, FineClock, Link, Side, ToxicStub
from harness.toxiproxy.toxics import (
    NOOP_WRAPPER,
    TOXICS,
    BandwidthToxic,
    LatencyToxic,
    LimitDataToxic,
    SlicerToxic,
    ToxicWrapper,
)


def test_registry_has_every_wire_type():
    assert set(TOXICS) == {
        "latency",
        "bandwidth",
        "slow_close",
        "timeout",
        "reset_peer",
        "slicer",
        "limit_data",
        "noop",
    }
    assert LatencyToxic().attributes() == {"latency": 0, "jitter": 0}


def test_slicer_cuts_cover_the_chunk():
    t = SlicerToxic(average_size=10, size_variation=5)
    for _ in range(50):
        cuts = t.cuts(0, 1000)
        assert cuts[0] == 0 and cuts[-1] == 1000 and cuts == sorted(cuts)
        sizes = [b - a for a, b in zip(cuts, cuts[1:], strict=False)]
        assert all(0 < s <= 15 for s in sizes)
    assert SlicerToxic().cuts(0, 100) == [0, 100]  # average 0 would recurse forever upstream


class _FakeLink:
    def __init__(self, loop):
        self.loop = loop
        self.toxic_closed = False


async def test_channel_bounds_and_interrupt_flushes_in_flight():
    ch = Channel(capacity=2, max_bytes=10)
    ch.put_nowait(Chunk(b"x" * 6, 0))
    ch.put_nowait(Chunk(b"y" * 6, 0))
    assert ch.full()
    put = asyncio.ensure_future(ch.put(Chunk(b"z", 0)))
    await asyncio.sleep(0)
    assert not put.done()
    assert ch.get_nowait().data == b"x" * 6
    await asyncio.sleep(0)
    assert put.done()

    loop = asyncio.get_running_loop()
    inp, out = Channel(), Channel()
    stub = ToxicStub(inp, out, _FakeLink(loop))  # type: ignore[arg-type]
    inp.put_nowait(Chunk(b"held", time.monotonic()))
    task = loop.create_task(LatencyToxic(latency=10_000).pipe(stub))
    await asyncio.sleep(0.01)
    assert stub.interrupt()
    await asyncio.wait_for(task, 1)
    assert out.get_nowait().data == b"held"  # written before returning
    assert await stub.read() is INTERRUPTED


def _fire_times(loop, clock, delays):
    """Schedule callbacks `delays` s from now on `clock`; return (deadline, fired-at) pairs."""
    done = loop.create_future()
    out = []

    def cb(when):
        out.append((when, time.monotonic()))
        if len(out) == len(delays) and not done.done():
            done.set_result(None)

    t0 = time.monotonic()
    for d in delays:
        clock.call_at(t0 + d, cb, t0 + d)
    return done, out


@pytest.mark.parametrize("use_timerfd", [True, False])
@pytest.mark.parametrize(
    "loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"]
)
def test_fine_clock_never_fires_early_and_keeps_order(loop_factory, use_timerfd):
    loop = loop_factory()
    try:
        clock = FineClock(loop, use_timerfd=use_timerfd)
        if use_timerfd and sys.platform.startswith("linux"):
            assert clock.uses_timerfd
        delays = [0.0053, 0.0012, 0.0031, 0.0004, 0.0105, 0.0]
        done, out = _fire_times(loop, clock, delays)
        cancelled = clock.call_at(time.monotonic() + 0.002, lambda _: pytest.fail("cancelled fired"), None)
        FineClock.cancel(cancelled)
        loop.run_until_complete(asyncio.wait_for(done, 5))
        assert [w for w, _ in out] == sorted(w for w, _ in out)
        assert all(fired >= when for when, fired in out)  # a deadline is a floor, never cut short
        assert max(fired - when for when, fired in out) < 0.5  # loose: shared CI machines stall
    finally:
        loop.close()


def test_sleep_until_on_uvloop_is_not_cut_to_whole_milliseconds():
    """uvloop's call_at rounds to ms and can wake up to ~1 ms early; the stub must not."""

    async def main():
        loop = asyncio.get_running_loop()
        stub = ToxicStub(Channel(), Channel(), _FakeLink(loop))  # type: ignore[arg-type]
        early = []
        for i in range(30):
            when = time.monotonic() + 0.0015 + i * 0.0001
            assert await stub.sleep_until(when)
            early.append(when - time.monotonic())
        return early

    early = uvloop.run(main())
    assert max(early) <= 0


class _FakeTransport:
    def __init__(self):
        self.data = bytearray()
        self.reading = True

    def write(self, data):
        self.data += data

    def pause_reading(self):
        self.reading = False

    def resume_reading(self):
        self.reading = True


class _FakeConn:
    def __init__(self, loop):
        self.loop = loop
        self.ended = []

    def link_done(self, link, natural):
        self.ended.append(natural)


def _link(loop):
    conn = _FakeConn(loop)
    src, dst = Side(conn), Side(conn)  # type: ignore[arg-type]
    src.transport, dst.transport = _FakeTransport(), _FakeTransport()  # type: ignore[assignment]
    link = Link(conn, 1, src, dst)  # type: ignore[arg-type]
    src.out_link = dst.in_link = link
    return conn, link, dst.transport


async def test_link_goes_through_the_chain_and_back_to_the_fast_path_in_order():
    loop = asyncio.get_running_loop()
    conn, link, out = _link(loop)
    link.start([NOOP_WRAPPER])
    assert link.fast and not link.stubs
    link.feed(b"a")
    assert out.data == b"a"  # written straight through
    lat = ToxicWrapper("l", "latency", "downstream", 1.0, 1, LatencyToxic(latency=50))
    await link.schedule("add", lat)
    assert not link.fast and len(link.stubs) == 1
    t0 = time.monotonic()
    link.feed(b"b")
    link.feed(b"c")
    assert out.data == b"a"
    while out.data != b"abc":
        await asyncio.sleep(0.001)
    assert time.monotonic() - t0 >= 0.05
    link.feed(b"d")
    await link.schedule("remove", lat)  # held data is delivered, then the fast path resumes
    link.feed(b"e")
    assert out.data == b"abcde" and link.fast and not link.stubs
    link.feed_eof(natural=True)
    assert conn.ended == [True]  # the source's own EOF: a half-close


async def test_a_toxic_that_ends_the_stream_is_a_full_close():
    loop = asyncio.get_running_loop()
    conn, link, out = _link(loop)
    limit = ToxicWrapper("x", "limit_data", "downstream", 1.0, 1, LimitDataToxic(bytes=3))
    link.start([NOOP_WRAPPER, limit])
    link.feed(b"hello")
    while not conn.ended:
        await asyncio.sleep(0.001)
    assert out.data == b"hel" and conn.ended == [False]


async def test_sink_backpressure_pauses_the_source():
    loop = asyncio.get_running_loop()
    conn, link, out = _link(loop)
    lat = ToxicWrapper("l", "latency", "downstream", 1.0, 1, LatencyToxic(latency=0))
    link.start([NOOP_WRAPPER, lat])
    link.dest.pause_writing()
    assert link.sink.full() and not link.source.transport.reading  # type: ignore[union-attr]
    for _ in range(2000):
        link.feed(b"z" * 100)
    await asyncio.sleep(0.01)
    assert len(out.data) <= 100  # the stub waits for the destination
    assert link.source.paused  # the first channel is full, reading stays paused
    link.dest.resume_writing()
    while len(out.data) < 200_000:
        await asyncio.sleep(0.001)
    assert link.source.transport.reading  # type: ignore[union-attr]


async def test_bandwidth_paces_data_that_was_already_waiting():
    """Chunks queued before the toxic starts are paced too, from the moment it starts."""
    loop = asyncio.get_running_loop()
    inp, out = Channel(100, 1 << 30), Channel(100, 1 << 30)
    stub = ToxicStub(inp, out, _FakeLink(loop))  # type: ignore[arg-type]
    for _ in range(3):
        inp.put_nowait(Chunk(b"b" * 100_000, time.monotonic()))
    inp.put_nowait(None)
    t0 = time.monotonic()
    task = loop.create_task(BandwidthToxic(rate=1000).pipe(stub))  # 100 KB slices, 100 ms apart
    first = await out.get()
    assert first is not None and len(first.data) == 100_000 and time.monotonic() - t0 >= 0.1
    await asyncio.wait_for(task, 5)
    assert time.monotonic() - t0 >= 0.3
    assert sum(len(c.data) for c in list(out.items) if c is not None) == 200_000
