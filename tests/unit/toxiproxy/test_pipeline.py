"""Stream-filter pieces without sockets: channel bounds, slicer cuts, stub interrupts."""

from __future__ import annotations

import asyncio

from harness.toxiproxy.pipeline import INTERRUPTED, Channel, Chunk, ToxicStub
from harness.toxiproxy.toxics import TOXICS, LatencyToxic, SlicerToxic


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
    inp.put_nowait(Chunk(b"held", loop.time()))
    task = loop.create_task(LatencyToxic(latency=10_000).pipe(stub))
    await asyncio.sleep(0.01)
    assert stub.interrupt()
    await asyncio.wait_for(task, 1)
    assert out.get_nowait().data == b"held"  # written before returning
    assert await stub.read() is INTERRUPTED
