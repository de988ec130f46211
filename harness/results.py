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
import math
import platform
import socket
import stat
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from harness import redact
from harness.errors import ConfigError
from harness.inputs import read_text_file
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
    status: str = "completed"  # "aborted": a stop condition or a signal ended the fault early (abort says which)
    abort: dict[str, Any] | None = None
    case: str | None = None  # the scenario's test id ("test_db_outage[kill]"): repeats and baselines group by it
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
    writer.writerows(redact.redact_obj(rows))  # a secret in an event's detail is scrubbed, cell by cell
    header = io.StringIO(newline="")
    csv.writer(header).writerow(TIMELINE_COLUMNS)  # our column names, never masked (a weak secret may equal one)
    redact.write_private(path, (header.getvalue() + buf.getvalue()).encode())  # owner-only


def read_timeline_csv(path: Path, anchor: dict[str, Any]) -> Timeline:
    """Rebuild a Timeline from timeline.csv (so measurements and reports can be recomputed).

    A damaged file (missing, not a regular file, binary, other columns, a bad value) is one
    ConfigError naming the file and the line."""
    tl = Timeline(anchor_ns=int(anchor["monotonic_ns"]), anchor_wall=datetime.fromisoformat(anchor["wall_utc"]))
    path = Path(path)
    _check_regular_file(path, "timeline file", MAX_TIMELINE_BYTES)
    line = 1
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in _TIMELINE_NEEDED if c not in (reader.fieldnames or ())]
            if missing:
                raise ConfigError(f"{path}: not a chaosdrill timeline: missing column(s) {', '.join(missing)}; "
                                  f"expected: {', '.join(TIMELINE_COLUMNS)}")
            for row in reader:
                line = reader.line_num
                t_ns = _bounded_int(row["t_ns"])
                if row["record"] == "sample":
                    latency_ms = float(row["latency_ms"])
                    if not math.isfinite(latency_ms) or abs(latency_ms) > _MAX_INT / 1e6:
                        raise ValueError(f"latency_ms {row['latency_ms']!r} out of range")
                    tl.add_sample(Sample(t_ns, row["source"], row["ok"] == "1", int(latency_ms * 1e6),
                                         row["detail"] or None, row["good"] == "1"))
                else:
                    detail = json.loads(row["detail"]) if row["detail"] else {}
                    if not isinstance(detail, dict) or not all(isinstance(k, str) for k in detail):
                        raise ValueError("detail is not a JSON object")
                    _check_numbers(detail)
                    tl.event(row["kind"], row["source"], t_ns=t_ns, **detail)
    except ConfigError:
        raise
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a chaosdrill timeline: not UTF-8 text (bad byte at offset {exc.start})") from None
    except csv.Error as exc:
        raise ConfigError(f"{path}: not a chaosdrill timeline: line {line + 1}: {exc}") from None
    except (ValueError, TypeError, KeyError, RecursionError, AttributeError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else _first_line(exc)
        raise ConfigError(f"{path}: bad row at line {line}: {reason}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read timeline file ({exc.strerror or type(exc).__name__})") from None
    return tl


def write_run(run_dir: Path, record: RunRecord, timeline: Timeline) -> Path:
    """Write result.json and timeline.csv into run_dir (owner-only, secrets scrubbed); returns the
    result.json path. Everything already in run_dir (the load files) is made owner-only too."""
    make_run_dir(run_dir)
    record.anchor = {"monotonic_ns": timeline.anchor_ns, "wall_utc": timeline.anchor_wall.isoformat()}
    write_timeline_csv(run_dir / "timeline.csv", timeline)
    out = run_dir / "result.json"
    data = redact.redact_obj(json.loads(json.dumps(record.to_dict(), default=str)))
    redact.write_private(out, json.dumps(data, indent=2).encode())  # scrubbed above, keys kept (redact_obj)
    redact.make_private(run_dir)
    return out


def make_run_dir(run_dir: Path) -> Path:
    """`<results>/<run-id>/` owner-only (0700), and so is each missing parent it creates (the results directory)."""
    return redact.private_dir(run_dir)


MAX_RESULT_BYTES = 64 << 20  # a result.json is a few KiB; anything this large is not one
MAX_TIMELINE_BYTES = 1 << 30
_MAX_INT = 2**63  # monotonic nanoseconds and every count fit in 64 bits
_TIMELINE_NEEDED = ("t_ns", "record", "kind", "source", "ok", "good", "latency_ms", "detail")
# The keys every result.json of this schema has, and their JSON types (RunRecord, Objective).
_RESULT_KEYS = {"run_id": str, "scenario": str, "started_at": str, "finished_at": str, "verdict": str,
                "objectives": list, "measurements": dict, "config": dict, "environment": dict, "anchor": dict}
_OBJECTIVE_KEYS = {"name": (str,), "target": (int, float), "achieved": (int, float, type(None)), "unit": (str,),
                   "better": (str,), "passed": (bool, type(None)), "note": (str,)}
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
               float: "a number", type(None): "null"}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _bounded_int(text: str) -> int:
    value = int(text)
    if abs(value) >= _MAX_INT:
        raise ValueError(f"{text[:40]!r} out of range")
    return value


def _check_numbers(data: Any) -> str | None:
    """Every number finite and within 64 bits; raises ValueError naming the first that is not."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((f"{where}.{k}" if where else str(k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{where or 'value'}: {value} is not a finite number")
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _MAX_INT:
            raise ValueError(f"{where or 'value'}: number out of range (more than 64 bits)")
    return None


def _check_regular_file(path: Path, what: str, limit: int) -> None:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc.strerror or type(exc).__name__})") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{path}: cannot read {what} (not a regular file)")
    if st.st_size > limit:
        raise ConfigError(f"{path}: {what} is larger than {limit >> 20} MiB")


def check_result(data: Any, path: Path | str = "result.json") -> dict[str, Any]:
    """`data` is a result.json of this schema (the keys and types the report reads); else one ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a chaosdrill result: the top level is {_json_type(data)}, expected an object")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ConfigError(f"{path}: schema_version {_shown(data.get('schema_version'))} is not supported "
                          f"(this chaosdrill reads {SCHEMA_VERSION})")
    try:
        _check_numbers(data)
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    for key, kind in _RESULT_KEYS.items():
        if key not in data:
            raise ConfigError(f"{path}: not a chaosdrill result: missing key {key!r}")
        if not isinstance(data[key], kind):
            raise ConfigError(f"{path}: {key}: expected {_JSON_TYPES[kind]}, got {_json_type(data[key])}")
    anchor = data["anchor"]
    ns, wall = anchor.get("monotonic_ns"), anchor.get("wall_utc")
    if not isinstance(ns, int) or isinstance(ns, bool):
        raise ConfigError(f"{path}: anchor.monotonic_ns: expected an integer, got {_json_type(ns)}")
    try:
        datetime.fromisoformat(wall) if isinstance(wall, str) else None
    except ValueError:
        wall = None
    if not isinstance(wall, str):
        raise ConfigError(f"{path}: anchor.wall_utc: expected an ISO 8601 time, got {_shown(anchor.get('wall_utc'))}")
    for i, obj in enumerate(data["objectives"]):
        if not isinstance(obj, dict):
            raise ConfigError(f"{path}: objectives[{i}]: expected an object, got {_json_type(obj)}")
        for key, kinds in _OBJECTIVE_KEYS.items():
            if key not in obj:
                raise ConfigError(f"{path}: objectives[{i}]: missing key {key!r}")
            value = obj[key]
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                raise ConfigError(f"{path}: objectives[{i}].{key}: got {_json_type(value)}")
    return data


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str | int | float | bool | type(None)) else _json_type(value)
    return text if len(text) <= 40 else f"{text[:39]}…"


def load_run(run_dir: Path) -> tuple[dict[str, Any], Timeline]:
    """Read a run directory back; one-line ConfigError when it is not one or is damaged."""
    run_dir = Path(run_dir)
    result = run_dir / "result.json"
    if not result.is_file():
        raise ConfigError(f"{run_dir}: not a run directory (no result.json)")
    text = read_text_file(result, "result file", MAX_RESULT_BYTES)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{result}: corrupt result file ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise ConfigError(f"{result}: corrupt result file (nested too deeply)") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ConfigError(f"{result}: corrupt result file ({_first_line(exc)})") from None
    check_result(data, result)
    timeline = read_timeline_csv(run_dir / "timeline.csv", data["anchor"])
    return data, timeline
