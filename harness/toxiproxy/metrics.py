"""Prometheus text for /metrics, with upstream's metric names and labels.

Upstream (collectors/proxy.go) exports two counters labelled direction, proxy, listener and
upstream: `toxiproxy_proxy_received_bytes_total` (read from the source) and
`toxiproxy_proxy_sent_bytes_total` (written to the destination), plus the Go client's process
collector. Upstream adds a connection's bytes when it ends; we also count live connections, so
a scrape during a long transfer is not stuck at zero.
"""

from __future__ import annotations

import os
import resource
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.toxiproxy.pipeline import Link
    from harness.toxiproxy.proxy import LiveProxy, ProxyCollection

__all__ = ["ProxyMetrics", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_DIRECTIONS = ("upstream", "downstream")
_START = time.time()


def _label(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class ProxyMetrics:
    """Byte counters of finished connections; live ones are read from their links at scrape time."""

    def __init__(self) -> None:
        self.totals: dict[tuple[str, str, str, str], list[int]] = {}

    def _key(self, proxy: LiveProxy, link: Link) -> tuple[str, str, str, str]:
        return (_DIRECTIONS[link.direction], proxy.name, proxy.listen, proxy.upstream)

    def add(self, proxy: LiveProxy, link: Link) -> None:
        t = self.totals.setdefault(self._key(proxy, link), [0, 0])
        t[0] += link.nbytes_in
        t[1] += link.nbytes_out

    def render(self, collection: ProxyCollection) -> bytes:
        snapshot = {k: list(v) for k, v in self.totals.items()}
        for proxy in collection.proxies.values():
            for link in proxy.live_links():
                t = snapshot.setdefault(self._key(proxy, link), [0, 0])
                t[0] += link.nbytes_in
                t[1] += link.nbytes_out
        lines: list[str] = []
        for idx, name in (
            (0, "toxiproxy_proxy_received_bytes_total"),
            (1, "toxiproxy_proxy_sent_bytes_total"),
        ):
            lines.append(f"# HELP {name} ")
            lines.append(f"# TYPE {name} counter")
            for (direction, proxy_name, listener, upstream), values in sorted(snapshot.items()):
                labels = (
                    f'direction="{direction}",listener="{_label(listener)}",'
                    f'proxy="{_label(proxy_name)}",upstream="{_label(upstream)}"'
                )
                lines.append(f"{name}{{{labels}}} {values[idx]}")
        usage = resource.getrusage(resource.RUSAGE_SELF)
        try:
            with open("/proc/self/statm") as f:
                rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            fds = len(os.listdir("/proc/self/fd"))
        except OSError:
            rss, fds = usage.ru_maxrss * 1024, 0
        for name, kind, value in (
            ("process_cpu_seconds_total", "counter", usage.ru_utime + usage.ru_stime),
            ("process_open_fds", "gauge", fds),
            ("process_resident_memory_bytes", "gauge", rss),
            ("process_start_time_seconds", "gauge", _START),
        ):
            lines.append(f"# TYPE {name} {kind}")
            lines.append(f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}")
        return ("\n".join(lines) + "\n").encode()
