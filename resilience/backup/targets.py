"""Restore targets: a restore only ever writes into a new, empty place."""

from __future__ import annotations

from pathlib import Path

from resilience.backup.errors import RestoreTargetNotEmpty


def require_empty_dir(target: Path | str) -> Path:
    """Create `target` if missing; refuse it if it holds anything (the source stays untouched)."""
    target = Path(target).absolute()
    if target.exists():
        if not target.is_dir():
            raise RestoreTargetNotEmpty(f"restore target {target} exists and is not a directory")
        if any(target.iterdir()):
            raise RestoreTargetNotEmpty(f"restore target {target} is not empty; restores only go into new directories")
    target.mkdir(parents=True, exist_ok=True)
    return target
