"""A PostgreSQL data directory we run on a loopback port: a restored copy or a replica.

Restored data directories keep the source's port and socket settings in
postgresql.auto.conf, so `configure()` appends our own; later restarts keep them.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import psycopg

from resilience.backup.errors import EngineError
from resilience.backup.runner import pg_bindir, run

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port the kernel just handed out on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class LocalCluster:
    """start / stop / query one data directory; all SQL over TCP on 127.0.0.1."""

    def __init__(self, data: Path | str, port: int | None = None, bindir: Path | None = None) -> None:
        self.data = Path(data).absolute()
        self.port = port or free_port()
        self.bindir = bindir or pg_bindir()

    def __repr__(self) -> str:
        return f"LocalCluster({str(self.data)!r}, port={self.port})"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@{LOOPBACK}:{self.port}/postgres"

    @property
    def log(self) -> Path:
        return self.data / "startup.log"

    def configure(self, **settings: str) -> None:
        """Append loopback-only connection settings (plus `settings`) to postgresql.auto.conf."""
        conf = {"listen_addresses": f"'{LOOPBACK}'", "port": str(self.port),
                "unix_socket_directories": f"'{self.data}'"} | settings
        with open(self.data / "postgresql.auto.conf", "a") as f:
            f.write("".join(f"{k} = {v}\n" for k, v in conf.items()))

    def pg_ctl(self, *args: str, timeout: float = 120, check: bool = True):
        return run([str(self.bindir / "pg_ctl"), "-D", str(self.data), *args], as_pg=True, timeout=timeout,
                   check=check, error=EngineError, what=f"pg_ctl {args[-1]}")

    def start(self, timeout: float = 120) -> None:
        """pg_ctl start -w; it may return while recovery still runs (see wait_ready/wait_promoted)."""
        self.pg_ctl("-l", str(self.log), "-w", "-t", str(int(timeout)), "start", timeout=timeout + 5)

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            self.pg_ctl("-m", mode, "-w", "stop", check=False)

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists() and self.pg_ctl("status", check=False).returncode == 0

    def connect(self, timeout: float = 3, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(host=LOOPBACK, port=self.port, user="postgres", dbname=dbname,
                               connect_timeout=max(1, int(timeout)), autocommit=True)

    def query(self, sql: str, params: tuple = (), dbname: str = "postgres") -> list[tuple]:
        try:
            with self.connect(dbname=dbname) as conn:
                cur = conn.execute(sql, params)
                return cur.fetchall() if cur.description else []
        except psycopg.Error as exc:
            raise EngineError(f"{self}: query failed: {str(exc).strip().splitlines()[0]}") from exc

    def wait_ready(self, timeout: float = 60) -> None:
        """Until it accepts queries (a hot standby does, while still in recovery)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.query("select 1")
                return
            except EngineError:
                if time.monotonic() > deadline:
                    raise EngineError(f"{self} did not accept queries within {timeout:.0f} s; see {self.log}") \
                        from None
                time.sleep(0.02)

    def in_recovery(self) -> bool:
        return bool(self.query("select pg_is_in_recovery()")[0][0])

    def wait_promoted(self, timeout: float = 300) -> None:
        """Until recovery has ended and it accepts writes (pg_ctl -w can return before that)."""
        deadline = time.monotonic() + timeout
        self.wait_ready(timeout)
        while self.in_recovery():
            if time.monotonic() > deadline:
                raise EngineError(f"{self} still in recovery after {timeout:.0f} s; see {self.log}")
            time.sleep(0.02)
