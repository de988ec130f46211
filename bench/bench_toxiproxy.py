"""Benchmark: the embedded Toxiproxy server vs a direct connection, in one run.

    .venv/bin/python bench/bench_toxiproxy.py [--quick]

Three processes, as with a real Toxiproxy: this client, the proxy (`serve()` in a child, so its
CPU can be measured), and an upstream (uvloop echo / sink / source) in another child.
Measures added ping-pong round-trip latency (1 B and 1 KiB, p50/p99), throughput each way,
the proxy's CPU, and the accuracy of a 100 ms latency toxic and a 1000 KB/s bandwidth toxic.
Writes bench/results/toxiproxy.md and .json; the reference is real Toxiproxy 2.12.0 from
TOXIPROXY_API.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.env.ports import free_port, wait_for_port  # noqa: E402
from harness.toxiproxy import ToxiproxyClient  # noqa: E402

RESULTS = ROOT / "bench" / "results"
REFERENCE = {
    "rtt_1b_added_p50_us": (40, 80),
    "rtt_1b_added_p99_us": 170,
    "throughput_mb_s": 560,
    "latency_toxic_ms": (99, 101),
    "bandwidth_kb_s": (990, 1010),
}

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


def pingpong(port: int, size: int, n: int) -> list[float]:
    """Round-trip times in microseconds on one connection (after a warm-up)."""
    s = _connect(port)
    s.sendall(b"E")
    msg = b"x" * size
    out = []
    for i in range(n + 200):
        t0 = time.perf_counter_ns()
        s.sendall(msg)
        _recv_exact(s, size)
        if i >= 200:
            out.append((time.perf_counter_ns() - t0) / 1000)
    s.close()
    return out


def pct(values: list[float], p: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def send_stream(port: int, total: int) -> float:
    """Client → upstream: seconds to push `total` bytes and get the sink's count back."""
    s = _connect(port)
    block = memoryview(b"\0" * (1 << 20))
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
    s.close()
    assert count == total, (count, total)
    return took


def recv_stream(port: int, total: int) -> float:
    """Upstream → client: seconds to receive `total` bytes."""
    s = _connect(port)
    t0 = time.perf_counter()
    s.sendall(b"O" + struct.pack("!Q", total))
    got = 0
    buf = bytearray(1 << 20)
    while got < total:
        n = s.recv_into(buf)
        if not n:
            break
        got += n
    took = time.perf_counter() - t0
    s.close()
    assert got == total, (got, total)
    return took


def paced_stream(port: int, total: int) -> tuple[float, float]:
    """Upstream → client through a rate limit: (seconds end to end, steady bytes/s after the first read)."""
    s = _connect(port)
    t0 = time.perf_counter()
    s.sendall(b"O" + struct.pack("!Q", total))
    got, first_t, first_n = 0, 0.0, 0
    while got < total:
        d = s.recv(1 << 20)
        if not d:
            break
        if not first_n:
            first_t, first_n = time.perf_counter(), len(d)
        got += len(d)
    end = time.perf_counter()
    s.close()
    return end - t0, (got - first_n) / (end - first_t)


def cpu_of(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="128 MiB streams and fewer samples")
    args = ap.parse_args()
    n_ping = 3000 if args.quick else 20000
    stream = (128 if args.quick else 1024) * 2**20
    bw_bytes = 1_000_000 if args.quick else 3_000_000

    up_port, api_port = free_port(), free_port()
    upstream = _spawn(["-c", UPSTREAM_CODE, str(up_port)])
    proxy_proc = _spawn(["-c", f"from harness.toxiproxy.server import serve; serve('127.0.0.1', {api_port})"])
    try:
        if not (wait_for_port(up_port) and wait_for_port(api_port)):
            raise SystemExit(
                "upstream or proxy did not start: "
                + (proxy_proc.stderr.read(2000).decode() if proxy_proc.poll() else "")
            )
        ps = psutil.Process(proxy_proc.pid)
        tp = ToxiproxyClient(f"http://127.0.0.1:{api_port}")
        proxy = tp.create_proxy("bench", upstream=f"127.0.0.1:{up_port}")
        res: dict[str, float] = {}

        for size, label in ((1, "1b"), (1024, "1kib")):
            direct = pingpong(up_port, size, n_ping)
            via = pingpong(proxy.port, size, n_ping)
            for p in (50, 99):
                res[f"rtt_{label}_direct_p{p}_us"] = pct(direct, p)
                res[f"rtt_{label}_proxy_p{p}_us"] = pct(via, p)
                res[f"rtt_{label}_added_p{p}_us"] = pct(via, p) - pct(direct, p)

        for way, fn in (("upstream", send_stream), ("downstream", recv_stream)):
            fn(up_port, 8 * 2**20)
            took = fn(up_port, stream)
            res[f"throughput_direct_{way}_mb_s"] = stream / took / 1e6
            c0 = cpu_of(ps)
            took = fn(proxy.port, stream)
            res[f"throughput_proxy_{way}_mb_s"] = stream / took / 1e6
            res[f"proxy_cpu_{way}_cores"] = (cpu_of(ps) - c0) / took

        tp.add_toxic("bench", "latency", attributes={"latency": 100})
        s = _connect(proxy.port)
        s.sendall(b"E")
        lat = []
        for _ in range(30 if args.quick else 100):
            t0 = time.perf_counter_ns()
            s.sendall(b"x")
            _recv_exact(s, 1)
            lat.append((time.perf_counter_ns() - t0) / 1e6)
        s.close()
        res["latency_toxic_p50_ms"] = statistics.median(lat)
        res["latency_toxic_p99_ms"] = pct(lat, 99)
        tp.remove_toxic("bench", "latency_downstream")

        tp.add_toxic("bench", "bandwidth", attributes={"rate": 1000})
        took, steady = paced_stream(proxy.port, bw_bytes)
        res["bandwidth_toxic_end_to_end_kb_s"] = bw_bytes / took / 1000
        res["bandwidth_toxic_kb_s"] = steady / 1000
        tp.reset()
        res["proxy_rss_mb"] = ps.memory_info().rss / 1e6
    finally:
        for p in (proxy_proc, upstream):
            p.terminate()
            p.wait(10)

    report(res, args.quick, stream, n_ping)
    return 0


def report(res: dict[str, float], quick: bool, stream: int, n_ping: int) -> None:
    from rich.console import Console
    from rich.table import Table

    tput = min(res["throughput_proxy_upstream_mb_s"], res["throughput_proxy_downstream_mb_s"])
    rows = [
        (
            "1 B RTT p50 (direct / proxy / added)",
            "µs",
            res["rtt_1b_direct_p50_us"],
            res["rtt_1b_proxy_p50_us"],
            res["rtt_1b_added_p50_us"],
            "+40–80",
            res["rtt_1b_added_p50_us"] <= 80,
        ),
        (
            "1 B RTT p99",
            "µs",
            res["rtt_1b_direct_p99_us"],
            res["rtt_1b_proxy_p99_us"],
            res["rtt_1b_added_p99_us"],
            "+170",
            res["rtt_1b_added_p99_us"] <= 170,
        ),
        (
            "1 KiB RTT p50",
            "µs",
            res["rtt_1kib_direct_p50_us"],
            res["rtt_1kib_proxy_p50_us"],
            res["rtt_1kib_added_p50_us"],
            "+37",
            res["rtt_1kib_added_p50_us"] <= 80,
        ),
        (
            "1 KiB RTT p99",
            "µs",
            res["rtt_1kib_direct_p99_us"],
            res["rtt_1kib_proxy_p99_us"],
            res["rtt_1kib_added_p99_us"],
            "+167",
            res["rtt_1kib_added_p99_us"] <= 170,
        ),
        (
            f"throughput upstream ({stream >> 20} MiB)",
            "MB/s",
            res["throughput_direct_upstream_mb_s"],
            res["throughput_proxy_upstream_mb_s"],
            None,
            "~560",
            res["throughput_proxy_upstream_mb_s"] >= 560,
        ),
        (
            f"throughput downstream ({stream >> 20} MiB)",
            "MB/s",
            res["throughput_direct_downstream_mb_s"],
            res["throughput_proxy_downstream_mb_s"],
            None,
            "~560",
            res["throughput_proxy_downstream_mb_s"] >= 560,
        ),
        ("proxy CPU, upstream stream", "cores", None, res["proxy_cpu_upstream_cores"], None, "~0.9", True),
        (
            "proxy CPU, downstream stream",
            "cores",
            None,
            res["proxy_cpu_downstream_cores"],
            None,
            "~0.9",
            True,
        ),
        (
            "latency toxic 100 ms, p50",
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
            res["latency_toxic_p99_ms"] <= 104,
        ),
        (
            "bandwidth toxic 1000 KB/s",
            "KB/s",
            None,
            res["bandwidth_toxic_kb_s"],
            None,
            "999.1",
            abs(res["bandwidth_toxic_kb_s"] - 1000) <= 10,
        ),
    ]
    table = Table(title=f"Embedded Toxiproxy vs direct ({'quick' if quick else 'full'} run, {n_ping} pings)")
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
    meta = {
        "schema_version": 1,
        "quick": quick,
        "stream_bytes": stream,
        "pings": n_ping,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": res,
        "min_throughput_mb_s": tput,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "toxiproxy.json").write_text(json.dumps(meta, indent=2) + "\n")
    (RESULTS / "toxiproxy.md").write_text(
        "# Embedded Toxiproxy benchmark\n\n"
        f"`.venv/bin/python bench/bench_toxiproxy.py{' --quick' if quick else ''}` — {meta['when']}, "
        f"Python {meta['python']}, {meta['cpus']} CPUs, loopback; client, proxy and upstream in separate processes.\n\n"
        + "\n".join(md)
        + "\n"
    )


if __name__ == "__main__":
    raise SystemExit(main())
