"""Regression alarms: this run's (or series') objectives against the same scenario's earlier runs
(docs/metrics.md, "Repeats and regression").

    --baseline last:N | RUN-ID | SERIES-ID | FILE ──resolve_baseline()──► baseline samples per objective
    `chaosdrill baseline save` ──save_baseline()──► FILE (a frozen last:N a team can commit and reuse)
    current samples + baseline samples ──compare()──► per objective: ok | regressed | not enough history

An objective *regressed* when both hold:
  - its median is worse than the baseline's median by more than the tolerance (`[regression]
    tolerance`, default 0.25: e.g. MTTR median +25 %; "worse" follows the objective: higher MTTR,
    lower availability), and
  - a one-sided Mann-Whitney U test (scipy.stats.mannwhitneyu, current worse than baseline) gives
    p < alpha (`[regression] alpha`, default 0.05).

*Not enough history* — said, never a silent pass — when fewer than `min_history` (default 3)
baseline runs measured the objective, or when the samples are too few for the test ever to reach
p < alpha (the smallest one-sided p with n current and m baseline samples is 1 / C(n + m, n): one run
needs 19 baseline runs, three repeats need 4). The verdict is then unchanged.

Baseline runs: completed runs of the same scenario and the same case (test id without the repeat
index), not this invocation's, and never an aborted run (its fault was reverted early).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.history import History, RunSummary

COMPARED_BETTER = ("lower", "higher")


def _spec_error(spec: str) -> ConfigError:
    return ConfigError(f"--baseline {spec!r}: allowed: last:N (N ≥ 1), a run id or series id of the results "
                       "directory, or a saved baseline file (a series.json)")


def resolve_baseline(spec: str, history: History, scenario: str, case: str | None,
                     exclude: set[str] = frozenset()) -> tuple[str, list[dict[str, Any]], dict[str, list]]:
    """(what it is compared against, the baseline runs [{run_id, started_at}], samples per objective name)."""
    spec = spec.strip()
    if spec.startswith("last:"):
        try:
            n = int(spec[5:])
        except ValueError:
            raise _spec_error(spec) from None
        if n < 1:
            raise _spec_error(spec)
        runs = [r for r in history.runs if r.scenario == scenario and r.case == case and r.run_id not in exclude
                and r.outcome != "aborted" and r.verdict != "aborted"][-n:]
        label = f"the last {n} run(s) of {scenario}" + (f" {case}" if case else "") + f" in {history.root}"
        if len(runs) < n:
            label += f" (only {len(runs)} found)"
        return label, _runs_meta(runs), _samples_of(runs)
    by_id = [r for r in history.runs if r.run_id == spec]
    if by_id:
        return f"run {spec}", _runs_meta(by_id), _samples_of(by_id)
    from harness.series import SERIES_NAME, read_series

    path = history.root / spec / SERIES_NAME if "/" not in spec and (history.root / spec / SERIES_NAME).is_file() \
        else Path(spec)
    if not path.exists():
        raise _spec_error(spec)
    data = read_series(path)
    if data.get("scenario") != scenario:
        raise ConfigError(f"--baseline {spec}: a baseline of scenario {data.get('scenario')!r}, this run is {scenario!r}")
    samples = {o["name"]: [v for v in o.get("samples") or []] for o in data["objectives"]
               if isinstance(o, dict) and isinstance(o.get("name"), str)}
    runs = [{"run_id": r.get("run_id"), "started_at": None} for r in data["runs"] if isinstance(r, dict)]
    return f"series {data.get('series_id')} ({path})", runs, samples


def _runs_meta(runs: Sequence[RunSummary]) -> list[dict[str, Any]]:
    return [{"run_id": r.run_id, "started_at": r.started_at, "verdict": r.verdict} for r in runs]


def _samples_of(runs: Sequence[RunSummary]) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in runs:
        for o in r.objectives:
            out.setdefault(o["name"], []).append(o["achieved"])
    return out


def min_p_value(n: int, m: int) -> float:
    """The smallest one-sided p-value an exact Mann-Whitney U test of n vs m samples can give."""
    return 1 / math.comb(n + m, n)


def _fmt(value: float | None, unit: str) -> str:
    from reports.run_report import format_value

    return format_value(value, unit)


def compare_objective(name: str, unit: str, better: str, current: Sequence[Any], baseline: Sequence[Any],
                      tolerance: float, alpha: float, min_history: int) -> dict[str, Any]:
    cur = [float(v) for v in current if isinstance(v, int | float) and not isinstance(v, bool)]
    base = [float(v) for v in baseline if isinstance(v, int | float) and not isinstance(v, bool)]
    out: dict[str, Any] = {"name": name, "baseline_n": len(base), "current_n": len(cur), "tolerance": tolerance,
                           "baseline_median": statistics.median(base) if base else None,
                           "current_median": statistics.median(cur) if cur else None, "change": None,
                           "p_value": None, "baseline_samples": base}
    if not cur:
        return out | {"status": "not enough history", "message": f"{name}: not measured in this run: not compared"}
    if len(base) < min_history:
        return out | {"status": "not enough history",
                      "message": f"{name}: not enough history: {len(base)} baseline run(s) measured it, "
                                 f"{min_history} needed; not compared (neither passed nor regressed)"}
    floor = min_p_value(len(cur), len(base))
    if floor >= alpha:
        return out | {"status": "not enough history",
                      "message": f"{name}: not enough history: with {len(cur)} current and {len(base)} baseline "
                                 f"sample(s) the test cannot reach p < {alpha:g} (smallest possible p "
                                 f"{floor:.3g}); add baseline runs or --repeat; not compared"}
    from scipy.stats import mannwhitneyu

    mb, mc = out["baseline_median"], out["current_median"]
    worse_by = (mc - mb) if better == "lower" else (mb - mc)
    change = worse_by / abs(mb) if mb else (0.0 if worse_by <= 0 else None)
    beyond = change is None or change > tolerance
    alternative = "greater" if better == "lower" else "less"
    if len(set(cur + base)) == 1:
        p = 1.0
    else:
        method = "exact" if len(set(cur + base)) == len(cur + base) else "asymptotic"
        p = float(mannwhitneyu(cur, base, alternative=alternative, method=method).pvalue)
    regressed = beyond and p < alpha
    shown = "worse from 0" if change is None else f"{change * 100:+.0f} % worse" if change > 0 else \
        f"{-change * 100:.0f} % better"
    message = (f"{name}: median {_fmt(mc, unit)} vs baseline median {_fmt(mb, unit)} ({shown}; tolerance "
               f"{tolerance * 100:.0f} %), one-sided Mann-Whitney p = {p:.3g} (alpha {alpha:g}), "
               f"{len(cur)} vs {len(base)} sample(s): " + ("REGRESSED" if regressed else "no significant regression"))
    return out | {"status": "regressed" if regressed else "ok", "change": change, "p_value": p, "message": message}


def compare(objectives: Sequence[dict[str, Any]], baseline_samples: dict[str, list], *, label: str,
            baseline_runs: list[dict[str, Any]], tolerance: float, alpha: float, min_history: int) -> dict[str, Any]:
    """The `regression` block of a series: every comparable objective (lower/higher is better, not yes/no)."""
    rows = []
    for o in objectives:
        if o.get("better") not in COMPARED_BETTER or o.get("unit") == "bool":
            continue
        rows.append(compare_objective(o["name"], o.get("unit", ""), o["better"], o.get("samples") or [],
                                      baseline_samples.get(o["name"], []), tolerance, alpha, min_history))
    statuses = {r["status"] for r in rows}
    status = "regressed" if "regressed" in statuses else "ok" if statuses == {"ok"} else "not enough history"
    return {"baseline": label, "baseline_runs": baseline_runs, "tolerance": tolerance, "alpha": alpha,
            "min_history": min_history, "test": "one-sided Mann-Whitney U (scipy.stats.mannwhitneyu) and the "
                                                "tolerance on medians", "status": status, "objectives": rows}



def save_baseline(history: History, scenario: str, case: str | None, last: int, out: Path) -> tuple[Path, int]:
    """Freeze the last `last` completed runs of `scenario` (and `case`) into a baseline file — the shape
    of a series.json, so `--baseline FILE` reads it like a series — so the comparison point does not move
    as new runs arrive. Returns (path, runs saved). ConfigError (one line) when nothing matches."""
    from datetime import UTC, datetime

    from harness.inputs import check_output_file
    from harness.series import SERIES_SCHEMA_VERSION
    from harness.state import write_json_atomic

    if last < 1:
        raise ConfigError(f"--last: {last} must be a whole number ≥ 1")
    mine = [r for r in history.runs if r.scenario == scenario]
    if not mine:
        raise ConfigError(f"baseline save: no run of scenario {scenario!r} in {history.root}")
    cases = sorted({r.case for r in mine if r.case is not None})
    if case is None and len(cases) > 1:
        raise ConfigError(f"baseline save: scenario {scenario!r} has several cases; pick one with --case: "
                          + ", ".join(cases))
    case = case if case is not None else (cases[0] if cases else None)
    label, runs, samples = resolve_baseline(f"last:{last}", history, scenario, case)
    if not runs:
        raise ConfigError(f"baseline save: no completed run of {scenario}" + (f" {case}" if case else "")
                          + f" in {history.root}")
    check_output_file(out, "--out")
    now = datetime.now(UTC)
    doc = {"series_schema_version": SERIES_SCHEMA_VERSION, "kind": "baseline",
           "series_id": f"baseline-{scenario}-{now:%Y%m%dT%H%M%SZ}", "scenario": scenario, "case": case,
           "saved_at": now.isoformat(), "source": label, "repeats": len(runs), "runs": runs,
           "objectives": [{"name": name, "samples": values} for name, values in sorted(samples.items())]}
    write_json_atomic(out, doc)
    return out, len(runs)
