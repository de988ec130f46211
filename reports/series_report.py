"""Series report: a repeat set's series.json → one self-contained HTML file.

Per objective: the distribution of the repeats (every repeat one dot, labelled with its index and
linked to its own run report), the target, median, p95, worst and the 95 % CI of the median, and,
with a baseline, the baseline's samples (hollow dots) and what the run was compared against. The
report recomputes nothing: every number comes from series.json (harness/series.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from jinja2 import TemplateError

from harness import redact
from harness.errors import ConfigError, HarnessError
from reports.run_report import REPORT_NAME, _jinja, format_value

WIDTH, HEIGHT, PAD = 640, 64, 28


def _strip(o: dict[str, Any], baseline: list[float]) -> dict[str, Any]:
    """Geometry of one objective's dot strip: repeats, baseline samples, target and median."""
    samples = [(i + 1, v) for i, v in enumerate(o.get("samples") or []) if v is not None]
    values = [v for _, v in samples] + list(baseline) + ([o["target"]] if o.get("target") is not None else [])
    if not values:
        return {"dots": [], "base": [], "target_x": None, "median_x": None, "low": "", "high": ""}
    lo, hi = min(values), max(values)
    span = (hi - lo) or (abs(hi) or 1.0)
    lo, hi = lo - span * 0.05, hi + span * 0.05

    def x(v: float) -> float:
        return round(PAD + (v - lo) / (hi - lo) * (WIDTH - 2 * PAD), 1)

    return {"dots": [{"i": i, "x": x(v), "text": format_value(v, o["unit"])} for i, v in samples],
            "base": [{"x": x(v), "text": format_value(v, o["unit"])} for v in baseline],
            "target_x": x(o["target"]) if o.get("target") is not None else None,
            "median_x": x(o["median"]) if o.get("median") is not None else None,
            "low": format_value(lo, o["unit"]), "high": format_value(hi, o["unit"])}


def build_context(data: dict[str, Any], series_dir: Path) -> dict[str, Any]:
    reg = data.get("regression") or None
    by_name = {c["name"]: c for c in (reg or {}).get("objectives", [])}
    objectives = []
    for o in data["objectives"]:
        f = lambda v, u=o["unit"]: format_value(v, u)  # noqa: E731
        comp = by_name.get(o["name"])
        objectives.append({**o, "target_text": f(o["target"]), "median_text": f(o["median"]),
                           "p95_text": f(o["p95"]), "worst_text": f(o["worst"]),
                           "ci_text": "—" if not o.get("ci95") else f"{f(o['ci95'][0])} – {f(o['ci95'][1])}",
                           "comparison": comp, "strip": _strip(o, (comp or {}).get("baseline_samples", []))})
    runs = []
    for r in data["runs"]:
        report = r.get("report")
        rel = os.path.relpath(report, series_dir) if report else None
        runs.append({**r, "link": rel})
    from harness.results import host_info

    return {"s": data, "objectives": objectives, "runs": runs, "reg": reg, "W": WIDTH, "H": HEIGHT,
            "r": {"host": host_info()}}


def render_series_report(series_dir: Path, out: Path | None = None) -> Path:
    from harness.series import read_series

    series_dir = Path(series_dir)
    data = read_series(series_dir)
    try:
        html = _jinja().get_template("series.html.j2").render(**build_context(data, series_dir))
    except (TemplateError, LookupError, TypeError, ValueError, AttributeError, ArithmeticError) as exc:
        raise HarnessError(f"{series_dir}: cannot render the series report ({type(exc).__name__}: {exc})") from None
    out = out or series_dir / REPORT_NAME
    try:
        redact.write_private(out, html)
    except OSError as exc:
        raise ConfigError(f"{out}: cannot write the report ({exc.strerror or type(exc).__name__})") from None
    return out
