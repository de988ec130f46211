"""A drill's plan: a tuple of frozen steps, run in order by `DrillRunner` (drill.py).

    Warmup ─► TakeBackup(full) ─► Hold ─► TakeBackup(incr) … ─► Hold ─► Preflight ─► Snapshot
      ─► Disaster ─► Restore ─► Start ─► Verify ─► Serve

`plan_from_config` builds the default sequence from a `[drill]` section; tests pass shorter plans.
The replica failover drill's own steps (CreateReplica, KillPrimary, Promote) are in failover.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.config import DrillConfig


@dataclass(frozen=True)
class Warmup:
    seconds: float


@dataclass(frozen=True)
class TakeBackup:
    type: str


@dataclass(frozen=True)
class Hold:
    seconds: float


@dataclass(frozen=True)
class Preflight:
    set_id: str


@dataclass(frozen=True)
class Snapshot:
    pass


@dataclass(frozen=True)
class Disaster:
    push_wal: bool
    detection_delay: float


@dataclass(frozen=True)
class Restore:
    pass


@dataclass(frozen=True)
class Start:
    pass


@dataclass(frozen=True)
class Verify:
    pass


@dataclass(frozen=True)
class Serve:
    timeout: float


Step = Warmup | TakeBackup | Hold | Preflight | Snapshot | Disaster | Restore | Start | Verify | Serve
DrillPlan = tuple[Step, ...]


def plan_from_config(d: DrillConfig) -> DrillPlan:
    """The default sequence for a [drill] section: backups per policy, then disaster and recovery."""
    steps: list[Step] = [Warmup(d.warmup)]
    for i, kind in enumerate(d.backups):
        if i:
            steps.append(Hold(d.backup_interval))
        steps.append(TakeBackup(kind))
    steps += [Hold(d.hold), Preflight(d.backup_id), Snapshot(), Disaster(d.push_wal, d.detection_delay),
              Restore(), Start(), Verify(), Serve(d.serve_timeout)]
    return tuple(steps)
