"""Checks on the files and directories a user names, before anything starts.

Every one raises a one-line `ConfigError` (exit 2) naming the path and what is wrong:

    read_text_file(path, what, limit)   a readable regular file (no FIFO, device, directory or
                                        symlink loop) of at most `limit` bytes, UTF-8 text
    check_writable_dir(path, what)      a directory that exists and is writable, or can be created
                                        (its nearest existing ancestor is a writable directory)
    check_output_file(path, what)       a file that can be written: in an existing writable directory,
                                        not itself a directory
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from harness.errors import ConfigError


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def read_text_file(path: str | Path, what: str, limit: int) -> str:
    """The text of `path`: a readable regular UTF-8 file of at most `limit` bytes, else one ConfigError."""
    try:
        # O_NONBLOCK: opening a FIFO must not hang; O_NOCTTY: a terminal device must not become ours
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigError(f"{path}: cannot read {what} (a symbolic link loop)") from None
        raise ConfigError(f"{path}: cannot read {what} ({_reason(exc)})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise ConfigError(f"{path}: cannot read {what} ({kind}); allowed: a regular file")
    with os.fdopen(fd, "rb") as f:
        try:
            raw = f.read(limit + 1)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read {what} ({_reason(exc)})") from None
    if len(raw) > limit:
        raise ConfigError(f"{path}: {what} is larger than {_size(limit)}; allowed: at most {_size(limit)}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: {what} is not UTF-8 text (bad byte at offset {exc.start})") from None


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


def check_writable_dir(path: str | Path, what: str) -> Path:
    """`path` is a writable directory, or can be created as one; returns it absolute."""
    path = Path(path).absolute()
    probe = path
    while True:
        try:
            st = probe.stat()
        except (FileNotFoundError, NotADirectoryError):
            if probe.parent == probe:
                break
            probe = probe.parent
            continue
        except OSError as exc:
            raise ConfigError(f"{what}: {path}: {_reason(exc)}; allowed: a writable directory") from None
        if not stat.S_ISDIR(st.st_mode):
            where = "is a file" if probe == path else f"is under {probe}, which is not a directory"
            raise ConfigError(f"{what}: {path} {where}; allowed: a writable directory")
        if not os.access(probe, os.W_OK | os.X_OK):
            raise ConfigError(f"{what}: {probe} is not writable; allowed: a writable directory")
        return path
    raise ConfigError(f"{what}: {path}: no existing parent directory; allowed: a writable directory")


def check_output_file(path: str | Path, what: str) -> Path:
    """`path` can be written as a file: its directory exists and is writable, it is no directory."""
    path = Path(path)
    parent = path.absolute().parent
    try:
        if path.is_dir():
            raise ConfigError(f"{what}: {path} is a directory; allowed: a file path in an existing directory")
        if not parent.is_dir():
            reason = "does not exist" if not parent.exists() and not _under_file(parent) else "is not a directory"
            raise ConfigError(f"{what}: {parent} {reason}; allowed: a file path in an existing directory")
    except OSError as exc:
        raise ConfigError(f"{what}: {path}: {_reason(exc)}") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{what}: {parent} is not writable")
    if path.exists() and not path.is_file():
        raise ConfigError(f"{what}: {path} is not a regular file; allowed: a file path in an existing directory")
    return path


def _under_file(path: Path) -> bool:
    """Some ancestor of `path` exists and is not a directory."""
    return any(p.exists() and not p.is_dir() for p in path.parents) or (path.exists() and not path.is_dir())
