"""Run history: every run that wrote a `result.json` under a results directory, summarised.

`result.json` files are the source of truth. `<results>/.chaosdrill-index.json` is only a cache of
the summaries (keyed by each file's size, mtime and inode): it is rebuilt when missing, damaged or
written by another version, and a summary is re-read whenever its file changed. Deleting it loses
nothing.

Loading is defensive: results written by older chaosdrill versions (fewer objectives, no
`environment.versions`, no `host`, no `anchor`, even no `schema_version`) still load; a damaged
or foreign file is a `Skipped` entry with a one-line reason, never an exception.

A run's *outcome* is what the evidence pack judges (docs/evidence.md):

    passed         the run's verdict passed
    failed         an objective was missed (verdict failed) and the run ran to its end
    aborted        a drill that broke, was refused or interrupted (measurements.status)
    inconclusive   nothing failed, but some objective was not measured
    not measured   the run measured none of its objectives (or has none)
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.results import MAX_RESULT_BYTES, SCHEMA_VERSION, chaosdrill_version

RESULT_NAME = "result.json"
INDEX_NAME = ".chaosdrill-index.json"
INDEX_VERSION = 3  # 2: summaries carry the case; 3: restore tests are drills with their detail
OUTCOMES = ("passed", "failed", "aborted", "inconclusive", "not measured")
DRILL_SCENARIOS = {"dr_restore": "DR drill", "replica_failover": "failover", "restore_test": "restore test"}
# The headline objectives: key → the name (or name prefix) the run's objectives use for it.
HEADLINE = {"time_to_detect": "time to detect", "mttr": "MTTR", "rto": "RTO", "rpo": "RPO"}
HEADLINE_LABELS = {"time_to_detect": "TTD", "mttr": "MTTR", "rto": "RTO", "rpo": "RPO"}
_ABORTED_STATUS = {"failed", "aborted", "interrupted"}
VERDICTS = ("passed", "failed", "inconclusive", "aborted", "regressed")


def objective_key(name: str) -> str | None:
    """The headline key of an objective name ("RTO (declared → …)" → "rto"), or None."""
    for key, prefix in HEADLINE.items():
        if name == prefix or name.startswith(prefix + " "):
            return key
    return None


def parse_time(text: Any) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime (a naive one is taken as UTC); None if unreadable."""
    if not isinstance(text, str) or len(text) > 64:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


@dataclass
class RunSummary:
    """What history and evidence need about one run (small: 10,000 of them fit in memory)."""

    run_id: str
    scenario: str
    kind: str                     # fault | DR drill | failover | restore test
    started_at: str               # ISO 8601, UTC
    finished_at: str | None
    verdict: str
    outcome: str                  # one of OUTCOMES
    reason: str                   # why it is not passed ("" when passed)
    headline: dict[str, float | None]
    objectives: list[dict[str, Any]]
    versions: dict[str, str]
    path: str                     # the run directory, relative to the results directory
    schema_version: int | None
    drill: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    case: str | None = None       # the scenario's test id without the repeat index (baselines compare by it)

    @cached_property
    def start(self) -> datetime:  # parsed once: evidence compares it ~20 times per run
        return parse_time(self.started_at) or datetime.min.replace(tzinfo=UTC)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict for JSON (shallow: the nested lists and dicts are the summary's own)."""
        return {name: getattr(self, name) for name in _FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSummary:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


_FIELDS = tuple(f.name for f in fields(RunSummary))


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass
class History:
    root: Path
    runs: list[RunSummary]
    skipped: list[Skipped]
    series: list[dict[str, Any]] = field(default_factory=list)  # repeat sets: <dir>/series.json (harness/series.py)

    def select(self, scenario: str | None = None, since: datetime | None = None, until: datetime | None = None,
               verdict: str | None = None) -> list[RunSummary]:
        """Runs that started in [since, until), of `scenario`, with `verdict` (or outcome), oldest first."""
        out = []
        for r in self.runs:
            t = r.start
            if (scenario and r.scenario != scenario) or (since and t < since) or (until and t >= until):
                continue
            if verdict and verdict not in (r.verdict, r.outcome):
                continue
            out.append(r)
        return out


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _text(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _objectives(raw: Any) -> list[dict[str, Any]]:
    out = []
    for o in raw if isinstance(raw, list) else []:
        if not isinstance(o, dict) or not isinstance(o.get("name"), str):
            continue
        passed = o.get("passed")
        out.append({"name": _text(o["name"], 120), "key": objective_key(o["name"]),
                    "target": _finite(o.get("target")), "achieved": _finite(o.get("achieved")),
                    "unit": _text(o.get("unit"), 20), "better": "higher" if o.get("better") == "higher" else "lower",
                    "passed": passed if isinstance(passed, bool) else None, "note": _text(o.get("note"), 200)})
    return out


def _headline(measurements: dict[str, Any], objectives: list[dict[str, Any]]) -> dict[str, float | None]:
    fault = measurements.get("fault") if isinstance(measurements.get("fault"), dict) else {}
    drill = measurements.get("drill") if isinstance(measurements.get("drill"), dict) else {}
    head = {"time_to_detect": _finite(fault.get("time_to_detect_s")), "mttr": _finite(fault.get("mttr_s")),
            "rto": _finite(drill.get("rto_s")), "rpo": _finite(drill.get("rpo_s"))}
    for o in objectives:  # older results (or other runners) may carry only the objective
        if o["key"] and head.get(o["key"]) is None:
            head[o["key"]] = o["achieved"]
    rows = drill.get("rows_lost")
    head["rows_lost"] = _finite(rows)
    return head


def _drill_detail(m: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """The facts an auditor reads about one DR drill: backup set, LSN/WAL range, checks, RTO steps."""
    drill = m.get("drill") if isinstance(m.get("drill"), dict) else {}
    bset = m.get("backup_set") if isinstance(m.get("backup_set"), dict) else {}
    verification = m.get("verification") if isinstance(m.get("verification"), dict) else {}
    checks = []
    for name, c in (verification.get("checks") or {}).items() if isinstance(verification.get("checks"), dict) else []:
        if isinstance(c, dict):
            checks.append({"name": _text(name, 120), "passed": c.get("passed") if isinstance(c.get("passed"), bool)
                           else None})
    smoke = verification.get("smoke")
    if isinstance(smoke, dict):
        checks.append({"name": "app smoke test", "passed": smoke.get("passed") if isinstance(smoke.get("passed"), bool)
                       else None})
    steps = drill.get("steps") if isinstance(drill.get("steps"), dict) else {}
    env = result.get("environment") if isinstance(result.get("environment"), dict) else {}
    return {"status": _text(m.get("status"), 40) or None, "error": _text(m.get("error")) or None,
            "backup_set": _text(bset.get("id"), 80) or None, "backup_type": _text(bset.get("type"), 20) or None,
            "backup_finished_at": _text(bset.get("finished_at"), 64) or None,
            "lsn_range": _text(bset.get("lsn_range"), 120) or None, "wal_range": _text(bset.get("wal_range"), 120) or None,
            "checks": checks, "rto_steps": {_text(k, 40): _finite(v) for k, v in steps.items()},
            "rows_lost": _finite(drill.get("rows_lost")), "backup_age_s": _finite(drill.get("backup_age_s")),
            "verified": drill.get("verified") if isinstance(drill.get("verified"), bool) else None,
            "repository": _text(env.get("repository"), 200) or None}


def _failed_checks(rt: dict[str, Any] | None) -> str:
    """A restore test that failed says which checks failed first: that is what an auditor asks."""
    checks = (rt or {}).get("checks")
    failed = [_text(c["name"], 80) for c in (checks if isinstance(checks, list) else [])
              if isinstance(c, dict) and isinstance(c.get("name"), str) and c.get("passed") is False]
    return f"check(s) failed: {', '.join(failed[:3])}{' …' if len(failed) > 3 else ''}; " if failed else ""


def _restore_test_detail(rt: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """The same facts for a restore test of YOUR backups (the drill's keys, so evidence shows both alike):
    the backup it restored (its label or dump path), LSN/WAL range, the named checks, RTO steps."""
    src = rt.get("source") if isinstance(rt.get("source"), dict) else {}
    env = result.get("environment") if isinstance(result.get("environment"), dict) else {}
    checks = [{"name": _text(c["name"], 120), "passed": c.get("passed") if isinstance(c.get("passed"), bool) else None}
              for c in (rt.get("checks") if isinstance(rt.get("checks"), list) else [])
              if isinstance(c, dict) and isinstance(c.get("name"), str)]
    steps = rt.get("steps") if isinstance(rt.get("steps"), dict) else {}
    verified = rt.get("checked")
    kind = _text(src.get("kind"), 20)
    return {"status": _text(rt.get("status"), 40) or None, "error": _text(rt.get("error")) or None,
            "backup_set": _text(src.get("id"), 200) or None,
            "backup_type": " ".join(x for x in (kind, _text(src.get("type"), 20)) if x) or None,
            "backup_finished_at": _text(src.get("finished_at"), 64) or None,
            "lsn_range": _text(src.get("lsn_range"), 120) or None, "wal_range": _text(src.get("wal_range"), 120) or None,
            "checks": checks, "rto_steps": {_text(k, 40): _finite(v) for k, v in steps.items()},
            "rows_lost": None, "backup_age_s": _finite(rt.get("backup_age_s")),
            "verified": verified if isinstance(verified, bool) else None,
            "repository": _text(src.get("location") or env.get("repository"), 200) or None}


def _versions(result: dict[str, Any]) -> dict[str, str]:
    env = result.get("environment") if isinstance(result.get("environment"), dict) else {}
    raw = env.get("versions") if isinstance(env.get("versions"), dict) else {}
    out = {_text(k, 40): _text(v, 160) for k, v in raw.items() if isinstance(v, str | int | float)}
    host = result.get("host") if isinstance(result.get("host"), dict) else {}
    if isinstance(host.get("chaosdrill"), str):
        out["chaosdrill"] = _text(host["chaosdrill"], 40)
    return out


def outcome_of(verdict: str, objectives: list[dict[str, Any]], status: str | None) -> str:
    if status in _ABORTED_STATUS or verdict == "aborted":
        return "aborted"
    if verdict == "regressed":  # objectives met, but worse than its baseline: not a pass
        return "failed"
    if verdict == "passed":
        return "passed"
    if verdict == "failed":
        return "failed"
    if not objectives or all(o["achieved"] is None for o in objectives):
        return "not measured"
    return "inconclusive"


def _reason(outcome: str, objectives: list[dict[str, Any]], m: dict[str, Any], notes: list[str],
            what: str = "drill") -> str:
    if outcome == "passed":
        return ""
    parts = []
    if outcome == "aborted" and m.get("status"):
        parts.append(f"{what} {_text(m.get('status'), 40)}" + (f": {_text(m.get('error'))}" if m.get("error") else ""))
    elif outcome == "aborted":
        parts.append("aborted: a stop condition or a signal ended the fault early")
    for o in objectives:
        if o["passed"] is False:
            parts.append(f"{o['name']} missed" + (f" ({o['note']})" if o["note"] else ""))
        elif o["passed"] is None and outcome != "aborted":
            parts.append(f"{o['name']} not measured" + (f" ({o['note']})" if o["note"] else ""))
    if not objectives and outcome != "aborted":
        parts.append("the run has no objectives")
    parts += notes[:2]
    return "; ".join(dict.fromkeys(p for p in parts if p))[:600]


def summarize(data: Any, rel_path: str) -> RunSummary:
    """A RunSummary of one parsed result.json; ValueError with a one-line reason when it is not one."""
    if not isinstance(data, dict):
        raise ValueError("not a chaosdrill result (the top level is not an object)")
    version = data.get("schema_version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise ValueError(f"schema_version {str(version)[:20]!r} is not a number")
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise ValueError(f"schema_version {version} is newer than this chaosdrill reads ({SCHEMA_VERSION})")
    for key in ("run_id", "scenario", "started_at", "verdict"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ValueError(f"not a chaosdrill result (missing or bad key {key!r})")
    if parse_time(data["started_at"]) is None:
        raise ValueError(f"started_at {data['started_at'][:40]!r} is not an ISO 8601 time")
    if data["verdict"] not in VERDICTS:
        raise ValueError(f"verdict {data['verdict'][:40]!r} is not one of {', '.join(VERDICTS)}")
    m = data.get("measurements") if isinstance(data.get("measurements"), dict) else {}
    objectives = _objectives(data.get("objectives"))
    notes = [_text(n, 200) for n in data.get("notes") or [] if isinstance(n, str)][:10]
    scenario = _text(data["scenario"], 80)
    rt = m.get("restore_test") if isinstance(m.get("restore_test"), dict) else None
    is_drill = scenario in DRILL_SCENARIOS or isinstance(m.get("drill"), dict) or rt is not None
    status = m.get("status") if is_drill and isinstance(m.get("status"), str) else None
    if rt is not None:  # a restore test's own status: "failed" is a failed check (a failed run), not a broken harness
        status = "aborted" if rt.get("status") == "aborted" else None
    if data.get("status") == "aborted":  # a fault run ended early by a stop condition or a signal
        status = "aborted"
    outcome = outcome_of(data["verdict"], objectives, status)
    finished = data.get("finished_at")
    return RunSummary(
        run_id=_text(data["run_id"], 120), scenario=scenario,
        kind="restore test" if rt is not None else DRILL_SCENARIOS.get(scenario, "DR drill" if is_drill else "fault"),
        started_at=parse_time(data["started_at"]).isoformat(),
        finished_at=parse_time(finished).isoformat() if parse_time(finished) else None,
        verdict=data["verdict"], outcome=outcome, reason=("regressed against its baseline; " if data["verdict"] == "regressed" else "")
        + _failed_checks(rt) + (_reason(outcome, objectives, rt, notes, "restore test") if rt is not None
                                else _reason(outcome, objectives, m, notes)),
        headline=_headline(m, objectives), objectives=objectives, versions=_versions(data), path=rel_path,
        schema_version=version, notes=notes,
        drill=_restore_test_detail(rt, data) if rt is not None else _drill_detail(m, data) if is_drill else None,
        case=_text(data["case"], 200) if isinstance(data.get("case"), str) else None)


def read_result(path: Path, rel_path: str) -> tuple[RunSummary | None, Skipped | None, bytes | None]:
    """Read and summarise one result.json: (summary, None, raw bytes) or (None, Skipped, None)."""
    try:
        st = path.stat()
        if st.st_size > MAX_RESULT_BYTES:
            return None, Skipped(rel_path, f"larger than {MAX_RESULT_BYTES >> 20} MiB: not a result file"), None
        with open(path, "rb") as f:
            raw = f.read(MAX_RESULT_BYTES + 1)
    except OSError as exc:
        return None, Skipped(rel_path, f"cannot read ({exc.strerror or type(exc).__name__})"), None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return None, Skipped(rel_path, f"not UTF-8 text (bad byte at offset {exc.start})"), None
    except json.JSONDecodeError as exc:
        return None, Skipped(rel_path, f"corrupt JSON ({exc.msg} at line {exc.lineno})"), None
    except (ValueError, RecursionError) as exc:
        return None, Skipped(rel_path, f"corrupt JSON ({type(exc).__name__})"), None
    try:
        return summarize(data, rel_path), None, raw
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        return None, Skipped(rel_path, _text(str(exc), 200) or type(exc).__name__), None


def _candidates(root: Path) -> Iterable[tuple[str, Path, list[int] | None]]:
    """(relative path, result.json, its stat key) of every run directory: `<root>/<run>/result.json`."""
    if (root / RESULT_NAME).is_file():  # the directory given is itself a run
        yield ".", root / RESULT_NAME, _stat_key(root / RESULT_NAME)
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        raise ConfigError(f"{root}: cannot read the results directory ({exc.strerror or type(exc).__name__})") from None
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        candidate = os.path.join(entry.path, RESULT_NAME)
        try:  # one stat: does it exist, and the cache key
            st = os.stat(candidate)
        except FileNotFoundError:
            continue
        except OSError:
            st = None
        yield entry.name, Path(candidate), [st.st_size, st.st_mtime_ns, st.st_ino] if st else None


def _stat_key(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _load_index(root: Path) -> dict[str, Any]:
    try:
        data = json.loads((root / INDEX_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict) or data.get("index_version") != INDEX_VERSION \
            or data.get("chaosdrill") != chaosdrill_version() or not isinstance(data.get("runs"), dict):
        return {}
    return data["runs"]


def _save_index(root: Path, entries: dict[str, Any]) -> None:
    """Best effort: a read-only results directory just has no cache."""
    tmp = root / f"{INDEX_NAME}.{os.getpid()}.tmp"
    # json.dumps, not json.dump: only the one-shot encoder is the C one (16 MB for 10,000 runs: 0.3 s, not 4-8 s)
    text = json.dumps({"index_version": INDEX_VERSION, "chaosdrill": chaosdrill_version(),
                       "note": "a cache of result.json summaries; delete it at any time", "runs": entries})
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, root / INDEX_NAME)
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass


def check_results_dir(root: Path | str, what: str = "--results") -> Path:
    root = Path(root)
    if not root.exists():
        raise ConfigError(f"{what}: {root}: no such directory; allowed: a results directory (holds <run-id>/result.json)")
    if not root.is_dir():
        raise ConfigError(f"{what}: {root} is not a directory; allowed: a results directory")
    return root


PARALLEL_MIN = 2000  # files to read before a second process helps (fork + pickling back cost ~0.1 s)


def _read_some(jobs: list[tuple[str, str]], window: tuple[datetime, datetime] | None
               ) -> list[tuple[RunSummary | None, Skipped | None, bytes | None]]:
    """read_result of each (rel, path); the bytes are kept only for a run that started in `window`."""
    out = []
    for rel, path in jobs:
        summary, skip, data = read_result(Path(path), rel)
        keep = summary is not None and window is not None and window[0] <= summary.start < window[1]
        out.append((summary, skip, data if keep else None))
    return out


def read_many(jobs: list[tuple[str, str]], window: tuple[datetime, datetime] | None
              ) -> list[tuple[RunSummary | None, Skipped | None, bytes | None]]:
    """read_result of each (rel, path), in order, as (summary, skipped, the bytes if the run started in
    `window`); the second half in a forked process when there are many (JSON
    parsing is CPU-bound: 10,000 result.json files take ~3 s on one core). Any trouble with the
    helper process (no fork on this platform, a daemonic parent, a broken pool) → read it here."""
    import multiprocessing

    if len(jobs) < PARALLEL_MIN or (os.cpu_count() or 1) < 2 \
            or "fork" not in multiprocessing.get_all_start_methods():
        return _read_some(jobs, window)
    from concurrent.futures import ProcessPoolExecutor

    half = len(jobs) // 2
    try:
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
        later = pool.submit(_read_some, jobs[half:], window)
    except Exception:  # noqa: BLE001 - the helper is an optimisation only
        return _read_some(jobs, window)
    try:
        first = _read_some(jobs[:half], window)
        try:
            second = later.result()
        except Exception:  # noqa: BLE001
            second = _read_some(jobs[half:], window)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return first + second


def load_history(root: Path | str, *, use_index: bool = True, series: bool = True,
                 raw_between: tuple[datetime, datetime] | None = None,
                 raw: dict[str, tuple[RunSummary, bytes]] | None = None) -> History:
    """Every run under `root`, oldest first, and every result.json that could not be read, with why.

    `series=False` skips `<dir>/series.json` (History.series stays empty). With `raw_between`
    (since, until) and `raw`, every result.json this call *read* (not taken from the index) of a run
    that started in [since, until) is put in `raw` as rel path → (summary, the bytes it was made
    from), so a caller that needs the bytes (the evidence pack) does not read the same file twice."""
    root = check_results_dir(root)
    cached = _load_index(root) if use_index else {}
    entries: dict[str, Any] = {}
    runs: list[RunSummary] = []
    skipped: list[Skipped] = []
    changed = not cached
    order: list[tuple[str, list[int] | None, Any, Any]] = []  # candidate order: the index and `skipped` keep it
    jobs: list[tuple[str, str]] = []
    for rel, path, key in _candidates(root):
        hit = cached.get(rel)
        if key is not None and isinstance(hit, dict) and hit.get("stat") == key:
            try:
                order.append((rel, key, hit, RunSummary.from_dict(hit["summary"]) if "summary" in hit
                              else Skipped(rel, str(hit["skipped"]))))
                continue
            except (TypeError, KeyError):
                pass
        changed = True
        order.append((rel, key, None, None))
        jobs.append((rel, str(path)))
    fresh = iter(read_many(jobs, raw_between if raw is not None else None))  # read in this order
    for rel, key, hit, got in order:
        if got is not None:  # from the index
            (runs if isinstance(got, RunSummary) else skipped).append(got)
            entries[rel] = hit
            continue
        summary, skip, data = next(fresh)
        if summary is not None:
            runs.append(summary)
            if raw is not None and data is not None:
                raw[rel] = (summary, data)
            entries[rel] = {"stat": key, "summary": summary.to_dict()}
        else:
            assert skip is not None
            skipped.append(skip)
            entries[rel] = {"stat": key, "skipped": skip.reason}
    if use_index and (changed or len(entries) != len(cached)):
        _save_index(root, entries)
    runs.sort(key=lambda r: (r.start, r.run_id))
    if not series:
        return History(root, runs, skipped)
    from harness.series import load_series

    return History(root, runs, skipped, load_series(root))


def history_json(history: History, runs: list[RunSummary]) -> dict[str, Any]:
    """`chaosdrill history --json`: a stable shape (history_schema_version)."""
    return {"history_schema_version": 1, "results": str(history.root), "count": len(runs),
            "runs": [{"run_id": r.run_id, "scenario": r.scenario, "kind": r.kind, "started_at": r.started_at,
                      "finished_at": r.finished_at, "verdict": r.verdict, "outcome": r.outcome, "reason": r.reason,
                      "headline": r.headline, "path": r.path, "schema_version": r.schema_version,
                      "backup_set": (r.drill or {}).get("backup_set")} for r in runs],
            "skipped": [{"path": s.path, "reason": s.reason} for s in history.skipped],
            "series": [{"series_id": s.get("series_id"), "scenario": s.get("scenario"), "case": s.get("case"),
                        "started_at": s.get("started_at"), "repeats": s.get("repeats"), "rule": s.get("rule"),
                        "verdict": s.get("verdict"), "runs": [r.get("run_id") for r in s["runs"] if isinstance(r, dict)],
                        "regression": (s.get("regression") or {}).get("status"), "path": s.get("path")}
                       for s in history.series]}
