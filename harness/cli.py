"""The `chaosdrill` command (typer + rich).

    chaosdrill run [-m MARKER]      run scenarios (pytest underneath) and print report paths
    chaosdrill env up|down|list     a local environment that outlives the command
    chaosdrill report RUN_DIR       (re)render a run's HTML report
    chaosdrill verify [--backup-id] verify a backup repository (exit 3 naming each damaged object)
    chaosdrill restore-test         restore YOUR latest backup into a fresh environment, check it; RTO, RPO
    chaosdrill history              list the runs of a results directory (--json)
    chaosdrill baseline save        freeze a scenario's last N runs into a file for --baseline
    chaosdrill evidence             build, sign, verify an audit evidence pack for a period
    chaosdrill cleanup [--all]      undo faults and environments a killed run left
    chaosdrill doctor               what is installed, what is missing and how to get it
    chaosdrill toxiproxy            the embedded Toxiproxy-compatible server

Exit codes (harness/errors.py, EXIT_CODES; README "Exit codes"): 0 passed, 2 bad input, 3 an objective
was missed, 4 the tool failed, 5 a fault could not be undone, 6 aborted by a stop condition, 7 regressed
against the baseline, 130/143 interrupted by SIGINT/SIGTERM (fault reverted, run recorded as aborted).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.config import SCENARIO_NAMES, load_config
from harness.errors import ConfigError, HarnessError
from harness.preflight import preflight
from harness.redact import redact

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Chaos testing and disaster-recovery drills that measure MTTR, TTD, RTO and RPO.")
env_app = typer.Typer(no_args_is_help=True, help="Start and stop a local environment (PostgreSQL, Redis, app).")
app.add_typer(env_app, name="env")
console = Console(stderr=True)
out = Console()
# Progress is written while pytest captures sys.stderr (--capture=sys); the real stderr is not captured.
live = Console(file=sys.__stderr__)

class OutputFormat(StrEnum):
    """--output of `env up` and `doctor`: anything else is bad input (exit 2), not a silent text."""

    text = "text"
    json = "json"


ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="chaosdrill.toml (default ./chaosdrill.toml)")]
JunitOpt = Annotated[Path | None, typer.Option("--junit", help="write JUnit XML here (one testsuite per run, "
                                                                 "one testcase per objective)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON summary on stdout (progress stays on stderr)")]
# The bundled scenarios: harness/scenarios is a link to the repo's scenarios/ (so the wheel ships them).
DEFAULT_SCENARIOS = Path(__file__).resolve().parent / "scenarios"


def _scenarios_dir(path: Path | None) -> Path:
    candidates = [path] if path else [Path("scenarios"), DEFAULT_SCENARIOS]
    for cand in candidates:
        if cand and cand.is_dir():
            return cand.resolve()
    raise ConfigError(f"scenarios directory not found: {candidates[0]}")


class _CliPlugin:
    """Receives chaosdrill hooks from inside pytest: live progress and outcomes. pytest registers a
    plugin's `pytest_*` methods without `@pytest.hookimpl`, so this module need not import pytest
    (0.24 s of every CLI start)."""

    def __init__(self, status) -> None:
        self.status = status
        self.outcomes: list = []
        self.error: HarnessError | None = None
        self.skipped: list[str] = []
        self.failures: list[str] = []

    def pytest_chaosdrill_error(self, message: str, exit_code: int) -> None:
        self.error = HarnessError(redact(message))
        self.error.exit_code = exit_code

    def pytest_runtest_logreport(self, report) -> None:
        if report.skipped and isinstance(report.longrepr, tuple):
            self.skipped.append(f"{report.nodeid.rsplit('::', 1)[-1]}: {report.longrepr[2].removeprefix('Skipped: ')}")
        elif report.failed:
            self.pytest_collectreport(report)

    def pytest_collectreport(self, report) -> None:
        """A failed scenario or collection, as one line for when pytest's own output is hidden."""
        if report.failed:
            crash = getattr(report.longrepr, "reprcrash", None)
            text = (crash.message if crash is not None else str(report.longrepr)).strip()
            first = text.splitlines()[0] if text else "failed"
            self.failures.append(f"{report.nodeid.rsplit('::', 1)[-1] or report.nodeid}: {first}")

    def pytest_chaosdrill_progress(self, message: str) -> None:
        message = redact(message)
        self.status.update(f"[bold]{message}")
        live.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}", highlight=False)

    def pytest_chaosdrill_run_finished(self, outcome) -> None:
        self.outcomes.append(outcome)


@app.command()
def run(
    marker: Annotated[list[str] | None, typer.Option("--marker", "-m", help=f"scenario marker, one of: {', '.join(SCENARIO_NAMES)}")] = None,
    config: ConfigOpt = None,
    results: Annotated[Path | None, typer.Option(help="results directory (default from config)")] = None,
    scenarios: Annotated[Path | None, typer.Option(help="scenarios directory (default ./scenarios or the bundled ones)")] = None,
    keyword: Annotated[str | None, typer.Option("-k", help="pytest -k expression")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="also show pytest's own output")] = False,
    junit: JunitOpt = None,
    as_json: JsonOpt = False,
    repeat: Annotated[int | None, typer.Option("--repeat", min=1, max=100, help="run each fault scenario N times, "
                                               "each in a fresh environment; statistics per objective "
                                               "(default run.repeat: 1)")] = None,
    repeat_rule: Annotated[str | None, typer.Option("--repeat-rule", help="verdict of a repeat set: all (every "
                                                    "repeat passes) or p95 (the p95 meets the target); default "
                                                    "run.repeat_rule: all")] = None,
    baseline: Annotated[str | None, typer.Option("--baseline", help="compare with earlier runs: last:N, a run or "
                                                 "series id, or a series.json file; regressed = exit 7")] = None,
) -> None:
    """Run scenarios (default: db_outage), then print a summary and the report paths."""
    try:
        _run(marker, config, results, scenarios, keyword, verbose, junit, as_json, repeat, repeat_rule, baseline)
    except HarnessError as exc:
        _emit_error("run", exc, as_json, junit)
        raise


def _emit_error(command: str, exc: HarnessError, as_json: bool, junit: Path | None) -> None:
    """--json / --junit still get their document when the command fails (the error and its code)."""
    if not (as_json or junit) or getattr(exc, "emitted", False):
        return
    from harness.ci_output import dumps_summary, summary, write_junit

    doc = summary(command, exc.exit_code, error=redact(str(exc)))
    if junit:
        with contextlib.suppress(OSError):
            write_junit(junit, doc)
    if as_json:
        sys.stdout.write(dumps_summary(doc) + "\n")


def _finish(command: str, outcomes: list, series: list, as_json: bool, junit: Path | None,
            code: int | None = None) -> int:
    """Print the outcomes (stderr), write --junit, print --json (stdout); the command's exit code.

    A run that belongs to a series (--repeat, --baseline) counts through the series' verdict (its rule
    and its regression), not on its own."""
    from harness.ci_output import dumps_summary, summary, write_junit
    from harness.errors import most_severe

    in_series = {run_id for s in series for run_id in s["runs"]}
    if code is None:
        code = most_severe([o.verdict.exit_code for o in outcomes if o.run_id not in in_series]
                           + [s["exit_code"] for s in series])
    _print_outcomes(outcomes, to_stdout=not as_json)
    _print_series(series, to_stdout=not as_json)
    doc = summary(command, code, outcomes, [{k: v for k, v in s.items() if k != "exit_code"} for s in series])
    if junit:
        write_junit(junit, doc)
        live.print(f"junit: {junit}", highlight=False, soft_wrap=True)
    if as_json:
        sys.stdout.write(dumps_summary(doc) + "\n")
    return code


def _run(marker, config, results, scenarios, keyword, verbose, junit, as_json, repeat=None, repeat_rule=None,
         baseline=None) -> None:
    from harness.cleanup import cleanup_all
    from harness.inputs import check_output_file, check_writable_dir

    if junit is not None:
        check_output_file(junit, "--junit")
    markers = marker or ["db_outage"]
    for m in markers:
        if m not in SCENARIO_NAMES:
            raise ConfigError(f"unknown marker {m!r}; allowed: {', '.join(SCENARIO_NAMES)}")
    if keyword is not None:
        _check_keyword(keyword)
    cfg = load_config(config)  # validate everything before anything starts
    repeat = repeat or cfg.run.repeat
    repeat_rule = repeat_rule or cfg.run.repeat_rule
    from harness.series import RULES

    if repeat_rule not in RULES:
        raise ConfigError(f"--repeat-rule {repeat_rule!r}; allowed: {', '.join(RULES)}")
    baseline = baseline or cfg.regression.baseline
    scen = _scenarios_dir(scenarios)
    results_dir = check_writable_dir(results or Path(cfg.run.results_dir), "--results" if results else "run.results_dir")
    if baseline is not None:
        _check_baseline_spec(baseline, results_dir)
    for line in cleanup_all():  # what a killed earlier run left behind goes first
        live.print(f"chaosdrill cleanup: {line}", highlight=False)
    preflight(cfg)
    args = [str(scen), "-m", " or ".join(markers), "-p", "no:cacheprovider", "--capture=sys", "--chaos-no-summary",
            *(["-v"] if verbose else ["-q", "--no-header"])]
    if config:
        args += ["--chaos-config", str(config)]
    args += ["--chaos-results", str(results_dir.resolve()), "--chaos-repeat", str(repeat)]
    if keyword:
        args += ["-k", keyword]
    import pytest

    from harness import interrupt

    interrupt.last_signal = None
    with live.status("[bold]starting") as status, interrupt.signals_abort():
        plugin = _CliPlugin(status)
        # pytest's own lines (dots, summaries, its report of an error) only with -v: the progress, the
        # summary table and one line per error are chaosdrill's
        # (with --json, stdout is the summary's alone: -v sends pytest's lines to stderr)
        shown = contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()
        with shown if verbose else contextlib.redirect_stdout(io.StringIO()):
            code = pytest.main(args, plugins=[plugin])
    if plugin.error is not None:
        raise plugin.error  # stopped inside the session (environment would not start): its one line
    if interrupt.last_signal is not None:  # SIGINT/SIGTERM: faults reverted, the run recorded as aborted
        exit_code = _finish("run", plugin.outcomes, [], as_json, junit, code=interrupt.exit_code(interrupt.last_signal))
        console.print(f"chaosdrill: interrupted by {signal.Signals(interrupt.last_signal).name}; faults were undone "
                      "and the run recorded as aborted (see `chaosdrill cleanup`)", highlight=False, soft_wrap=True)
        raise typer.Exit(exit_code)
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        raise ConfigError(f"no scenario matched marker(s) {', '.join(markers)} in {scen}")
    if code == pytest.ExitCode.OK and not plugin.outcomes:
        # every selected scenario skipped: a run that measured nothing must not look like a pass
        raise ConfigError(f"no scenario ran for {', '.join(markers)}: {'; '.join(plugin.skipped) or 'all skipped'}")
    missed = any(o.verdict.value != "passed" for o in plugin.outcomes)
    if code == pytest.ExitCode.OK or (code == pytest.ExitCode.TESTS_FAILED and missed):
        series = _series(plugin.outcomes, cfg, results_dir.resolve(), repeat, repeat_rule, baseline)
        exit_code = _finish("run", plugin.outcomes, series, as_json, junit)
        if exit_code:
            raise typer.Exit(exit_code)
        return
    why = "; ".join(plugin.failures[:3]) or f"pytest exited with {pytest.ExitCode(code).name}"
    hint = "" if verbose else " (rerun with -v for pytest's output)"
    error = ConfigError(f"{why}{hint}") if code == pytest.ExitCode.USAGE_ERROR else HarnessError(f"{why}{hint}")
    raise error


def _check_baseline_spec(spec: str, results_dir: Path) -> None:
    """--baseline, before anything starts: last:N, or a run/series id of the results directory, or a file."""
    if spec.startswith("last:"):
        n = spec[5:]
        if not n.isdigit() or int(n) < 1:
            raise ConfigError(f"--baseline {spec!r}: last:N needs a whole number N ≥ 1, e.g. last:10")
        return
    if not spec.strip() or not (("/" not in spec and spec not in (".", "..") and (results_dir / spec).is_dir())
                                 or Path(spec).is_file()):
        raise ConfigError(f"--baseline {spec!r}: no such run or series in {results_dir} and no such file; "
                          "allowed: last:N, a run or series id, or a series.json file")


def _series(outcomes: list, cfg, results_dir: Path, repeat: int, rule: str, baseline: str | None) -> list[dict]:
    """One series per (scenario, case) when repeating or comparing: statistics, regression, series.json."""
    if repeat <= 1 and baseline is None:
        return []
    from harness.baseline import compare, resolve_baseline
    from harness.ci_output import run_dict
    from harness.history import load_history
    from harness.results import new_run_id
    from harness.series import apply_regression, build_series, write_series

    groups: dict[tuple, list] = {}
    for o in outcomes:
        d = run_dict(o)
        groups.setdefault((d["scenario"], d["case"]), []).append(o)
    hist = load_history(results_dir) if baseline else None
    current = {o.run_id for o in outcomes}
    out = []
    for (scenario, case), runs in groups.items():
        s = build_series(new_run_id(f"{scenario}-series"), runs, rule, repeat, scenario=scenario)
        if baseline:
            label, base_runs, samples = resolve_baseline(baseline, hist, s.scenario, case, exclude=current)
            apply_regression(s, compare(s.objectives, samples, label=label, baseline_runs=base_runs,
                                        tolerance=cfg.regression.tolerance, alpha=cfg.regression.alpha,
                                        min_history=cfg.regression.min_history))
        write_series(results_dir, s)
        out.append(s.summary_dict())
    return out


def _print_series(series: list, to_stdout: bool = True) -> None:
    from rich.markup import escape

    from reports.run_report import format_value

    for s in series:
        color = "green" if s["verdict"] == "passed" else "red"
        console.print(f"[bold]series {s['series_id']}[/] ({escape(s['case'] or s['scenario'])} × {s['repeats']}, rule "
                      f"{s['rule']}): [{color}]{s['verdict']}[/]", highlight=False, soft_wrap=True)
        table = Table(box=None, pad_edge=False, padding=(0, 2))
        for col in ("objective", "median", "p95", "worst", "95% CI (median)", "result"):
            table.add_column(col)
        for o in s["objectives"]:
            f = lambda v, u=o["unit"]: format_value(v, u)  # noqa: E731
            ci = "—" if o["ci95"] is None else f"{f(o['ci95'][0])} – {f(o['ci95'][1])}"
            table.add_row(o["name"], f(o["median"]), f(o["p95"]), f(o["worst"]), ci,
                          {True: "[green]pass", False: "[red]FAIL", None: "[yellow]not measured"}[o["passed"]])
        console.print(table)
        reg = s.get("regression")
        if reg:
            console.print(f"compared with {escape(reg['baseline'])}: {reg['status']}", highlight=False, soft_wrap=True)
            for c in reg["objectives"]:
                color = {"regressed": "red", "ok": "green"}.get(c["status"], "yellow")
                console.print(f"  [{color}]{c['status']}[/] {escape(c['message'])}", highlight=False, soft_wrap=True)
        if s.get("report"):
            (out if to_stdout else console).print(f"series report: {s['report']}", soft_wrap=True)


def _check_keyword(keyword: str) -> None:
    """A -k expression pytest would refuse is one line (exit 2), before anything starts."""
    from _pytest.mark.expression import Expression

    try:
        Expression.compile(keyword)
    except SyntaxError as exc:
        raise ConfigError(f"-k {keyword!r}: not a pytest expression: {exc.msg} (column {exc.offset}); "
                          "allowed: names joined by and/or/not, parentheses, e.g. 'kill and not network'") from None


def summary_rows(outcome) -> list[tuple[str, str, str, str]]:
    """(objective, target, achieved, result) per objective, in the report's human units."""
    from reports.run_report import format_value

    rows = []
    for obj in outcome.objectives:
        bound = "≤" if obj.better == "lower" else "≥"
        achieved = "—" if obj.achieved is None else format_value(obj.achieved, obj.unit)
        rows.append((obj.name, f"{bound} {format_value(obj.target, obj.unit)}", achieved,
                     {True: "pass", False: "FAIL", None: "not measured"}[obj.passed]))
    return rows


def _print_outcomes(outcomes: list, to_stdout: bool = True) -> None:
    colors = {"pass": "green", "FAIL": "red", "not measured": "yellow"}
    for o in outcomes:
        # the run id in full on its own line (a table column would truncate it on a narrow terminal)
        verdict = o.verdict.value
        console.print(f"[bold]{o.run_id}[/]: [{'green' if verdict == 'passed' else 'red'}]{verdict}[/]",
                      highlight=False, soft_wrap=True)
        table = Table(show_lines=False, box=None, pad_edge=False, padding=(0, 2))
        for col in ("objective", "target", "achieved", "result"):
            table.add_column(col)
        for name, target, achieved, result in summary_rows(o):
            table.add_row(name, target, achieved, f"[{colors[result]}]{result}")
        console.print(table)
    for o in outcomes:
        if o.report:  # stdout, unless --json owns it
            (out if to_stdout else console).print(f"report: {o.report}", soft_wrap=True)


@app.command()
def drill(
    config: ConfigOpt = None,
    results: Annotated[Path | None, typer.Option(help="results directory (default from config)")] = None,
    backup_id: Annotated[str | None, typer.Option(help="backup set to restore (default drill.backup_id: latest)")] = None,
    archive_timeout: Annotated[str | None, typer.Option(help="RPO lever, e.g. 1s; 0 = off (default drill.archive_timeout)")] = None,
    push_wal: Annotated[bool | None, typer.Option("--push-wal/--no-push-wal", help="push the crashed primary's WAL before restoring")] = None,
    junit: JunitOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run one DR drill: backups under load, disaster, restore into a fresh environment, verify; RTO and RPO."""
    try:
        _drill(config, results, backup_id, archive_timeout, push_wal, junit, as_json)
    except HarnessError as exc:
        _emit_error("drill", exc, as_json, junit)
        raise


def _drill(config, results, backup_id, archive_timeout, push_wal, junit, as_json) -> None:
    from harness import interrupt
    from harness.cleanup import cleanup_all
    from harness.config import parse_config
    from harness.drill import DrillRunner, DrillStatus
    from harness.inputs import check_output_file, check_writable_dir

    if junit is not None:
        check_output_file(junit, "--junit")
    cfg = load_config(config)
    results_dir = check_writable_dir(results or Path(cfg.run.results_dir), "--results" if results else "run.results_dir")
    for line in cleanup_all():  # what a killed earlier run left behind goes first
        live.print(f"chaosdrill cleanup: {line}", highlight=False)
    preflight(cfg)
    overrides = {k: v for k, v in {"backup_id": backup_id, "archive_timeout": archive_timeout,
                                   "push_wal": push_wal}.items() if v is not None}
    if overrides:
        data = cfg.model_dump(exclude_defaults=True)  # python mode: secrets stay SecretStr, not "**********"
        cfg = parse_config(data | {"drill": data.get("drill", {}) | overrides}, "command line")
    with live.status("[bold]starting the drill") as status:
        def progress(message: str) -> None:
            message = redact(message)
            status.update(f"[bold]{message}")
            live.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}", highlight=False)

        try:
            outcome = DrillRunner(cfg, results_dir.resolve(), progress=progress).run()
        except interrupt.Interrupted as exc:  # both environments torn down; recorded as aborted if it had begun
            if exc.outcome is None:
                raise
            _finish("drill", [exc.outcome], [], as_json, junit, code=interrupt.exit_code(exc.signum))
            console.print(f"chaosdrill: drill interrupted by {signal.Signals(exc.signum).name}; both environments "
                          "were torn down (see `chaosdrill cleanup`)", highlight=False)
            raise typer.Exit(interrupt.exit_code(exc.signum)) from None
    failed = outcome.status is DrillStatus.FAILED
    exit_code = _finish("drill", [outcome], [], as_json, junit, code=4 if failed else None)
    if failed:
        console.print(f"[red]chaosdrill: drill failed:[/] {redact(str(outcome.error))}", highlight=False,
                      soft_wrap=True)
    if exit_code:
        raise typer.Exit(exit_code)


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="a run directory (holds result.json)")],
           output: Annotated[Path | None, typer.Option("--out", help="where to write the HTML")] = None) -> None:
    """(Re)render the HTML report of a run directory and print its path."""
    from harness.inputs import check_output_file
    from reports.run_report import render_run_report

    if output is not None:
        check_output_file(output, "--out")
        if output.exists() and output.resolve() in {(run_dir / n).resolve() for n in ("result.json", "timeline.csv")}:
            raise ConfigError(f"--out: {output} is the run's own data; allowed: another file, e.g. report.html")
    out.print(str(render_run_report(run_dir, output)), soft_wrap=True)


@app.command()
def verify(
    config: ConfigOpt = None,
    backup_id: Annotated[str | None, typer.Option(help="verify this set and the chain it needs (default: every set)")] = None,
    repository: Annotated[Path | None, typer.Option(help="a local repository directory (default: [drill.repository])")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the verification as JSON on stdout")] = False,
) -> None:
    """Verify a backup repository; exit 0 only when everything a restore reads is intact, 3 naming each damaged object."""
    from harness.verification import run_verify

    report = run_verify(load_config(config), backup_id=backup_id, repository=repository)
    if as_json:
        out.print_json(redact(json.dumps(report.to_dict())))
    else:
        for problem in report.problems[:50]:
            out.print(f"[red]damaged:[/] {redact(problem)}", highlight=False, soft_wrap=True)
        if len(report.problems) > 50:
            out.print(f"[red]damaged:[/] … and {len(report.problems) - 50} more (--json lists every one)")
        what = f"backup set {backup_id}" if backup_id else "repository"
        counts = (f"{len(report.sets)} set(s), {report.objects_checked} object(s), "
                  f"{report.wal_segments_checked} WAL segment(s) checked in {report.duration_s:.1f} s")
        verdict = "[green]intact[/]" if report.ok else f"[red]DAMAGED[/] ({len(report.problems)} problem(s))"
        out.print(f"{what}: {verdict}: {counts}", highlight=False, soft_wrap=True)
    if not report.ok:
        raise typer.Exit(3)


@app.command()
def history(
    results: Annotated[Path | None, typer.Option(help="results directory (default from config)")] = None,
    scenario: Annotated[str | None, typer.Option(help="only this scenario, e.g. dr_restore")] = None,
    since: Annotated[str | None, typer.Option(help="runs started on or after this date (YYYY-MM-DD or ISO time, UTC)")] = None,
    until: Annotated[str | None, typer.Option(help="runs started before the end of this date (or before this time)")] = None,
    verdict: Annotated[str | None, typer.Option(help="passed, failed, inconclusive, aborted or 'not measured'")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the runs as JSON on stdout")] = False,
    config: ConfigOpt = None,
) -> None:
    """List the runs of a results directory (every result.json); damaged files are listed as skipped."""
    from harness.evidence.period import parse_day, until_bound
    from harness.history import OUTCOMES, history_json, load_history
    from reports.run_report import format_value

    allowed = ("passed", "failed", "inconclusive", "aborted", "regressed", "not measured")
    if verdict is not None and verdict not in allowed:
        raise ConfigError(f"--verdict: {verdict!r} is not a verdict; allowed: {', '.join(allowed)}")
    start = parse_day(since, "--since") if since else None
    end = until_bound(until, "--until") if until else None
    root = results or Path(load_config(config).run.results_dir)
    hist = load_history(root)
    runs = hist.select(scenario=scenario, since=start, until=end, verdict=verdict)
    if as_json:
        out.print_json(redact(json.dumps(history_json(hist, runs))))
        return
    table = Table(box=None, pad_edge=False, padding=(0, 2))
    for col in ("run id", "scenario", "started (UTC)", "verdict", "TTD", "MTTR", "RTO", "RPO"):
        table.add_column(col, no_wrap=True)
    colors = dict(zip(OUTCOMES, ("green", "red", "red", "yellow", "yellow"), strict=True))
    for r in runs:
        h = r.headline
        table.add_row(r.run_id, r.scenario, r.started_at[:19].replace("T", " "),
                      f"[{colors[r.outcome]}]{r.outcome}[/]",
                      *["" if h.get(k) is None else format_value(h[k], "s") for k in ("time_to_detect", "mttr", "rto", "rpo")])
    (out if out.is_terminal else Console(width=240)).print(table)  # a pipe or a file gets whole lines
    out.print(f"{len(runs)} run(s) of {len(hist.runs)} in {hist.root}", highlight=False, soft_wrap=True)
    for s in hist.skipped:
        out.print(f"[yellow]skipped:[/] {s.path}/result.json: {redact(s.reason)}", highlight=False, soft_wrap=True)
    for s in hist.series if scenario is None else [s for s in hist.series if s.get("scenario") == scenario]:
        reg = (s.get("regression") or {}).get("status")
        out.print(f"series {s.get('series_id')}: {s.get('scenario')} {s.get('case') or ''} × {s.get('repeats')} "
                  f"(rule {s.get('rule')}): {s.get('verdict')}" + (f", regression: {reg}" if reg else ""),
                  highlight=False, soft_wrap=True)


baseline_app = typer.Typer(no_args_is_help=True, help="Freeze earlier runs into a baseline file for --baseline.")
app.add_typer(baseline_app, name="baseline")


@baseline_app.command("save")
def baseline_save(
    scenario: Annotated[str, typer.Option(help="the scenario whose runs make the baseline, e.g. db_outage")],
    out_file: Annotated[Path, typer.Option("--out", help="the baseline file to write (JSON)")],
    case: Annotated[str | None, typer.Option(help="the case, e.g. 'test_db_outage[kill]' (needed when there are several)")] = None,
    last: Annotated[int, typer.Option(help="how many of the newest completed runs")] = 10,
    results: Annotated[Path | None, typer.Option(help="results directory (default from config)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Save the last N completed runs of a scenario as a baseline file; later: run --baseline FILE."""
    from harness.baseline import save_baseline
    from harness.history import load_history

    root = results or Path(load_config(config).run.results_dir)
    path, n = save_baseline(load_history(root), scenario, case, last, out_file)
    live.print(f"baseline: {n} run(s) of {scenario}" + (f" {case}" if case else ""), highlight=False)
    out.print(str(path), highlight=False, soft_wrap=True)


evidence_app = typer.Typer(no_args_is_help=False, invoke_without_command=True,
                            help="Build, sign and verify a DR evidence pack for auditors (docs/evidence.md).")
app.add_typer(evidence_app, name="evidence")


@evidence_app.callback()
def evidence(
    ctx: typer.Context,
    period: Annotated[str | None, typer.Option(help="a quarter 2026-Q4, a month 2026-11 or a year (default: this quarter)")] = None,
    since: Annotated[str | None, typer.Option(help="start date YYYY-MM-DD (with --until), in the policy's time zone")] = None,
    until: Annotated[str | None, typer.Option(help="last date YYYY-MM-DD, included (with --since)")] = None,
    policy: Annotated[Path | None, typer.Option(help="evidence policy TOML (default: the shipped one)")] = None,
    results: Annotated[Path | None, typer.Option(help="results directory (default from config)")] = None,
    output: Annotated[Path | None, typer.Option("--out", help="pack directory to create (default chaosdrill-evidence/<period>-<time>)")] = None,
    remediation: Annotated[Path | None, typer.Option(help="remediation file (default ./remediation.toml when present)")] = None,
    upload: Annotated[str | None, typer.Option(help="archive the pack to s3://bucket/prefix with Object Lock retention")] = None,
    pdf: Annotated[bool, typer.Option("--pdf/--no-pdf", help="print evidence.pdf with headless Chromium when installed")] = True,
    config: ConfigOpt = None,
) -> None:
    """Build an evidence pack for a period: evidence.html/.pdf/.json, the runs, manifest.sha256.

    Exit 0 when the pack was built (the control verdicts are in it), 2 bad input, 4 tool error."""
    if ctx.invoked_subcommand is not None:
        return
    from datetime import UTC, datetime

    from harness.evidence.pack import build_pack
    from harness.evidence.period import resolve
    from harness.evidence.policy import default_policy_text, load_policy
    from harness.evidence.remediation import load_remediation
    from harness.evidence.upload import parse_s3_url
    from harness.inputs import read_text_file

    cfg = load_config(config)
    pol, source = load_policy(policy)
    text = read_text_file(policy, "policy file", 1 << 20) if policy else default_policy_text()
    per = resolve(period, since, until, pol.tz)
    if upload:
        parse_s3_url(upload)
    if remediation is None and Path("remediation.toml").is_file():
        remediation = Path("remediation.toml")
    items = load_remediation(remediation)
    root = results or Path(cfg.run.results_dir)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = output or Path("chaosdrill-evidence") / f"{per.label.replace(' ', '').replace('–', '_')}-{stamp}"
    with live.status("[bold]building the evidence pack") as status:
        def progress(message: str) -> None:
            status.update(f"[bold]{message}")

        result = build_pack(root, target, pol, source, text, per, targets=cfg.targets, items=items,
                            remediation_source=str(remediation) if remediation else None, pdf=pdf, progress=progress)
    ev = result.evidence
    summary = ev["summary"]
    console.print(f"[bold]{per.label}[/]: {summary['runs']} run(s), {summary['controls_met']}/{summary['controls']} "
                  f"control(s) met, resilience score {summary['score']}", highlight=False, soft_wrap=True)
    for c in ev["controls"]:
        if c["status"] != "met":
            console.print(f"  [red]{c['status']}[/]: {c['id']}", highlight=False, soft_wrap=True)
    for s in ev["skipped"]:
        console.print(f"[yellow]skipped:[/] {s['path']}/result.json: {redact(s['reason'])}", highlight=False, soft_wrap=True)
    if result.pdf is None:
        console.print(result.pdf_note, highlight=False, soft_wrap=True)
    if upload:
        from harness.evidence.upload import upload_pack

        rep = upload_pack(result.path, upload, pol.archive)
        console.print(f"uploaded {len(rep.objects)} object(s) to {rep.url} ({rep.mode} retention until "
                      f"{rep.retain_until:%Y-%m-%d}, checked on every object)", highlight=False, soft_wrap=True)
    out.print(f"evidence pack: {result.path}", soft_wrap=True, highlight=False)


@evidence_app.command("sign")
def evidence_sign(
    pack: Annotated[Path, typer.Argument(help="an evidence pack directory")],
    by: Annotated[str, typer.Option("--by", help="who approves")],
    role: Annotated[str | None, typer.Option(help="their role")] = None,
    note: Annotated[str | None, typer.Option(help="a note recorded with the approval")] = None,
) -> None:
    """Record an approval (who, when, SHA-256 of the manifest) in PACK/signoff.json; exit 3 if the pack was altered."""
    from harness.evidence.sign import sign

    approval = sign(pack, by, role, note)
    out.print(f"signed by {approval['by']} at {approval['at']}: manifest sha256 {approval['manifest_sha256']}",
              highlight=False, soft_wrap=True)


@evidence_app.command("verify")
def evidence_verify(
    pack: Annotated[Path, typer.Argument(help="an evidence pack directory")],
    as_json: Annotated[bool, typer.Option("--json", help="print the verification as JSON")] = False,
) -> None:
    """Re-hash every file of PACK; exit 3 naming each file changed, added or removed, or a sign-off that no longer matches."""
    from harness.evidence.sign import verify as verify_pack

    rep = verify_pack(pack)
    if as_json:
        out.print_json(json.dumps(rep.to_dict()))
    else:
        for kind, names in (("changed", rep.changed), ("added", rep.added), ("removed", rep.removed)):
            for name in names:
                out.print(f"[red]{kind}:[/] {name}", highlight=False, soft_wrap=True)
        if rep.signoff_problem:
            out.print(f"[red]sign-off:[/] {rep.signoff_problem}", highlight=False, soft_wrap=True)
        for s in rep.signoffs:
            state = "[green]matches the manifest[/]" if s["matches"] else "[red]does NOT match the manifest[/]"
            out.print(f"sign-off by {s['by']}{' (' + s['role'] + ')' if s.get('role') else ''} at {s['at']}: {state}",
                      highlight=False, soft_wrap=True)
        verdict = "[green]intact[/]" if rep.intact else "[red]ALTERED[/]"
        out.print(f"{pack}: {verdict}: {rep.files} file(s) in the manifest, {len(rep.signoffs)} sign-off(s)",
                  highlight=False, soft_wrap=True)
    if not rep.ok:
        raise typer.Exit(3)


@app.command("restore-test")
def restore_test(
    config: ConfigOpt = None,
    results: Annotated[Path | None, typer.Option(help="results directory (default from config)")] = None,
    backup: Annotated[str | None, typer.Option(help="pgBackRest backup label (default restore_test.backup: latest)")] = None,
    target_time: Annotated[str | None, typer.Option(help="point in time to recover to (ISO, UTC when no zone)")] = None,
    keep: Annotated[bool, typer.Option("--keep", help="leave the restored environment running (env list/down know it)")] = False,
    junit: JunitOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Restore YOUR latest backup (the restore_test section) into a fresh environment, check it, measure RTO and RPO."""
    try:
        _restore_test(config, results, backup, target_time, keep, junit, as_json)
    except HarnessError as exc:
        _emit_error("restore-test", exc, as_json, junit)
        raise


def _restore_test(config, results, backup, target_time, keep, junit, as_json) -> None:
    from datetime import datetime

    from harness import interrupt
    from harness.cleanup import cleanup_all
    from harness.drill.restore_test import RestoreTestRunner
    from harness.inputs import check_output_file, check_writable_dir

    if junit is not None:
        check_output_file(junit, "--junit")
    cfg = load_config(config)
    when = None
    if target_time is not None:
        try:
            when = datetime.fromisoformat(target_time)
        except ValueError:
            raise ConfigError(f"--target-time: {target_time!r} is not an ISO time, e.g. 2026-01-31T12:00:00+00:00") from None
    if backup is not None and cfg.restore_test.pg_dump is not None:
        raise ConfigError("--backup: only for a pgbackrest source (a dump is one backup)")
    results_dir = check_writable_dir(results or Path(cfg.run.results_dir), "--results" if results else "run.results_dir")
    for line in cleanup_all():
        live.print(f"chaosdrill cleanup: {line}", highlight=False)
    with live.status("[bold]starting the restore test") as status:
        def progress(message: str) -> None:
            message = redact(message)
            status.update(f"[bold]{message}")
            live.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}", highlight=False)

        try:
            outcome = RestoreTestRunner(cfg, results_dir.resolve(), progress=progress, keep=keep or None,
                                        backup=backup, target_time=when).run()
        except interrupt.Interrupted as exc:  # the fresh environment torn down; recorded as aborted
            if exc.outcome is None:
                raise
            _finish("restore-test", [exc.outcome], [], as_json, junit, code=interrupt.exit_code(exc.signum))
            console.print(f"chaosdrill: restore test interrupted by {signal.Signals(exc.signum).name}; the restored "
                          "environment was torn down", highlight=False)
            raise typer.Exit(interrupt.exit_code(exc.signum)) from None
    exit_code = _finish("restore-test", [outcome], [], as_json, junit, code=None if outcome.verdict.value == "passed" else 3)
    for c in outcome.checks:
        mark = "[green]pass[/]" if c["passed"] else "[red]FAIL[/]"
        console.print(f"  {mark} {redact(c['name'])}: {redact(c['detail'])}", highlight=False, soft_wrap=True)
        for obj in ([] if c["passed"] else c["objects"][:10]):
            console.print(f"       {redact(obj)}", highlight=False, soft_wrap=True)
    if outcome.error:
        console.print(f"[red]chaosdrill: restore test failed:[/] {redact(outcome.error)}", highlight=False, soft_wrap=True)
    if outcome.kept:
        (console if as_json else out).print(f"restored environment {outcome.env_id} kept running; stop it with: "
                                            f"chaosdrill env down {outcome.env_id}", soft_wrap=True)
    if exit_code:
        raise typer.Exit(exit_code)


@app.command()
def cleanup(all_envs: Annotated[bool, typer.Option("--all", help="also stop environments started by `env up`")] = False) -> None:
    """Undo faults and stop environments that a killed run left behind."""
    from harness.cleanup import cleanup_all

    lines = cleanup_all(include_live_envs=all_envs)
    for line in lines:
        out.print(line, soft_wrap=True)
    if not lines:
        out.print("nothing to clean up")
    if any(line.startswith("FAILED") for line in lines):
        raise typer.Exit(5)


@env_app.command("up")
def env_up(config: ConfigOpt = None,
           output: Annotated[OutputFormat, typer.Option(help="text or json")] = OutputFormat.text) -> None:
    """Start a local environment that keeps running after this command; `env down` stops it."""
    from harness.env.local import LocalEnvironment

    cfg = load_config(config)
    preflight(cfg)
    env = LocalEnvironment(cfg.environment.local, incidents=cfg.incidents)
    env.detached = True
    env.up()
    state = env.state() | {"endpoints": {k: v.address for k, v in env.endpoints.items()}}
    if output == "json":
        out.print_json(json.dumps(state))
    else:
        out.print(f"environment {env.id} is up in {env.base}")
        for name, ep in env.endpoints.items():
            out.print(f"  {name:9} {ep.address}")
        out.print(f"  app url   {env.app_url}\nstop it with: chaosdrill env down {env.id}")


@env_app.command("down")
def env_down(env_id: Annotated[str | None, typer.Argument(help="environment id (default: all)")] = None) -> None:
    """Stop environment ENV_ID (or every recorded one) and remove its files."""
    from harness.env.local import load_state, teardown_recorded

    records = load_state(env_id)
    if env_id and not records:
        raise ConfigError(f"no environment {env_id!r}; see `chaosdrill env list`")
    for record in records:
        out.print(teardown_recorded(record), soft_wrap=True)
    if not records:
        out.print("no environment is running")


@env_app.command("list")
def env_list() -> None:
    """List recorded environments."""
    from harness.env.local import load_state

    for r in load_state():
        app_ = r.get("app") or {}
        out.print(f"{r['id']}  postgres 127.0.0.1:{r['postgres']['port']}  redis 127.0.0.1:{r['redis']['port']}"
                  f"  app {app_.get('url', '-')}  {'detached' if r.get('detached') else 'run'}")


@app.command()
def doctor(output: Annotated[OutputFormat, typer.Option(help="text or json")] = OutputFormat.text) -> None:
    """What is installed (with versions), what is missing, and how to get it."""
    from harness.doctor import checks

    results = checks()
    if output == "json":
        out.print_json(json.dumps([c.__dict__ for c in results]))
    else:
        table = Table(title="chaosdrill doctor")
        for col in ("component", "status", "version / detail", "how to get it"):
            table.add_column(col)
        for c in results:
            table.add_row(c.name, "[green]ok" if c.ok else ("[red]missing" if c.required else "[yellow]optional"),
                          c.detail, "" if c.ok else c.fix)
        out.print(table)
    if any(c.required and not c.ok for c in results):
        raise typer.Exit(4)


@app.command()
def toxiproxy(host: Annotated[str, typer.Option(help="address to listen on (loopback)")] = "127.0.0.1",
              port: Annotated[int, typer.Option(help="API port", min=0, max=65535)] = 8474,
              config: Annotated[Path | None, typer.Option("--config", help="JSON file of proxies to create at start")] = None,
              metrics: Annotated[bool, typer.Option(help="serve Prometheus /metrics")] = False) -> None:
    """Run the embedded Toxiproxy-compatible server until interrupted."""
    from harness.toxiproxy.server import serve

    serve(host, port, str(config) if config else None, metrics)


def main() -> None:
    """Entry point: harness errors become one line on stderr and their exit code; no traceback."""
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as exc:  # a bad option or argument: one line, exit 2 (no usage box)
        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx is not None else "chaosdrill"
        console.print(f"[red]chaosdrill: error:[/] {escape(exc.format_message())} (see `{where} --help`)",
                      highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        console.print("chaosdrill: interrupted; faults were undone on the way out (see `chaosdrill cleanup`)")
        sys.exit(130)
    except HarnessError as exc:
        console.print(f"[red]chaosdrill: error:[/] {escape(redact(str(exc)))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGINT/SIGTERM caught as `Interrupted` (128 + the signal)
        console.print("chaosdrill: interrupted; faults were undone on the way out (see `chaosdrill cleanup`)")
        sys.exit(128 + getattr(exc, "signum", signal.SIGINT))
    except Exception as exc:  # a bug of ours: still one line (CHAOSDRILL_TRACEBACK=1 shows the traceback)
        if os.environ.get("CHAOSDRILL_TRACEBACK"):
            raise
        text = str(exc).strip().splitlines()
        console.print(f"[red]chaosdrill: internal error:[/] {type(exc).__name__}"
                      f"{': ' + escape(redact(text[0][:300])) if text else ''} (CHAOSDRILL_TRACEBACK=1 shows where)",
                      highlight=False, soft_wrap=True)
        sys.exit(4)
    sys.exit(code if isinstance(code, int) else 0)
