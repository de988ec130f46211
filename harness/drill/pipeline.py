"""The one recovery pipeline the DR drill and the restore test share.

    select the set ─► verify it ─► restore into a FRESH environment ─► start ─► check ─► serve ─► measure

Both put each stage on the run's timeline as `<prefix>.<stage>.start` / `.end` (prefix "drill" or
"restore_test") through `Stages`, keep a journal of `StepRecord`s, restore only into a new
`LocalEnvironment` from `fresh_environment` (new ports, new dirs, recorded so `chaosdrill env
list/down` and `cleanup` know it), reach the restored PostgreSQL through `connect`, retry their
serve stage's smoke test with `retry_until` (on `wait_until`), make their scratch dir with
`scratch_dir`, record a signal's stop with `Interrupted.abort()`, and end in one `RunRecord` written by
`write_and_render` (`harness.results.write_run` plus the HTML report). What differs is the source
(the drill's own backups and disaster vs YOUR backups: `disaster.py`, `sources.py`), the steps
around the pipeline (the drill's plan: `plan.py`; the failover's: `failover.py`) and the checks
(rows against a snapshot and a canary vs integrity checks of an unknown database: `drill.py`,
`restore_test.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.config import IncidentsConfig, LocalEnvConfig
from harness.env.local import LocalEnvironment
from harness.env.procs import wait_until  # noqa: F401 - the pipeline's polling, re-exported
from harness.env.servers import connect  # noqa: F401 - connect re-exported
from harness.results import RunRecord, write_run
from harness.timeline import Timeline

Progress = Callable[[str], None]


def one_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


@dataclass(frozen=True)
class StepRecord:
    """One journal entry: what ran, when (monotonic ns), and how it ended."""

    step: str
    status: str  # completed | failed | skipped | interrupted (SIGINT/SIGTERM)
    started_ns: int
    ended_ns: int
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"duration_s": (self.ended_ns - self.started_ns) / 1e9}


@dataclass
class Check:
    """One named check with its verdict, a human detail and the objects it names (table, file, segment)."""

    name: str
    passed: bool
    detail: str = ""
    objects: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail, "objects": self.objects[:50],
                **({"data": self.data} if self.data else {})}


class Stages:
    """Times the pipeline's stages on one timeline and journals each.

    `journaled=False`: events only; the DR drill journals every step of its plan itself (warmup,
    backups, disaster … as well as these stages), so its stages are not journaled twice."""

    def __init__(self, tl: Timeline, prefix: str, *, journaled: bool = True) -> None:
        self.tl, self.prefix, self.journaled = tl, prefix, journaled
        self.journal: list[StepRecord] = []

    @contextmanager
    def stage(self, name: str, **data: Any) -> Iterator[dict[str, Any]]:
        """`with stages.stage("restore") as detail:` — start/end events; a raise journals it as failed."""
        detail: dict[str, Any] = {}
        t0 = self.tl.now_ns()
        self.tl.event(f"{self.prefix}.{name}.start", self.prefix, t_ns=t0, **data)
        try:
            yield detail
        except BaseException as exc:
            t1 = self.tl.now_ns()
            self.tl.event(f"{self.prefix}.{name}.end", self.prefix, t_ns=t1, error=one_line(exc))
            if self.journaled:
                self.journal.append(StepRecord(name, "failed", t0, t1, detail | {"error": one_line(exc)}))
            raise
        t1 = self.tl.now_ns()
        self.tl.event(f"{self.prefix}.{name}.end", self.prefix, t_ns=t1, **detail)
        if self.journaled:
            self.journal.append(StepRecord(name, "completed", t0, t1, detail))

    def skipped(self, name: str, why: str) -> None:
        now = self.tl.now_ns()
        self.journal.append(StepRecord(name, "skipped", now, now, {"why": why}))


def fresh_environment(local: LocalEnvConfig, *, label: str, with_app: bool = False, proxy: bool = False,
                      incidents: IncidentsConfig | None = None, bindir: Path | None = None,
                      keep: bool = False) -> LocalEnvironment:
    """A new, empty, recorded environment on free loopback ports and its own temp dir (not started).
    `with_app`/`proxy`/`incidents`: the reference app, the Toxiproxy in front of its services and
    where its alerts go (the DR drill's restored stack is reached as its source was);
    `bindir` = the PostgreSQL major the restore needs; `keep` marks it detached, so it outlives the
    run until `chaosdrill env down` (or `cleanup --all`)."""
    cfg = local.model_copy(update={"postgres_port": 0, "redis_port": 0, "app_port": 0, "proxy": proxy})
    env = LocalEnvironment(cfg, with_app=with_app, label=label, incidents=incidents)
    if bindir is not None:
        env.postgres.bindir = Path(bindir)
        env._record()  # the record names the binaries its PostgreSQL runs with
    if keep:
        env.detached = True
        env._record()
    return env


def write_and_render(run_dir: Path, record: RunRecord, tl: Timeline) -> Path | None:
    """result.json + timeline.csv (the one RunRecord writer), then the HTML report."""
    write_run(run_dir, record, tl)
    from reports.run_report import render_run_report

    return render_run_report(run_dir)


def retry_until(attempt: Callable[[], tuple[bool, str]], timeout: float, interval: float, *,
                give_up: Callable[[], bool] | None = None) -> tuple[bool, str]:
    """The serve stage's smoke loop: `attempt()` → (passed, detail) every `interval` s until it passes,
    `give_up()` says there is no point (a smoke command exited), or `timeout` s have passed.
    Returns the last attempt's (passed, detail)."""
    last = (False, "no answer")

    def once() -> bool:
        nonlocal last
        last = attempt()
        return last[0] or (give_up is not None and give_up())

    wait_until(once, timeout, interval)
    return last
