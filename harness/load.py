"""Locust load in a separate process, headless, for the length of a scenario.

Locust monkey-patches its process with gevent on import, which slows asyncio executors 4×
(docs/recipes.md, section 5); so it never runs in the harness process. We start `locust` as a child,
stop it with SIGTERM (it then writes its final `--json` stats and CSVs), and turn its
per-second history into `load.snapshot` events on the run's timeline.

Like faults and environments, a running Locust is recorded (`<state>/load/<id>.json`: its marker,
then its pid and start time, and the harness process that owns it) before it starts, so `chaosdrill
cleanup` stops it when the harness was killed — by pid, and by the marker `CHAOSDRILL_CHILD=load:<id>`
in the environment of Locust and its children, which finds it when the harness died before recording
its pid; its `-t` is the scenario's planned length plus a margin
(`planned_duration_s`), so even without cleanup it does not outlive a run by much.

`workers = N` (load.workers) runs Locust's own distributed mode instead: a master bound to a
loopback port (`--master-bind-host 127.0.0.1`) plus N `--worker` processes with the same locustfile.
Each is recorded before it is spawned and carries the run's marker; the master writes the
aggregated `--json` stats, every worker appends to the one per-request log (whole O_APPEND lines).
A worker that dies or misses heartbeats, or a master that gave up waiting for its workers, is a load
error (`errors`, `load.error` on the timeline); the run still finishes.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil

from harness.crashpoints import crash_point
from harness.env.ports import LOOPBACK, free_port
from harness.env.procs import child_env, kill_marked
from harness.errors import HarnessError
from harness.measure import LOAD_SNAPSHOT, percentile
from harness.state import state_dir, write_json_atomic
from harness.timeline import Timeline

DEFAULT_LOCUSTFILE = Path(__file__).with_name("locustfile.py")
DEFAULT_MAX_DURATION_S = 3600
MARGIN_S = 30.0
MAX_WORKERS = 64
WORKERS_MAX_WAIT_S = 30  # the master gives up (and the run reports it) if its workers are not all connected by then
LOAD_ERROR = "load.error"


def planned_duration_s(plan: Any, run: Any, margin_s: float = MARGIN_S) -> int:
    """How long the load of one fault experiment may run: baseline + hold + the recovery deadline +
    the observation after it, plus a margin (`plan` a ScenarioConfig, `run` a RunConfig)."""
    return int(plan.baseline + plan.hold + run.deadline + plan.after + margin_s + 0.999)


def _private(path: str, flags: int) -> int:
    """open() opener: files of a run directory are owner-only (0600)."""
    return os.open(path, flags, 0o600)


def loads_dir() -> Path:
    path = state_dir() / "load"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _same(pid: int | None, start: float | None) -> psutil.Process | None:
    if not pid:
        return None
    try:
        proc = psutil.Process(pid)
        if start is not None and abs(proc.create_time() - start) > 0.01:
            return None
        return None if proc.status() == psutil.STATUS_ZOMBIE else proc
    except psutil.Error:
        return None


def stop_abandoned(include_live: bool = False) -> list[str]:
    """`chaosdrill cleanup`: stop Locust runs whose harness process died; one line per record."""
    lines = []
    for path in sorted(loads_dir().glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            path.unlink(missing_ok=True)
            continue
        if not include_live and _same(record.get("owner_pid"), record.get("owner_start")) is not None:
            continue
        procs = [_same(record.get("pid"), record.get("start"))]
        procs += [_same(w.get("pid"), w.get("start")) for w in record.get("workers") or []]
        procs = [p for p in procs if p is not None]
        stopped: list[int] = []
        if procs:
            members = [m for proc in procs for m in [proc, *proc.children(recursive=True)]]
            for member in members:
                with contextlib.suppress(psutil.Error):
                    member.kill()
            psutil.wait_procs(members, timeout=10)
            stopped = [m.pid for m in members]
        # No pid (killed between recording and spawning, or before re-recording) is not "gone":
        # whatever carries the run's marker is its Locust (or a child of it).
        found = kill_marked(record.get("marker") or f"load:{record.get('id')}")
        path.unlink(missing_ok=True)
        if stopped:
            pids = [record.get("pid"), *[w.get("pid") for w in record.get("workers") or []]]
            what = f"stopped Locust pid {', '.join(str(p) for p in pids if p)}"
        elif found:
            what = f"stopped Locust (pid {', '.join(map(str, found))}, found by its marker; no pid was recorded)"
        else:
            what = "Locust already gone"
        lines.append(f"load run {record.get('id')}: {what} ({record.get('out_dir')})")
    return lines


@dataclass(frozen=True)
class EndpointStats:
    name: str
    method: str
    requests: int
    failures: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class LoadStats:
    """Final numbers of one load run (Locust's --json output, which is the authoritative total)."""

    users: int
    duration_s: float
    requests: int
    failures: int
    rps: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    endpoints: list[EndpointStats] = field(default_factory=list)
    workers: int = 0  # Locust worker processes (0: one process)
    errors: list[str] = field(default_factory=list)  # load errors: a worker that died or went silent

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _expand(histogram: dict[str, int]) -> list[float]:
    values: list[float] = []
    for ms, count in histogram.items():
        values.extend([float(ms)] * int(count))
    return values


def parse_stats(entries: list[dict[str, Any]], users: int) -> LoadStats:
    """Summarise Locust's --json list (one dict per endpoint, response_times = {ms: count})."""
    all_times: list[float] = []
    endpoints = []
    start, end = None, None
    for e in entries:
        times = _expand(e.get("response_times", {}))
        all_times += times
        endpoints.append(EndpointStats(e["name"], e["method"], e["num_requests"], e["num_failures"],
                                       percentile(times, 50), percentile(times, 95), percentile(times, 99)))
        if e.get("num_requests"):
            start = min(filter(None, [start, e["start_time"]]), default=e["start_time"])
            end = max(filter(None, [end, e["last_request_timestamp"]]), default=e["last_request_timestamp"])
    requests = sum(x.requests for x in endpoints)
    failures = sum(x.failures for x in endpoints)
    duration = (end - start) if start and end else 0.0
    return LoadStats(users, round(duration, 3), requests, failures, round(requests / duration, 2) if duration else 0.0,
                     percentile(all_times, 50), percentile(all_times, 95), percentile(all_times, 99), endpoints)


def request_buckets(request_log: Path, bucket_ns: int) -> list[dict[str, Any]]:
    """Requests from the Locust process's log (start t_ns, ok, latency) in buckets of `bucket_ns`,
    keyed by request start time on the shared monotonic clock."""
    buckets: dict[int, dict[str, Any]] = {}
    with contextlib.suppress(FileNotFoundError), open(request_log, newline="") as f:
        for row in csv.reader(f):
            if len(row) < 3:
                continue  # a line cut short by a kill
            try:
                t_ns, ok, latency = int(row[0]), row[1] == "1", float(row[2])
            except ValueError:
                continue
            key = t_ns - t_ns % bucket_ns
            b = buckets.setdefault(key, {"t_ns": key, "requests": 0, "failures": 0, "latencies": [], "ok_ms": []})
            b["requests"] += 1
            b["failures"] += 0 if ok else 1
            b["latencies"].append(latency)
            if ok:
                b["ok_ms"].append(round(latency, 2))  # kept raw: windows need exact percentiles, not averages of them
    out = []
    for key in sorted(buckets):
        b = buckets.pop(key)
        lat = b.pop("latencies")
        out.append(b | {"p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95)})
    return out


class LoadRun:
    """`locust --headless` against `host_url` until stopped; a context manager. `workers` > 0: a
    master on a loopback port plus that many Locust worker processes (Locust's distributed mode)."""

    def __init__(self, host_url: str, out_dir: Path, users: int = 10, spawn_rate: float = 10.0,
                 throughput_per_user: float = 5.0, locustfile: Path = DEFAULT_LOCUSTFILE,
                 max_duration_s: float = DEFAULT_MAX_DURATION_S, workers: int = 0,
                 workers_max_wait_s: int = WORKERS_MAX_WAIT_S) -> None:
        if not 0 <= workers <= MAX_WORKERS:
            raise HarnessError(f"load.workers: {workers} is not in 0..{MAX_WORKERS}")
        self.host_url = host_url
        self.out_dir = Path(out_dir)
        self.users = users
        self.spawn_rate = spawn_rate
        self.throughput_per_user = throughput_per_user
        self.locustfile = locustfile
        self.max_duration_s = max(1, int(max_duration_s + 0.999))
        self.workers = workers
        self.workers_max_wait_s = workers_max_wait_s
        self.stats: LoadStats | None = None
        self.errors: list[str] = []  # load errors (a dead or silent worker, no stats); reported, not raised
        self._proc: subprocess.Popen | None = None
        self._workers: list[subprocess.Popen] = []
        self.master_port: int | None = None
        self.id = uuid.uuid4().hex[:12]

    @property
    def marker(self) -> str:
        """CHAOSDRILL_CHILD of Locust and its children: cleanup finds them by it without a pid."""
        return f"load:{self.id}"

    @property
    def record_path(self) -> Path:
        return loads_dir() / f"{self.id}.json"

    @property
    def pids(self) -> list[int]:
        """The Locust processes of the run: the master (or the only process), then the workers."""
        return [p.pid for p in [self._proc, *self._workers] if p is not None]

    def _record(self, pid: int | None) -> None:
        me = os.getpid()
        write_json_atomic(self.record_path, {
            "id": self.id, "marker": self.marker, "pid": pid, "start": _start_time(pid) if pid else None, "owner_pid": me,
            "owner_start": _start_time(me), "out_dir": str(self.out_dir), "host": self.host_url,
            "workers": [{"pid": w.pid, "start": _start_time(w.pid)} for w in self._workers]})

    @property
    def stats_json(self) -> Path:
        return self.out_dir / "load-stats.json"

    @property
    def request_log(self) -> Path:
        return self.out_dir / "requests.csv"

    @property
    def log(self) -> Path:
        return self.out_dir / "load.log"

    def _spawn(self, cmd: list[str], env: dict[str, str], stdout: Any, log: Any) -> subprocess.Popen:
        # umask 077: Locust's CSV files and the request log are owner-only too
        return subprocess.Popen(cmd, stdout=stdout, stderr=log, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True, umask=0o077)

    def start(self) -> LoadRun:
        for d in reversed([self.out_dir, *self.out_dir.parents]):  # what we create (a run directory) is owner-only
            if not d.exists():
                d.mkdir(exist_ok=True, mode=0o700)
        locust = [sys.executable, "-m", "locust", "-f", str(self.locustfile)]
        cmd = [*locust, "--headless",
               "-u", str(self.users), "-r", str(self.spawn_rate), "-t", f"{self.max_duration_s}s",
               "--host", self.host_url, "--csv", str(self.out_dir / "load"), "--csv-full-history",
               "--json", "--only-summary", "--loglevel", "WARNING", "--stop-timeout", "2"]
        if self.workers:
            self.master_port = free_port()
            # INFO: the master logs a worker that missed its heartbeats only at INFO (read by `_log_errors`)
            cmd[cmd.index("WARNING")] = "INFO"
            cmd += ["--master", "--master-bind-host", LOOPBACK, "--master-bind-port", str(self.master_port),
                    "--expect-workers", str(self.workers), "--expect-workers-max-wait", str(self.workers_max_wait_s)]
        env = child_env(self.marker, {"CHAOSDRILL_THROUGHPUT": str(self.throughput_per_user),
                                      "CHAOSDRILL_REQUEST_LOG": str(self.request_log)})
        self._record(None)  # recorded (with its marker) before it runs, like a fault
        crash_point("load.after_record")
        try:
            with open(self.stats_json, "wb", opener=_private) as out, open(self.log, "ab", opener=_private) as log:
                self._proc = self._spawn(cmd, env, out, log)
                crash_point("load.after_spawn")
                self._record(self._proc.pid)
                worker = [*locust, "--worker", "--master-host", LOOPBACK, "--master-port", str(self.master_port),
                          "--loglevel", "WARNING"]
                for _ in range(self.workers):  # each recorded before the next spawns; the marker covers the gap
                    self._workers.append(self._spawn(worker, env, log, log))
                    self._record(self._proc.pid)
        except BaseException:
            kill_marked(self.marker)  # interrupted after its fork: nothing of it may outlive the record
            self.record_path.unlink(missing_ok=True)
            raise
        return self

    def check(self) -> list[str]:
        """Load errors so far (also kept in `errors`): a worker that exited while the master runs."""
        if self._proc is not None and self._proc.poll() is None:
            for i, w in enumerate(self._workers):
                message = f"Locust worker {i + 1} (pid {w.pid}) exited with code {w.returncode} during the run"
                if w.poll() is not None and message not in self.errors:
                    self.errors.append(message)
        return list(self.errors)

    def _log_errors(self) -> None:
        """What the master logged about its workers: missed heartbeats, gave up waiting for them."""
        with contextlib.suppress(OSError):
            for line in self.log.read_text(errors="replace").splitlines():
                if "failed to send heartbeat" in line or "Gave up waiting for workers" in line \
                        or "last worker went missing" in line:
                    message = "Locust master: " + line.split("/", 1)[-1].split(": ", 1)[-1].strip()
                    if message not in self.errors:
                        self.errors.append(message)

    def stop(self) -> LoadStats:
        """SIGTERM: Locust stops its users and writes final stats; SIGKILL only if it hangs. With
        workers: the master tells them to quit; any still there after that are killed."""
        if self._proc is None:
            raise HarnessError("load run was never started")
        self.check()
        if self._workers and self._proc.poll() is not None:
            self.errors.append(f"Locust master (pid {self._proc.pid}) exited with code {self._proc.returncode} "
                               "before the run ended")
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        for w in self._workers:
            try:
                w.wait(timeout=10)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait()
        self.record_path.unlink(missing_ok=True)
        if self._workers:
            self._log_errors()
        try:
            entries = json.loads(self.stats_json.read_text() or "[]")
        except json.JSONDecodeError as exc:
            raise HarnessError(f"Locust wrote no valid stats (exit {self._proc.returncode}); see "
                               f"{self.log}") from exc
        self.stats = replace(parse_stats(entries, self.users), workers=self.workers, errors=list(self.errors))
        return self.stats

    def record(self, timeline: Timeline, bucket_s: float = 0.1) -> int:
        """Put the requests on the timeline as `load.snapshot` buckets (by request start), and each
        load error as `load.error`; returns how many snapshots."""
        snaps = request_buckets(self.request_log, int(bucket_s * 1e9))
        for snap in snaps:
            timeline.event(LOAD_SNAPSHOT, "locust", **snap)
        for error in self.errors:
            timeline.event(LOAD_ERROR, "locust", error=error)
        return len(snaps)

    def __enter__(self) -> LoadRun:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self.stats is None:
            self.stop()
