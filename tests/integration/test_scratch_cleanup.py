"""Scratch dirs of drills and restore tests (pgBackRest's work dir, with its config and so the repository's
credentials): a killed run cannot remove its own, so `chaosdrill cleanup` removes those whose run is gone,
and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from harness.cleanup import cleanup_all
from harness.env.scratch import abandoned_scratch_dirs, scratch_dir

NO_SUCH_PID = 4194305  # above the largest pid_max Linux allows


def _scratch_lines() -> list[str]:
    return [ln for ln in cleanup_all() if "scratch dir" in ln]  # an earlier test's leftovers may go too


def test_cleanup_removes_the_scratch_dirs_of_killed_runs_only(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    # A run SIGKILLed while its scratch dir (holding a secret) existed: its lock went with it.
    code = ("import os, signal, sys; from contextlib import ExitStack; from harness.env.scratch import scratch_dir\n"
            "d = scratch_dir(ExitStack(), 'restore-test'); (d / 'pgbackrest.conf').write_text('repo1-cipher-pass=x')\n"
            "print(d, flush=True); os.kill(os.getpid(), signal.SIGKILL)\n")
    killed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=os.environ | {"TMPDIR": str(tmp_path)})
    left = Path(killed.stdout.strip())
    assert killed.returncode == -9 and (left / "pgbackrest.conf").is_file(), killed.stderr
    unlocked = tmp_path / f"chaosdrill-scratch-drill-{NO_SUCH_PID}-abcd1234"  # killed before it locked
    unlocked.mkdir()
    os.utime(unlocked, (time.time() - 120, time.time() - 120))
    just_made = tmp_path / f"chaosdrill-scratch-drill-{NO_SUCH_PID}-new12345"  # not locked yet: a minute's grace
    just_made.mkdir()
    fifo = tmp_path / f"chaosdrill-scratch-drill-{NO_SUCH_PID}-fifo1234"  # a FIFO as the lock: never opened blocking
    fifo.mkdir()
    os.mkfifo(fifo / ".owner.lock")
    # Not ours: an environment's dir, names that only look like ours, a symlink, a file.
    env_dir = tmp_path / "chaosdrill-restore-test-31415926-27182818"
    big = tmp_path / f"chaosdrill-scratch-drill-{'9' * 20}-x"
    link = tmp_path / f"chaosdrill-scratch-drill-{NO_SUCH_PID}-link"
    plain = tmp_path / f"chaosdrill-scratch-restore-test-{NO_SUCH_PID}-file"
    for d in (env_dir, big):
        d.mkdir()
    link.symlink_to(env_dir)
    plain.write_text("")
    with ExitStack() as stack:
        live = scratch_dir(stack, "restore-test")
        assert live.name.startswith(f"chaosdrill-scratch-restore-test-{os.getpid()}-") and live.parent == tmp_path
        assert sorted(p.name for p in live.iterdir()) == [".owner.lock"]  # locked, then renamed into place

        assert sorted(_scratch_lines()) == sorted([
            f"removed {left} (scratch dir of a killed run, pid {killed.stdout.strip().split('-')[-2]})",
            f"removed {unlocked} (scratch dir of a killed run, pid {NO_SUCH_PID})"])
        assert not left.exists() and not unlocked.exists()
        assert live.is_dir()  # a running run's dir stays, though its pid is ours
        assert abandoned_scratch_dirs() == []
    assert not live.exists()  # its own run removes it on the way out
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (env_dir, big, link, plain, just_made,
                                                                                 fifo))


def test_a_live_run_in_another_process_keeps_its_scratch_dir(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    code = ("import sys; from contextlib import ExitStack; from harness.env.scratch import scratch_dir\n"
            "with ExitStack() as s:\n    print(scratch_dir(s, 'drill'), flush=True); sys.stdin.read()\n")
    run = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                           env=os.environ | {"TMPDIR": str(tmp_path)})
    try:
        live = Path(run.stdout.readline().strip())
        assert live.is_dir() and _scratch_lines() == [] and live.is_dir()
    finally:
        run.communicate("", timeout=30)
    assert run.returncode == 0 and not live.exists()
