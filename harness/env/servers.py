"""Throwaway PostgreSQL and Redis servers on loopback ports (docs/recipes.md, sections 2–3).

Each server lives in a directory of its own, binds 127.0.0.1 only, and can be started,
stopped, crashed (SIGKILL) and restarted. As root, PostgreSQL binaries run as the
`postgres` OS user, since initdb refuses root. Servers are detached (own session), so an
environment started by `chaosdrill env up` outlives the CLI and is stopped by pid later.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from harness.crashpoints import crash_point
from harness.env.child import ChildProcess
from harness.env.ports import LOOPBACK, free_port, port_in_use, wait_for_port
from harness.env.procs import MARKER_ENV, child_env, kill_tree, wait_gone
from harness.errors import EnvironmentStartError
from harness.scope import RestartRecipe

PG_OS_USER = "postgres"


def pg_bindir() -> Path:
    """Where initdb/pg_ctl live: $CHAOSDRILL_PG_BINDIR, else the newest /usr/lib/postgresql/N/bin."""
    explicit = os.environ.get("CHAOSDRILL_PG_BINDIR")
    candidates = [explicit] if explicit else sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
    )
    for cand in candidates:
        if cand and (Path(cand) / "initdb").exists() and (Path(cand) / "pg_ctl").exists():
            return Path(cand)
    where = explicit or "/usr/lib/postgresql/*/bin"
    raise EnvironmentStartError(
        f"PostgreSQL binaries not found in {where}: install postgresql-15 (`make deps`) or set CHAOSDRILL_PG_BINDIR"
    )


def redis_binary() -> str:
    """Path of redis-server, or a one-line error saying how to get it."""
    found = os.environ.get("CHAOSDRILL_REDIS_SERVER") or shutil.which("redis-server")
    if not found:
        raise EnvironmentStartError("redis-server not found on PATH: install redis-server (`make deps`)")
    return found


def run_as_pg_user() -> dict:
    """subprocess kwargs that drop to the postgres OS user when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return {}
    try:
        pwd.getpwnam(PG_OS_USER)
    except KeyError as exc:
        raise EnvironmentStartError("running as root needs the 'postgres' OS user: install postgresql-15") from exc
    return {"user": PG_OS_USER, "group": PG_OS_USER}


def chown_to_pg_user(path: Path) -> None:
    """Give `path` to the postgres OS user when we are root, so its processes can write there."""
    if os.geteuid() == 0:
        entry = pwd.getpwnam(PG_OS_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _claim_port(port: int | None, what: str) -> int:
    if port is None:
        return free_port()
    if port_in_use(port):
        raise EnvironmentStartError(f"{what}: port {port} on {LOOPBACK} is already in use")
    return port


def connect(port: int, dbname: str = "postgres", *, timeout_ms: int = 30000, connect_timeout: int = 3):
    """The superuser on one of our PostgreSQL servers on loopback (a source, a restored copy):
    autocommit, a statement timeout. psycopg is imported here, not at start-up (the CLI imports this module)."""
    import psycopg

    return psycopg.connect(host=LOOPBACK, port=port, user="postgres", dbname=dbname, connect_timeout=connect_timeout,
                           autocommit=True, options=f"-c statement_timeout={timeout_ms}")


@dataclass
class PostgresServer:
    """One PostgreSQL cluster in `base/data`, socket and log in `base`."""

    base: Path
    port: int | None = None
    settings: dict[str, str] = field(default_factory=dict)
    fast: bool = True  # fsync off: safe against process kills, not against a host crash
    name: str = "postgres"
    # CHAOSDRILL_CHILD of pg_ctl, the postmaster and its backends (see ChildProcess.marker)
    marker: str | None = None

    def __post_init__(self) -> None:
        self.base = Path(self.base)
        self.bindir = pg_bindir()
        self.port = _claim_port(self.port, "PostgreSQL")

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def log(self) -> Path:
        return self.base / "postgres.log"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@{LOOPBACK}:{self.port}/postgres"

    def tool(self, name: str) -> list[str]:
        """The command that runs PostgreSQL program `name` for this cluster (a container target runs it
        from its image: harness/drill/container.py)."""
        return [str(self.bindir / name)]

    def _run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = [*self.tool(args[0]), *args[1:]]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=child_env(self.marker),
                              **run_as_pg_user())
        if check and proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise EnvironmentStartError(f"{args[0]} failed (exit {proc.returncode}): {tail[0]}")
        return proc

    def init(self) -> None:
        """initdb with trust auth on loopback; settings go to postgresql.auto.conf."""
        self.base.mkdir(parents=True, exist_ok=True)
        chown_to_pg_user(self.base)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync",
                  "-E", "UTF8", "--locale=C")
        self.write_settings()

    def write_settings(self) -> None:
        """Put our settings into postgresql.auto.conf, keeping any others there (a pgBackRest
        restore writes restore_command and recovery targets into it)."""
        conf = {
            "listen_addresses": f"'{LOOPBACK}'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.base}'",
            "max_connections": "100",
        }
        if self.fast:
            # Survives a process crash (SIGKILL), which is what drills do: the OS keeps the page
            # cache. synchronous_commit stays on, or a kill would lose acknowledged commits.
            conf |= {"fsync": "off", "full_page_writes": "off"}
        conf |= self.settings
        path = self.data / "postgresql.auto.conf"
        kept = []
        if path.exists():
            for line in path.read_text().splitlines():
                key = line.split("=", 1)[0].strip()
                if line.strip() and not line.lstrip().startswith("#") and key not in conf:
                    kept.append(line)
        path.write_text("".join(f"{line}\n" for line in kept) + "".join(f"{k} = {v}\n" for k, v in conf.items()))

    def wait_promoted(self, timeout: float = 300) -> None:
        """After a restore: wait until recovery ended (pg_ctl -w returns once a hot standby accepts
        read-only connections, while WAL may still replay). One connection asked every 10 ms: a psql
        started per poll cost ~15 ms each and 50 ms between them, all of it billed to RTO."""
        import psycopg

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with connect(self.port, timeout_ms=10000) as conn:
                    while time.monotonic() < deadline:
                        if not conn.execute("select pg_is_in_recovery()").fetchone()[0]:
                            return
                        time.sleep(0.01)
            except psycopg.Error:
                if not self.running():  # recovery hit a FATAL (a missing segment, a bad target): say so now
                    raise EnvironmentStartError(f"PostgreSQL on port {self.port} stopped during recovery; "
                                                f"see {self.log}") from None
                time.sleep(0.05)
        raise EnvironmentStartError(f"PostgreSQL on port {self.port} still in recovery after {timeout:.0f} s; "
                                    f"see {self.log}")

    def start(self, timeout: float = 30) -> None:
        if port_in_use(self.port):
            raise EnvironmentStartError(f"PostgreSQL: port {self.port} on {LOOPBACK} is already in use")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(int(timeout)), "start",
                  timeout=timeout + 5)
        crash_point("postgres.after_spawn")
        if not wait_for_port(self.port, timeout=timeout):
            raise EnvironmentStartError(f"PostgreSQL did not listen on {LOOPBACK}:{self.port}; see {self.log}")

    @property
    def pid(self) -> int | None:
        """The postmaster's pid (line 1 of postmaster.pid), if it is running."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError, PermissionError):
            return None
        return pid if psutil.pid_exists(pid) else None

    def running(self) -> bool:
        return self.pid is not None

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop; `immediate` is a crash without a shutdown checkpoint."""
        if self.running():
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def kill(self) -> list[int]:
        """SIGKILL the postmaster and every backend, as an OOM kill of the whole server would.

        Killing only the postmaster leaves backends holding shared memory, and the next start
        then refuses ("pre-existing shared memory block is still in use").
        """
        pid = self.pid
        if pid is None:
            return []
        pids = kill_tree(pid)
        if wait_gone(pids):
            # The dead postmaster may linger as a zombie until init reaps it, and postgres treats
            # a lock file naming a zombie as a live server; every process is dead, so drop it.
            for stale in (self.data / "postmaster.pid", self.base / f".s.PGSQL.{self.port}.lock"):
                stale.unlink(missing_ok=True)
        return pids

    def pause(self) -> list[int]:
        pid = self.pid
        return kill_tree(pid, signal.SIGSTOP) if pid else []

    def resume(self) -> list[int]:
        pid = self.pid
        return kill_tree(pid, signal.SIGCONT) if pid else []

    def psql(self, sql: str, db: str = "postgres") -> str:
        """Run one SQL string through psql; returns unaligned, tuples-only output."""
        return self._run("psql", "-h", LOOPBACK, "-p", str(self.port), "-U", "postgres", "-d", db,
                         "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql).stdout.strip()

    def version(self) -> str:
        return self._run("postgres", "--version").stdout.strip()

    def restart_recipe(self) -> RestartRecipe:
        """How `chaosdrill cleanup` restarts this server after a harness killed mid-fault."""
        return RestartRecipe((str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "start"),
                             cwd=str(self.base), user=PG_OS_USER if os.geteuid() == 0 else None, port=self.port,
                             env={MARKER_ENV: self.marker} if self.marker else None)


class RedisServer(ChildProcess):
    """One redis-server in `base`, detached; persistence off unless `persistent`."""

    name = "redis"
    start_timeout = 10.0

    def __init__(self, base: Path, port: int | None = None, persistent: bool = False) -> None:
        self.binary = redis_binary()
        super().__init__(base, _claim_port(port, "Redis"))
        self.persistent = persistent

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def argv(self) -> list[str]:
        args = [self.binary, "--port", str(self.port), "--bind", LOOPBACK, "--dir", str(self.base),
                "--daemonize", "no", "--protected-mode", "yes", "--logfile", str(self.log)]
        if self.persistent:
            args += ["--save", "60 1", "--appendonly", "yes", "--appendfsync", "everysec"]
        else:
            args += ["--save", "", "--appendonly", "no"]
        return args

    def version(self) -> str:
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True).stdout
        return out.strip()
