"""`chaosdrill cleanup`: undo what a killed run left — journaled faults, Locust runs, recorded environments,
then the scratch dirs of drills and restore tests."""

from __future__ import annotations

import psutil

from harness.env.local import load_state, teardown_recorded
from harness.env.scratch import abandoned_scratch_dirs
from harness.faults.journal import recover_leftovers
from harness.load import stop_abandoned


def cleanup_all(include_live_envs: bool = False) -> list[str]:
    """Undo leftover faults first (a paused process must resume before it can be stopped), then stop
    environments whose owning process is gone (Locust runs of a dead harness before them: they load
    the app). One line per thing undone."""
    lines = list(recover_leftovers())
    lines += stop_abandoned(include_live=include_live_envs)
    for record in load_state():
        if include_live_envs or abandoned(record):
            lines.append(teardown_recorded(record))
    return lines + abandoned_scratch_dirs()


def abandoned(record: dict) -> bool:
    """A run's environment whose owning process died. `chaosdrill env up` ones are detached on
    purpose and stay until `env down` (or `cleanup --all`)."""
    if record.get("detached"):
        return False
    owner = record.get("owner_pid")
    return not (owner and psutil.pid_exists(owner))
