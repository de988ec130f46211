"""SIGINT and SIGTERM during a run: leave every `with` (the fault reverts), record the run as
aborted, exit 128 + the signal (130, 143).

Python turns SIGINT into KeyboardInterrupt but SIGTERM kills the process where it stands (no
revert); `signals_abort()` makes both raise `Interrupted` in the main thread. A second signal while
the run unwinds is noted, not raised: the revert in progress must finish.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

last_signal: int | None = None  # the signal that interrupted the latest run (the CLI's exit code)


class Interrupted(KeyboardInterrupt):
    """A run interrupted by a signal; `outcome` is the aborted run it recorded, once it has."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum
        self.outcome = None

    def abort(self, **extra: object) -> dict[str, object]:
        """The record's `abort` of a run this signal stopped (a drill adds the step it stopped at)."""
        return {"reason": self.args[0], "guard": None, "kind": "signal",
                "signal": signal.Signals(self.signum).name, **extra}


def exit_code(signum: int) -> int:
    return 128 + signum


@contextlib.contextmanager
def signals_abort() -> Iterator[None]:
    """While inside: SIGINT/SIGTERM raise Interrupted once (main thread only; elsewhere a no-op)."""
    global last_signal
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = False

    def handler(signum, _frame) -> None:
        global last_signal
        nonlocal raised
        if raised:
            return  # unwinding already: let the revert finish
        raised = True
        last_signal = signum
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
