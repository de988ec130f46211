"""Per-call cost of circuit breakers: ours against pybreaker, purgatory and aiobreaker.

Run: ``.venv/bin/python bench/bench_breaker.py [--calls N] [--rounds R]``

Cases, each sync and async:
* CLOSED  — wrap a no-op function that succeeds;
* OPEN    — a rejected call (raise + catch of the library's open error).

Every case runs once per round, and rounds interleave all cases, so drift and noisy
neighbours hit everyone alike. "Per call" is the median over rounds; "overhead" subtracts
the bare call. The ratio to pybreaker is the median over rounds of the ratio *within* a
round (both measured seconds apart), which a burst of load in one round cannot move; the
verdict uses that ratio. The best round is reported too. Writes bench/results/breaker.md
and bench/results/breaker.json (schema_version 2).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from datetime import timedelta
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiobreaker  # noqa: E402
import purgatory  # noqa: E402
import pybreaker  # noqa: E402
from purgatory.domain.model import OpenedState  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from resilience.breaker import CircuitBreaker  # noqa: E402
from resilience.errors import CircuitOpenError  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BASELINE = "pybreaker"
GOAL = 0.25
CALLS, ROUNDS = 50_000, 21  # the defaults; results name the values actually used
LONG = 10**6  # seconds in OPEN: the open cases must still be open when the last round runs


def noop() -> int:
    return 1


async def anoop() -> int:
    return 1


class Boom(Exception):
    pass


def boom() -> None:
    raise Boom()


# --------------------------------------------------------------- one loop per (library, case)
# Loops are compiled from a statement, as timeit does, so each library is timed on exactly
# the expression a user writes (e.g. ``breaker.call(fn)``) with no lambda in between.
_SYNC = """
def run(n):
    rng = range(n)
    t0 = perf_counter_ns()
    for _ in rng:
{body}
    return (perf_counter_ns() - t0) / n
"""
_ASYNC = """
async def run(n):
    rng = range(n)
    t0 = perf_counter_ns()
    for _ in rng:
{body}
    return (perf_counter_ns() - t0) / n
"""


def _compile(template: str, stmt: str, ns: dict, catch: type[BaseException] | None) -> Callable:
    if catch is None:
        body = f"        {stmt}"
    else:
        body = f"        try:\n            {stmt}\n        except catch:\n            pass"
    scope = dict(ns, perf_counter_ns=time.perf_counter_ns, catch=catch)
    exec(template.format(body=body), scope)  # noqa: S102 - fixed templates, like timeit
    return scope["run"]


def sync_loop(stmt: str, ns: dict, catch: type[BaseException] | None = None) -> Callable[[int], float]:
    """A timed loop of `n` executions of `stmt`; with `catch`, each is expected to raise it."""
    return _compile(_SYNC, stmt, ns, catch)


def async_loop(stmt: str, ns: dict, catch: type[BaseException] | None = None) -> Callable[[int], float]:
    """Same inside one running event loop; `stmt` contains the await."""
    body = _compile(_ASYNC, stmt, ns, catch)
    loop = asyncio.new_event_loop()

    def run(n: int) -> float:
        return loop.run_until_complete(body(n))

    run.loop = loop  # type: ignore[attr-defined]
    return run


def check_rejects(stmt: str, ns: dict, catch: type[BaseException], is_async: bool) -> None:
    """An open case that stopped rejecting would measure the wrong thing: refuse to report it."""
    marker = "admitted"
    scope = dict(ns)
    if is_async:
        exec(f"async def probe():\n    {stmt}\n    return {marker!r}", scope)  # noqa: S102
        loop = asyncio.new_event_loop()
        try:
            outcome = loop.run_until_complete(_catching(scope["probe"](), catch))
        finally:
            loop.close()
    else:
        exec(f"def probe():\n    {stmt}\n    return {marker!r}", scope)  # noqa: S102
        try:
            outcome = scope["probe"]()
        except catch:
            outcome = "rejected"
    if outcome != "rejected":
        raise SystemExit(f"benchmark invalid: an OPEN case admitted a call: {stmt}")


async def _catching(coro, catch):
    try:
        return await coro
    except catch:
        return "rejected"


# --------------------------------------------------------------- library adapters
def ours(variant: str) -> CircuitBreaker:
    if variant == "consecutive":
        return CircuitBreaker(f"ours-{variant}", wait_in_open=LONG)  # 5 consecutive failures
    if variant == "count":
        return CircuitBreaker(f"ours-{variant}", failure_rate_threshold=50, sliding_window_size=100,
                              minimum_calls=10, wait_in_open=LONG)
    return CircuitBreaker(f"ours-{variant}", failure_rate_threshold=50, sliding_window_type="time",
                          sliding_window_size=60, minimum_calls=10, slow_call_rate_threshold=50,
                          slow_call_duration_threshold=1.0, wait_in_open=LONG)


def trip_ours(b: CircuitBreaker) -> None:
    b.transition_to_open()


async def _purgatory_async_factory() -> purgatory.AsyncCircuitBreakerFactory:
    factory = purgatory.AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=LONG)
    await factory.initialize()
    return factory


def build_cases() -> list[dict]:
    """Each case: library, label, mode (sync/async), state (closed/open), run(n) -> ns per call."""
    cases: list[dict] = []

    def add(lib: str, label: str, mode: str, state: str, stmt: str, ns: dict,
            catch: type[BaseException] | None = None) -> None:
        ns = {"noop": noop, "anoop": anoop, **ns}
        loop_fn = sync_loop if mode == "sync" else async_loop
        case = {"library": lib, "label": label, "mode": mode, "state": state, "stmt": stmt,
                "run": loop_fn(stmt, ns, catch)}
        if state == "open":
            case["check"] = lambda: check_rejects(stmt, ns, catch, mode == "async")
        cases.append(case)

    # baselines: the bare call
    add("none", "bare call", "sync", "closed", "noop()", {})
    add("none", "bare call", "async", "closed", "await anoop()", {})

    # pybreaker (async through its `calling()` context manager: call_async needs tornado)
    pb_c = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=LONG)
    pb_o = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=LONG)
    pb_o.open()
    err = pybreaker.CircuitBreakerError
    add("pybreaker", "pybreaker", "sync", "closed", "b.call(noop)", {"b": pb_c})
    add("pybreaker", "pybreaker", "sync", "open", "b.call(noop)", {"b": pb_o}, err)

    async def pb_async(b: pybreaker.CircuitBreaker) -> int:
        with b.calling():
            return await anoop()

    add("pybreaker", "pybreaker", "async", "closed", "await f(b)", {"f": pb_async, "b": pb_c})
    add("pybreaker", "pybreaker", "async", "open", "await f(b)", {"f": pb_async, "b": pb_o}, err)

    # aiobreaker
    ab_c = aiobreaker.CircuitBreaker(fail_max=5, timeout_duration=timedelta(seconds=LONG))
    ab_o = aiobreaker.CircuitBreaker(fail_max=5, timeout_duration=timedelta(seconds=LONG))
    ab_o.open()
    err = aiobreaker.CircuitBreakerError
    add("aiobreaker", "aiobreaker", "sync", "closed", "b.call(noop)", {"b": ab_c})
    add("aiobreaker", "aiobreaker", "sync", "open", "b.call(noop)", {"b": ab_o}, err)
    add("aiobreaker", "aiobreaker", "async", "closed", "await b.call_async(anoop)", {"b": ab_c})
    add("aiobreaker", "aiobreaker", "async", "open", "await b.call_async(anoop)", {"b": ab_o}, err)

    # purgatory: its documented decorator form (looks the breaker up per call)
    sync_factory = purgatory.SyncCircuitBreakerFactory(default_threshold=5, default_ttl=LONG)
    p_ok = sync_factory("purg-closed")(noop)
    p_open = sync_factory("purg-open")(boom)
    for _ in range(5):
        try:
            p_open()
        except Boom:
            pass
    add("purgatory", "purgatory", "sync", "closed", "f()", {"f": p_ok})
    add("purgatory", "purgatory", "sync", "open", "f()", {"f": p_open}, OpenedState)

    setup_loop = asyncio.new_event_loop()
    afactory = setup_loop.run_until_complete(_purgatory_async_factory())

    async def aboom() -> None:
        raise Boom()

    pa_ok = afactory("purg-closed")(anoop)
    pa_open = afactory("purg-open")(aboom)

    async def trip() -> None:
        for _ in range(5):
            try:
                await pa_open()
            except Boom:
                pass

    setup_loop.run_until_complete(trip())
    setup_loop.close()
    add("purgatory", "purgatory", "async", "closed", "await f()", {"f": pa_ok})
    add("purgatory", "purgatory", "async", "open", "await f()", {"f": pa_open}, OpenedState)

    # ours
    for variant, label in (("consecutive", "chaosdrill: consecutive"),
                           ("count", "chaosdrill: count window"),
                           ("time", "chaosdrill: time window + slow")):
        c, o = ours(variant), ours(variant)
        trip_ours(o)
        add("chaosdrill", label, "sync", "closed", "b.call(noop)", {"b": c})
        add("chaosdrill", label, "sync", "open", "b.call(noop)", {"b": o}, CircuitOpenError)
        add("chaosdrill", label, "async", "closed", "await b.acall(anoop)", {"b": c})
        add("chaosdrill", label, "async", "open", "await b.acall(anoop)", {"b": o}, CircuitOpenError)
    return cases


def measure(cases: list[dict], calls: int, rounds: int) -> None:
    for case in cases:  # warm-up
        case["run"](max(1000, calls // 20))
        case["rounds"] = []
    gc.collect()
    for _ in range(rounds):
        for case in cases:
            case["rounds"].append(case["run"](calls))
    for case in cases:
        case["median"] = statistics.median(case["rounds"])
        case["best"] = min(case["rounds"])
        if "check" in case:
            case["check"]()


def summarize(cases: list[dict]) -> list[dict]:
    bare = {c["mode"]: c["median"] for c in cases if c["library"] == "none"}
    base = {(c["mode"], c["state"]): c for c in cases if c["library"] == BASELINE}
    rows = []
    for c in cases:
        if c["library"] == "none":
            continue
        key = (c["mode"], c["state"])
        b = base[key]
        overhead = c["median"] - bare[c["mode"]]
        base_overhead = b["median"] - bare[c["mode"]]
        paired = statistics.median(x / y for x, y in zip(c["rounds"], b["rounds"], strict=True))
        rows.append({
            "library": c["library"], "label": c["label"], "mode": c["mode"], "state": c["state"],
            "stmt": c["stmt"],
            "ns_per_call": round(c["median"], 1),
            "best_ns_per_call": round(c["best"], 1),
            "overhead_ns": round(overhead, 1),
            "ratio_vs_pybreaker": round(paired, 3),
            "best_ratio_vs_pybreaker": round(c["best"] / b["best"], 3),
            "overhead_ratio_vs_pybreaker": round(overhead / base_overhead, 3),
        })
    order = {"sync": 0, "async": 1, "closed": 0, "open": 1}
    rows.sort(key=lambda r: (order[r["mode"]], order[r["state"]], r["ns_per_call"]))
    return rows


def environment(calls: int, rounds: int, bare: dict, command: str) -> dict:
    versions = {}
    for dist in ("pybreaker", "purgatory", "aiobreaker"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "python": sys.version.split()[0], "implementation": platform.python_implementation(),
        "platform": platform.platform(), "cpus": os.cpu_count(), "calls_per_round": calls, "rounds": rounds,
        "bare_call_ns": bare, "versions": versions, "command": command,
        "load_average": list(os.getloadavg()),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def render(rows: list[dict], env: dict) -> tuple[Table, str]:
    table = Table(title=f"Circuit breaker cost per call (median of {env['rounds']} rounds × "
                        f"{env['calls_per_round']:,})")
    columns = ("mode", "state", "library", "ns/call", "best ns", "overhead ns", "× pybreaker", "best ×",
               "overhead × pybreaker")
    for col in columns:
        table.add_column(col, justify="right" if "ns" in col or "×" in col else "left")
    load = ", ".join(f"{x:.1f}" for x in env["load_average"])
    md = ["# Circuit breaker benchmark", "",
          f"`{env['command']}` — Python {env['python']}, {env['platform']}, "
          f"{env['cpus']} CPUs, load average {load} at the end, {env['measured_at']}. {env['rounds']} interleaved "
          f"rounds of {env['calls_per_round']:,} calls per case; ns/call is the median round, best ns the fastest. "
          f"A bare call costs {env['bare_call_ns']['sync']:.0f} ns (sync) / {env['bare_call_ns']['async']:.0f} ns "
          "(async) and is included in ns/call. × pybreaker is the median over rounds of the ratio within a round; "
          f"best × compares best rounds. Goal (verdict on × pybreaker): chaosdrill ≤ {GOAL}× pybreaker per call.",
          "",
          "| " + " | ".join(columns) + " |",
          "|---|---|---|" + "---:|" * (len(columns) - 3)]
    for r in rows:
        mark = ""
        if r["library"] == "chaosdrill":
            mark = " ✓" if r["ratio_vs_pybreaker"] <= GOAL else " ✗"
        cells = (r["mode"], r["state"], r["label"], f"{r['ns_per_call']:.0f}", f"{r['best_ns_per_call']:.0f}",
                 f"{r['overhead_ns']:.0f}", f"{r['ratio_vs_pybreaker']:.2f}{mark}",
                 f"{r['best_ratio_vs_pybreaker']:.2f}", f"{r['overhead_ratio_vs_pybreaker']:.2f}")
        table.add_row(*cells, style="bold" if r["library"] == "chaosdrill" else None)
        md.append("| " + " | ".join(cells) + " |")
    md += ["", "Each library is timed on the statement a user writes: " + ", ".join(
        sorted({f"`{r['stmt']}` ({r['library']}, {r['mode']})" for r in rows})) + ".",
           "", "Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + ".",
           "pybreaker's async case uses `with breaker.calling(): await fn()` (its `call_async` needs tornado).",
           "purgatory is used through its decorator, as documented; open cases reject via its `OpenedState` error."]
    return table, "\n".join(md) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=CALLS, help=f"calls per round per case (default {CALLS})")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"interleaved rounds (default {ROUNDS})")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where breaker.md/json go")
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")

    cases = build_cases()
    measure(cases, args.calls, args.rounds)
    rows = summarize(cases)
    bare = {c["mode"]: round(c["median"], 1) for c in cases if c["library"] == "none"}
    command = ".venv/bin/python bench/bench_breaker.py" + "".join(
        f" --{name} {value}" for name, value, default in (("calls", args.calls, CALLS), ("rounds", args.rounds, ROUNDS))
        if value != default)
    env = environment(args.calls, args.rounds, bare, command)
    table, md = render(rows, env)
    Console(width=140).print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "breaker.md").write_text(md)
    (args.out / "breaker.json").write_text(json.dumps({"schema_version": 2, "goal_ratio": GOAL,
                                                       "environment": env, "results": rows}, indent=2) + "\n")
    ours_rows = [r for r in rows if r["library"] == "chaosdrill"]
    worst = max(ours_rows, key=lambda r: r["ratio_vs_pybreaker"])
    print(f"worst chaosdrill ratio: {worst['ratio_vs_pybreaker']:.3f}× pybreaker "
          f"({worst['label']}, {worst['mode']} {worst['state']}); goal ≤ {GOAL}×")
    for c in cases:
        loop = getattr(c["run"], "loop", None)
        if loop is not None:
            loop.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
