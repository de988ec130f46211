"""Canary writer: sequenced, server-timestamped rows every Δ, so a drill can say exactly what was lost.

    CanaryWriter thread ──INSERT seq──► canary(seq, written_at = clock_timestamp())
                        ──ack──► Timeline `canary.ack` (t_ns = when the commit returned)

RPO is then "t_disaster − written_at of the newest restored row" and rows lost is "highest seq
acknowledged before the disaster − highest seq restored" (docs/metrics.md). The writer has its own
autocommit connection with bounded connect and statement timeouts, so a dead or hung server
never stalls it: before `disaster()` a failure is recorded and retried on the next tick; after
it, the first failure is recorded and the writer stops by itself.
"""

from __future__ import annotations

import threading
import time

import psycopg

from harness.measure import CANARY_ACK
from harness.timeline import Timeline

CANARY_ERROR = "canary.error"
CANARY_STOPPED = "canary.stopped"
SCHEMA = ("CREATE TABLE IF NOT EXISTS canary (seq bigint PRIMARY KEY, "
          "written_at timestamptz NOT NULL DEFAULT clock_timestamp())")


class CanaryWriter:
    """Inserts canary rows on 127.0.0.1:`port` every `interval_s` until stopped (a context manager)."""

    def __init__(self, port: int, timeline: Timeline, *, interval_s: float = 0.1, host: str = "127.0.0.1",
                 dbname: str = "postgres", connect_timeout_s: int = 2, statement_timeout_ms: int = 1000) -> None:
        if interval_s <= 0:
            raise ValueError(f"canary interval must be > 0 s, got {interval_s}")
        self.conninfo = (f"host={host} port={port} user=postgres dbname={dbname} "
                         f"connect_timeout={max(1, int(connect_timeout_s))} "
                         f"options='-c statement_timeout={int(statement_timeout_ms)}'")
        self.timeline, self.interval_s = timeline, interval_s
        self.last_seq = 0
        self.failures = 0
        self._stop = threading.Event()
        self._after_disaster = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection | None = None

    def create_table(self) -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute(SCHEMA)

    def start(self) -> CanaryWriter:
        self.create_table()
        self._thread = threading.Thread(target=self._run, name="chaosdrill-canary", daemon=True)
        self._thread.start()
        return self

    def disaster(self) -> None:
        """From now on the first failure ends the writer (the server is gone on purpose)."""
        self._after_disaster.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> CanaryWriter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _write(self, seq: int) -> None:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.conninfo, autocommit=True)
        row = self._conn.execute("INSERT INTO canary (seq) VALUES (%s) RETURNING written_at", (seq,)).fetchone()
        t_ack = time.monotonic_ns()
        self.last_seq = seq
        self.timeline.event(CANARY_ACK, "canary", t_ns=t_ack, seq=seq, written_at=row[0].isoformat())

    def _run(self) -> None:
        t0, k, seq = time.monotonic(), 0, self.last_seq
        try:
            while not self._stop.is_set():
                try:
                    self._write(seq + 1)
                    seq += 1
                except psycopg.Error as exc:
                    self.failures += 1
                    self._close()
                    after = self._after_disaster.is_set()
                    self.timeline.event(CANARY_ERROR, "canary", seq=seq + 1, after_disaster=after,
                                        error=(str(exc).strip().splitlines() or [type(exc).__name__])[0])
                    if after:
                        break
                    # a commit whose ack was lost may still be there: never reuse its number
                    seq += 1
                k += 1
                delay = t0 + k * self.interval_s - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                else:  # fell behind: skip missed ticks rather than burst
                    k = int((time.monotonic() - t0) / self.interval_s) + 1
        finally:
            self._close()
            self.timeline.event(CANARY_STOPPED, "canary", last_acked=self.last_seq, failures=self.failures)

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None
