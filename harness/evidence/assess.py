"""Judge a period's runs against the evidence policy: control verdicts, coverage, objectives, score.

Pure: history summaries + policy + period + "now" → one JSON-ready dict (the body of
evidence.json, which the HTML renders). Definitions (docs/evidence.md):

* A run's **evidence outcome** is its own outcome (harness.history), except that a passed run
  whose RTO/RPO/MTTR/TTD is worse than the *policy's* target is failed.
* A required drill, at the evaluation point E = min(period end, now):
  1. its latest decisive run (passed, failed or aborted) in the period failed or aborted → not met;
  2. else its latest pass (in the period or before) is at most `every` days before E → met;
  3. else it passed at some time but not recently enough → expired;
  4. else → no evidence (no run in the period passed; inconclusive runs prove nothing).
* A control's verdict is the worst of its drills'; its **score** met 100, expired 75, not met 50,
  no evidence 0; the **resilience score** is the mean over the policy's controls.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from harness.evidence.period import Period
from harness.evidence.policy import Policy
from harness.evidence.remediation import OPEN_STATUSES, Item
from harness.history import HEADLINE_LABELS, RunSummary

SCORES = {"met": 100, "expired": 75, "not met": 50, "no evidence": 0}
OBJECTIVE_UNITS = {"rto": "s", "rpo": "s", "mttr": "s", "time_to_detect": "s"}
TREND_PERIODS = 4
DUE_DAYS_FOR_PROPOSED = 30


def _fmt_days(days: float) -> str:
    return f"{days:.0f} d" if days >= 1 else f"{days * 24:.0f} h"


def judge_run(run: RunSummary, targets: dict[str, float]) -> tuple[str, str]:
    """(evidence outcome, reason) of one run against the policy's targets."""
    if run.outcome != "passed":
        return run.outcome, run.reason
    missed = []
    for key, target in targets.items():
        achieved = run.headline.get(key)
        if achieved is not None and achieved > target:
            missed.append(f"{HEADLINE_LABELS[key]} {achieved:.3g} s above the policy target {target:.3g} s")
    return ("failed", "; ".join(missed)) if missed else ("passed", "")


def _iso(t: datetime | None, tz) -> str | None:
    return t.astimezone(tz).isoformat(timespec="seconds") if t else None


def drill_status(scenario: str, every_days: float, judged: list[tuple[RunSummary, str, str]], period: Period,
                 eval_at: datetime) -> dict[str, Any]:
    """Coverage and verdict of one required drill. `judged`: every run of the scenario (all history), oldest first."""
    tz = period.start.tzinfo
    every = timedelta(days=every_days)
    in_period = [(r, o, why) for r, o, why in judged if period.start <= r.start < period.end]
    passes = [r.start for r, o, _ in judged if o == "passed" and r.start < eval_at]
    last_pass = passes[-1] if passes else None
    decisive = [(r, o, why) for r, o, why in in_period if o in ("passed", "failed", "aborted")]
    counts = {k: sum(1 for _, o, _ in in_period if o == k)
              for k in ("passed", "failed", "aborted", "inconclusive", "not measured")}
    next_due = (last_pass + every) if last_pass else period.start
    overdue = next_due < eval_at
    # gaps: the longest stretch inside the period without a valid pass
    points = [p for p in passes if period.start <= p < eval_at]
    prev = max((p for p in passes if p < period.start), default=None)
    lapses, longest = 0, 0.0
    cursor = prev if prev is not None else period.start
    for p in [*points, eval_at] if eval_at > period.start else []:
        gap = (p - cursor).total_seconds() / 86400
        longest = max(longest, gap)
        lapses += gap > every_days
        cursor = p
    expected = max(1, math.ceil((min(period.end, eval_at) - period.start).total_seconds() / 86400 / every_days)) \
        if eval_at > period.start else 0
    if decisive and decisive[-1][1] in ("failed", "aborted"):
        r, o, why = decisive[-1]
        status, reason = "not met", f"latest run {r.run_id} ({r.start.astimezone(tz):%Y-%m-%d}) {o}: {why or 'see the run'}"
    elif last_pass is not None and not overdue:
        status = "met"
        reason = (f"passed {r_date(last_pass, tz)}; next due {r_date(next_due, tz)}"
                  + (f"; lapsed {lapses} time(s) in the period (longest gap {_fmt_days(longest)})" if lapses else ""))
    elif last_pass is not None:
        status = "expired"
        reason = (f"last passed {r_date(last_pass, tz)}, required every {_fmt_days(every_days)}: "
                  f"expired {r_date(next_due, tz)}")
    else:
        status = "no evidence"
        n = len(in_period)
        reason = f"{n} run(s) in the period, none passed" if n else "no run in the period and none passed before"
    last = in_period[-1][0] if in_period else None
    return {"scenario": scenario, "every_days": every_days, "status": status, "score": SCORES[status],
            "reason": reason, "runs": len(in_period), "expected_runs": expected, **counts,
            "last_run": _iso(last.start, tz) if last else None, "last_run_id": last.run_id if last else None,
            "last_run_outcome": in_period[-1][1] if in_period else None,
            "last_pass": _iso(last_pass, tz), "next_due": _iso(next_due, tz), "overdue": overdue,
            "lapses": lapses, "longest_gap_days": round(longest, 2)}


def r_date(t: datetime, tz) -> str:
    return f"{t.astimezone(tz):%Y-%m-%d}"


def assess_controls(policy: Policy, judged: dict[str, list[tuple[RunSummary, str, str]]], period: Period,
                    eval_at: datetime) -> tuple[dict[str, dict], list[dict], float]:
    drills = {name: drill_status(name, d.every, judged.get(name, []), period, eval_at)
              for name, d in policy.drills.items()}
    controls = []
    for cid, c in policy.controls.items():
        mine = [drills[d] for d in c.drills]
        worst = min(mine, key=lambda d: d["score"])
        status = worst["status"]
        reasons = [f"{d['scenario']}: {d['status']} — {d['reason']}" for d in mine if d["status"] != "met"] \
            or [f"{d['scenario']}: {d['reason']}" for d in mine]
        controls.append({"id": cid, "framework": c.framework, "title": c.title, "asks": c.asks, "why": c.why,
                         "drills": list(c.drills), "objectives": list(c.objectives), "status": status,
                         "score": SCORES[status], "reason": "; ".join(reasons)})
    score = round(sum(c["score"] for c in controls) / len(controls), 1) if controls else 0.0
    return drills, controls, score


def objective_frame(runs: list[RunSummary], targets: dict[str, float], judged_out: dict[str, str]) -> pd.DataFrame:
    """One row per (run, objective): the raw data the objectives table and charts aggregate."""
    rows = []
    for r in runs:
        for o in r.objectives:
            key = o["key"]
            target = targets.get(key) if key else None
            passed = o["passed"]
            if target is not None and o["achieved"] is not None:
                passed = o["achieved"] <= target
            rows.append((r.run_id, r.scenario, r.started_at, o["name"], key or "", o["achieved"],
                         target if target is not None else o["target"], o["unit"], o["better"], passed,
                         target is not None, judged_out.get(r.run_id, r.outcome)))
    cols = ["run_id", "scenario", "started_at", "objective", "key", "achieved", "target", "unit", "better", "passed",
            "policy_target", "run_outcome"]
    df = pd.DataFrame.from_records(rows, columns=cols)
    df["achieved"] = pd.to_numeric(df["achieved"], errors="coerce")
    df["target"] = pd.to_numeric(df["target"], errors="coerce")
    df["started_at"] = pd.to_datetime(df["started_at"], utc=True, format="ISO8601")
    return df


def aggregate(df: pd.DataFrame) -> pd.DataFrame:
    """Per (scenario, objective): count, measured, pass rate, median, p95 and worst (nearest rank), vectorised."""
    cols = ["scenario", "objective", "key", "unit", "better", "target", "count", "measured", "passed", "judged",
            "pass_rate", "median", "p95", "worst", "first", "last"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    keys = ["scenario", "objective"]
    df = df.assign(passed_f=df["passed"].map({True: 1.0, False: 0.0}).astype(float))
    g = df.groupby(keys, sort=True)
    base = g.agg(key=("key", "first"), unit=("unit", "first"), better=("better", "first"), target=("target", "last"),
                 count=("run_id", "size"), measured=("achieved", "count"), passed=("passed_f", "sum"),
                 judged=("passed_f", "count"), median=("achieved", "median"), hi=("achieved", "max"),
                 lo=("achieved", "min"), first=("started_at", "min"), last=("started_at", "max"))
    higher = base["better"] == "higher"
    base["worst"] = np.where(higher, base["lo"], base["hi"])
    # nearest rank: the value at position ceil(q/100 · n) of the sorted measured values (q = 5 where higher is better)
    m = df[df["achieved"].notna()].sort_values([*keys, "achieved"], kind="mergesort")
    if not m.empty:
        rank = m.groupby(keys, sort=False).cumcount().to_numpy()
        n = m.groupby(keys, sort=False)["achieved"].transform("size").to_numpy()
        hib = (m["better"] == "higher").to_numpy()
        want = np.maximum(np.ceil(np.where(hib, 0.05, 0.95) * n).astype(int) - 1, 0)
        picked = m[rank == want].set_index(keys)["achieved"]
        base["p95"] = picked.reindex(base.index)
    else:
        base["p95"] = np.nan
    base["passed"] = base["passed"].astype(int)
    base["pass_rate"] = base["passed"] / base["judged"].where(base["judged"] > 0)
    return base.drop(columns=["hi", "lo"]).reset_index()[cols]


def _clean(v: Any) -> Any:
    if isinstance(v, float | np.floating):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return v


def objectives_table(cur: pd.DataFrame, prev: pd.DataFrame) -> list[dict[str, Any]]:
    """The aggregated rows of this period with the previous period's median and the trend."""
    a, b = aggregate(cur), aggregate(prev)
    prev_by = {(r["scenario"], r["objective"]): r for r in b.to_dict("records")}
    out = []
    for r in a.to_dict("records"):
        row = {k: _clean(v) for k, v in r.items()}
        p = prev_by.get((r["scenario"], r["objective"]))
        pm = _clean(p["median"]) if p is not None else None
        row["prev_median"], row["prev_count"] = pm, int(p["count"]) if p is not None else 0
        row["prev_pass_rate"] = _clean(p["pass_rate"]) if p is not None else None
        m = row.get("median")
        if pm is None or m is None:
            row["delta"], row["direction"] = None, "new" if pm is None and m is not None else "—"
        else:
            row["delta"] = m - pm
            tol = max(abs(pm) * 0.05, 1e-9)  # within 5 %: unchanged
            if abs(row["delta"]) <= tol:
                row["direction"] = "unchanged"
            else:
                improved = (row["delta"] < 0) == (row["better"] != "higher")
                row["direction"] = "better" if improved else "worse"
        out.append(row)
    return out


def remediation(items: list[Item], period: Period, judged_all: dict[str, list[tuple[RunSummary, str, str]]],
                prev: Period) -> list[dict[str, Any]]:
    """The user's items relevant to the period, plus proposed items for failures nobody has answered yet.

    Listed: items opened before the period's end that were still open at its start or closed in it.
    Open items opened before the period are `carried over`. A scenario with failed or aborted runs
    that no item names (by run id or scenario) gets one proposed item; a proposal from the previous
    period carries over while that scenario's latest run before this period is still not passed."""
    tz = period.start.tzinfo
    start_d, end_d = period.start.date(), period.end.date()
    out = []
    for it in items:
        if it.opened >= end_d:
            continue
        if it.closed is not None and it.closed < start_d:
            continue
        out.append({"id": it.id, "finding": it.finding, "owner": it.owner, "opened": it.opened.isoformat(),
                    "due": it.due.isoformat(), "status": it.status,
                    "closed": it.closed.isoformat() if it.closed else None, "runs": list(it.runs),
                    "scenario": it.scenario, "note": it.note, "source": "remediation file",
                    "carried_over": it.opened < start_d and (it.closed is None or it.closed >= start_d),
                    "overdue": it.status in OPEN_STATUSES and it.due < min(end_d, datetime.now(tz).date())})
    answered_runs = {rid for it in items for rid in it.runs}
    answered_scen = {it.scenario for it in items if it.scenario and it.opened < end_d}

    def proposals(p: Period, carried: bool) -> list[dict[str, Any]]:
        found = []
        for scen, judged in sorted(judged_all.items()):
            bad = [(r, o, why) for r, o, why in judged if p.start <= r.start < p.end and o in ("failed", "aborted")]
            bad = [b for b in bad if b[0].run_id not in answered_runs]
            if not bad or scen in answered_scen:
                continue
            if carried:
                before = [o for r, o, _ in judged if r.start < period.start and o in ("passed", "failed", "aborted")]
                if not before or before[-1] == "passed":
                    continue  # fixed since: the latest decisive run before this period passed
            latest, o, why = bad[-1]
            found.append({"id": f"PROPOSED-{scen}-{p.label}", "finding": f"{len(bad)} {scen} run(s) {o if len(bad) == 1 else 'failed or aborted'}"
                          f" in {p.label}; latest {latest.run_id}: {why or o}", "owner": "unassigned",
                          "opened": latest.start.astimezone(tz).date().isoformat(),
                          "due": (latest.start.astimezone(tz).date() + timedelta(days=DUE_DAYS_FOR_PROPOSED)).isoformat(),
                          "status": "proposed", "closed": None, "runs": [b[0].run_id for b in bad][-20:],
                          "scenario": scen, "note": "proposed by chaosdrill from failed runs: add it to the remediation file",
                          "source": "proposed", "carried_over": carried, "overdue": False})
        return found

    return out + proposals(prev, True) + proposals(period, False)


def score_trend(policy: Policy, judged: dict[str, list[tuple[RunSummary, str, str]]], period: Period,
                now: datetime, n: int = TREND_PERIODS) -> list[dict[str, Any]]:
    periods = [period]
    for _ in range(n - 1):
        periods.insert(0, periods[0].previous())
    out = []
    for p in periods:
        eval_at = min(p.end, now)
        _, controls, score = assess_controls(policy, judged, p, eval_at)
        runs = sum(1 for lst in judged.values() for r, _, _ in lst if p.start <= r.start < p.end)
        out.append({"period": p.label, "score": score, "runs": runs,
                    "met": sum(c["status"] == "met" for c in controls), "controls": len(controls)})
    return out
