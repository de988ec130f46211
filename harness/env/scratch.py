"""Scratch dirs of drills and restore tests, and their removal after a killed run.

A scratch dir holds pgBackRest's work dir, whose config carries the repository's credentials, so
one left by a killed run must not stay in /tmp. Its run holds an flock on `.owner.lock` inside while
it lives; `chaosdrill cleanup` (and the start of every run) removes the dirs whose lock it can take.
Its own module, not part of the pipeline: cleanup imports it at every start, and the drill package
is heavy to import.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psutil

from harness.env.servers import PG_OS_USER, chown_to_pg_user

SCRATCH_PREFIX = "chaosdrill-scratch-"  # no environment's dir (chaosdrill-<label>-…) starts so
SCRATCH_KINDS = ("drill", "restore-test")
_SCRATCH_NAME = re.compile(r"chaosdrill-scratch-(?:drill|restore-test)-(\d{1,7})-[A-Za-z0-9_]+")
_OWNER_LOCK = ".owner.lock"


def scratch_dir(stack: ExitStack, kind: str) -> Path:
    """A temp dir the PostgreSQL OS user can write (pgBackRest's workdir, a repository), removed when `stack` closes.

    A killed run cannot remove it, and it may hold a repository's credentials (pgbackrest.conf), so
    `abandoned_scratch_dirs` (run by `chaosdrill cleanup`) removes it once its run is gone. "Gone" is
    an flock on `.owner.lock` inside, held while the run lives: the kernel drops it when the process
    dies, however it dies, and a reused pid cannot fake it. The lock file is locked under another name
    and renamed into place, so a concurrent cleanup never finds it unlocked while its run lives."""
    if kind not in SCRATCH_KINDS:
        raise ValueError(f"scratch kind {kind!r}; allowed: {', '.join(SCRATCH_KINDS)}")
    scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{kind}-{os.getpid()}-"))
    try:
        fd = os.open(scratch / ".owner.lock.new", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        stack.callback(os.close, fd)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(scratch / ".owner.lock.new", scratch / _OWNER_LOCK)
        chown_to_pg_user(scratch)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    stack.callback(shutil.rmtree, scratch, True)  # runs first (LIFO), while the lock is still held
    return scratch


def abandoned_scratch_dirs() -> list[str]:
    """Remove the scratch dirs of drills and restore tests whose run is gone; a line for each. Only
    real directories with our name, owned by us (or, as root, by the PostgreSQL OS user)."""
    owners = {os.geteuid()}
    if os.geteuid() == 0:
        with contextlib.suppress(KeyError):
            owners.add(pwd.getpwnam(PG_OS_USER).pw_uid)
    lines = []
    for path in sorted(Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*")):
        found = _SCRATCH_NAME.fullmatch(path.name)
        try:
            st = path.lstat()
        except OSError:
            continue
        if not found or not stat.S_ISDIR(st.st_mode) or st.st_uid not in owners:
            continue  # not one of ours
        with _owner_lock_if_free(path, int(found.group(1)), st.st_mtime) as free:
            if not free:
                continue  # its run is alive
            shutil.rmtree(path, ignore_errors=True)
        what = f"{path} (scratch dir of a killed run, pid {found.group(1)})"
        lines.append(f"removed {what}" if not path.exists() else f"FAILED to remove {what}")
    return lines


_UNLOCKED_GRACE_S = 60  # a dir without its lock file: a run killed while making it, or one just starting


@contextmanager
def _owner_lock_if_free(path: Path, pid: int, mtime: float) -> Iterator[bool]:
    """True (holding the lock) when no live run holds the dir's owner lock. A dir without one (its run
    was killed before the lock was in place) is free once the pid in its name is gone and the dir is
    a minute old (a pid from another pid namespace proves nothing about a dir just made)."""
    try:
        fd = os.open(path / _OWNER_LOCK, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield not psutil.pid_exists(pid) and time.time() - mtime > _UNLOCKED_GRACE_S
        return
    except OSError:
        yield False  # a link or something we may not open: not ours to judge
        return
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            yield False  # a FIFO or device under that name is not our lock
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
