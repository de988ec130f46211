"""The toxics: one stream filter per Toxiproxy wire type, and the registry that names them.

A toxic holds only its settings; everything per connection lives on the `ToxicStub` it is
given, so one toxic object serves every connection (as in upstream's `toxics/toxic.go`).
Required: `async def pipe(self, stub)`, which runs until the input ends (close the stub) or
the stub is interrupted (write what is in flight, then return). Optional abilities are the
small protocols `Buffered`, `Stateful` and `Cleanup`.

Timing is kept against absolute deadlines on the fine clock (`stub.now()`, `stub.sleep_until`:
`time.monotonic()`, woken by a timerfd; see pipeline.py), so that a bandwidth or latency toxic
neither drifts by the event loop's wake-up error, chunk after chunk, nor has its deadlines cut
to uvloop's whole milliseconds. After a stall, chunks already past their deadline go out at
once, without a further wait, so one late wake-up does not delay everything queued behind it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from harness.toxiproxy.gojson import Field, Struct, float32

if TYPE_CHECKING:
    from harness.toxiproxy.pipeline import ToxicStub

from harness.toxiproxy.pipeline import INTERRUPTED, TIMED_OUT, Chunk

__all__ = [
    "Buffered",
    "Cleanup",
    "Stateful",
    "ToxicBase",
    "ToxicWrapper",
    "TOXICS",
    "NoopToxic",
    "LatencyToxic",
    "BandwidthToxic",
    "SlowCloseToxic",
    "TimeoutToxic",
    "ResetPeerToxic",
    "SlicerToxic",
    "LimitDataToxic",
]

UPSTREAM, DOWNSTREAM = 0, 1
_MAX_SLEEP = 10**7  # seconds; attribute values are int64 ms and would overflow loop timers
_CATCH_UP = 0.1  # seconds of lateness a bandwidth toxic makes up while data keeps coming


@runtime_checkable
class Buffered(Protocol):
    """A toxic that holds many chunks at once (latency) gets a deeper input channel."""

    buffer_size: ClassVar[int]


@runtime_checkable
class Stateful(Protocol):
    """Per-connection state that survives the toxic being interrupted and restarted."""

    def new_state(self) -> Any: ...


@runtime_checkable
class Cleanup(Protocol):
    """Called when the toxic is removed from a live connection (timeout closes it)."""

    def cleanup(self, stub: ToxicStub) -> None: ...


@dataclass
class ToxicBase:
    """Settings only; `type` is the wire name, `go_name` is what Go error messages print."""

    type: ClassVar[str] = ""
    go_name: ClassVar[str] = ""

    @classmethod
    def schema(cls) -> Struct:
        return Struct(cls.go_name, tuple(Field(f.name, "int64") for f in fields(cls)))

    def attributes(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    async def pipe(self, stub: ToxicStub) -> None:
        raise NotImplementedError


@dataclass
class NoopToxic(ToxicBase):
    """Passes data through unchanged; the hidden head of every chain."""

    type: ClassVar[str] = "noop"
    go_name: ClassVar[str] = "NoopToxic"

    async def pipe(self, stub: ToxicStub) -> None:
        read, write = stub.read, stub.write
        while True:
            c = await read()
            if c is INTERRUPTED:
                return
            if c is None:
                stub.close()
                return
            await write(c)


@dataclass
class LatencyToxic(ToxicBase):
    """Delays each chunk to (arrival + latency ± uniform jitter) ms."""

    type: ClassVar[str] = "latency"
    go_name: ClassVar[str] = "LatencyToxic"
    buffer_size: ClassVar[int] = 1024
    latency: int = 0
    jitter: int = 0

    def delay(self) -> float:
        d = self.latency
        if self.jitter > 0:
            d += random.randrange(self.jitter * 2) - self.jitter
        return min(d / 1000.0, _MAX_SLEEP)

    async def pipe(self, stub: ToxicStub) -> None:
        while True:
            c = await stub.read()
            if c is INTERRUPTED:
                return
            if c is None:
                stub.close()
                return
            release = c.timestamp + self.delay()
            if not await stub.sleep_until(release):
                stub.write_nowait(c)  # interrupted: don't drop data on the floor
                return
            # The next toxic counts from when this one released the chunk (upstream sets
            # c.Timestamp forward by the sleep), so latency toxics in a chain add up.
            c.timestamp = release
            await stub.write(c)


@dataclass
class BandwidthToxic(ToxicBase):
    """Paces data at `rate` KB/s (1 KB = 1000 B), in slices of at most 100 ms worth."""

    type: ClassVar[str] = "bandwidth"
    go_name: ClassVar[str] = "BandwidthToxic"
    rate: int = 0

    async def pipe(self, stub: ToxicStub) -> None:
        due = stub.now()  # absolute time the last byte sent may leave
        while True:
            idle = not stub.input.items
            c = await stub.read()
            if c is INTERRUPTED:
                return
            if c is None:
                stub.close()
                return
            if self.rate <= 0:
                await stub.write(c)
                continue
            bps = self.rate * 1000.0
            slice_len = max(1, self.rate * 100)
            # If the input ran dry, idle time banks no credit; if data was waiting, a late
            # wake-up is made up (by at most one 100 ms slice), so stalls don't lower the rate.
            due = max(due, stub.now() - (0.0 if idle else _CATCH_UP))
            data = c.data
            while data:
                piece, data = data[:slice_len], data[slice_len:]
                due += len(piece) / bps
                if not await stub.sleep_until(due):
                    stub.write_nowait(Chunk(piece + data, c.timestamp))
                    return
                await stub.write(Chunk(piece, c.timestamp))


@dataclass
class SlowCloseToxic(ToxicBase):
    """Holds the FIN back for `delay` ms after the input ends."""

    type: ClassVar[str] = "slow_close"
    go_name: ClassVar[str] = "SlowCloseToxic"
    delay: int = 0

    async def pipe(self, stub: ToxicStub) -> None:
        while True:
            c = await stub.read()
            if c is INTERRUPTED:
                return
            if c is None:
                if await stub.sleep(min(self.delay / 1000.0, _MAX_SLEEP)):
                    stub.close()
                return
            await stub.write(c)


@dataclass
class TimeoutToxic(ToxicBase):
    """Drops all data; closes the connection after `timeout` ms without data (0: never)."""

    type: ClassVar[str] = "timeout"
    go_name: ClassVar[str] = "TimeoutToxic"
    timeout: int = 0

    async def pipe(self, stub: ToxicStub) -> None:
        idle = min(self.timeout / 1000.0, _MAX_SLEEP) if self.timeout > 0 else None
        while True:
            c = await stub.read(timeout=idle)
            if c is INTERRUPTED:
                return
            if c is None or c is TIMED_OUT:
                stub.close()
                return
            # data is dropped on the ground

    def cleanup(self, stub: ToxicStub) -> None:
        stub.close()


@dataclass
class ResetPeerToxic(ToxicBase):
    """On the first data (or EOF), waits `timeout` ms, then resets both sockets (RST)."""

    type: ClassVar[str] = "reset_peer"
    go_name: ClassVar[str] = "ResetToxic"
    timeout: int = 0

    async def pipe(self, stub: ToxicStub) -> None:
        c = await stub.read()
        if c is INTERRUPTED:
            return
        if await stub.sleep(min(max(self.timeout, 0) / 1000.0, _MAX_SLEEP)):
            stub.reset_peer()
        elif c is not None:
            stub.write_nowait(c)


@dataclass
class SlicerToxic(ToxicBase):
    """Cuts each chunk into ~average_size ± size_variation byte pieces, `delay` µs apart."""

    type: ClassVar[str] = "slicer"
    go_name: ClassVar[str] = "SlicerToxic"
    average_size: int = 0
    size_variation: int = 0
    delay: int = 0

    def cuts(self, start: int, end: int) -> list[int]:
        """Split points, found by halving around the middle (upstream's recursive split)."""
        avg, var = self.average_size, self.size_variation
        if avg <= 0:
            return [start, end]  # Go would recurse forever / panic; pass the chunk through
        out = [start]
        stack = [(start, end)]
        while stack:
            s, e = stack.pop()
            if (e - s) - avg <= var or e - s <= 1:
                out.append(e)
                continue
            mid = s + (e - s) // 2 + (random.randrange(var * 2) - var if var > 0 else 0)
            mid = min(max(mid, s + 1), e - 1)
            stack.append((mid, e))
            stack.append((s, mid))
        return out

    async def pipe(self, stub: ToxicStub) -> None:
        pause = max(self.delay, 0) / 1e6
        while True:
            c = await stub.read()
            if c is INTERRUPTED:
                return
            if c is None:
                stub.close()
                return
            cuts = self.cuts(0, len(c.data))
            for i in range(1, len(cuts)):
                await stub.write(Chunk(c.data[cuts[i - 1] : cuts[i]], c.timestamp))
                if pause > 0 and i + 1 < len(cuts) and not await stub.sleep(pause):
                    stub.write_nowait(Chunk(c.data[cuts[i] :], c.timestamp))
                    return


@dataclass
class _LimitState:
    transmitted: int = 0


@dataclass
class LimitDataToxic(ToxicBase):
    """Lets `bytes` bytes through, then closes the connection."""

    type: ClassVar[str] = "limit_data"
    go_name: ClassVar[str] = "LimitDataToxic"
    bytes: int = 0

    def new_state(self) -> _LimitState:
        return _LimitState()

    async def pipe(self, stub: ToxicStub) -> None:
        state: _LimitState = stub.state
        while True:
            c = await stub.read()
            if c is INTERRUPTED:
                return
            if c is None:
                stub.close()
                return
            remaining = max(self.bytes - state.transmitted, 0)
            data = c.data[:remaining] if remaining < len(c.data) else c.data
            if data:
                await stub.write(Chunk(data, c.timestamp) if data is not c.data else c)
                state.transmitted += len(data)
            if self.bytes - state.transmitted <= 0:
                stub.close()
                return


TOXICS: dict[str, type[ToxicBase]] = {
    cls.type: cls
    for cls in (
        LatencyToxic,
        BandwidthToxic,
        SlowCloseToxic,
        TimeoutToxic,
        ResetPeerToxic,
        SlicerToxic,
        LimitDataToxic,
        NoopToxic,
    )
}
NOOP = NoopToxic()


class ToxicWrapper:
    """A named toxic on one stream of a proxy (upstream's `ToxicWrapper`): what the API shows."""

    __slots__ = ("name", "type", "stream", "toxicity", "direction", "toxic")

    def __init__(self, name: str, type: str, stream: str, toxicity: float, direction: int, toxic: ToxicBase):
        self.name = name
        self.type = type
        self.stream = stream  # verbatim, e.g. "UPSTREAM"
        self.toxicity = toxicity
        self.direction = direction
        self.toxic = toxic

    @property
    def buffer_size(self) -> int:
        return self.toxic.buffer_size if isinstance(self.toxic, Buffered) else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "attributes": self.toxic.attributes(),
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": float32(self.toxicity),
        }


NOOP_WRAPPER = ToxicWrapper("", "noop", "", 1.0, -1, NOOP)
