"""chaosdrill's extension hooks, added to pytest with `pytest_addhooks` (like pytest-benchmark's).

Implement them in a conftest.py or a plugin to stream progress or collect outcomes — the CLI
does both to draw its rich progress and summary.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("pytest")


@hookspec
def pytest_chaosdrill_progress(message: str) -> None:
    """A step of a running experiment (baseline, inject, waiting for recovery, ...)."""


@hookspec
def pytest_chaosdrill_run_finished(outcome) -> None:
    """An experiment finished; `outcome` is a harness.experiment.RunOutcome."""


@hookspec
def pytest_chaosdrill_error(message: str, exit_code: int) -> None:
    """The session stops on bad input or a missing tool (one line, the error's exit code)."""
