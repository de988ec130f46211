"""Benchmark: the embedded Toxiproxy server vs a direct connection, in one run.

    .venv/bin/python bench/bench_toxiproxy.py [--quick]

Three processes, as with a real Toxiproxy: this client, the proxy (`serve()` in a child, so its
CPU can be measured), and an upstream (uvloop echo / sink / source) in another child.

Method, chosen so that a tail is the proxy's and not the machine's:

* **Round trips** (1 B and 1 KiB ping-pong): after a warm-up, 40 blocks of 500 pings alternate
  between a direct and a proxied connection (ABBA order), so both see the same moments of the
  run; "added" is a percentile of the proxied samples minus the same percentile of the direct
  ones, over all blocks.
* **Latency toxic** (100 ms, downstream): 2500 one-byte messages pipelined on one connection,
  one every 2.3 ms, each timed from its send to its echo, so p99 is the 25th-largest sample.
* **Bandwidth toxic** (1000 KB/s): the least-squares slope of bytes received over time.
* **Throughput**: 1 GiB each way, direct then proxied, with the proxy's CPU over the transfer.
* The client's timed loops run with the garbage collector off.
* **Machine load**: the load average, and the CPU that other processes used during each phase
  (all busy CPU time minus this benchmark's three processes); a run is marked *noisy* when
  others used more than 0.25 of a core in any phase.

Writes bench/results/toxiproxy.md and .json; the reference is real Toxiproxy 2.12.0 from
docs/toxiproxy.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import select
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.env.ports import free_port, wait_for_port  # noqa: E402
from harness.toxiproxy import ToxiproxyClient  # noqa: E402

RESULTS = ROOT / "bench" / "results"
NOISY_CORES = 0.25  # others' average CPU in a phase above which the run is marked noisy

UPSTREAM_CODE = r"""
import asyncio, struct, sys, uvloop

class P(asyncio.Protocol):
    mode = None
    def connection_made(self, t):
        self.t = t; self.count = 0
    def data_received(self, d):
        if self.mode is None:
            self.mode, d = d[:1], d[1:]
            if self.mode == b"O":
                self.left = None; self.buf = d; self._source(); return
        if self.mode == b"E":
            self.t.write(d)
        elif self.mode == b"S":
            self.count += len(d)
        elif self.mode == b"O":
            self.buf += d; self._source()
    def _source(self):
        if self.left is None and len(self.buf) >= 8:
            self.left = struct.unpack("!Q", self.buf[:8])[0]; self.block = b"\0" * (1 << 20); self.pump()
    def pump(self):
        while self.left > 0 and self.t.get_write_buffer_size() < (4 << 20):
            n = min(self.left, len(self.block)); self.t.write(self.block[:n] if n < len(self.block) else self.block); self.left -= n
        if self.left == 0:
            self.t.write_eof()
    def resume_writing(self):
        if self.mode == b"O" and self.left: self.pump()
    def eof_received(self):
        if self.mode == b"S":
            self.t.write(struct.pack("!Q", self.count))
        self.t.close()

async def main():
    server = await asyncio.get_running_loop().create_server(P, "127.0.0.1", int(sys.argv[1]))
    await asyncio.Event().wait()

uvloop.run(main())
"""


def _spawn(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        d = s.recv(n - len(buf))
        if not d:
            raise ConnectionError("EOF")
        buf += d
    return bytes(buf)


def pct(values: list[float], p: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


# --- machine load --------------------------------------------------------------------------------
class Load:
    """CPU used by processes other than ours, phase by phase, and the load average."""

    def __init__(self, ours: list[psutil.Process]) -> None:
        self.ours = ours
        self.phases: dict[str, float] = {}
        self._mark: tuple[float, float, float] | None = None
        self._procs0 = self._per_process()

    @staticmethod
    def _busy() -> float:
        t = psutil.cpu_times()
        # irq/softirq left out: loopback traffic of our own is largely accounted there
        return t.user + t.nice + t.system + getattr(t, "steal", 0.0)

    def _ours(self) -> float:
        total = 0.0
        for p in self.ours:
            try:
                c = p.cpu_times()
                total += c.user + c.system
            except psutil.Error:
                pass
        return total

    def _per_process(self) -> dict[int, tuple[str, float]]:
        out = {}
        for p in psutil.process_iter(["name", "cpu_times"]):
            c = p.info["cpu_times"]
            if c is not None:
                out[p.pid] = (p.info["name"] or "?", c.user + c.system)
        return out

    def begin(self) -> None:
        self._mark = (time.perf_counter(), self._busy(), self._ours())

    def end(self, phase: str) -> None:
        assert self._mark is not None
        t0, busy0, ours0 = self._mark
        wall = time.perf_counter() - t0
        others = (self._busy() - busy0) - (self._ours() - ours0)
        self.phases[phase] = max(others, 0.0) / wall

    def top_others(self, n: int = 4) -> list[tuple[str, float]]:
        """The other processes that used the most CPU since the start, in cores."""
        ours = {p.pid for p in self.ours}
        now = self._per_process()
        wall = time.perf_counter() - START
        used = []
        for pid, (name, cpu) in now.items():
            if pid in ours:
                continue
            before = self._procs0.get(pid)
            used.append(
                (f"{name}[{pid}]", (cpu - (before[1] if before and before[0] == name else 0.0)) / wall)
            )
        used.sort(key=lambda x: -x[1])
        return [(name, round(c, 3)) for name, c in used[:n] if c > 0.005]


START = time.perf_counter()


# --- measurements --------------------------------------------------------------------------------
def _echo_conn(port: int) -> socket.socket:
    s = _connect(port)
    s.sendall(b"E")
    return s


def _ping_block(s: socket.socket, size: int, n: int, out: list[float]) -> None:
    msg = b"x" * size
    buf = bytearray(size)
    mv = memoryview(buf)
    clock, sendall, recv_into = time.perf_counter_ns, s.sendall, s.recv_into
    for _ in range(n):
        t0 = clock()
        sendall(msg)
        got = recv_into(buf)
        while got < size:
            got += recv_into(mv[got:])
        out.append((clock() - t0) / 1000)


def pingpong_interleaved(
    direct_port: int, proxy_port: int, size: int, blocks: int, per_block: int, warmup: int
) -> tuple[list[float], list[float]]:
    """Round-trip times (µs), direct and proxied, measured in alternating blocks."""
    d, p = _echo_conn(direct_port), _echo_conn(proxy_port)
    direct: list[float] = []
    via: list[float] = []
    try:
        _ping_block(d, size, warmup, [])
        _ping_block(p, size, warmup, [])
        gc.disable()
        for b in range(blocks):
            pair = ((d, direct), (p, via)) if b % 2 == 0 else ((p, via), (d, direct))
            for s, out in pair:
                _ping_block(s, size, per_block, out)
    finally:
        gc.enable()
        d.close()
        p.close()
    return direct, via


def send_stream(port: int, total: int) -> float:
    """Client → upstream: seconds to push `total` bytes and get the sink's count back."""
    s = _connect(port)
    block = memoryview(b"\0" * (1 << 20))
    gc.disable()
    try:
        t0 = time.perf_counter()
        s.sendall(b"S")
        left = total
        while left:
            n = min(left, len(block))
            s.sendall(block[:n])
            left -= n
        s.shutdown(socket.SHUT_WR)
        count = struct.unpack("!Q", _recv_exact(s, 8))[0]
        took = time.perf_counter() - t0
    finally:
        gc.enable()
        s.close()
    assert count == total, (count, total)
    return took


def recv_stream(port: int, total: int) -> float:
    """Upstream → client: seconds to receive `total` bytes."""
    s = _connect(port)
    buf = bytearray(1 << 20)
    gc.disable()
    try:
        t0 = time.perf_counter()
        s.sendall(b"O" + struct.pack("!Q", total))
        got = 0
        while got < total:
            n = s.recv_into(buf)
            if not n:
                break
            got += n
        took = time.perf_counter() - t0
    finally:
        gc.enable()
        s.close()
    assert got == total, (got, total)
    return took


def pipelined_rtts(port: int, n: int, interval: float, skip: int) -> list[float]:
    """`n` one-byte messages, one every `interval` s, each timed send → echo (ms); first `skip` dropped."""
    s = _echo_conn(port)
    s.setblocking(False)
    sent: deque[float] = deque()
    rtts: list[float] = []
    clock = time.perf_counter
    total = n + skip
    count = 0
    gc.disable()
    try:
        next_send = clock()
        while len(rtts) < total:
            t = clock()
            if count < total and t >= next_send:
                s.send(b"x")
                sent.append(clock())
                count += 1
                next_send += interval
                continue
            wait = next_send - t if count < total else 2.0
            r, _, _ = select.select([s], [], [], max(wait, 0.0))
            if not r:
                if count >= total:
                    raise TimeoutError(f"{total - len(rtts)} echoes missing")
                continue
            data = s.recv(65536)
            t = clock()
            if not data:
                raise ConnectionError("EOF")
            for _ in range(len(data)):
                rtts.append((t - sent.popleft()) * 1000)
    finally:
        gc.enable()
        s.close()
    return rtts[skip:]


def paced_stream(port: int, total: int) -> tuple[float, float, int]:
    """Upstream → client through a rate limit: (seconds end to end, least-squares bytes/s, reads)."""
    s = _connect(port)
    t0 = time.perf_counter()
    s.sendall(b"O" + struct.pack("!Q", total))
    got = 0
    points: list[tuple[float, int]] = []
    buf = bytearray(1 << 20)
    gc.disable()
    try:
        while got < total:
            n = s.recv_into(buf)
            if not n:
                break
            got += n
            points.append((time.perf_counter(), got))
    finally:
        gc.enable()
    end = time.perf_counter()
    s.close()
    assert got == total, (got, total)
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return end - t0, slope, len(points)


def cpu_of(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="128 MiB streams and fewer samples")
    args = ap.parse_args()
    blocks, per_block, warmup = (10, 300, 500) if args.quick else (40, 500, 2000)
    n_lat = 500 if args.quick else 2500
    stream = (128 if args.quick else 1024) * 2**20
    bw_bytes = 1_000_000 if args.quick else 3_000_000

    load_before = os.getloadavg()
    up_port, api_port = free_port(), free_port()
    upstream = _spawn(["-c", UPSTREAM_CODE, str(up_port)])
    proxy_proc = _spawn(["-c", f"from harness.toxiproxy.server import serve; serve('127.0.0.1', {api_port})"])
    res: dict[str, float] = {}
    try:
        if not (wait_for_port(up_port) and wait_for_port(api_port)):
            raise SystemExit(
                "upstream or proxy did not start: "
                + (proxy_proc.stderr.read(2000).decode() if proxy_proc.poll() else "")
            )
        ps = psutil.Process(proxy_proc.pid)
        load = Load([psutil.Process(), ps, psutil.Process(upstream.pid)])
        tp = ToxiproxyClient(f"http://127.0.0.1:{api_port}")
        proxy = tp.create_proxy("bench", upstream=f"127.0.0.1:{up_port}")

        for size, label in ((1, "1b"), (1024, "1kib")):
            load.begin()
            c0, t0 = cpu_of(ps), time.perf_counter()
            direct, via = pingpong_interleaved(up_port, proxy.port, size, blocks, per_block, warmup)
            res[f"proxy_cpu_rtt_{label}_cores"] = (cpu_of(ps) - c0) / (time.perf_counter() - t0)
            load.end(f"rtt_{label}")
            for p in (50, 99):
                res[f"rtt_{label}_direct_p{p}_us"] = pct(direct, p)
                res[f"rtt_{label}_proxy_p{p}_us"] = pct(via, p)
                res[f"rtt_{label}_added_p{p}_us"] = pct(via, p) - pct(direct, p)
            res[f"rtt_{label}_samples"] = len(via)
            # diagnostic only: the median over block pairs of (proxied p99 − direct p99), which a
            # few blocks hit by other processes barely move
            res[f"rtt_{label}_added_p99_block_median_us"] = statistics.median(
                pct(via[i : i + per_block], 99) - pct(direct[i : i + per_block], 99)
                for i in range(0, len(via), per_block)
            )

        for way, fn in (("upstream", send_stream), ("downstream", recv_stream)):
            load.begin()
            fn(up_port, 8 * 2**20)
            took = fn(up_port, stream)
            res[f"throughput_direct_{way}_mb_s"] = stream / took / 1e6
            fn(proxy.port, 8 * 2**20)
            c0 = cpu_of(ps)
            took = fn(proxy.port, stream)
            res[f"throughput_proxy_{way}_mb_s"] = stream / took / 1e6
            res[f"proxy_cpu_{way}_cores"] = (cpu_of(ps) - c0) / took
            load.end(f"throughput_{way}")

        tp.add_toxic("bench", "latency", attributes={"latency": 100})
        load.begin()
        c0, t0 = cpu_of(ps), time.perf_counter()
        lat = pipelined_rtts(proxy.port, n_lat, 0.0023, skip=50)
        res["proxy_cpu_latency_toxic_cores"] = (cpu_of(ps) - c0) / (time.perf_counter() - t0)
        load.end("latency_toxic")
        tp.remove_toxic("bench", "latency_downstream")
        res["latency_toxic_samples"] = len(lat)
        for p in (1, 50, 99, 99.9):
            res[f"latency_toxic_p{p:g}_ms".replace(".", "_")] = pct(lat, p)
        res["latency_toxic_max_ms"] = max(lat)
        res["latency_toxic_min_ms"] = min(lat)

        tp.add_toxic("bench", "bandwidth", attributes={"rate": 1000})
        load.begin()
        took, slope, reads = paced_stream(proxy.port, bw_bytes)
        load.end("bandwidth_toxic")
        res["bandwidth_toxic_end_to_end_kb_s"] = bw_bytes / took / 1000
        res["bandwidth_toxic_kb_s"] = slope / 1000
        res["bandwidth_toxic_reads"] = reads
        tp.reset()
        res["proxy_rss_mb"] = ps.memory_info().rss / 1e6
        top = load.top_others()
        phases = load.phases
    finally:
        for p in (proxy_proc, upstream):
            p.terminate()
            p.wait(10)

    machine = {
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "others_cores_by_phase": {k: round(v, 3) for k, v in phases.items()},
        "others_top_processes": top,
        "noisy": max(phases.values()) > NOISY_CORES,
        "noisy_threshold_cores": NOISY_CORES,
    }
    report(res, machine, args.quick, stream, blocks, per_block)
    return 0


def report(
    res: dict[str, float], machine: dict, quick: bool, stream: int, blocks: int, per_block: int
) -> None:
    from rich.console import Console
    from rich.table import Table

    tput = min(res["throughput_proxy_upstream_mb_s"], res["throughput_proxy_downstream_mb_s"])
    rows = []
    for label, name, ref50, ref99 in (("1b", "1 B", "+40–80", "+170"), ("1kib", "1 KiB", "+37", "+167")):
        rows.append(
            (
                f"{name} RTT p50 (direct / proxy / added)",
                "µs",
                res[f"rtt_{label}_direct_p50_us"],
                res[f"rtt_{label}_proxy_p50_us"],
                res[f"rtt_{label}_added_p50_us"],
                ref50,
                res[f"rtt_{label}_added_p50_us"] <= 80,
            )
        )
        rows.append(
            (
                f"{name} RTT p99",
                "µs",
                res[f"rtt_{label}_direct_p99_us"],
                res[f"rtt_{label}_proxy_p99_us"],
                res[f"rtt_{label}_added_p99_us"],
                ref99,
                res[f"rtt_{label}_added_p99_us"] <= 170,
            )
        )
    for way in ("upstream", "downstream"):
        rows.append(
            (
                f"throughput {way} ({stream >> 20} MiB)",
                "MB/s",
                res[f"throughput_direct_{way}_mb_s"],
                res[f"throughput_proxy_{way}_mb_s"],
                None,
                "~560",
                res[f"throughput_proxy_{way}_mb_s"] >= 560,
            )
        )
    for way in ("upstream", "downstream"):
        rows.append(
            (f"proxy CPU, {way} stream", "cores", None, res[f"proxy_cpu_{way}_cores"], None, "~0.9", True)
        )
    n_lat = int(res["latency_toxic_samples"])
    rows += [
        (
            f"latency toxic 100 ms, p50 ({n_lat} samples)",
            "ms",
            None,
            res["latency_toxic_p50_ms"],
            None,
            "100.75",
            abs(res["latency_toxic_p50_ms"] - 100) <= 1,
        ),
        (
            "latency toxic 100 ms, p99",
            "ms",
            None,
            res["latency_toxic_p99_ms"],
            None,
            "103.9",
            res["latency_toxic_p99_ms"] <= 103.9,
        ),
        (
            "latency toxic 100 ms, p99 within ±1 ms",
            "ms",
            None,
            res["latency_toxic_p99_ms"],
            None,
            "103.9 (no)",
            abs(res["latency_toxic_p99_ms"] - 100) <= 1 and res["latency_toxic_p1_ms"] >= 99,
        ),
        (
            "bandwidth toxic 1000 KB/s (slope)",
            "KB/s",
            None,
            res["bandwidth_toxic_kb_s"],
            None,
            "999.1",
            abs(res["bandwidth_toxic_kb_s"] - 1000) <= 10,
        ),
    ]
    noisy = machine["noisy"]
    n_ping = blocks * per_block
    title = f"Embedded Toxiproxy vs direct ({'quick' if quick else 'full'} run{', NOISY' if noisy else ''})"
    table = Table(title=title)
    for col in ("measure", "unit", "direct", "via proxy", "added", "real Toxiproxy", "goal met"):
        table.add_column(col, justify="left" if col == "measure" else "right")

    def f(v: float | None) -> str:
        return "" if v is None else f"{v:,.1f}" if abs(v) < 10000 else f"{v:,.0f}"

    md = [
        "| measure | unit | direct | via proxy | added | real Toxiproxy | goal met |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, unit, d, v, a, ref, ok in rows:
        table.add_row(name, unit, f(d), f(v), f(a), ref, "yes" if ok else "NO")
        md.append(f"| {name} | {unit} | {f(d)} | {f(v)} | {f(a)} | {ref} | {'yes' if ok else 'NO'} |")
    Console().print(table)
    phases = ", ".join(f"{k} {v:.2f}" for k, v in machine["others_cores_by_phase"].items())
    top = ", ".join(f"{n} {c:.2f}" for n, c in machine["others_top_processes"]) or "none"
    load_lines = [
        f"Load average (1/5/15 min) before: {' / '.join(map(str, machine['load_average_before']))}; "
        f"after: {' / '.join(map(str, machine['load_average_after']))}.",
        f"CPU used by other processes, in cores, by phase: {phases}.",
        f"Busiest other processes over the run (cores): {top}.",
        (
            f"**Noisy run**: other processes used more than {NOISY_CORES} of a core in at least one phase."
            if noisy
            else f"Quiet run: other processes stayed below {NOISY_CORES} of a core in every phase."
        ),
    ]
    print("\n".join(load_lines))
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    meta = {
        "schema_version": 2,
        "quick": quick,
        "stream_bytes": stream,
        "ping_blocks": blocks,
        "pings_per_block": per_block,
        "pings": n_ping,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "when": when,
        "machine": machine,
        "results": res,
        "min_throughput_mb_s": tput,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "toxiproxy.json").write_text(json.dumps(meta, indent=2) + "\n")
    (RESULTS / "toxiproxy.md").write_text(
        "# Embedded Toxiproxy benchmark\n\n"
        f"`.venv/bin/python bench/bench_toxiproxy.py{' --quick' if quick else ''}` — {when}, "
        f"Python {meta['python']}, {meta['cpus']} CPUs, loopback; client, proxy and upstream in separate "
        f"processes.{' **Noisy run.**' if noisy else ''}\n\n"
        f"Round trips: {blocks} interleaved blocks × {per_block} pings per side (direct and proxied "
        f"alternate, ABBA); added = proxied percentile − direct percentile. Latency toxic: {n_lat} "
        f"pipelined 1-byte messages. Bandwidth: least-squares slope of bytes over time "
        f"({int(res['bandwidth_toxic_reads'])} reads). The client's timed loops run with gc off.\n\n"
        + "\n".join(md)
        + "\n\nDiagnostic, not a goal: the median over block pairs of (proxied p99 − direct p99) is "
        f"{res['rtt_1b_added_p99_block_median_us']:,.1f} µs for 1 B and "
        f"{res['rtt_1kib_added_p99_block_median_us']:,.1f} µs for 1 KiB; blocks that other processes "
        "disturbed move it little, unlike the pooled p99 above.\n"
        + "\n## Machine load during the run\n\n"
        + "\n".join(f"- {line}" for line in load_lines)
        + "\n"
    )


if __name__ == "__main__":
    raise SystemExit(main())
