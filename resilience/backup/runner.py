"""Run external tools (pgbackrest, pg_ctl, pg_dump …) with one-line errors.

As root, PostgreSQL tools must run as the `postgres` OS user: initdb and pg_ctl refuse root,
and pgBackRest files must belong to the user that `archive_command` runs as.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from resilience.backup.errors import BackupError, ToolMissing

PG_OS_USER = "postgres"


def as_pg_user() -> dict:
    """subprocess kwargs that drop to the postgres OS user when we are root."""
    if os.geteuid() != 0:
        return {}
    try:
        pwd.getpwnam(PG_OS_USER)
    except KeyError as exc:
        raise ToolMissing("running as root needs the 'postgres' OS user: install postgresql-15") from exc
    return {"user": PG_OS_USER, "group": PG_OS_USER}


def chown_pg(path: Path, recursive: bool = False) -> None:
    """Give `path` (and with `recursive` everything below) to the postgres OS user when root."""
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam(PG_OS_USER)
    paths = [Path(path)]
    if recursive:
        paths += list(Path(path).rglob("*"))
    for p in paths:
        os.chown(p, entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def pg_bindir() -> Path:
    """PostgreSQL server binaries: $CHAOSDRILL_PG_BINDIR, else the newest /usr/lib/postgresql/N/bin."""
    explicit = os.environ.get("CHAOSDRILL_PG_BINDIR")
    candidates = [explicit] if explicit else sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    for cand in candidates:
        if cand and (Path(cand) / "pg_ctl").exists():
            return Path(cand)
    raise ToolMissing(f"PostgreSQL binaries not found in {explicit or '/usr/lib/postgresql/*/bin'}: "
                      "install postgresql-15 or set CHAOSDRILL_PG_BINDIR")


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` for a helper that must not outlive its caller (a throwaway server read once): the
    kernel SIGKILLs it when the thread that spawned it dies, a SIGKILL of the harness included, which
    no `finally` survives (Linux prctl(PR_SET_PDEATHSIG); None elsewhere). The spawning thread must
    live as long as the helper. prctl is looked up here, in the parent: the child runs no loader code
    between fork and exec. A parent that died before the child's prctl is caught by the ppid check.
    Never for a server that must stay up after the run (a kept environment)."""
    import ctypes
    import signal

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        if os.getppid() != parent:  # the parent was gone before the death signal was armed
            os._exit(1)

    return preexec


def which(tool: str, hint: str) -> str:
    """Absolute path of `tool` or a one-line ToolMissing naming the package to install."""
    found = shutil.which(tool)
    if not found:
        raise ToolMissing(f"{tool} not found on PATH: {hint}")
    return found


def last_line(proc: subprocess.CompletedProcess) -> str:
    """The most telling line of a failed command: its last ERROR line, else the last line."""
    text = ((proc.stderr or "") + "\n" + (proc.stdout or "")).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "ERROR" in ln or "FATAL" in ln or "error:" in ln]
    return (errors or lines or ["no output"])[-1]


def run(cmd: Sequence[str], *, as_pg: bool = False, check: bool = True, timeout: float = 600,
        env: Mapping[str, str] | None = None, error: type[BackupError] = BackupError,
        what: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `cmd`; on failure raise `error` with one line: what failed, exit code, its last error line."""
    kwargs = as_pg_user() if as_pg else {}
    full_env = None
    if env:
        full_env = dict(os.environ) | dict(env)
    try:
        proc = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=timeout,
                              env=full_env, cwd=cwd or ("/" if kwargs else None), **kwargs)
    except FileNotFoundError as exc:
        raise ToolMissing(f"{cmd[0]} not found: install it or fix PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise error(f"{what or Path(cmd[0]).name} timed out after {timeout:.0f} s") from exc
    if check and proc.returncode != 0:
        raise error(f"{what or Path(cmd[0]).name} failed (exit {proc.returncode}): {last_line(proc)}")
    return proc
