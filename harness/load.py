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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from harness.crashpoints import crash_point
from harness.env.procs import child_env, kill_marked
from harness.errors import HarnessError
from harness.measure import LOAD_SNAPSHOT, percentile
from harness.state import state_dir, write_json_atomic
from harness.timeline import Timeline

DEFAULT_LOCUSTFILE = Path(__file__).with_name("locustfile.py")
DEFAULT_MAX_DURATION_S = 3600
MARGIN_S = 30.0


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
        proc = _same(record.get("pid"), record.get("start"))
        stopped: list[int] = []
        if proc is not None:
            members = [proc, *proc.children(recursive=True)]
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
            what = f"stopped Locust pid {record.get('pid')}"
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
    """`locust --headless` against `host_url` until stopped; a context manager."""

    def __init__(self, host_url: str, out_dir: Path, users: int = 10, spawn_rate: float = 10.0,
                 throughput_per_user: float = 5.0, locustfile: Path = DEFAULT_LOCUSTFILE,
                 max_duration_s: float = DEFAULT_MAX_DURATION_S) -> None:
        self.host_url = host_url
        self.out_dir = Path(out_dir)
        self.users = users
        self.spawn_rate = spawn_rate
        self.throughput_per_user = throughput_per_user
        self.locustfile = locustfile
        self.max_duration_s = max(1, int(max_duration_s + 0.999))
        self.stats: LoadStats | None = None
        self._proc: subprocess.Popen | None = None
        self.id = uuid.uuid4().hex[:12]

    @property
    def marker(self) -> str:
        """CHAOSDRILL_CHILD of Locust and its children: cleanup finds them by it without a pid."""
        return f"load:{self.id}"

    @property
    def record_path(self) -> Path:
        return loads_dir() / f"{self.id}.json"

    def _record(self, pid: int | None) -> None:
        me = os.getpid()
        write_json_atomic(self.record_path, {
            "id": self.id, "marker": self.marker, "pid": pid, "start": _start_time(pid) if pid else None, "owner_pid": me,
            "owner_start": _start_time(me), "out_dir": str(self.out_dir), "host": self.host_url})

    @property
    def stats_json(self) -> Path:
        return self.out_dir / "load-stats.json"

    @property
    def request_log(self) -> Path:
        return self.out_dir / "requests.csv"

    def start(self) -> LoadRun:
        for d in reversed([self.out_dir, *self.out_dir.parents]):  # what we create (a run directory) is owner-only
            if not d.exists():
                d.mkdir(exist_ok=True, mode=0o700)
        cmd = [sys.executable, "-m", "locust", "-f", str(self.locustfile), "--headless",
               "-u", str(self.users), "-r", str(self.spawn_rate), "-t", f"{self.max_duration_s}s",
               "--host", self.host_url, "--csv", str(self.out_dir / "load"), "--csv-full-history",
               "--json", "--only-summary", "--loglevel", "WARNING", "--stop-timeout", "2"]
        env = child_env(self.marker, {"CHAOSDRILL_THROUGHPUT": str(self.throughput_per_user),
                                      "CHAOSDRILL_REQUEST_LOG": str(self.request_log)})
        self._record(None)  # recorded (with its marker) before it runs, like a fault
        crash_point("load.after_record")
        try:
            with open(self.stats_json, "wb", opener=_private) as out, \
                    open(self.out_dir / "load.log", "ab", opener=_private) as log:
                # umask 077: Locust's CSV files and the request log are owner-only too
                self._proc = subprocess.Popen(cmd, stdout=out, stderr=log, stdin=subprocess.DEVNULL, env=env,
                                              start_new_session=True, umask=0o077)
        except BaseException:
            kill_marked(self.marker)  # interrupted after its fork: nothing of it may outlive the record
            self.record_path.unlink(missing_ok=True)
            raise
        crash_point("load.after_spawn")
        self._record(self._proc.pid)
        return self

    def stop(self) -> LoadStats:
        """SIGTERM: Locust stops its users and writes final stats; SIGKILL only if it hangs."""
        if self._proc is None:
            raise HarnessError("load run was never started")
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self.record_path.unlink(missing_ok=True)
        try:
            entries = json.loads(self.stats_json.read_text() or "[]")
        except json.JSONDecodeError as exc:
            raise HarnessError(f"Locust wrote no valid stats (exit {self._proc.returncode}); see "
                               f"{self.out_dir / 'load.log'}") from exc
        self.stats = parse_stats(entries, self.users)
        return self.stats

    def record(self, timeline: Timeline, bucket_s: float = 0.1) -> int:
        """Put the requests on the timeline as `load.snapshot` buckets (by request start); returns how many."""
        snaps = request_buckets(self.request_log, int(bucket_s * 1e9))
        for snap in snaps:
            timeline.event(LOAD_SNAPSHOT, "locust", **snap)
        return len(snaps)

    def __enter__(self) -> LoadRun:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self.stats is None:
            self.stop()
