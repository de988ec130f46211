"""chaosdrill's resilience library: breakers, recovery, health checks, incidents, backups.

Embedded by applications; it never imports ``harness``. Everything public is re-exported
here and listed in ``__all__`` (a test keeps the two in step).
"""

from resilience.breaker import (
    BreakerConfig,
    BreakerEvent,
    BreakerListener,
    BreakerMetrics,
    BreakerState,
    CallFailed,
    CallRejected,
    CallSucceeded,
    CircuitBreaker,
    IllegalTransition,
    SlowCall,
    StateChanged,
)
from resilience.clock import Clock, FakeClock, SystemClock
from resilience.errors import (
    BackupError,
    CircuitOpenError,
    HealthCheckFailed,
    RecoveryExhausted,
    ResilienceError,
)
from resilience.health import (
    HealthCheck,
    HealthRegistry,
    HealthResult,
    HealthRunner,
    HealthStatus,
    HttpCheck,
    PostgresCheck,
    RedisCheck,
    run_check,
)
from resilience.incidents import (
    Alert,
    Incident,
    IncidentManager,
    IncidentSink,
    IncidentStatus,
    JsonlSink,
    LogSink,
    Severity,
    WebhookSink,
)
from resilience.pool import AsyncpgPool
from resilience.recovery import (
    AutoRecovery,
    RecoveryOutcome,
    RecoveryStats,
    RecoveryStrategy,
    database_connection,
    external_service,
    memory_exhaustion,
)

__all__ = [
    "Alert",
    "AsyncpgPool",
    "AutoRecovery",
    "BackupError",
    "BreakerConfig",
    "BreakerEvent",
    "BreakerListener",
    "BreakerMetrics",
    "BreakerState",
    "CallFailed",
    "CallRejected",
    "CallSucceeded",
    "CircuitBreaker",
    "CircuitOpenError",
    "Clock",
    "FakeClock",
    "HealthCheck",
    "HealthCheckFailed",
    "HealthRegistry",
    "HealthResult",
    "HealthRunner",
    "HealthStatus",
    "HttpCheck",
    "IllegalTransition",
    "Incident",
    "IncidentManager",
    "IncidentSink",
    "IncidentStatus",
    "JsonlSink",
    "LogSink",
    "PostgresCheck",
    "RecoveryExhausted",
    "RecoveryOutcome",
    "RecoveryStats",
    "RecoveryStrategy",
    "RedisCheck",
    "ResilienceError",
    "Severity",
    "SlowCall",
    "StateChanged",
    "SystemClock",
    "WebhookSink",
    "database_connection",
    "external_service",
    "memory_exhaustion",
    "run_check",
]
