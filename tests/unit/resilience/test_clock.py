from __future__ import annotations

import time

import pytest

from resilience.clock import Clock, FakeClock, SystemClock


def test_fake_clock_moves_only_when_told():
    clock = FakeClock(start_ns=10)
    assert clock.monotonic_ns() == 10
    clock.advance(1.5)
    clock.sleep(0.25)
    assert clock.monotonic_ns() == 10 + 1_750_000_000
    assert clock.sleeps == [0.25]
    with pytest.raises(ValueError, match="seconds must be >= 0"):
        clock.advance(-1)


def test_system_clock_is_the_builtin():
    assert SystemClock().monotonic_ns is time.monotonic_ns
    assert isinstance(SystemClock(), Clock) and isinstance(FakeClock(), Clock)
