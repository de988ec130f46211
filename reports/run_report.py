"""Run report: result.json + timeline.csv → one self-contained HTML file (inline CSS and SVG).

The report recomputes nothing: numbers come from result.json (written by harness/measure.py),
the charts from the saved timeline, so re-rendering an old run gives the same report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, TemplateError, select_autoescape

from harness import redact
from harness.errors import ConfigError, HarnessError
from harness.measure import BREAKER_STATE, CANARY_ACK, LOAD_SNAPSHOT
from harness.results import load_run
from harness.timeline import FAULT_ACTIVE, FAULT_CLEARED, Timeline
from reports.charts import Band, Chart, Marker, Series, render

REPORT_NAME = "report.html"


def _jinja() -> Environment:
    env = Environment(loader=PackageLoader("reports", "templates"), autoescape=select_autoescape(["j2", "html"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = format_number
    env.filters["dur"] = format_duration
    env.filters["ms"] = lambda v: "—" if v is None else f"{format_number(v)} ms"
    return env


def format_number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def format_duration(seconds: float | None) -> str:
    """Human units that keep precision: 0.0042 → '4.2 ms', 75 → '1 min 15 s', 14400 → '4 h'."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    if seconds < 60:
        return f"{seconds:.3g} s"
    if seconds < 3600:
        minutes, secs = divmod(seconds, 60)
        return f"{minutes:.0f} min" + (f" {secs:.0f} s" if round(secs) else "")
    hours, rest = divmod(seconds, 3600)
    return f"{hours:.0f} h" + (f" {rest / 60:.0f} min" if round(rest / 60) else "")


def format_value(value: Any, unit: str) -> str:
    """An objective's target or achieved value in human units, the one formatter of the report,
    the CLI summary and the pytest summary: s → ms/s/min/h, ratio → %, bool → yes/no."""
    if value is None:
        return "not measured"
    if unit == "s":
        return format_duration(value)
    if unit == "ratio":
        return f"{value * 100:.4g} %"
    if unit == "bool":
        return "yes" if value else "no"
    return format_number(value) + (f" {unit}" if unit else "")


def format_target(obj: dict[str, Any], key: str) -> str:
    return format_value(obj[key], obj["unit"])


def _fault_charts(tl: Timeline, fault: dict[str, Any]) -> list[str]:
    rel = tl.rel_s
    bands, markers = [], []
    active = tl.first(FAULT_ACTIVE)
    if active is not None:
        cleared = tl.first(FAULT_CLEARED, source=active.source, after_ns=active.t_ns)
        end = cleared.t_ns if cleared else (tl.samples[-1].t_ns if tl.samples else active.t_ns)
        bands.append(Band(rel(active.t_ns), rel(end), f"fault: {active.source}"))
    if fault.get("t_detect_ns"):
        markers.append(Marker(rel(fault["t_detect_ns"]), "detected", "#b02a37"))
    if fault.get("t_recovered_ns"):
        markers.append(Marker(rel(fault["t_recovered_ns"]), "recovered", "#146c43"))
    for e in tl.events:
        if e.kind == BREAKER_STATE and e.data.get("to") in ("open", "closed"):
            markers.append(Marker(rel(e.t_ns), f"breaker {e.source} {e.data['to']}", "#6f42c1"))
        elif e.kind == "guard.tripped":  # a stop condition: where its threshold was crossed
            markers.append(Marker(rel(e.data.get("t_crossed_ns", e.t_ns)), f"stop: {e.source}", "#d63384"))
    charts = []
    span = [rel(s.t_ns) for s in tl.samples] or [0.0, 1.0]
    x_range = (min(0.0, min(span)), max(span))
    probes = sorted({s.probe for s in tl.samples})
    for probe in probes:
        samples = [s for s in tl.samples if s.probe == probe]
        good = [(rel(s.t_ns), s.latency_ns / 1e6) for s in samples if s.good]
        bad = [(rel(s.t_ns), s.latency_ns / 1e6) for s in samples if not s.good]
        top = max([y for _, y in good] + [1.0]) * 1.2
        charts.append(render(Chart(f"Probe {probe}: latency per sample (failed samples in red)",
                                   "seconds since run start", "latency (ms)",
                                   [Series(good, "good", "#0d6efd", "dots"),
                                    Series([(x, min(y, top)) for x, y in bad], "failed / slow", "#dc3545", "dots")],
                                   bands, markers, y_max=top, x_range=x_range)))
        ok_series = [(rel(s.t_ns), 1.0 if s.good else 0.0) for s in samples]
        charts.append(render(Chart(f"Probe {probe}: good (1) or failed (0)", "seconds since run start", "good",
                                   [Series(ok_series, "probe result", "#198754", "line")], bands, markers,
                                   y_max=1.05, x_range=x_range)))
    per_second: dict[int, list[float]] = {}
    for e in tl.events:
        if e.kind == LOAD_SNAPSHOT:
            slot = per_second.setdefault(int(rel(e.t_ns)), [0.0, 0.0])
            slot[0] += e.data.get("requests", 0)
            slot[1] += e.data.get("failures", 0)
    if per_second:
        reqs = [(sec + 0.5, v[0]) for sec, v in sorted(per_second.items())]
        fails = [(sec + 0.5, v[1]) for sec, v in sorted(per_second.items())]
        charts.append(render(Chart("Load: requests and failures per second (Locust)", "seconds since run start",
                                   "per second", [Series(reqs, "requests/s", "#6c757d", "bars"),
                                                  Series(fails, "failures/s", "#dc3545", "bars")],
                                   bands, markers, x_range=x_range)))
    return charts


STEP_LABELS = {"restore": "fetch / restore (pgBackRest, Redis RDB)", "start": "start / WAL replay (until promoted)",
               "verify": "verify (rows vs snapshot, canary, Redis, files, pg_amcheck)", "serve": "serve (first good smoke test)"}


def drill_context(result: dict[str, Any]) -> dict[str, Any]:
    """The drill section's view of result.json: every key present, so the template stays strict."""
    m = result.get("measurements", {})
    drill = m.get("drill") or {}
    sub = {s["name"]: s for s in m.get("restore_steps") or []}
    steps = []
    for name, label in STEP_LABELS.items():
        detail = ""
        if name == "restore":
            detail = ", ".join(f"{k} {format_duration(v['duration_s'])}" for k, v in sub.items())
        steps.append({"name": label, "duration": (drill.get("steps") or {}).get(name), "detail": detail})
    verification = m.get("verification") or {}
    checks = [{"name": k, "passed": c.get("passed"),  # a shared check (harness/drill/checks.py) says it in words
               "detail": "; ".join([c["detail"], *c.get("objects", [])[:10]]) if isinstance(c.get("detail"), str)
               else ", ".join(f"{a}={b}" for a, b in c.items() if a != "passed")}
              for k, c in (verification.get("checks") or {}).items()]
    if verification.get("smoke"):
        checks.append({"name": "app smoke test (health, create + read an order)",
                       "passed": verification["smoke"]["passed"], "detail": verification["smoke"]["detail"]})
    return {"status": m.get("status", "—"), "error": m.get("error"), "set": m.get("backup_set"),
            "backups": m.get("backups") or [], "steps": steps, "checks": checks,
            "journal": [j | {"detail": ", ".join(f"{k}={v}" for k, v in (j.get("detail") or {}).items())}
                        for j in result.get("steps") or []], "levers": m.get("levers") or {},
            "pushed_wal": m.get("pushed_wal") or [], "repository": result["environment"].get("repository")}


def _drill_charts(tl: Timeline, drill: dict[str, Any]) -> list[str]:
    """Canary sequence acknowledged over time, probe samples, with disaster/declared/serving marked."""
    rel = tl.rel_s
    markers = [Marker(rel(drill[k]), label, color) for k, label, color in
               (("t_disaster_ns", "disaster", "#b02a37"), ("t_declared_ns", "declared", "#fd7e14"),
                ("t_serving_ns", "serving", "#146c43")) if drill.get(k)]
    bands = []
    if drill.get("t_declared_ns") and drill.get("t_serving_ns"):
        bands.append(Band(rel(drill["t_declared_ns"]), rel(drill["t_serving_ns"]), "RTO"))
    acks = [(rel(e.t_ns), float(e.data.get("seq", 0))) for e in tl.events if e.kind == "canary.ack"]
    span = [x for x, _ in acks] + [rel(s.t_ns) for s in tl.samples] + [m.x for m in markers]
    x_range = (min([0.0, *span]), max(span or [1.0]))
    series = [Series(acks, "acknowledged seq", "#0d6efd", "line")]
    if drill.get("rows_restored") is not None and acks:
        series.append(Series([(x_range[0], float(drill["rows_restored"])), (x_range[1], float(drill["rows_restored"]))],
                             "highest seq restored", "#198754", "line"))
    charts = [render(Chart("Canary: sequence acknowledged over time (green: highest restored)",
                           "seconds since run start", "seq", series, bands, markers, x_range=x_range))]
    for probe in sorted({s.probe for s in tl.samples}):
        samples = [s for s in tl.samples if s.probe == probe]
        charts.append(render(Chart(f"Probe {probe}: good (1) or failed (0)", "seconds since run start", "good",
                                   [Series([(rel(s.t_ns), 1.0 if s.good else 0.0) for s in samples],
                                           "probe result", "#198754", "dots")], bands, markers,
                                   y_max=1.05, x_range=x_range)))
    return charts


RT_STAGE_LABELS = {"verify": "verify the repository (pgbackrest verify, WAL continuity)",
                   "restore": "fetch / restore (pgBackRest restore, pg_restore, files)",
                   "start": "start + WAL replay (until promoted)", "checks": "checks (excluding pg_amcheck)",
                   "amcheck": "pg_amcheck (reported separately)", "serve": "smoke command / URL (ready)"}


def restore_test_context(result: dict[str, Any]) -> dict[str, Any]:
    """The restore test section's view of result.json (measurements.restore_test)."""
    rt = result.get("measurements", {}).get("restore_test") or {}
    checks = rt.get("checks") or []
    labels = RT_STAGE_LABELS if rt.get("source") else RT_STAGE_LABELS | {"start": "restore files, load RDB files"}
    return {"source": rt.get("source"), "replay": rt.get("replay"), "wal": rt.get("wal_continuity"),
            "baseline": rt.get("baseline_run"), "checks": checks, "passed": sum(1 for c in checks if c.get("passed")),
            "steps": [{"name": label, "duration": (rt.get("steps") or {}).get(k)} for k, label in labels.items()
                      if (rt.get("steps") or {}).get(k) is not None],
            "tables": sorted((rt.get("tables") or {}).items()), "redis": rt.get("redis") or [], "files": rt.get("files") or []}


def build_context(result: dict[str, Any], tl: Timeline) -> dict[str, Any]:
    fault = result.get("measurements", {}).get("fault", {})
    drill = result.get("measurements", {}).get("drill")
    rt = result.get("measurements", {}).get("restore_test")
    objectives = [dict(o, target_text=format_target(o, "target"), achieved_text=format_target(o, "achieved"))
                  for o in result["objectives"]]
    events = [{"t": tl.rel_s(e.t_ns), "wall": tl.wall(e.t_ns).strftime("%H:%M:%S.%f")[:-3], "kind": e.kind,
               "source": e.source, "data": ", ".join(f"{k}={v}" for k, v in e.data.items())}
              for e in tl.events if e.kind not in (LOAD_SNAPSHOT, CANARY_ACK)]
    return {
        "r": result, "fault": fault, "objectives": objectives,
        "charts": [] if rt else _drill_charts(tl, drill) if drill else _fault_charts(tl, fault),
        "drill": drill, "dx": drill_context(result) if drill else None,
        "rt": rt, "rx": restore_test_context(result) if rt else None,
        "events": events, "samples": len(tl.samples),
        "bad_samples": sum(1 for s in tl.samples if not s.good),
    }


def render_run_report(run_dir: Path, out: Path | None = None) -> Path:
    """Render `run_dir`'s report to `out` (default run_dir/report.html); returns the path."""
    run_dir = Path(run_dir)
    result, tl = load_run(run_dir)
    try:
        html = _jinja().get_template("run.html.j2").render(**build_context(result, tl))
    except (TemplateError, LookupError, TypeError, ValueError, AttributeError, ArithmeticError, RecursionError) as exc:
        # a hand-edited or damaged result.json: one line naming it, never a template traceback
        raise HarnessError(f"{run_dir / 'result.json'}: cannot render the report "
                           f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    out = out or run_dir / REPORT_NAME
    try:
        redact.write_private(out, html)  # owner-only, and no secret even if one reached the result files
    except OSError as exc:
        raise ConfigError(f"{out}: cannot write the report ({exc.strerror or type(exc).__name__})") from None
    return out
