"""Breaker states (resilience4j names) and the only transitions allowed between them.

::

             failures / rates over threshold
    CLOSED ─────────────────────────────────► OPEN
      ▲                                        │ wait_in_open elapsed, next call
      │ trial calls healthy                    ▼
      └─────────────────────────────────── HALF_OPEN ──► OPEN (trial calls unhealthy)

    DISABLED (always admit, record nothing) and FORCED_OPEN (always reject) are set by an
    operator and left only by an operator (reset → CLOSED).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ALLOWED_TRANSITIONS", "BreakerState", "is_allowed"]


class BreakerState(StrEnum):
    """State of a circuit breaker; ``code`` is a stable number for Prometheus gauges."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    DISABLED = "disabled"
    FORCED_OPEN = "forced_open"

    @property
    def code(self) -> int:
        """resilience4j's numbering: closed 0, open 1, half_open 2, disabled 3, forced_open 4."""
        return _CODES[self]

    def __str__(self) -> str:
        return self.value


_CODES = {
    BreakerState.CLOSED: 0,
    BreakerState.OPEN: 1,
    BreakerState.HALF_OPEN: 2,
    BreakerState.DISABLED: 3,
    BreakerState.FORCED_OPEN: 4,
}

_S = BreakerState
ALLOWED_TRANSITIONS: dict[BreakerState, frozenset[BreakerState]] = {
    _S.CLOSED: frozenset({_S.OPEN, _S.DISABLED, _S.FORCED_OPEN}),
    _S.OPEN: frozenset({_S.HALF_OPEN, _S.CLOSED, _S.DISABLED, _S.FORCED_OPEN}),
    _S.HALF_OPEN: frozenset({_S.OPEN, _S.CLOSED, _S.DISABLED, _S.FORCED_OPEN}),
    _S.DISABLED: frozenset({_S.CLOSED, _S.FORCED_OPEN}),
    _S.FORCED_OPEN: frozenset({_S.CLOSED, _S.DISABLED}),
}


def is_allowed(old: BreakerState, new: BreakerState) -> bool:
    """True when the breaker may move from `old` to `new` (see the module diagram)."""
    return new in ALLOWED_TRANSITIONS[old]
