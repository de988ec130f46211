"""The durable fault journal: what is applied right now, and how to undo it without the Python object.

    Fault.inject ──write──► <state>/journal/<id>.json     (tmp + fsync + rename + fsync dir)
                 ──apply──►
    Fault.clear  ──revert──► ──remove──►                   (entry gone: nothing to undo)
    SIGKILL ─────────────────► entry stays ──► recover_leftovers(): UNDO[record["type"]](record)

The entry is written *before* the fault takes effect, so every undo function must be idempotent:
it may meet a fault that was never applied, or one already reverted. Entries owned by a harness
process that is still alive are left alone, so one run's cleanup never heals another run's faults.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

STATE_DIR_ENV = "CHAOSDRILL_STATE_DIR"
SCHEMA = 1

# Modules whose import registers undo functions; imported lazily so cleanup works without docker etc.
UNDO_MODULES = (
    "harness.faults.process",
    "harness.faults.network",
    "harness.faults.firewall",
    "harness.faults.container",
)

UndoFn = Callable[[dict[str, Any]], str]
UNDO: dict[str, UndoFn] = {}


def undo_action(record_type: str) -> Callable[[UndoFn], UndoFn]:
    """Register the idempotent undo of journal records of `record_type`; it returns one line of what it did."""

    def register(fn: UndoFn) -> UndoFn:
        UNDO[record_type] = fn
        return fn

    return register


def state_dir() -> Path:
    """$CHAOSDRILL_STATE_DIR, else $XDG_STATE_HOME/chaosdrill, else ~/.local/state/chaosdrill."""
    explicit = os.environ.get(STATE_DIR_ENV)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "chaosdrill"


def _process_start(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Entry:
    """One journalled fault: `record` says how to undo it; `owner_*` say which harness process holds it."""

    id: str
    label: str
    record: dict[str, Any]
    owner_pid: int = field(default_factory=os.getpid)
    owner_start: float | None = field(default_factory=lambda: _process_start(os.getpid()))
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))
    schema: int = SCHEMA

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Entry:
        """Parse and validate; raises ValueError naming what is wrong."""
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        missing = [k for k in ("id", "label", "record", "owner_pid") if k not in data]
        if missing:
            raise ValueError(f"missing keys: {', '.join(missing)}")
        record = data["record"]
        if not isinstance(record, dict) or not isinstance(record.get("type"), str):
            raise ValueError("'record' must be an object with a string 'type'")
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def owner_alive(self) -> bool:
        """True when the harness process that wrote this entry is still running (same pid, same start)."""
        if self.owner_pid == os.getpid():
            return True
        try:
            proc = psutil.Process(self.owner_pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return False
            start = proc.create_time()
        except psutil.Error:
            return False
        return self.owner_start is None or abs(start - self.owner_start) < 0.01


class Journal:
    """A directory of one JSON file per active fault, each written atomically and fsync'd."""

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory is not None else state_dir() / "journal"

    @classmethod
    def in_state_dir(cls, state: Path | str | None = None) -> Journal:
        return cls((Path(state) if state is not None else state_dir()) / "journal")

    @property
    def aside(self) -> Path:
        """Where corrupt entries are moved, so they are reported once and never crash cleanup again."""
        return self.directory.parent / "journal-corrupt"

    def path(self, entry_id: str) -> Path:
        return self.directory / f"{entry_id}.json"

    def write(self, entry: Entry) -> Path:
        """Durably store `entry`: when this returns, a crash cannot lose it."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        final = self.path(entry.id)
        tmp = self.directory / f".{entry.id}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, entry.to_json())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        _fsync_dir(self.directory)
        return final

    def remove(self, entry_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(entry_id))
            _fsync_dir(self.directory)

    def ids(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.json"))

    def read(self, entry_id: str) -> Entry:
        return Entry.from_json(self.path(entry_id).read_bytes())

    def entries(self) -> list[Entry]:
        """The readable entries, oldest first (corrupt ones are skipped here; cleanup reports them)."""
        found = []
        for entry_id in self.ids():
            with contextlib.suppress(OSError, ValueError):
                found.append(self.read(entry_id))
        return sorted(found, key=lambda e: e.created)

    def move_aside(self, path: Path) -> Path:
        self.aside.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = self.aside / f"{path.name}.{time.strftime('%Y%m%dT%H%M%S')}.{os.getpid()}"
        os.replace(path, target)
        _fsync_dir(self.directory)
        return target

    def drop_stale_tmp(self) -> None:
        """Remove half-written entries of dead writers: their fault was never applied (rename comes first)."""
        if not self.directory.is_dir():
            return
        for tmp in self.directory.glob(".*.tmp"):
            try:
                pid = int(tmp.name.rsplit(".", 2)[-2])
            except (ValueError, IndexError):
                pid = -1
            if pid != os.getpid() and not psutil.pid_exists(pid):
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()

    @contextlib.contextmanager
    def locked(self):
        """One cleanup at a time (flock on <journal>/.lock)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.directory / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Outcome:
    """What cleanup did with one journal file: undone, failed (kept), corrupt (moved aside) or skipped (live)."""

    status: str
    entry_id: str
    line: str

    @property
    def ok(self) -> bool:
        return self.status in ("undone", "skipped")


def _load_undo_modules() -> list[str]:
    problems = []
    for name in UNDO_MODULES:
        try:
            importlib.import_module(name)
        except Exception as exc:  # a missing optional dependency must not stop the other undos
            problems.append(f"{name}: {exc}")
    return problems


def recover(state: Path | str | None = None, *, include_live: bool = False) -> list[Outcome]:
    """Undo every journalled fault left by dead harness processes; never raises on a bad entry."""
    journal = Journal.in_state_dir(state)
    if not journal.directory.is_dir():
        return []
    _load_undo_modules()
    outcomes: list[Outcome] = []
    with journal.locked():
        journal.drop_stale_tmp()
        for entry_id in journal.ids():
            path = journal.path(entry_id)
            try:
                entry = journal.read(entry_id)
            except FileNotFoundError:
                continue  # its owner cleared it meanwhile
            except (OSError, ValueError, TypeError) as exc:
                aside = journal.move_aside(path)
                outcomes.append(Outcome("corrupt", entry_id,
                                        f"corrupt journal entry {path.name}: {exc}; moved to {aside}"))
                continue
            if not include_live and entry.owner_alive():
                outcomes.append(Outcome("skipped", entry.id,
                                        f"skipped {entry.label}: held by running pid {entry.owner_pid}"))
                continue
            undo = UNDO.get(entry.record["type"])
            if undo is None:
                known = ", ".join(sorted(UNDO)) or "none"
                outcomes.append(Outcome("failed", entry.id,
                                        f"FAILED {entry.label}: no undo for type {entry.record['type']!r} "
                                        f"(known: {known}); entry kept at {path}"))
                continue
            try:
                did = undo(entry.record)
            except Exception as exc:
                msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                outcomes.append(Outcome("failed", entry.id,
                                        f"FAILED {entry.label}: {msg}; entry kept at {path}"))
                continue
            journal.remove(entry.id)
            outcomes.append(Outcome("undone", entry.id, f"undone {entry.label}: {did}"))
    return outcomes


def recover_leftovers(state_dir: Path | str | None = None, *, include_live: bool = False) -> list[str]:
    """`chaosdrill cleanup`: undo what killed runs left; one line per journal entry handled.

    Lines start with `undone`, `FAILED` (entry kept, run cleanup again), `corrupt` (moved aside) or
    `skipped` (its harness still runs). Use `recover()` for the structured outcomes.
    """
    return [o.line for o in recover(state_dir, include_live=include_live)]
