"""Scratch dirs of drills and restore tests (pgBackRest's work dir, with its config and so the repository's
credentials): a killed run cannot remove its own, so `chaosdrill cleanup` removes those whose process is gone."""

from __future__ import annotations

import os
import subprocess
import tempfile
from contextlib import ExitStack
from pathlib import Path

from harness.cleanup import cleanup_all
from harness.drill.pipeline import abandoned_scratch_dirs, scratch_dir


def test_cleanup_removes_the_scratch_dirs_of_dead_runs_only(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid is no longer a process
    left = tmp_path / f"chaosdrill-restore-test-{dead.pid}-abc"
    (left / "pgbackrest").mkdir(parents=True)
    (left / "pgbackrest" / "pgbackrest.conf").write_text("repo1-cipher-pass=not-to-be-left\n")
    also = tmp_path / f"chaosdrill-drill-{dead.pid}-def"
    also.mkdir()
    other = tmp_path / "chaosdrill-drill-notapid"  # not a name we make: never touched
    other.mkdir()
    with ExitStack() as stack:
        live = scratch_dir(stack, "chaosdrill-restore-test-")
        assert live.name.startswith(f"chaosdrill-restore-test-{os.getpid()}-") and live.parent == tmp_path

        lines = [ln for ln in cleanup_all() if "scratch dir" in ln]  # an earlier test's leftovers may go too
        assert sorted(lines) == sorted([f"removed {also} (scratch dir of a killed run, pid {dead.pid})",
                                        f"removed {left} (scratch dir of a killed run, pid {dead.pid})"])
        assert not left.exists() and not also.exists()
        assert live.is_dir() and other.is_dir()  # a running run's scratch dir stays
        assert abandoned_scratch_dirs() == []
    assert not live.exists()  # its own run removes it on the way out
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["chaosdrill-drill-notapid"]
