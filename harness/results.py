"""The results store: `<results>/<run-id>/result.json`, `timeline.csv`, and the load files.

result.json carries `schema_version`; its shape is stable for tools (reports, evidence, CI),
while the human report may change. timeline.csv has one row per event or sample, on the run's
monotonic clock with wall times through the anchor.

A run directory is owner-only (0700, its files 0600) and every registered secret is scrubbed
from what is written into it (harness.redact).
"""

from __future__ import annotations

import csv
import io
import json
import platform
import socket
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from harness import redact
from harness.errors import ConfigError
from harness.timeline import Event, Sample, Timeline

SCHEMA_VERSION = 1
TIMELINE_COLUMNS = ("t_ns", "t_rel_s", "wall_utc", "record", "kind", "source", "ok", "good", "latency_ms",
                    "detail")


def new_run_id(scenario: str, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{scenario}-{uuid.uuid4().hex[:6]}"


def dist_version(dist: str) -> str:
    """An installed distribution's version from its metadata (no import: locust would gevent-patch us)."""
    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def chaosdrill_version() -> str:
    return dist_version("chaosdrill")


def host_info() -> dict[str, str]:
    """Where and with what the run happened: shown in the report, kept in result.json."""
    return {"hostname": socket.gethostname(), "platform": platform.platform(), "python": platform.python_version(),
            "chaosdrill": chaosdrill_version(), "locust": dist_version("locust")}


@dataclass
class RunRecord:
    """Everything a report or an evidence pack needs about one run."""

    run_id: str
    scenario: str
    started_at: str
    finished_at: str
    verdict: str
    objectives: list[dict[str, Any]]
    measurements: dict[str, Any]
    config: dict[str, Any]
    environment: dict[str, Any]
    load: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    host: dict[str, str] = field(default_factory=host_info)
    anchor: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": self.schema_version, **{k: v for k, v in self.__dict__.items()
                                                           if k != "schema_version"}}


def _event_row(tl: Timeline, e: Event) -> list[Any]:
    detail = json.dumps(e.data, default=str, sort_keys=True) if e.data else ""
    return [e.t_ns, f"{tl.rel_s(e.t_ns):.6f}", tl.wall(e.t_ns).isoformat(), "event", e.kind, e.source, "", "", "",
            detail]


def _sample_row(tl: Timeline, s: Sample) -> list[Any]:
    return [s.t_ns, f"{tl.rel_s(s.t_ns):.6f}", tl.wall(s.t_ns).isoformat(), "sample", "probe", s.probe,
            int(s.ok), int(s.good), f"{s.latency_ns / 1e6:.3f}", s.error or ""]


def write_timeline_csv(path: Path, timeline: Timeline) -> None:
    rows = [_event_row(timeline, e) for e in timeline.events] + [_sample_row(timeline, s) for s in timeline.samples]
    rows.sort(key=lambda r: r[0])
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(TIMELINE_COLUMNS)
    writer.writerows(rows)
    redact.write_private(path, buf.getvalue())  # owner-only; a secret in an event's detail is scrubbed


def read_timeline_csv(path: Path, anchor: dict[str, Any]) -> Timeline:
    """Rebuild a Timeline from timeline.csv (so measurements and reports can be recomputed)."""
    tl = Timeline(anchor_ns=int(anchor["monotonic_ns"]), anchor_wall=datetime.fromisoformat(anchor["wall_utc"]))
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            t_ns = int(row["t_ns"])
            if row["record"] == "sample":
                tl.add_sample(Sample(t_ns, row["source"], row["ok"] == "1", int(float(row["latency_ms"]) * 1e6),
                                     row["detail"] or None, row["good"] == "1"))
            else:
                tl.event(row["kind"], row["source"], t_ns=t_ns, **(json.loads(row["detail"]) if row["detail"] else {}))
    return tl


def write_run(run_dir: Path, record: RunRecord, timeline: Timeline) -> Path:
    """Write result.json and timeline.csv into run_dir (owner-only, secrets scrubbed); returns the
    result.json path. Everything already in run_dir (the load files) is made owner-only too."""
    make_run_dir(run_dir)
    record.anchor = {"monotonic_ns": timeline.anchor_ns, "wall_utc": timeline.anchor_wall.isoformat()}
    write_timeline_csv(run_dir / "timeline.csv", timeline)
    out = run_dir / "result.json"
    data = redact.redact_obj(json.loads(json.dumps(record.to_dict(), default=str)))
    redact.write_private(out, json.dumps(data, indent=2))
    redact.make_private(run_dir)
    return out


def make_run_dir(run_dir: Path) -> Path:
    """`<results>/<run-id>/` owner-only (0700), and so is each missing parent it creates (the results directory)."""
    return redact.private_dir(run_dir)


def load_run(run_dir: Path) -> tuple[dict[str, Any], Timeline]:
    """Read a run directory back; one-line ConfigError when it is not one."""
    run_dir = Path(run_dir)
    result = run_dir / "result.json"
    if not result.is_file():
        raise ConfigError(f"{run_dir}: not a run directory (no result.json)")
    try:
        data = json.loads(result.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{result}: corrupt result file ({exc.msg} at line {exc.lineno})") from None
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ConfigError(f"{result}: schema_version {data.get('schema_version')!r} is not supported "
                          f"(this chaosdrill reads {SCHEMA_VERSION})")
    timeline = read_timeline_csv(run_dir / "timeline.csv", data["anchor"])
    return data, timeline
