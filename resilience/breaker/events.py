"""Frozen breaker events and the listener interface.

A listener subclasses :class:`BreakerListener` and overrides only the hooks it needs. The
breaker looks at which hooks are overridden, so a listener that only wants state changes
costs nothing on the success path. A listener that raises is logged and ignored: metrics
code must never break the call it observes.
"""

from __future__ import annotations

from dataclasses import dataclass

from resilience.breaker.state import BreakerState

__all__ = [
    "BreakerEvent",
    "BreakerListener",
    "CallFailed",
    "CallRejected",
    "CallSucceeded",
    "SlowCall",
    "StateChanged",
]


@dataclass(frozen=True, slots=True)
class BreakerEvent:
    """Common fields: which breaker, and when (clock ns)."""

    breaker: str
    t_ns: int


@dataclass(frozen=True, slots=True)
class StateChanged(BreakerEvent):
    old: BreakerState
    new: BreakerState
    reason: str


@dataclass(frozen=True, slots=True)
class CallRejected(BreakerEvent):
    state: BreakerState
    retry_after: float


@dataclass(frozen=True, slots=True)
class CallSucceeded(BreakerEvent):
    duration_ns: int


@dataclass(frozen=True, slots=True)
class CallFailed(BreakerEvent):
    duration_ns: int
    error: BaseException


@dataclass(frozen=True, slots=True)
class SlowCall(BreakerEvent):
    duration_ns: int
    succeeded: bool


class BreakerListener:
    """Do-nothing hooks (pybreaker's CircuitBreakerListener pattern); override what you need."""

    def on_state_change(self, event: StateChanged) -> None:
        """The breaker moved between states."""

    def on_rejected(self, event: CallRejected) -> None:
        """A call was refused without running (fail fast)."""

    def on_success(self, event: CallSucceeded) -> None:
        """A call finished and counted as a success."""

    def on_failure(self, event: CallFailed) -> None:
        """A call raised an exception recorded as a failure."""

    def on_slow_call(self, event: SlowCall) -> None:
        """A call took at least ``slow_call_duration_threshold``."""


HOOKS = ("on_state_change", "on_rejected", "on_success", "on_failure", "on_slow_call")


def overridden_hooks(listener: BreakerListener) -> frozenset[str]:
    """Names of the hooks `listener` actually implements (not the inherited no-ops)."""
    found = set()
    for hook in HOOKS:
        impl = getattr(type(listener), hook, None)
        if impl is None:
            if callable(getattr(listener, hook, None)):
                found.add(hook)
        elif impl is not getattr(BreakerListener, hook):
            found.add(hook)
    return frozenset(found)
