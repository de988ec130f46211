"""Soak benchmark: many concurrent connections through one embedded-Toxiproxy proxy.

    .venv/bin/python bench/bench_toxiproxy_soak.py [--conns 1000] [--runs 5] [--seconds 15] [--quick]

Three processes: this client (uvloop), the proxy (`serve()` in a child, its log captured) and a
uvloop echo upstream (listen backlog 4096, so the upstream's accept queue is not what is measured).
Each run opens `--conns` connections at once (all connects in flight together, which is what
overflowed the proxy's accept queue before its backlog was fixed), then every connection sends a
64-byte numbered message, waits for its echo, checks every byte, and sleeps 0.2–0.6 s, for
`--seconds`; first straight to the upstream, then through the proxy, at the same load. Reported
per run: connections reset, ended early or failed to connect, corrupted bytes, round-trip p50/p99
direct and proxied (added = proxied − direct), the proxy's RSS (start, peak, end) and the warnings
the proxy logged (it logs why it closes any connection abnormally).

Writes bench/results/toxiproxy_soak.md and .json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._table import publish  # noqa: E402
from harness.env.ports import free_port, wait_for_port  # noqa: E402
from harness.toxiproxy import ToxiproxyClient  # noqa: E402

ECHO = r"""
import asyncio, sys, uvloop
class E(asyncio.Protocol):
    def connection_made(self, t): self.t = t
    def data_received(self, d): self.t.write(d)
    def eof_received(self): self.t.close()
async def main():
    await asyncio.get_running_loop().create_server(E, "127.0.0.1", int(sys.argv[1]), backlog=4096)
    await asyncio.Event().wait()
uvloop.run(main())
"""
MSG = 64


def pct(values: list[float], p: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] if v else float("nan")


async def one_conn(port: int, cid: int, stop: asyncio.Event, rtts: list[float], stats: dict[str, int],
                   start: asyncio.Event) -> None:
    rng = random.Random(cid)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        stats["connect_failed"] += 1
        return
    stats["connected"] += 1
    await start.wait()
    seq = 0
    try:
        while not stop.is_set():
            body = f"{cid:08d}:{seq:016d}:".encode().ljust(MSG, b".")
            t0 = time.perf_counter()
            writer.write(body)
            got = await reader.readexactly(MSG)
            rtts.append((time.perf_counter() - t0) * 1e6)
            if got != body:
                stats["corrupted_bytes"] += sum(a != b for a, b in zip(got, body, strict=True))
            seq += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), rng.uniform(0.2, 0.6))
        writer.write_eof()  # a clean end: half-close, read the upstream's EOF back
        if await reader.read():
            stats["corrupted_bytes"] += 1
    except ConnectionResetError:
        stats["reset"] += 1
    except (asyncio.IncompleteReadError, BrokenPipeError):
        stats["ended_early"] += 1
    except OSError:
        stats["other_error"] += 1
    finally:
        writer.close()


async def phase(port: int, conns: int, seconds: float, proxy: psutil.Process | None) -> dict:
    """All connects issued at once; once they are done, `seconds` of traffic; then every
    connection finishes its exchange and ends cleanly (half-close, EOF back)."""
    stats = {"connect_failed": 0, "reset": 0, "ended_early": 0, "other_error": 0, "corrupted_bytes": 0,
             "connected": 0}
    rtts: list[float] = []
    start = asyncio.Event()
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(one_conn(port, i, stop, rtts, stats, start)) for i in range(conns)]
    rss = [proxy.memory_info().rss] if proxy else []
    t0 = time.monotonic()
    while stats["connected"] + stats["connect_failed"] < conns and time.monotonic() - t0 < 30:
        await asyncio.sleep(0.01)
    connect_s = time.monotonic() - t0
    start.set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await asyncio.sleep(0.5)
        if proxy:
            rss.append(proxy.memory_info().rss)
    stop.set()
    _, pending = await asyncio.wait(tasks, timeout=60)
    stats["hung_at_end"] = len(pending)
    for t in pending:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"stats": stats, "rtts": rtts, "rss": rss, "connect_s": connect_s}


def _nofile(soft: int):  # type: ignore[no-untyped-def]
    if not soft:
        return None

    def set_limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    return set_limit


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--quick", action="store_true", help="2 runs of 5 s, results not written")
    ap.add_argument("--proxy-nofile", type=int, default=0,
                    help="start the proxy with this soft descriptor limit (e.g. 1024, a common default)")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.seconds = 2, 5.0
    up_port, api_port = free_port(), free_port()
    log_path = Path(tempfile.mkstemp(prefix="toxiproxy-soak-", suffix=".log")[1])
    log_file = log_path.open("wb")
    upstream = subprocess.Popen([sys.executable, "-c", ECHO, str(up_port)], cwd=ROOT)
    proxy_proc = subprocess.Popen(
        [sys.executable, "-c",
         "import logging; logging.basicConfig(level=logging.WARNING);"
         f"from harness.toxiproxy.server import serve; serve('127.0.0.1', {api_port})"],
        cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=_nofile(args.proxy_nofile),
    )
    rows, runs = [], []
    try:
        if not (wait_for_port(up_port) and wait_for_port(api_port)):
            raise SystemExit("upstream or proxy did not start")
        ps = psutil.Process(proxy_proc.pid)
        with ToxiproxyClient(f"http://127.0.0.1:{api_port}") as tp:
            proxy = tp.create_proxy("soak", upstream=f"127.0.0.1:{up_port}")
        loop = uvloop.new_event_loop()
        for run in range(1, args.runs + 1):
            warnings_before = log_path.read_text(errors="replace").count("WARNING")
            direct = loop.run_until_complete(phase(up_port, args.conns, args.seconds, None))
            via = loop.run_until_complete(phase(proxy.port, args.conns, args.seconds, ps))
            time.sleep(1.0)
            warnings = log_path.read_text(errors="replace").count("WARNING") - warnings_before
            r = {
                "run": run,
                "connect_all_s_direct": direct["connect_s"],
                "connect_all_s_proxy": via["connect_s"],
                "direct": direct["stats"],
                "proxy": via["stats"],
                "samples_direct": len(direct["rtts"]),
                "samples_proxy": len(via["rtts"]),
                "direct_p50_us": pct(direct["rtts"], 50),
                "direct_p99_us": pct(direct["rtts"], 99),
                "proxy_p50_us": pct(via["rtts"], 50),
                "proxy_p99_us": pct(via["rtts"], 99),
                "rss_start_mib": via["rss"][0] / 2**20,
                "rss_peak_mib": max(via["rss"]) / 2**20,
                "rss_end_mib": ps.memory_info().rss / 2**20,
                "proxy_fds_after": ps.num_fds(),
                "proxy_warnings": warnings,
                "load_avg_1m": os.getloadavg()[0],
            }
            r["added_p50_us"] = r["proxy_p50_us"] - r["direct_p50_us"]
            r["added_p99_us"] = r["proxy_p99_us"] - r["direct_p99_us"]
            runs.append(r)
            s = via["stats"]
            rows.append([
                run, args.conns, s["reset"], s["ended_early"] + s["other_error"] + s["hung_at_end"],
                s["connect_failed"],
                s["corrupted_bytes"], r["samples_proxy"],
                f"{r['direct_p50_us']:.0f} / {r['direct_p99_us']:.0f}",
                f"{r['proxy_p50_us']:.0f} / {r['proxy_p99_us']:.0f}",
                f"{r['added_p50_us']:+.0f} / {r['added_p99_us']:+.0f}",
                f"{r['rss_start_mib']:.0f} / {r['rss_peak_mib']:.0f} / {r['rss_end_mib']:.0f}",
                r["proxy_fds_after"], warnings, f"{r['load_avg_1m']:.2f}",
            ])
            print(rows[-1], flush=True)
    finally:
        proxy_proc.terminate()
        upstream.terminate()
        proxy_proc.wait(10)
        upstream.wait(10)
        log_file.close()
    columns = ["run", "connections", "resets", "ended early", "connect failed", "corrupted bytes",
               "round trips (proxied)", "RTT p50 / p99 direct (µs)", "RTT p50 / p99 proxied (µs)",
               "added p50 / p99 (µs)", "proxy RSS start / peak / end (MiB)", "proxy fds after",
               "proxy warnings", "load avg 1 min"]
    cmd = " ".join(["bench/bench_toxiproxy_soak.py", *sys.argv[1:]])
    publish("toxiproxy_soak", f"Embedded Toxiproxy soak: {args.conns} concurrent connections, {args.runs} runs",
            columns, rows, {"command": f".venv/bin/python {cmd}", "runs": runs,
                            "seconds_per_phase": args.seconds}, write=not args.quick)
    if not args.quick:
        append_notes(f".venv/bin/python {cmd}")
    return 0


def append_notes(command: str) -> None:
    """The method and the comparison with real Toxiproxy, under the table."""
    md = ROOT / "bench" / "results" / "toxiproxy_soak.md"
    md.write_text(md.read_text() + f"""
Command: `{command}`. Each run: all connects issued at once, then every connection exchanges
64-byte messages (echo checked byte for byte) with a 0.2–0.6 s pause, for the phase; first direct
to the upstream, then through the proxy. Added = proxied percentile − direct percentile of the
same run. "ended early" counts EOFs before the end and connections still open 60 s after it.

Real Toxiproxy 2.12.0: no Go toolchain or binary can be installed here, so it was not run at this
load. The only reference numbers we have are for one connection on a 2-core machine like this one:
+40–80 µs at p50 and about +170 µs at p99 per round trip. There is no published figure for 1000
concurrent connections to compare with, so "no worse than the Go original at the same load" is not
established by this run. When the load average (last column) is far above the 2 cores, the
latencies measure the machine's queue more than the proxy; resets, early ends, corruption,
descriptors and RSS are meaningful at any load.
""")


if __name__ == "__main__":
    sys.exit(main())
