"""The recovery pipeline and its two users (ARCHITECTURE.md, "One recovery pipeline").

    pipeline.py      stages on one timeline, the journal, named checks, the fresh environment, the writer
    drill.py         the DR drill: backups under load, disaster (+ canary), restore, verify vs snapshot;
                     the replica failover drill
    sources.py       what a restore test restores: YOUR pgBackRest repository, pg_dump archive, RDB, file trees
    restore_test.py  `chaosdrill restore-test`: restore YOUR latest backup into a fresh environment and check it

`from harness.drill import DrillRunner, …` keeps working: the drill's names are re-exported here.
"""

from harness.drill.drill import (
    APP_CACHE_KEYS,
    ORDERS_HASHES,
    UPLOADS_PART,
    CreateReplica,
    Disaster,
    DrillHooks,
    DrillOutcome,
    DrillPlan,
    DrillRefused,
    DrillRunner,
    DrillStatus,
    FailoverRunner,
    Hold,
    KillPrimary,
    Preflight,
    Promote,
    Restore,
    Serve,
    Snapshot,
    Start,
    Step,
    TakeBackup,
    Verify,
    Warmup,
    backup_set_summary,
    make_repository,
    plan_from_config,
    smoke,
)
from harness.drill.pipeline import Check, StepRecord

__all__ = [
    "APP_CACHE_KEYS", "ORDERS_HASHES", "UPLOADS_PART", "Check", "CreateReplica", "Disaster", "DrillHooks",
    "DrillOutcome", "DrillPlan", "DrillRefused", "DrillRunner", "DrillStatus", "FailoverRunner", "Hold",
    "KillPrimary", "Preflight", "Promote", "Restore", "Serve", "Snapshot", "Start", "Step", "StepRecord",
    "TakeBackup", "Verify", "Warmup", "backup_set_summary", "make_repository", "plan_from_config", "smoke",
]
