"""Repeats with statistics: N runs of one scenario case, summarised per objective (docs/metrics.md,
"Repeats and regression").

    outcomes of one (scenario, case) ──objective_stats()──► per objective: samples, median, p95,
        worst, 95 % CI of the median ──rule──► passed? ──series verdict──► series.json + report

Each repeat is an ordinary run (its own run directory, result.json, report) in its own fresh
environment (the `chaos_repeat` parametrization of harness/pytest_plugin.py): nothing — breaker
state, pool connections, caches, the restarted server — is carried from one repeat to the next,
so the samples are independent, which the confidence interval and the regression test assume.

The series is `<results>/<series-id>/series.json` (+ report.html): no result.json, so history
and evidence count each repeat once, as the run it is; `load_series()` lists the series.

Statistics: median and worst exactly; p95 nearest-rank (harness.measure.percentile: a value that
was observed, "worst side" — for an objective where higher is better, the 5th percentile); the 95 %
confidence interval of the median is scipy.stats.bootstrap's percentile interval (9,999 resamples,
fixed seed: the same samples always give the same interval). With few repeats it is wide (for
N = 3 it is [min, max]); None below 2 samples.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import redact
from harness.errors import ConfigError
from harness.measure import Verdict, percentile

SERIES_NAME = "series.json"
SERIES_SCHEMA_VERSION = 1
RULES = ("all", "p95")
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 20240611


def ci95_median(samples: Sequence[float]) -> list[float] | None:
    """95 % bootstrap (percentile) confidence interval of the median; None below 2 samples."""
    values = [float(v) for v in samples]
    if len(values) < 2:
        return None
    if min(values) == max(values):
        return [values[0], values[0]]
    import numpy as np
    from scipy.stats import bootstrap

    res = bootstrap((np.asarray(values),), np.median, confidence_level=0.95, n_resamples=BOOTSTRAP_RESAMPLES,
                    method="percentile", rng=np.random.default_rng(BOOTSTRAP_SEED))
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    return [_snap(low, values), _snap(high, values)]


def _snap(bound: float, values: Sequence[float]) -> float:
    """A bound within a few ulps of a sample is that sample: scipy interpolates between two equal
    bootstrap medians as a*(1-t) + a*t, which can land an ulp away from a."""
    nearest = min(values, key=lambda v: abs(v - bound))
    return nearest if math.isclose(bound, nearest, rel_tol=1e-12, abs_tol=0.0) else bound


def worst_side_p95(values: Sequence[float], better: str) -> float | None:
    """The p95 on the bad side: 95th percentile when lower is better, 5th when higher is better."""
    return percentile(values, 5 if better == "higher" else 95)


def objective_stats(name: str, rows: Sequence[dict[str, Any]], rule: str) -> dict[str, Any]:
    """One objective over the repeats (`rows`: that objective's dict of each repeat, in order)."""
    first = rows[0]
    better, unit, target = first.get("better", "lower"), first.get("unit", ""), first.get("target")
    samples = [r.get("achieved") for r in rows]
    values = [float(v) for v in samples if v is not None]
    worst = (min(values) if better == "higher" else max(values)) if values else None
    p95 = worst_side_p95(values, better)
    passes = [r.get("passed") for r in rows]
    if rule == "p95" and better in ("lower", "higher") and unit != "bool":
        if None in samples or p95 is None:
            passed = None  # a repeat that measured nothing: the p95 of the rest would flatter
        else:
            passed = p95 <= target if better == "lower" else p95 >= target
    else:  # "all" (and objectives where a percentile means nothing: yes/no, "near")
        passed = False if False in passes else (None if None in passes else True)
    return {"name": name, "unit": unit, "better": better, "target": target, "n": len(values), "samples": samples,
            "runs_passed": passes, "median": statistics.median(values) if values else None, "p95": p95,
            "worst": worst, "ci95": ci95_median(values), "passed": passed}


def series_verdict(objectives: list[dict[str, Any]], run_verdicts: Iterable[str]) -> Verdict:
    if "aborted" in set(run_verdicts):
        return Verdict.ABORTED  # a repeat ended early: its numbers are not comparable with the others'
    passes = [o["passed"] for o in objectives]
    if False in passes:
        return Verdict.FAILED
    if None in passes or not passes:
        return Verdict.INCONCLUSIVE
    return Verdict.PASSED


@dataclass
class Series:
    series_id: str
    scenario: str
    case: str | None
    rule: str
    runs: list[dict[str, Any]]           # run_id, run_dir, report, verdict of each repeat, in order
    objectives: list[dict[str, Any]]     # objective_stats() of each objective
    verdict: Verdict
    repeats_requested: int
    regression: dict[str, Any] | None = None
    started_at: str | None = None
    finished_at: str | None = None
    path: Path | None = None
    report: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"series_schema_version": SERIES_SCHEMA_VERSION, "kind": "repeats", "series_id": self.series_id,
                "scenario": self.scenario, "case": self.case, "rule": self.rule, "repeats": len(self.runs),
                "repeats_requested": self.repeats_requested, "verdict": self.verdict.value,
                "started_at": self.started_at, "finished_at": self.finished_at,
                "statistics": {"median": "exact", "p95": "nearest rank, worst side",
                               "ci95": f"scipy.stats.bootstrap percentile, {BOOTSTRAP_RESAMPLES} resamples, "
                                       f"seed {BOOTSTRAP_SEED}"},
                "runs": self.runs, "objectives": self.objectives, "regression": self.regression}

    def summary_dict(self) -> dict[str, Any]:
        """The `series` entry of the --json summary (harness/ci_output.py) plus its exit code."""
        return {"series_id": self.series_id, "scenario": self.scenario, "case": self.case,
                "repeats": len(self.runs), "rule": self.rule, "verdict": self.verdict.value,
                "report": str(self.report) if self.report else None, "runs": [r["run_id"] for r in self.runs],
                "objectives": [{k: o[k] for k in ("name", "unit", "better", "target", "n", "samples", "median",
                                                  "p95", "worst", "ci95", "passed")} for o in self.objectives],
                "regression": self.regression, "exit_code": self.verdict.exit_code}


def _times(run_dirs: Iterable[Path]) -> tuple[str | None, str | None]:
    starts, ends = [], []
    for d in run_dirs:
        try:
            data = json.loads((Path(d) / "result.json").read_text(encoding="utf-8"))
            starts.append(str(data["started_at"]))
            ends.append(str(data["finished_at"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return (min(starts) if starts else None), (max(ends) if ends else None)


def build_series(series_id: str, outcomes: Sequence[Any], rule: str, repeats_requested: int,
                 scenario: str | None = None) -> Series:
    """A Series of the outcomes (RunOutcome, in order) of one (scenario, case)."""
    if rule not in RULES:
        raise ConfigError(f"verdict rule {rule!r}; allowed: {', '.join(RULES)}")
    names: list[str] = []
    rows: dict[str, list[dict[str, Any]]] = {}
    for i, o in enumerate(outcomes):
        for obj in o.objectives:
            d = obj if isinstance(obj, dict) else obj.__dict__
            if d["name"] not in rows:
                names.append(d["name"])
                # a repeat that did not judge this objective counts as not measured
                rows[d["name"]] = [{**d, "achieved": None, "passed": None} for _ in range(i)]
            rows[d["name"]].append(dict(d))
        for name in names:
            if len(rows[name]) < i + 1:
                rows[name].append({**rows[name][0], "achieved": None, "passed": None})
    objectives = [objective_stats(n, rows[n], rule) for n in names]
    runs = [{"run_id": o.run_id, "run_dir": str(o.run_dir), "report": str(o.report) if o.report else None,
             "verdict": o.verdict.value} for o in outcomes]
    first = outcomes[0]
    started, finished = _times(o.run_dir for o in outcomes)
    return Series(series_id, scenario or getattr(first, "scenario", None) or "", getattr(first, "case", None), rule,
                  runs, objectives, series_verdict(objectives, (r["verdict"] for r in runs)), repeats_requested,
                  started_at=started, finished_at=finished)


def apply_regression(series: Series, regression: dict[str, Any]) -> None:
    """Attach a comparison (harness.baseline.compare); a passed series that regressed becomes `regressed`.
    A failed, inconclusive or aborted series keeps its verdict (its exit code is the more severe one)."""
    series.regression = regression
    if series.verdict is Verdict.PASSED and any(c["status"] == "regressed" for c in regression["objectives"]):
        series.verdict = Verdict.REGRESSED


def write_series(results_dir: Path, series: Series) -> Path:
    """`<results>/<series-id>/series.json` (owner-only, secrets scrubbed) and its report."""
    from harness.results import make_run_dir

    out_dir = make_run_dir(Path(results_dir) / series.series_id)
    series.path = out_dir / SERIES_NAME
    data = redact.redact_obj(json.loads(json.dumps(series.to_dict(), default=str)))
    redact.write_private(series.path, json.dumps(data, indent=2))
    from reports.series_report import render_series_report

    series.report = render_series_report(out_dir)
    return series.path


def read_series(path: Path) -> dict[str, Any]:
    """A series.json, checked enough to be read; ConfigError with one line otherwise."""
    from harness.inputs import read_text_file
    from harness.results import MAX_RESULT_BYTES

    path = Path(path)
    if path.is_dir():
        path = path / SERIES_NAME
    try:
        data = json.loads(read_text_file(path, "series file", MAX_RESULT_BYTES))
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{path}: corrupt series file ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("series_schema_version") != SERIES_SCHEMA_VERSION \
            or not isinstance(data.get("objectives"), list) or not isinstance(data.get("runs"), list):
        raise ConfigError(f"{path}: not a chaosdrill series (series_schema_version {SERIES_SCHEMA_VERSION})")
    return data


def load_series(root: Path) -> list[dict[str, Any]]:
    """Every readable `<root>/<dir>/series.json`, oldest first (a damaged one is left out)."""
    out = []
    for d in sorted(Path(root).iterdir()) if Path(root).is_dir() else []:
        if d.name.startswith(".") or not (d / SERIES_NAME).is_file():
            continue
        try:
            data = read_series(d / SERIES_NAME)
        except ConfigError:
            continue
        data["path"] = d.name
        out.append(data)
    return sorted(out, key=lambda s: str(s.get("started_at") or ""))
