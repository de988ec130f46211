"""BreakerConfig: a frozen, validated value with resilience4j's setting names."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

__all__ = ["MAX_TIME_WINDOW", "BreakerConfig", "to_seconds"]

MAX_TIME_WINDOW = 3600  # one-second buckets: a time window keeps (and the shared one sums) one per second


def to_seconds(value: float | timedelta) -> float:
    """Durations are accepted as seconds or ``timedelta`` (tenacity's ``to_seconds`` rule)."""
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


@dataclass(frozen=True, kw_only=True, slots=True)
class BreakerConfig:
    """How a breaker decides. Keyword-only; unknown names raise ``TypeError``.

    Trip conditions (any one opens the breaker while CLOSED):

    * ``failure_threshold`` consecutive recorded failures (None: off), default 5;
    * ``failure_rate_threshold`` percent of failures in the sliding window, once it holds
      at least ``minimum_calls`` calls (None: off);
    * ``slow_call_rate_threshold`` percent of calls slower than ``slow_call_duration_threshold``.

    ``sliding_window_type`` "count" keeps the last ``sliding_window_size`` calls; "time" keeps
    the calls of the last ``sliding_window_size`` seconds. OPEN lasts ``wait_in_open`` seconds,
    or ``wait_in_open_backoff(n)`` for the n-th opening in a row. HALF_OPEN admits exactly
    ``half_open_permitted_calls`` trial calls: with a rate threshold it decides on their rates,
    otherwise one failure reopens and all-successful trials close.

    Exceptions: instances of ``ignore_exceptions`` (or matching ``ignore_exception``) count as
    neither success nor failure; otherwise ``record_exception(exc)`` if given, else
    ``isinstance(exc, record_exceptions)``, says failure; anything else counts as a success.
    A dataclass rather than pydantic because it holds callables and exception types, and its
    one-line errors name the field and the allowed range.
    """

    failure_threshold: int | None = 5
    failure_rate_threshold: float | None = None
    slow_call_rate_threshold: float | None = None
    slow_call_duration_threshold: float | timedelta | None = None
    sliding_window_type: Literal["count", "time"] = "count"
    sliding_window_size: int = 100
    minimum_calls: int = 10
    wait_in_open: float | timedelta = 60.0
    wait_in_open_backoff: Callable[[int], float] | None = None
    half_open_permitted_calls: int = 1
    record_exceptions: tuple[type[BaseException], ...] = (Exception,)
    ignore_exceptions: tuple[type[BaseException], ...] = ()
    record_exception: Callable[[BaseException], bool] | None = None
    ignore_exception: Callable[[BaseException], bool] | None = None

    def __post_init__(self) -> None:
        def bad(field: str, allowed: str, got: object) -> ValueError:
            return ValueError(f"BreakerConfig.{field} must be {allowed}, got {got!r}")

        def positive_int(field: str, value: object, allow_none: bool = False) -> None:
            if value is None and allow_none:
                return
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(field, "an integer >= 1" + (" or None" if allow_none else ""), value)

        def percent(field: str, value: object) -> None:
            if value is None:
                return
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 100:
                raise bad(field, "a percentage in (0, 100] or None", value)

        def duration(field: str, value: object, allow_none: bool = False) -> None:
            if value is None and allow_none:
                return
            allowed = "seconds > 0 (finite) or a timedelta"
            if isinstance(value, bool) or not isinstance(value, int | float | timedelta):
                raise bad(field, allowed, value)
            seconds = to_seconds(value)
            if not math.isfinite(seconds) or seconds <= 0:  # inf/NaN would never end OPEN or overflow ns
                raise bad(field, allowed, value)

        positive_int("failure_threshold", self.failure_threshold, allow_none=True)
        percent("failure_rate_threshold", self.failure_rate_threshold)
        percent("slow_call_rate_threshold", self.slow_call_rate_threshold)
        duration("slow_call_duration_threshold", self.slow_call_duration_threshold, allow_none=True)
        if self.sliding_window_type not in ("count", "time"):
            raise bad("sliding_window_type", "one of: count, time", self.sliding_window_type)
        positive_int("sliding_window_size", self.sliding_window_size)
        if self.sliding_window_type == "time" and self.sliding_window_size > MAX_TIME_WINDOW:
            raise bad("sliding_window_size", f"an integer in [1, {MAX_TIME_WINDOW}] (seconds) for a time window",
                      self.sliding_window_size)
        positive_int("minimum_calls", self.minimum_calls)
        if self.sliding_window_type == "count" and self.sliding_window_size < self.minimum_calls:
            raise bad("sliding_window_size", f"an integer >= minimum_calls ({self.minimum_calls})",
                      self.sliding_window_size)
        duration("wait_in_open", self.wait_in_open)
        if self.wait_in_open_backoff is not None and not callable(self.wait_in_open_backoff):
            raise bad("wait_in_open_backoff", "a callable attempt -> seconds, or None", self.wait_in_open_backoff)
        positive_int("half_open_permitted_calls", self.half_open_permitted_calls)
        if self.slow_call_rate_threshold is not None and self.slow_call_duration_threshold is None:
            raise bad("slow_call_duration_threshold", "set (seconds > 0) when slow_call_rate_threshold is set",
                      None)
        for field in ("record_exceptions", "ignore_exceptions"):
            value = getattr(self, field)
            if not isinstance(value, tuple) or not all(
                isinstance(t, type) and issubclass(t, BaseException) for t in value
            ):
                raise bad(field, "a tuple of exception classes", value)
        for field in ("record_exception", "ignore_exception"):
            value = getattr(self, field)
            if value is not None and not callable(value):
                raise bad(field, "a callable exc -> bool, or None", value)
        if (self.failure_threshold is None and self.failure_rate_threshold is None
                and self.slow_call_rate_threshold is None):
            raise ValueError("BreakerConfig: set at least one of failure_threshold, failure_rate_threshold, "
                             "slow_call_rate_threshold")

    @property
    def uses_rates(self) -> bool:
        return self.failure_rate_threshold is not None or self.slow_call_rate_threshold is not None
