"""Circuit breaker: states, windows, events, config and the breaker itself."""

from resilience.breaker.breaker import BreakerMetrics, CircuitBreaker, IllegalTransition
from resilience.breaker.config import BreakerConfig
from resilience.breaker.events import (
    BreakerEvent,
    BreakerListener,
    CallFailed,
    CallRejected,
    CallSucceeded,
    SlowCall,
    StateChanged,
)
from resilience.breaker.state import BreakerState

__all__ = [
    "BreakerConfig",
    "BreakerEvent",
    "BreakerListener",
    "BreakerMetrics",
    "BreakerState",
    "CallFailed",
    "CallRejected",
    "CallSucceeded",
    "CircuitBreaker",
    "IllegalTransition",
    "SlowCall",
    "StateChanged",
]
