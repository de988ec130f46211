"""Streaming replicas on loopback: create (pg_basebackup -R), watch lag, resync, promote.

    primary ──WAL stream──► Replica (hot standby, own data dir and port)
       ▲ pg_stat_replication          ▲ pg_last_wal_replay_lsn / pg_last_xact_replay_timestamp
       └──────────── LagMonitor.sample() ─────┘  → on_alert(LagAlert) past a threshold

Lag comes from the primary when it answers (bytes behind and replay_lag), else from the
replica alone (seconds since the last replayed transaction, zero when it has replayed all
it received), so the monitor keeps reporting while the primary is down.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from resilience.backup.errors import EngineError, ReplicationError
from resilience.backup.postgres import LOOPBACK, LocalCluster
from resilience.backup.runner import chown_pg, pg_bindir, run
from resilience.backup.targets import require_empty_dir
from resilience.incidents import Alert, IncidentManager, Severity


@dataclass(frozen=True)
class LagSample:
    """One lag reading; `bytes` is None when the primary could not be asked."""

    t_ns: int
    bytes: int | None
    seconds: float | None
    state: str | None  # pg_stat_replication.state: streaming, catchup …; None when not connected
    error: str | None = None


@dataclass(frozen=True)
class LagAlert:
    """Lag crossed a threshold (or could not be measured); passed to the monitor's callback."""

    replica: str
    sample: LagSample
    reason: str

    def __str__(self) -> str:
        return f"replica {self.replica}: {self.reason}"

    def to_alert(self) -> Alert:
        """As a resilience.incidents Alert (one dedup key per replica), for an IncidentManager."""
        unmeasured = self.sample.bytes is None and self.sample.error is not None
        return Alert(severity=Severity.ERROR if unmeasured else Severity.WARNING,
                     title=f"replication lag on {self.replica}", description=self.reason, source="replication",
                     dedup_key=f"replication-lag:{self.replica}",
                     context={"bytes": self.sample.bytes, "seconds": self.sample.seconds, "state": self.sample.state,
                              "error": self.sample.error, "t_ns": self.sample.t_ns})


def incident_callback(manager: IncidentManager, loop: asyncio.AbstractEventLoop) -> Callable[[LagAlert], None]:
    """An `on_alert` that hands alerts from the monitor's thread to an IncidentManager on `loop`."""
    return lambda alert: asyncio.run_coroutine_threadsafe(manager.alert(alert.to_alert()), loop)


class Replica:
    """A hot standby of a primary on 127.0.0.1, in a directory of its own."""

    def __init__(self, cluster: LocalCluster, primary_port: int, name: str) -> None:
        self.cluster, self.primary_port, self.name = cluster, primary_port, name

    def __repr__(self) -> str:
        return f"Replica({self.name!r}, port={self.cluster.port}, primary_port={self.primary_port})"

    @property
    def data(self) -> Path:
        return self.cluster.data

    @property
    def port(self) -> int:
        return self.cluster.port

    @property
    def dsn(self) -> str:
        return self.cluster.dsn

    @classmethod
    def create(cls, primary_port: int, data: Path | str, *, port: int | None = None, name: str = "replica1",
               bindir: Path | None = None, start: bool = True, timeout: float = 600) -> Replica:
        """pg_basebackup -R into a NEW empty `data`, then (optionally) start it as a standby."""
        bindir = bindir or pg_bindir()
        replica = cls(LocalCluster(data, port=port, bindir=bindir), primary_port, name)
        replica._basebackup(timeout)
        if start:
            replica.start()
        return replica

    def _basebackup(self, timeout: float) -> None:
        data = require_empty_dir(self.data)
        chown_pg(data)
        data.chmod(0o700)
        conninfo = f"host={LOOPBACK} port={self.primary_port} user=postgres application_name={self.name}"
        run([self.cluster.bindir / "pg_basebackup", "-d", conninfo, "-D", data, "-R", "-X", "stream",
             "-c", "fast", "--no-sync"], as_pg=True, timeout=timeout, error=ReplicationError,
            what="pg_basebackup")
        # -R wrote standby.signal; pin our own conninfo (application_name identifies us upstream)
        self.cluster.configure(primary_conninfo=f"'{conninfo}'", hot_standby="on", archive_mode="off")

    def start(self, timeout: float = 60) -> None:
        try:
            self.cluster.start(timeout)
            self.cluster.wait_ready(timeout)
        except EngineError as exc:
            raise ReplicationError(f"replica {self.name}: {exc}") from exc

    def stop(self, mode: str = "fast") -> None:
        self.cluster.stop(mode)

    def in_recovery(self) -> bool:
        return self.cluster.in_recovery()

    def resync(self, timeout: float = 600) -> float:
        """Rebuild from the primary (a fresh pg_basebackup); the old copy is removed only on success."""
        t0 = time.monotonic()
        if not (self.data / "standby.signal").exists():
            raise ReplicationError(f"replica {self.name}: {self.data} is not a standby; refusing to wipe it")
        self.stop("immediate")
        aside = self.data.with_name(f"{self.data.name}.resync-{time.time_ns()}")
        self.data.rename(aside)
        try:
            self._basebackup(timeout)
        except Exception:
            shutil.rmtree(self.data, ignore_errors=True)
            aside.rename(self.data)
            raise
        shutil.rmtree(aside, ignore_errors=True)
        self.start()
        return time.monotonic() - t0

    def promote(self, timeout: float = 60) -> float:
        """Make it a primary; returns seconds from the request until it accepts writes."""
        t0 = time.monotonic()
        try:
            self.cluster.query("select pg_promote(wait => true, wait_seconds => %s)", (int(timeout),))
        except EngineError:
            self.cluster.pg_ctl("-w", "-t", str(int(timeout)), "promote", timeout=timeout + 5)
        try:
            self.cluster.wait_promoted(timeout)
        except EngineError as exc:
            raise ReplicationError(f"replica {self.name}: promotion did not finish: {exc}") from exc
        return time.monotonic() - t0

    def replica_lag_seconds(self) -> float:
        """Seconds behind as the replica sees it: 0 when it replayed all it received."""
        row = self.cluster.query(
            "select case when pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() then 0 "
            "else coalesce(extract(epoch from now() - pg_last_xact_replay_timestamp()), 0) end")[0]
        return float(row[0])


class LagMonitor:
    """Samples a replica's lag; calls `on_alert` once per breach and `on_clear` when it recovers.

    Use `sample()`/`check()` from your own loop, or `start()`/`stop()` (or `with`) for a thread.
    `resync_on_alert` rebuilds the replica when lag stays past the threshold.
    """

    def __init__(self, replica: Replica, *, max_bytes: int = 16 << 20, max_seconds: float = 5.0,
                 on_alert: Callable[[LagAlert], None] | None = None,
                 on_clear: Callable[[LagSample], None] | None = None, interval: float = 0.5,
                 resync_on_alert: bool = False, monotonic_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self.replica, self.max_bytes, self.max_seconds = replica, max_bytes, max_seconds
        self.on_alert, self.on_clear, self.interval = on_alert, on_clear, interval
        self.resync_on_alert = resync_on_alert
        self._now = monotonic_ns
        self.samples: list[LagSample] = []
        self.alerts: list[LagAlert] = []
        self._breached = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> LagSample:
        t = self._now()
        state = nbytes = seconds = None
        error = None
        try:
            with psycopg.connect(host=LOOPBACK, port=self.replica.primary_port, user="postgres", dbname="postgres",
                                 connect_timeout=2, autocommit=True) as conn:
                row = conn.execute(
                    "select state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint, "
                    "coalesce(extract(epoch from replay_lag), 0)::float8 "
                    "from pg_stat_replication where application_name = %s", (self.replica.name,)).fetchone()
            if row is None:
                error = "not connected to the primary"
            else:
                state, nbytes, seconds = row[0], int(row[1] or 0), float(row[2])
        except psycopg.Error as exc:
            error = f"primary unreachable: {str(exc).strip().splitlines()[0]}"
        try:
            replica_seconds = self.replica.replica_lag_seconds()
            seconds = replica_seconds if seconds is None else max(seconds, replica_seconds)
        except EngineError as exc:
            error = f"replica unreachable: {exc}"
        s = LagSample(t, nbytes, seconds, state, error)
        self.samples.append(s)
        return s

    def check(self) -> LagAlert | None:
        """Take a sample; alert on the first sample of a breach, clear on the first good one after."""
        s = self.sample()
        reason = None
        if s.bytes is not None and s.bytes > self.max_bytes:
            reason = f"{s.bytes} bytes behind (threshold {self.max_bytes})"
        elif s.seconds is not None and s.seconds > self.max_seconds:
            reason = f"{s.seconds:.1f} s behind (threshold {self.max_seconds:g} s)"
        elif s.error and s.seconds is None:
            reason = s.error
        if reason is None:
            if self._breached and self.on_clear:
                self.on_clear(s)
            self._breached = False
            return None
        if self._breached:
            return None
        self._breached = True
        alert = LagAlert(self.replica.name, s, reason)
        self.alerts.append(alert)
        if self.on_alert:
            self.on_alert(alert)
        if self.resync_on_alert and s.error is None:
            self.replica.resync()
        return alert

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception as exc:  # noqa: BLE001 - a monitor must outlive one bad sample
                self.samples.append(LagSample(self._now(), None, None, None, f"monitor error: {exc}"))

    def start(self) -> LagMonitor:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"lag-{self.replica.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> LagMonitor:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
