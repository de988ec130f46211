"""The embedded default environment: PostgreSQL 15, Redis 7 and the reference app as local processes.

Everything lives in one temp dir and binds 127.0.0.1 on free ports. A record in
`<state>/envs/<id>.json`, written before the dir or any process exists, says what it started, so
`chaosdrill env down` (another process) and `chaosdrill cleanup` (after a crash) can stop it — by
pid, and by the marker `CHAOSDRILL_CHILD=env:<id>` every process of it carries in its environment
(found even when the harness died before recording a pid) — and remove the dir.

    LocalEnvironment.up():  initdb+start PostgreSQL ─► start Redis ─► start app(pg_dsn, redis_url)
    LocalEnvironment.down(): app ─► Redis ─► PostgreSQL ─► rm -rf dir ─► drop the record
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

import psutil

from harness.config import IncidentsConfig, LocalEnvConfig
from harness.crashpoints import crash_point
from harness.env.app_process import AppProcess, ToxiproxyProcess
from harness.env.base import Endpoint, Service
from harness.env.ports import LOOPBACK, free_port, reserve
from harness.env.procs import kill_marked, kill_tree, strays, wait_gone
from harness.env.servers import PostgresServer, RedisServer, chown_to_pg_user
from harness.errors import EnvironmentStartError
from harness.scope import AllowList
from harness.state import state_dir, write_json_atomic

PROXIED = ("postgres", "redis", "app")
_ACTIVE: dict[str, LocalEnvironment] = {}  # environments this process has up, by id


def envs_dir() -> Path:
    path = state_dir() / "envs"
    path.mkdir(parents=True, exist_ok=True)
    return path


class LocalEnvironment:
    """PostgreSQL + Redis (+ the app) in a temp dir; a context manager that always tears down."""

    def __init__(self, config: LocalEnvConfig | None = None, *, with_app: bool = True,
                 label: str = "env", pg_settings: dict[str, str] | None = None,
                 incidents: IncidentsConfig | None = None) -> None:
        self.config = config or LocalEnvConfig()
        self.incidents = incidents  # where the app's alerts and incidents go ([incidents])
        self.with_app = with_app
        self.id = f"{label}-{uuid.uuid4().hex[:8]}"
        self.marker = f"env:{self.id}"
        # Named now, made only once the record names it: a kill in between leaves no unrecorded dir.
        self.base = Path(tempfile.gettempdir()) / f"chaosdrill-{self.id}-{uuid.uuid4().hex[:8]}"
        for fixed in (self.config.postgres_port, self.config.redis_port, self.config.app_port):
            if fixed:
                reserve(fixed)  # before any port is drawn for the proxies or the app
        try:
            self.postgres = PostgresServer(self.base / "pg", port=self.config.postgres_port or None,
                                           settings=dict(pg_settings or {}), marker=self.marker)
            self.redis = RedisServer(self.base / "redis", port=self.config.redis_port or None)
            self.toxiproxy: ToxiproxyProcess | None = None
            self.proxy_ports: dict[str, int] = {}
            if self.config.proxy:
                # Clients reach each service through a proxy, so network faults (latency, cut
                # connections, a disabled proxy) can be put between them; faults on processes
                # act on the real server behind it.
                self.toxiproxy = ToxiproxyProcess(self.base / "toxiproxy", free_port())
                self.proxy_ports = {name: free_port() for name in PROXIED}
            self.app: AppProcess | None = None
            if with_app:
                pg_port = self.proxy_ports.get("postgres", self.postgres.port)
                redis_port = self.proxy_ports.get("redis", self.redis.port)
                self.app = AppProcess(self.base / "app", port=self.config.app_port or free_port(),
                                      pg_dsn=f"postgresql://postgres@{LOOPBACK}:{pg_port}/postgres",
                                      redis_url=f"redis://{LOOPBACK}:{redis_port}/0", settings=self.config.app,
                                      incidents=incidents)
        except BaseException:
            shutil.rmtree(self.base, ignore_errors=True)  # bad input leaves nothing behind
            raise
        self._up = False
        self.detached = False  # True for `chaosdrill env up`: outlives its creator on purpose
        self._recording = False
        for svc in (self.redis, self.app, self.toxiproxy):
            if svc is not None:
                svc.on_start = self._rerecord
                svc.marker = self.marker
        try:
            self._record()  # before the dir and every process: cleanup knows whatever comes next
            crash_point("env.after_record")
            self.base.mkdir(mode=0o700)
            chown_to_pg_user(self.base)
        except BaseException:
            shutil.rmtree(self.base, ignore_errors=True)
            (envs_dir() / f"{self.id}.json").unlink(missing_ok=True)
            raise

    # -- what the harness sees -------------------------------------------------------------
    @property
    def services(self) -> dict[str, Service]:
        found: dict[str, Service] = {"postgres": self.postgres, "redis": self.redis}
        if self.app is not None:
            found["app"] = self.app
        if self.toxiproxy is not None:
            found["toxiproxy"] = self.toxiproxy
        return found

    @property
    def upstreams(self) -> dict[str, Endpoint]:
        """Where each service really listens (what process faults act on)."""
        found = {"postgres": Endpoint(LOOPBACK, self.postgres.port), "redis": Endpoint(LOOPBACK, self.redis.port)}
        if self.app is not None:
            found["app"] = Endpoint(LOOPBACK, self.app.port)
        return found

    @property
    def endpoints(self) -> dict[str, Endpoint]:
        """Where clients reach each service: through its proxy when the environment has proxies."""
        return {name: Endpoint(LOOPBACK, self.proxy_ports[name]) if name in self.proxy_ports else ep
                for name, ep in self.upstreams.items()}

    @property
    def toxiproxy_url(self) -> str:
        if self.toxiproxy is None:
            raise EnvironmentStartError(f"environment {self.id} runs without proxies (environment.local.proxy = false)")
        return self.toxiproxy.url

    @property
    def app_url(self) -> str:
        """The app as users reach it (through its proxy, when there is one)."""
        if self.app is None:
            raise EnvironmentStartError(f"environment {self.id} has no app")
        return f"http://{self.endpoints['app'].address}"

    def service_of_kind(self, kind: str) -> str | None:
        """The service of a kind ("postgres", "redis", "http"): here they are named after it."""
        return {"postgres": "postgres", "redis": "redis", "http": "app" if self.app else None}.get(kind)

    def proxy_for(self, service: str) -> str | None:
        """The Toxiproxy proxy in front of `service` (named after it), or None without proxies."""
        return service if service in self.proxy_ports else None

    def container_for(self, service: str) -> str | None:
        return None  # local services are processes; process faults act on them

    def allow_list(self) -> AllowList:
        """What faults may touch: this environment's loopback endpoints and service pids."""
        pids = [svc.pid for svc in self.services.values() if svc.pid]
        endpoints = {*self.endpoints.values(), *self.upstreams.values()}
        return AllowList.of(endpoints=[(e.host, e.port) for e in endpoints], pids=pids)

    def versions(self) -> dict[str, str]:
        from harness.results import chaosdrill_version

        found = {"postgres": self.postgres.version(), "redis": self.redis.version()}
        pgbackrest = shutil.which("pgbackrest")
        if pgbackrest:  # the backup tool a drill uses: its version is DR evidence (the evidence pack shows it)
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                text = subprocess.run([pgbackrest, "version"], capture_output=True, text=True, timeout=10).stdout
                found["pgbackrest"] = text.strip() or "unknown"
        if self.app is not None:
            found["app"] = f"chaosdrill reference app {chaosdrill_version()}"
        if self.toxiproxy is not None and self.toxiproxy.running():
            from harness.toxiproxy.client import ToxiproxyClient

            with ToxiproxyClient(self.toxiproxy.url) as client:
                found["toxiproxy (embedded)"] = client.version()
        return found

    # -- lifecycle -------------------------------------------------------------------------
    def up(self, *, init_postgres: bool = True) -> LocalEnvironment:
        """Start everything; on any failure, stop what started and re-raise. `init_postgres=False`
        starts a data dir that is already there (a restore put it in place) and waits until its
        recovery has ended."""
        self._recording = True
        self._record()
        try:
            if init_postgres:
                self.postgres.init()
            else:
                self.postgres.write_settings()
            self.postgres.start()
            if not init_postgres:
                self.postgres.wait_promoted()
            self.redis.start()
            if self.toxiproxy is not None:
                self.toxiproxy.start()
                self._create_proxies()
            if self.app is not None:
                self.app.start()
        except BaseException:
            self.down()
            raise
        self._up = True
        self._record()
        _ACTIVE[self.id] = self
        return self

    def _create_proxies(self) -> None:
        from harness.toxiproxy.client import ToxiproxyClient

        with ToxiproxyClient(self.toxiproxy.url) as client:
            client.populate([{"name": name, "listen": f"{LOOPBACK}:{self.proxy_ports[name]}",
                              "upstream": self.upstreams[name].address}
                             for name in PROXIED if name in self.upstreams])

    def down(self) -> None:
        """Stop every process and remove the dir; safe to call twice and after a partial up()."""
        _ACTIVE.pop(self.id, None)
        if self.app is not None:
            self.app.stop()
        if self.toxiproxy is not None:
            self.toxiproxy.stop()
        self.redis.stop()
        self.postgres.resume()
        self.postgres.stop("fast")
        if self.postgres.running():
            self.postgres.kill()
        # A service restarted behind our back (cleanup's undo of a kill) is not one of our objects'
        # pids: sweep whatever still names the dir or serves its ports before removing the dir.
        _kill(strays(str(self.base), set(self.ports())))
        shutil.rmtree(self.base, ignore_errors=True)
        self._recording = False
        (envs_dir() / f"{self.id}.json").unlink(missing_ok=True)
        self._up = False

    def fresh(self, *, start: bool = True) -> LocalEnvironment:
        """A second, empty environment on new ports and a new dir: restores go there, never here."""
        other = LocalEnvironment(self.config.model_copy(update={"postgres_port": 0, "redis_port": 0,
                                                                 "app_port": 0}),
                                 with_app=self.with_app, label="fresh", pg_settings=self.postgres.settings,
                                 incidents=self.incidents)
        return other.up() if start else other

    def __enter__(self) -> LocalEnvironment:
        return self if self._up else self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    # -- crash safety ----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": "local",
            "marker": self.marker,
            "owner_pid": os.getpid(),
            "detached": self.detached,
            "base": str(self.base),
            "ports": self.ports(),
            "postgres": {"data": str(self.postgres.data), "port": self.postgres.port, "bindir": str(self.postgres.bindir),
                         # a server in a container (restore-test target docker): the label on its containers
                         **({"docker_label": label} if (label := getattr(self.postgres, "docker_label", None)) else {})},
            "redis": {"pid": self.redis.pid, "port": self.redis.port},
            "app": None if self.app is None else {"pid": self.app.pid, "port": self.app.port, "url": self.app_url},
            "toxiproxy": None if self.toxiproxy is None else {"pid": self.toxiproxy.pid, "port": self.toxiproxy.port,
                                                              "url": self.toxiproxy.url, "proxies": self.proxy_ports},
        }

    def ports(self) -> list[int]:
        """Every loopback port this environment listens on (services, proxies, the Toxiproxy API)."""
        found = [e.port for e in (*self.upstreams.values(), *self.endpoints.values())]
        return sorted({*found, *([self.toxiproxy.port] if self.toxiproxy else [])})

    def _record(self) -> None:
        write_json_atomic(envs_dir() / f"{self.id}.json", self.state())

    def _rerecord(self) -> None:
        """After a service (re)started: keep the record's pids current (not after down())."""
        if self._recording:
            self._record()


def known_allow_list() -> AllowList | None:
    """What faults without an explicit allow-list may touch: the environments this process has up
    (their current pids) and every environment recorded in the state dir (`chaosdrill env up`, other
    runs); None when there is none."""
    found = None
    for env in list(_ACTIVE.values()):
        if not (envs_dir() / f"{env.id}.json").exists():
            continue  # torn down from its record by another process (`chaosdrill env down`, cleanup)
        found = env.allow_list() if found is None else found | env.allow_list()
    for record in load_state():
        if record.get("id") in _ACTIVE:
            continue
        pids = [int(info["pid"]) for part in ("redis", "app", "toxiproxy")
                if (info := record.get(part) or {}).get("pid")]
        with contextlib.suppress(OSError, ValueError, KeyError):
            pids.append(int((Path(record["postgres"]["data"]) / "postmaster.pid").read_text().split("\n", 1)[0]))
        allow = AllowList.of(endpoints=[(LOOPBACK, p) for p in _recorded_ports(record)], pids=pids)
        found = allow if found is None else found | allow
    return found


def load_state(env_id: str | None = None) -> list[dict[str, Any]]:
    """Records of environments that are (or were, before a crash) running."""
    records = []
    for path in sorted(envs_dir().glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if env_id is None or record.get("id") == env_id:
            records.append(record)
    return records


def teardown_recorded(record: dict[str, Any]) -> str:
    """Stop the processes of a recorded environment by pid and remove its dir (no Python objects
    needed, so it works from `chaosdrill env down` and after the harness was killed)."""
    pids: list[int] = []
    for part in ("app", "toxiproxy", "redis"):
        info = record.get(part) or {}
        if info.get("pid") and _cmdline_mentions(info["pid"], str(info.get("port"))):
            kill_tree(info["pid"], signal.SIGCONT)
            pids += kill_tree(info["pid"], signal.SIGKILL)
    pg_data = Path(record.get("postgres", {}).get("data", "/nonexistent"))
    with contextlib.suppress(FileNotFoundError, ValueError, PermissionError):
        pm = int((pg_data / "postmaster.pid").read_text().split("\n", 1)[0])
        if _cmdline_mentions(pm, str(pg_data)):
            kill_tree(pm, signal.SIGCONT)
            pids += kill_tree(pm, signal.SIGKILL)
    wait_gone(pids)
    # Processes started after the record but before their pid was in it (a harness killed between
    # spawn and re-record) carry the environment's marker.
    pids += kill_marked(record.get("marker") or f"env:{record['id']}")
    if label := (record.get("postgres") or {}).get("docker_label"):
        _remove_containers(label)
    base = record.get("base")
    if base and Path(base).name.startswith("chaosdrill-"):
        # Services restarted after the record was written (by a KillProcess revert that crashed
        # before re-recording, or by cleanup's undo of a kill) have pids the record does not know.
        pids += _kill(strays(base, set(_recorded_ports(record))))
        shutil.rmtree(base, ignore_errors=True)
    (envs_dir() / f"{record['id']}.json").unlink(missing_ok=True)
    stale = _ACTIVE.pop(record["id"], None)  # torn down under this process's feet: no longer ours to allow
    if stale is not None:
        stale._up = stale._recording = False
    return f"environment {record['id']}: stopped {len(pids)} process(es), removed {base}"


def _remove_containers(label: str) -> None:
    """Every container carrying `label` (a killed run's server, or a one-off tool container that never
    started); best effort: no docker command or engine means there is nothing of ours to remove."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        found = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={label}"], capture_output=True,
                               text=True, timeout=30).stdout.split()
        if found:
            subprocess.run(["docker", "rm", "-f", *found], capture_output=True, timeout=60)


def _recorded_ports(record: dict[str, Any]) -> list[int]:
    ports = list(record.get("ports") or [])
    for part in ("postgres", "redis", "app", "toxiproxy"):
        info = record.get(part) or {}
        if info.get("port"):
            ports.append(int(info["port"]))
        ports += [int(p) for p in (info.get("proxies") or {}).values()]
    return ports


def _kill(pids: list[int]) -> list[int]:
    """SIGCONT (a paused process cannot die cleanly otherwise) then SIGKILL each tree; wait until gone."""
    killed: list[int] = []
    for pid in pids:
        kill_tree(pid, signal.SIGCONT)
        killed += kill_tree(pid, signal.SIGKILL)
    wait_gone(killed)
    return killed


def _cmdline_mentions(pid: int, token: str) -> bool:
    """Guard against a recycled pid: the process's command line must name our port or data dir."""
    try:
        return token in " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return False
