"""The recovery pipeline and its two users (ARCHITECTURE.md, "One recovery pipeline").

    pipeline.py      the shared pipeline: stages on one timeline, the journal, named checks, the fresh
                     environment, connecting to the restored PostgreSQL, retrying a smoke test, the writer
    plan.py          the DR drill's plan: frozen steps (Warmup … Serve), DrillPlan, plan_from_config
    disaster.py      the DR drill's own data (orders, uploads, app config, the orders snapshot, the
                     canary's summary) and its disaster on the source
    drill.py         DrillRunner: runs a plan through the pipeline; the drill's checks; DrillOutcome
    failover.py      FailoverRunner: the replica failover drill (CreateReplica, KillPrimary, Promote)
    sources.py       what a restore test restores: YOUR pgBackRest repository, pg_dump archive, RDB, file trees
    restore_test.py  `chaosdrill restore-test`: restore YOUR latest backup into a fresh environment and check it

`from harness.drill import DrillRunner, …` keeps working: the drill's names are re-exported here.
"""

from harness.drill.disaster import APP_CACHE_KEYS, ORDERS_HASHES, UPLOADS_PART
from harness.drill.drill import (
    DrillHooks,
    DrillOutcome,
    DrillRefused,
    DrillRunner,
    DrillStatus,
    backup_set_summary,
    make_repository,
    smoke,
)
from harness.drill.failover import CreateReplica, FailoverRunner, KillPrimary, Promote
from harness.drill.pipeline import Check, StepRecord
from harness.drill.plan import (
    Disaster,
    DrillPlan,
    Hold,
    Preflight,
    Restore,
    Serve,
    Snapshot,
    Start,
    Step,
    TakeBackup,
    Verify,
    Warmup,
    plan_from_config,
)

__all__ = [
    "APP_CACHE_KEYS", "ORDERS_HASHES", "UPLOADS_PART", "Check", "CreateReplica", "Disaster", "DrillHooks",
    "DrillOutcome", "DrillPlan", "DrillRefused", "DrillRunner", "DrillStatus", "FailoverRunner", "Hold",
    "KillPrimary", "Preflight", "Promote", "Restore", "Serve", "Snapshot", "Start", "Step", "StepRecord",
    "TakeBackup", "Verify", "Warmup", "backup_set_summary", "make_repository", "plan_from_config", "smoke",
]
