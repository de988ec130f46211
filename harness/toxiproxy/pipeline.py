"""The data plane: a proxied TCP connection as two one-way links of stream filters.

    client ──► Link(upstream)   ──► upstream server
    client ◄── Link(downstream) ◄── upstream server

A link with toxics is a chain of stubs, one task per toxic, ending in a sink that writes
straight to the destination transport:

    source ─► [input] ─► ToxicStub(latency) ─► [channel] ─► … ─► Sink ─► dest

Upstream's chain is headed by a hidden noop (`link.go`); here that head is virtual: `feed`,
which runs synchronously in `data_received`, is the noop, so it costs no task and no handoff.
Channels between stubs are bounded (by chunks and bytes): when the first one is full the
source stops reading, and a stub blocks on a full channel (or on a destination whose
transport paused writing), so a slow reader pauses reading from the source instead of
growing memory. Adding, updating or removing a toxic interrupts the stubs concerned; an
interrupted toxic writes whatever it holds before it returns, so no byte is lost or reordered.

**Fast path.** A link without toxics has no stubs and no tasks at all: `data_received` writes
straight to the other transport, and the transports' own flow control (`pause_writing` →
`pause_reading`) gives backpressure. It switches to the chain the moment a toxic is added,
and back when the last one is removed (nothing is buffered in Python then, so order is kept).

**Time.** Chunks are stamped and deadlines kept on `time.monotonic()`, not on `loop.time()`:
uvloop's loop clock and `call_at` tick in whole milliseconds (a deadline would be cut by up to
~1 ms). `FineClock` runs every deadline of a loop from one Linux timerfd, so a latency toxic
wakes within tens of µs of its deadline; without timerfd it re-arms a loop timer that fires
early until the fine clock says the deadline has passed.

**Half-close (a deliberate deviation).** Real Toxiproxy answers a client's FIN by fully
closing the upstream connection, so a reply still in flight is usually lost. We pass a clean
EOF on as a half-close (`write_eof`) and close the connection when both directions have
ended, so `printf 'PING\\r\\n' | nc` style clients get their answer. A close caused by a toxic
(timeout, limit_data) or by a socket error still closes both sides at once, as upstream does.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import heapq
import logging
import math
import os
import random
import socket
import struct
import sys
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.toxiproxy.toxics import ToxicWrapper

__all__ = [
    "INTERRUPTED",
    "TIMED_OUT",
    "Channel",
    "Chunk",
    "Connection",
    "FineClock",
    "Link",
    "Sink",
    "ToxicStub",
    "now",
]

log = logging.getLogger("harness.toxiproxy")

INTERRUPTED: Any = type("Interrupted", (), {"__repr__": lambda self: "INTERRUPTED"})()
TIMED_OUT: Any = type("TimedOut", (), {"__repr__": lambda self: "TIMED_OUT"})()

_CHUNKS = 4  # default channel depth, in chunks
_BYTES = 1 << 20  # and in bytes; uvloop hands us up to 256 KiB per read
_BUFFERED_BYTES = 16 << 20  # a latency toxic holds up to 1024 chunks / 16 MiB in flight
_HUGE = 1 << 62
_LINGER0 = struct.pack("ii", 1, 0)

now: Callable[[], float] = time.monotonic  # the fine clock (CLOCK_MONOTONIC, as timerfd uses)


class Chunk:
    """Bytes plus the fine-clock time they were read, so latency counts from arrival."""

    __slots__ = ("data", "timestamp")

    def __init__(self, data: bytes, timestamp: float) -> None:
        self.data = data
        self.timestamp = timestamp


def _wake(fut: asyncio.Future, value: Any = None) -> None:
    if not fut.done():
        fut.set_result(value)


# --- the fine clock ------------------------------------------------------------------------------
class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


_CLOCK_MONOTONIC, _TFD_TIMER_ABSTIME = 1, 1


def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.timerfd_create.argtypes = (ctypes.c_int, ctypes.c_int)
        libc.timerfd_settime.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()


class FineClock:
    """Callbacks at `time.monotonic()` deadlines, for one event loop (`FineClock.of(loop)`).

    One heap of deadlines and one Linux timerfd armed at the earliest (absolute
    CLOCK_MONOTONIC, ns resolution): the loop's epoll wakes when it is due, so no deadline is
    cut to whole milliseconds. Without timerfd, a loop timer is armed instead and re-armed
    whenever it fires before the deadline.
    """

    __slots__ = ("_heap", "_seq", "_armed", "_fd", "_spec", "_loop", "_handle", "__weakref__")

    _clocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FineClock] = weakref.WeakKeyDictionary()

    def __init__(self, loop: asyncio.AbstractEventLoop, use_timerfd: bool = True) -> None:
        self._heap: list[list[Any]] = []  # [when, seq, callback, arg]; callback None = cancelled
        self._seq = 0
        self._armed = math.inf
        self._loop = weakref.ref(loop)
        self._handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self._spec = _Itimerspec()
        self._fd = -1
        if use_timerfd and _LIBC is not None:
            fd = _LIBC.timerfd_create(_CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC)
            if fd >= 0:
                try:
                    loop.add_reader(fd, self._fire)
                except (NotImplementedError, RuntimeError, OSError):
                    os.close(fd)
                else:
                    self._fd = fd
                    weakref.finalize(self, os.close, fd)

    def _stop_timerfd(self, loop: asyncio.AbstractEventLoop | None) -> None:
        if loop is not None:
            with contextlib.suppress(Exception):
                loop.remove_reader(self._fd)
        self._fd = -1

    @property
    def uses_timerfd(self) -> bool:
        return self._fd >= 0

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> FineClock:
        clock = cls._clocks.get(loop)
        if clock is None:
            clock = cls._clocks[loop] = cls(loop)
        return clock

    def call_at(self, when: float, callback: Callable[[Any], None], arg: Any) -> list[Any]:
        """Call `callback(arg)` once `now() >= when`; returns an entry for `cancel`."""
        self._seq += 1
        entry = [when, self._seq, callback, arg]
        heapq.heappush(self._heap, entry)
        if when < self._armed:
            self._arm(when)
        return entry

    @staticmethod
    def cancel(entry: list[Any]) -> None:
        entry[2] = entry[3] = None

    def _arm(self, when: float) -> None:
        self._armed = when
        loop = self._loop()
        if self._fd >= 0:
            sec = math.floor(when)
            v = self._spec.it_value
            v.tv_sec, v.tv_nsec = sec, min(max(int((when - sec) * 1e9), 1), 999_999_999)
            if _LIBC.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None) == 0:
                return
            self._stop_timerfd(loop)  # unexpected; keep time with loop timers from now on
        if loop is None:
            return
        if self._handle is not None:
            self._handle.cancel()
        self._handle = loop.call_later(max(when - now(), 0.0), self._fire)

    def _fire(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(BlockingIOError, InterruptedError):
                os.read(self._fd, 8)
        self._handle = None
        self._armed = math.inf
        heap = self._heap
        t = now()
        while heap and heap[0][0] <= t:
            _, _, callback, arg = heapq.heappop(heap)
            if callback is not None:
                callback(arg)
        while heap and heap[0][2] is None:
            heapq.heappop(heap)
        if heap and heap[0][0] < self._armed:
            self._arm(heap[0][0])  # early (a loop timer) or the next deadline


# --- channels -----------------------------------------------------------------------------------
class Channel:
    """A single-producer, single-consumer FIFO of chunks; `None` marks the end of the stream.

    `put` waits while the channel is full (by chunk count or bytes); `put_nowait` never waits,
    for data that must not be dropped (interrupts) or that the transport already read.
    """

    __slots__ = ("items", "capacity", "max_bytes", "nbytes", "getter", "putter", "on_space")

    def __init__(self, capacity: int = _CHUNKS, max_bytes: int = _BYTES) -> None:
        self.items: deque[Chunk | None] = deque()
        self.capacity = max(capacity, 1)
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.getter: asyncio.Future | None = None
        self.putter: asyncio.Future | None = None
        self.on_space: Callable[[], None] | None = None

    def __len__(self) -> int:
        return len(self.items)

    def full(self) -> bool:
        return len(self.items) >= self.capacity or self.nbytes >= self.max_bytes

    def put_nowait(self, item: Chunk | None) -> None:
        self.items.append(item)
        if item is not None:
            self.nbytes += len(item.data)
        g = self.getter
        if g is not None:
            self.getter = None
            _wake(g)

    async def put(self, item: Chunk | None) -> None:
        while self.full():
            fut = asyncio.get_running_loop().create_future()
            self.putter = fut
            try:
                await fut
            finally:
                if self.putter is fut:
                    self.putter = None
        self.put_nowait(item)

    def get_nowait(self) -> Chunk | None:
        item = self.items.popleft()
        if item is not None:
            self.nbytes -= len(item.data)
        if not self.full():
            p = self.putter
            if p is not None:
                self.putter = None
                _wake(p)
            if self.on_space is not None:
                self.on_space()
        return item

    async def get(self) -> Chunk | None:
        while not self.items:
            fut = asyncio.get_running_loop().create_future()
            self.getter = fut
            try:
                await fut
            finally:
                if self.getter is fut:
                    self.getter = None
        return self.get_nowait()

    def unbound(self) -> None:
        """Stop blocking the producer (used while a stage is being removed)."""
        self.capacity = self.max_bytes = _HUGE
        p = self.putter
        if p is not None:
            self.putter = None
            _wake(p)


class Sink:
    """The end of a link's chain, shaped like a Channel: writes go straight to the destination.

    Nothing is queued here. It is `full()` while the destination's transport has paused
    writing, so the last stub waits (and the chain behind it fills and pauses the source);
    `put_nowait` (interrupts, data that must not be dropped) writes regardless. `None` ends
    the link: a half-close if the source's own EOF got here, a full close if a toxic ended it.
    """

    __slots__ = ("link",)

    items: tuple = ()
    nbytes = 0

    def __init__(self, link: Link) -> None:
        self.link = link

    def __len__(self) -> int:
        return 0

    def full(self) -> bool:
        dest = self.link.dest
        return dest.write_paused and not dest.lost

    def put_nowait(self, item: Chunk | None) -> None:
        link = self.link
        if item is None:
            link._finish(link.eof_in and link.natural and not link.toxic_closed)
            return
        dest = link.dest
        if link.done or dest.lost:
            return
        dest.transport.write(item.data)  # type: ignore[union-attr]
        link.nbytes_out += len(item.data)

    async def put(self, item: Chunk | None) -> None:
        dest = self.link.dest
        if dest.write_paused:
            await dest.writable()
        self.put_nowait(item)

    def unbound(self) -> None:
        pass


# --- toxics' view -------------------------------------------------------------------------------
class ToxicStub:
    """What a toxic's `pipe` sees: input, output, interrupt, per-connection state."""

    __slots__ = (
        "input",
        "output",
        "state",
        "interrupted",
        "closed",
        "saw_eof",
        "task",
        "link",
        "_waiter",
        "_loop",
        "_clock",
    )

    def __init__(self, input: Channel, output: Channel | Sink, link: Link) -> None:
        self.input = input
        self.output = output
        self.link = link
        self.state: Any = None
        self.interrupted = False
        self.closed = False
        self.saw_eof = False
        self.task: asyncio.Task | None = None
        self._waiter: asyncio.Future | None = None
        self._loop = link.loop
        self._clock = FineClock.of(link.loop)

    @staticmethod
    def now() -> float:
        return now()

    async def read(self, timeout: float | None = None) -> Any:
        """The next chunk, `None` at end of stream, `INTERRUPTED`, or `TIMED_OUT` after `timeout` s."""
        inp = self.input
        while True:
            if self.interrupted:
                return INTERRUPTED
            if inp.items:
                c = inp.get_nowait()
                if c is None:
                    self.saw_eof = True
                return c
            fut = self._loop.create_future()
            self._waiter = fut
            inp.getter = fut
            handle = self._loop.call_later(timeout, _wake, fut, TIMED_OUT) if timeout is not None else None
            try:
                result = await fut
            finally:
                self._waiter = None
                if inp.getter is fut:
                    inp.getter = None
                if handle is not None:
                    handle.cancel()
            if result is TIMED_OUT and not inp.items and not self.interrupted:
                return TIMED_OUT

    async def sleep_until(self, when: float) -> bool:
        """Sleep to fine-clock time `when` (`now()`); False if interrupted first."""
        if self.interrupted:
            return False
        if when <= now():
            return True
        fut = self._loop.create_future()
        self._waiter = fut
        entry = self._clock.call_at(when, _wake, fut)
        try:
            await fut
        finally:
            FineClock.cancel(entry)
            self._waiter = None
        return not self.interrupted

    async def sleep(self, seconds: float) -> bool:
        if seconds <= 0:
            return not self.interrupted
        return await self.sleep_until(now() + seconds)

    async def write(self, chunk: Chunk) -> None:
        out = self.output
        if out.full():
            await out.put(chunk)
        else:
            out.put_nowait(chunk)

    def write_nowait(self, chunk: Chunk) -> None:
        self.output.put_nowait(chunk)

    def close(self) -> None:
        """End the stream downstream of this stub (upstream's `stub.Close()`)."""
        if not self.closed:
            self.closed = True
            if not self.saw_eof:
                self.link.toxic_closed = True  # ended by the toxic, not by the source's EOF
            self.output.put_nowait(None)

    def reset_peer(self) -> None:
        """Close both sockets of the connection with RST (SO_LINGER 0)."""
        self.closed = True
        self.link.conn.reset()

    def interrupt(self) -> bool:
        """Ask the running toxic to return; False when the stub has already closed."""
        if self.closed:
            return False
        self.interrupted = True
        w = self._waiter
        if w is not None:
            _wake(w)
        return True

    async def run(self, wrapper: ToxicWrapper) -> None:
        from harness.toxiproxy.toxics import NOOP

        self.interrupted = False
        # Toxicity is rolled each time a toxic starts on a connection, as upstream does.
        toxic = wrapper.toxic if random.random() < wrapper.toxicity else NOOP
        await toxic.pipe(self)
        if self.saw_eof and not self.closed:
            # Interrupted while holding the end of the stream (slow_close waiting to pass the
            # FIN on, reset_peer timing out on an EOF): put the end back, so whatever runs
            # next, the toxic restarted or a removal's flush, hands it on. Otherwise the
            # connection would outlive its toxic, never closing.
            self.input.items.appendleft(None)
            self.saw_eof = False

    def start(self, wrapper: ToxicWrapper) -> None:
        self.task = self._loop.create_task(self.run(wrapper))


class Side(asyncio.Protocol):
    """One socket of a connection: reads feed `out_link`, writes come from `in_link`."""

    __slots__ = (
        "conn",
        "transport",
        "out_link",
        "in_link",
        "paused",
        "write_paused",
        "_writable",
        "lost",
        "early",
    )

    PAUSE_DEST, PAUSE_CHAN, PAUSE_CONNECT = 1, 2, 4

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.transport: asyncio.Transport | None = None
        self.out_link: Link | None = None
        self.in_link: Link | None = None
        self.paused = 0
        self.write_paused = False
        self._writable: asyncio.Future | None = None
        self.lost = False
        self.early: list[bytes | None] = []  # read before the upstream connected (uvloop reads at once)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.conn.side_made(self)

    def data_received(self, data: bytes) -> None:
        link = self.out_link
        if link is not None:
            link.feed(data)
        else:
            self.early.append(data)
            with contextlib.suppress(RuntimeError, AttributeError):
                self.transport.pause_reading()  # type: ignore[union-attr]

    def eof_received(self) -> bool:
        if self.out_link is not None:
            self.out_link.feed_eof(natural=True)
        else:
            self.early.append(None)
        return True  # keep our write side open: half-close

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if exc is not None and not self.conn.closed:
            self.conn.abnormal(f"{self.conn.name_of(self)} socket error: {exc}")
        self.write_paused = False
        if self._writable is not None:
            _wake(self._writable)
            self._writable = None
        if self.out_link is not None and not self.out_link.eof_in:
            self.out_link.feed_eof(natural=False)
        self.conn.side_lost(self)

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.in_link is not None:
            self.in_link.source.pause(Side.PAUSE_DEST)

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.in_link is not None:
            self.in_link.source.resume(Side.PAUSE_DEST)
        if self._writable is not None:
            _wake(self._writable)
            self._writable = None

    async def writable(self) -> None:
        while self.write_paused and not self.lost:
            if self._writable is None:
                self._writable = self.conn.loop.create_future()
            await asyncio.shield(self._writable)

    def pause(self, reason: int) -> None:
        if not self.paused and self.transport is not None and not self.lost:
            with contextlib.suppress(RuntimeError, AttributeError):
                self.transport.pause_reading()
        self.paused |= reason

    def resume(self, reason: int) -> None:
        if not self.paused & reason:
            return
        self.paused &= ~reason
        if not self.paused and self.transport is not None and not self.lost:
            with contextlib.suppress(RuntimeError, AttributeError):
                self.transport.resume_reading()


class Link:
    """One direction of a connection; see the module docstring for the chain.

    `wrappers` are the link's toxics (the proxy's chain without its hidden noop head) and
    `stubs` their running stages; `head` is where `feed` puts chunks: the first stub's input,
    or the sink itself when there are no toxics (the fast path).
    """

    __slots__ = (
        "conn",
        "loop",
        "direction",
        "source",
        "dest",
        "stubs",
        "wrappers",
        "head",
        "sink",
        "eof_in",
        "natural",
        "toxic_closed",
        "done",
        "nbytes_in",
        "nbytes_out",
        "_ops",
        "_ops_task",
    )

    def __init__(self, conn: Connection, direction: int, source: Side, dest: Side) -> None:
        self.conn = conn
        self.loop = conn.loop
        self.direction = direction
        self.source = source
        self.dest = dest
        self.stubs: list[ToxicStub] = []
        self.wrappers: list[ToxicWrapper] = []
        self.sink = Sink(self)
        self.head: Channel | Sink = self.sink
        self.eof_in = False
        self.natural = True
        self.toxic_closed = False
        self.done = False
        self.nbytes_in = 0
        self.nbytes_out = 0
        self._ops: deque[tuple[str, ToxicWrapper]] = deque()
        self._ops_task: asyncio.Task | None = None

    @property
    def fast(self) -> bool:
        return self.head is self.sink

    # --- data in (this is the chain's noop head) ------------------------------------------------
    def feed(self, data: bytes) -> None:
        self.nbytes_in += len(data)
        head = self.head
        if head is self.sink:
            if not self.done and not self.dest.lost:
                self.dest.transport.write(data)  # type: ignore[union-attr]
                self.nbytes_out += len(data)
            return
        head.put_nowait(Chunk(data, now()))
        if head.full():
            self.source.pause(Side.PAUSE_CHAN)

    def feed_eof(self, natural: bool) -> None:
        if self.eof_in:
            return
        self.eof_in = True
        self.natural = natural
        self.head.put_nowait(None)

    def _set_head(self, head: Channel | Sink) -> None:
        old = self.head
        if isinstance(old, Channel):
            old.on_space = None
        self.head = head
        if isinstance(head, Channel):
            head.on_space = self._head_space
            if head.full():
                self.source.pause(Side.PAUSE_CHAN)
                return
        self.source.resume(Side.PAUSE_CHAN)

    def _head_space(self) -> None:
        self.source.resume(Side.PAUSE_CHAN)

    # --- chain -------------------------------------------------------------------------------
    def start(self, chain: list[ToxicWrapper]) -> None:
        """Begin with the proxy's current chain (noop first); fast when it is only the noop."""
        self.wrappers = list(chain[1:])
        nxt: Channel | Sink = self.sink
        for w in reversed(self.wrappers):
            stub = self._new_stub(self._channel_for(w), nxt, w)
            self.stubs.insert(0, stub)
            nxt = stub.input
        for stub, w in zip(self.stubs, self.wrappers, strict=True):
            stub.start(w)
        self._set_head(nxt)

    def _new_stub(self, inp: Channel, out: Channel | Sink, wrapper: ToxicWrapper) -> ToxicStub:
        stub = ToxicStub(inp, out, self)
        new_state = getattr(wrapper.toxic, "new_state", None)
        if new_state is not None:
            stub.state = new_state()
        return stub

    @staticmethod
    def _channel_for(wrapper: ToxicWrapper) -> Channel:
        size = wrapper.buffer_size
        return Channel(size, _BUFFERED_BYTES) if size else Channel()

    def _finish(self, natural: bool) -> None:
        if not self.done:
            self.done = True
            self.conn.link_done(self, natural)

    def schedule(self, op: str, wrapper: ToxicWrapper) -> asyncio.Task | None:
        """Queue a chain change; changes to one link apply in order, one at a time."""
        if self.done:
            return None
        self._ops.append((op, wrapper))
        if self._ops_task is None or self._ops_task.done():
            self._ops_task = self.loop.create_task(self._run_ops())
        return self._ops_task

    async def _run_ops(self) -> None:
        while self._ops and not self.done:
            op, w = self._ops.popleft()
            if op == "add":
                await self._add(w)
            elif op == "update":
                await self._update(w)
            else:
                await self._remove(w)

    async def _add(self, w: ToxicWrapper) -> None:
        if not self.stubs:
            # `feed` wrote everything straight through, so nothing is in flight: just insert.
            stub = self._new_stub(self._channel_for(w), self.sink, w)
            self.stubs.append(stub)
            self.wrappers.append(w)
            stub.start(w)
            self._set_head(stub.input)
            return
        last = self.stubs[-1]
        if not last.interrupt():
            return  # the link is ending
        await last.task  # type: ignore[misc]
        newin = self._channel_for(w)
        stub = self._new_stub(newin, last.output, w)
        last.output = newin
        self.stubs.append(stub)
        self.wrappers.append(w)
        stub.start(w)
        if not last.closed:
            last.start(self.wrappers[-2])

    async def _update(self, w: ToxicWrapper) -> None:
        if w not in self.wrappers:
            return
        stub = self.stubs[self.wrappers.index(w)]
        if stub.interrupt():
            await stub.task  # type: ignore[misc]
            if not stub.closed:
                stub.start(w)

    async def _remove(self, w: ToxicWrapper) -> None:
        if w not in self.wrappers:
            return
        i = self.wrappers.index(w)
        stub = self.stubs[i]
        if not stub.interrupt():
            return
        await stub.task  # type: ignore[misc]
        cleanup = getattr(w.toxic, "cleanup", None)
        if cleanup is not None:
            cleanup(stub)
            if stub.closed:
                return
        stub.input.unbound()
        prev = self.stubs[i - 1] if i > 0 else None  # None: the virtual head, nothing in flight
        if prev is not None and prev.interrupt():
            await prev.task  # type: ignore[misc]
        while stub.input.items:  # move what the removed toxic had not read yet, in order
            item = stub.input.get_nowait()
            stub.output.put_nowait(item)
            if item is None:
                break
        del self.stubs[i]
        del self.wrappers[i]
        if prev is None:
            self._set_head(stub.output)
        else:
            prev.output = stub.output
            if not prev.closed:
                prev.start(self.wrappers[i - 1])

    def cancel(self) -> None:
        self.done = True
        for stub in self.stubs:
            if stub.task is not None:
                stub.task.cancel()
        if self._ops_task is not None:
            self._ops_task.cancel()


def _set_linger0(transport: asyncio.Transport | None) -> None:
    # A transport already closed (its peer gone) may refuse get_extra_info: nothing to reset then.
    with contextlib.suppress(Exception):
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER0)


class Connection:
    """A client socket, its upstream socket, and the two links between them."""

    __slots__ = ("proxy", "loop", "client", "upstream", "up", "down", "closed", "_connect_task")

    def __init__(self, proxy: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.proxy = proxy
        self.loop = loop
        self.client = Side(self)
        self.upstream: Side | None = None
        self.up: Link | None = None
        self.down: Link | None = None
        self.closed = False
        self._connect_task: asyncio.Task | None = None

    def side_made(self, side: Side) -> None:
        if side is self.client:
            side.pause(Side.PAUSE_CONNECT)
            self._connect_task = self.loop.create_task(self._connect())

    def name_of(self, side: Side) -> str:
        return "client" if side is self.client else "upstream"

    def abnormal(self, why: str) -> None:
        """Say why a connection is ending other than by its peers' EOFs or a toxic's design."""
        peer = None
        with contextlib.suppress(Exception):
            peer = self.client.transport.get_extra_info("peername")  # type: ignore[union-attr]
        log.warning("proxy %s: connection from %s: %s", getattr(self.proxy, "name", "?"), peer, why)

    async def _connect(self) -> None:
        host, _, port = self.proxy.upstream.rpartition(":")
        self.upstream = up_side = Side(self)
        try:
            await self.loop.create_connection(lambda: up_side, host.strip("[]") or None, int(port))
        except (OSError, ValueError) as exc:
            self.abnormal(f"cannot connect to upstream {self.proxy.upstream}: {exc}; closing it")
            self.close()
            return
        if self.closed or self.client.lost:
            self.close()
            return
        self.up = Link(self, 0, self.client, up_side)
        self.down = Link(self, 1, up_side, self.client)
        self.client.out_link = up_side.in_link = self.up
        up_side.out_link = self.client.in_link = self.down
        self.proxy.connection_started(self)
        if self.closed:
            return
        # What either side sent before the links existed (uvloop may deliver the upstream's
        # first bytes, or its EOF, before create_connection returns), in order.
        for side, link in ((self.client, self.up), (up_side, self.down)):
            early, side.early = side.early, []
            for data in early:
                if data is None:
                    link.feed_eof(natural=True)
                else:
                    link.feed(data)
        self.client.resume(Side.PAUSE_CONNECT)
        if up_side.transport is not None and not up_side.lost and not up_side.paused:
            with contextlib.suppress(RuntimeError, AttributeError):
                up_side.transport.resume_reading()  # data_received paused it while it had no link

    def link_done(self, link: Link, natural: bool) -> None:
        if not natural:
            self.close()
            return
        t = link.dest.transport
        if t is not None and not link.dest.lost:
            try:
                if t.can_write_eof():
                    t.write_eof()
            except (OSError, RuntimeError):
                pass
        if self.up is not None and self.down is not None and self.up.done and self.down.done:
            self.close()

    def side_lost(self, side: Side) -> None:
        if self.closed:
            return
        if self.upstream is None or self.up is None:
            self.close()

    def close(self, abort: bool = False) -> None:
        """Close both sockets (flushing what is written) and stop every task of the links."""
        if self.closed:
            return
        self.closed = True
        for link in (self.up, self.down):
            if link is not None:
                link.cancel()
        for side in (self.client, self.upstream):
            if side is not None and side.transport is not None:
                if abort:
                    side.transport.abort()
                else:
                    side.transport.close()
        if self._connect_task is not None and not self._connect_task.done():
            self._connect_task.cancel()
        self.proxy.connection_ended(self)

    def reset(self) -> None:
        """RST both peers, as upstream's reset_peer does with SO_LINGER 0."""
        try:
            for side in (self.client, self.upstream):
                if side is not None and not side.lost:
                    _set_linger0(side.transport)
        finally:
            self.close(abort=True)  # whatever happened above, the connection ends here
