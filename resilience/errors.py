"""Errors raised by the resilience library.

Every error derives from one base, so an application can catch "anything this library
decided" without also catching its own bugs::

    ResilienceError
     ├── CircuitOpenError      a breaker refused the call (fail fast); has name, retry_after
     ├── RecoveryExhausted     every attempt of a recovery strategy failed (escalated)
     ├── HealthCheckFailed     a health check was required to pass and did not
     └── BackupError           a backup engine/repository failed (foreign errors mapped here)

Foreign errors (asyncpg, redis, httpx, psycopg) are translated at the boundary with
``raise X(...) from exc`` so callers depend on this tree only.
"""

from __future__ import annotations

__all__ = ["BackupError", "CircuitOpenError", "HealthCheckFailed", "RecoveryExhausted", "ResilienceError"]


class ResilienceError(Exception):
    """Base of every error this library raises on purpose."""


class CircuitOpenError(ResilienceError):
    """A breaker rejected the call without running it.

    Built as ``CircuitOpenError(name, retry_after)``. The attributes are read from
    ``args`` and the message is formatted lazily: a rejection is a hot path (fail fast
    must be cheap), and this keeps construction at the C level and pickling intact.
    """

    @property
    def name(self) -> str:
        """Name of the breaker that rejected the call."""
        return self.args[0]

    @property
    def retry_after(self) -> float:
        """Seconds until the breaker will admit a trial call (0 if it may already)."""
        return self.args[1] if len(self.args) > 1 else 0.0

    def __str__(self) -> str:
        return f"circuit {self.name!r} is open; retry after {self.retry_after:.3f} s"


class _CircuitOpenNs(CircuitOpenError):
    """The breaker's own rejection: carries nanoseconds and divides only when asked.

    Shows and pickles as a plain CircuitOpenError (seconds), so nobody sees this class.
    """

    @property
    def retry_after(self) -> float:
        return self.args[1] / 1e9

    def __reduce__(self):
        return CircuitOpenError, (self.args[0], self.retry_after)


_CircuitOpenNs.__name__ = _CircuitOpenNs.__qualname__ = "CircuitOpenError"


class RecoveryExhausted(ResilienceError):
    """All attempts of a recovery strategy failed; the failure was escalated."""

    def __init__(self, strategy: str, attempts: int, last_error: BaseException | None = None) -> None:
        super().__init__(strategy, attempts, last_error)
        self.strategy = strategy
        self.attempts = attempts
        self.last_error = last_error

    def __str__(self) -> str:
        cause = f": {self.last_error!r}" if self.last_error is not None else ""
        return f"recovery strategy {self.strategy!r} failed after {self.attempts} attempt(s){cause}"


class HealthCheckFailed(ResilienceError):
    """A required health check reported unhealthy (see ``result`` for latency and error)."""

    def __init__(self, name: str, error: str | None = None, result: object | None = None) -> None:
        super().__init__(name, error)
        self.check = name
        self.error = error
        self.result = result

    def __str__(self) -> str:
        return f"health check {self.check!r} failed: {self.error or 'unhealthy'}"


class BackupError(ResilienceError):
    """A backup, restore or verification step failed; engines map foreign errors to this."""
