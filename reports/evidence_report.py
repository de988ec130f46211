"""Evidence report: evidence.json's facts → one self-contained, printable HTML document.

Renders only what `harness.evidence.pack` computed (so evidence.html and evidence.json never
disagree); charts are inline SVG from `reports.charts`, in the style of the run report.
"""

from __future__ import annotations

import platform
from datetime import datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from reports.charts import Chart, Series, render
from reports.run_report import _jinja, format_value

PALETTE = ("#0d6efd", "#d63384", "#198754", "#fd7e14", "#6f42c1", "#20c997", "#6c757d", "#dc3545")
STATUS_CLASS = {"met": "met", "not met": "notmet", "no evidence": "noev", "expired": "expired",
                "passed": "met", "failed": "notmet", "aborted": "notmet", "inconclusive": "expired",
                "not measured": "noev", "proposed": "expired", "open": "notmet", "in progress": "expired",
                "done": "met", "accepted": "noev"}


def _when(text: str | None, tz: ZoneInfo, seconds: bool = False) -> str:
    if not text:
        return "—"
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return text
    return t.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def _day(text: str | None, tz: ZoneInfo) -> str:
    return _when(text, tz)[:10] if text else "—"


def objective_charts(ev: dict[str, Any]) -> list[str]:
    """Per headline objective: every run's achieved value over the period, by scenario, with the target line."""
    start = datetime.fromisoformat(ev["period"]["start"])
    end = datetime.fromisoformat(ev["period"]["end"])
    days = (end - start).total_seconds() / 86400
    targets = ev["policy"]["objectives"]
    scenarios = sorted({p["scenario"] for p in ev["objective_points"]})
    colors = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(scenarios)}
    charts = []
    for key, label in ev["objective_labels"].items():
        pts = [p for p in ev["objective_points"] if p["key"] == key and p["achieved"] is not None]
        if not pts:
            continue
        top = max(p["achieved"] for p in pts)
        scale, unit = (1000.0, "ms") if top < 1 else (1.0, "s") if top < 120 else (1 / 60, "min")
        target = targets.get(key)
        series = []
        for s in scenarios:
            for missed in (False, True):  # a run that missed its target: a hollow ring, named in the legend
                mine = [((datetime.fromisoformat(p["started_at"]) - start).total_seconds() / 86400,
                         p["achieved"] * scale) for p in pts if p["scenario"] == s and (p["passed"] is False) == missed]
                if mine:
                    series.append(Series(mine, f"{s} (missed the target)" if missed else s, colors[s], "dots",
                                         radius=4.5, ring=missed))
        y_max = top * scale * 1.25 or 1.0
        title = f"{label}: every run of the period (target {format_value(target, 's')})"
        if target is not None and target * scale <= y_max * 2:
            y_max = max(y_max, target * scale * 1.1)
            series.append(Series([(0.0, target * scale), (days, target * scale)], "target", "#b02a37", "line"))
        elif target is not None:
            title += " — the target is far above every point, off the chart"
        svg = render(Chart(title, f"days since {start:%Y-%m-%d}", f"{label} ({unit})", series, y_max=y_max,
                           x_range=(0.0, days)))
        charts.append(f'<figure class="objchart"><figcaption>{escape(title)}</figcaption>{svg}</figure>')
    return charts


def build_context(ev: dict[str, Any]) -> dict[str, Any]:
    tz = ZoneInfo(ev["period"]["time_zone"])
    objectives_by_scenario: dict[str, list[dict[str, Any]]] = {}
    for row in ev["objectives"]:
        unit = row.get("unit") or ""
        shown = dict(row)
        for k in ("target", "median", "p95", "worst", "prev_median"):
            shown[k + "_text"] = "—" if row.get(k) is None else format_value(row[k], unit)
        d = row.get("delta")
        shown["delta_text"] = "—" if d is None else ("+" if d > 0 else "−" if d < 0 else "±") + \
            format_value(abs(d), unit).replace("not measured", "0")
        shown["pass_rate_text"] = "—" if row.get("pass_rate") is None else f"{row['pass_rate'] * 100:.0f} %"
        shown["bound"] = "≥" if row.get("better") == "higher" else "≤"
        objectives_by_scenario.setdefault(row["scenario"], []).append(shown)
    for rows in objectives_by_scenario.values():  # the headline objectives (RTO, RPO, MTTR, TTD) first
        rows.sort(key=lambda r: (r.get("key") in (None, ""), r["objective"]))
    runs = [dict(r, started=_when(r["started_at"], tz, True), finished=_when(r.get("finished_at"), tz, True),
                 headline_text=", ".join(f"{ev['objective_labels'][k]} {format_value(v, 's')}"
                                         for k, v in r["headline"].items() if v is not None and k in ev["objective_labels"]))
            for r in ev["runs"]]
    drills = [dict(d, started=_when(d["started_at"], tz),
                   rto_text=format_value(d.get("rto_s"), "s"), rpo_text=format_value(d.get("rpo_s"), "s"),
                   steps_text=[(k, format_value(v, "s")) for k, v in (d.get("rto_steps") or {}).items()])
              for d in ev["drills"]]
    coverage = [dict(c, last_run_text=_when(c["last_run"], tz), last_pass_text=_when(c["last_pass"], tz),
                     next_due_text=_day(c["next_due"], tz), every_text=f"{c['every_days']:g} d")
                for c in ev["coverage"]]
    open_items = [r for r in ev["remediation"] if r["status"] in ("open", "in progress", "proposed")]
    trend_max = max([t["score"] for t in ev["score"]["trend"]] + [100])
    return {
        "ev": ev, "tz": ev["period"]["time_zone"], "cls": STATUS_CLASS,
        "period_start": _day(ev["period"]["start"], tz),
        "period_end": _when(ev["period"]["end"], tz), "period_last_day": _last_day(ev["period"]["end"], tz),
        "generated": _when(ev["generated_at"], tz, True), "evaluated": _when(ev["period"]["evaluated_at"], tz, True),
        "targets": [(ev["objective_labels"][k], format_value(v, "s")) for k, v in ev["policy"]["objectives"].items()],
        "objectives_by_scenario": objectives_by_scenario, "charts": objective_charts(ev),
        "runs": runs, "drills": drills, "coverage": coverage, "open_items": open_items,
        "deviations": [dict(d, started=_when(d["started_at"], tz)) for d in ev["deviations"]],
        "trend_max": trend_max, "when": lambda t: _when(t, tz),
        "r": {"host": {"chaosdrill": ev["generated_by"]["chaosdrill"], "hostname": ev["generated_by"]["host"],
                       "platform": platform.platform(), "python": platform.python_version()}},
    }


def _last_day(end: str, tz: ZoneInfo) -> str:
    from datetime import timedelta

    return (datetime.fromisoformat(end).astimezone(tz) - timedelta(microseconds=1)).strftime("%Y-%m-%d")


def render_evidence(ev: dict[str, Any]) -> str:
    return _jinja().get_template("evidence.html.j2").render(**build_context(ev))
