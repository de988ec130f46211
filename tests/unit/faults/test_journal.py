"""The journal: atomic entries, where it lives, and a cleanup that never crashes on a bad entry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.faults.journal import Entry, Journal, recover, recover_leftovers, state_dir
from tests.unit.faults.fakes import UNDONE, FakeFault


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def orphan(journal: Journal, name: str, **record) -> Entry:
    """An entry as a killed harness would have left it."""
    entry = Entry(f"id{name}", f"FakeFault({name})", {"type": "fake", "name": name, **record},
                  owner_pid=dead_pid(), owner_start=0.0)
    journal.write(entry)
    return entry


def test_state_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("CHAOSDRILL_STATE_DIR", str(tmp_path / "s"))
    assert state_dir() == tmp_path / "s"
    monkeypatch.delenv("CHAOSDRILL_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "x"))
    assert state_dir() == tmp_path / "x" / "chaosdrill"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert state_dir() == tmp_path / "h" / ".local" / "state" / "chaosdrill"
    assert Journal().directory == tmp_path / "h" / ".local" / "state" / "chaosdrill" / "journal"


def test_write_is_atomic_and_fsynced(journal, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append(f"replace {Path(a).name}"), real_replace(a, b))[1])
    entry = Entry("abc", "X(y)", {"type": "fake", "name": "y"})
    journal.write(entry)
    assert calls == ["fsync", f"replace .abc.{os.getpid()}.tmp", "fsync"]  # file, rename, directory
    assert sorted(p.name for p in journal.directory.iterdir()) == ["abc.json"]
    assert journal.read("abc") == entry


def test_a_crash_before_rename_leaves_no_entry(journal, monkeypatch):
    def crash(a, b):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        journal.write(Entry("abc", "X(y)", {"type": "fake", "name": "y"}))
    monkeypatch.undo()
    assert journal.ids() == []
    tmp = next(journal.directory.glob(".abc.*.tmp"))
    tmp.rename(journal.directory / f".abc.{dead_pid()}.tmp")  # as if written by a dead process
    assert recover_leftovers(journal.directory.parent) == []
    assert list(journal.directory.glob("*.tmp")) == []


def test_recover_undoes_orphans_and_removes_them(state, journal):
    orphan(journal, "a")
    orphan(journal, "b")
    lines = recover_leftovers(state)
    assert sorted(lines) == ["undone FakeFault(a): undid a", "undone FakeFault(b): undid b"]
    assert [r["name"] for r in UNDONE] == ["a", "b"]
    assert journal.ids() == []
    assert recover_leftovers(state) == []


def test_recover_keeps_and_reports_failed_undo(state, journal):
    entry = orphan(journal, "a", undo_fails=True)
    [line] = recover_leftovers(state)
    assert line.startswith("FAILED FakeFault(a): the undo broke; entry kept at ")
    assert journal.ids() == [entry.id]
    assert [o.status for o in recover(state)] == ["failed"]


def test_recover_moves_corrupt_entries_aside(state, journal):
    journal.directory.mkdir(parents=True)
    (journal.directory / "bad1.json").write_text("{not json")
    (journal.directory / "bad2.json").write_text(json.dumps({"id": "bad2", "label": "x", "owner_pid": 1,
                                                             "record": {"no": "type"}}))
    (journal.directory / "bad3.json").write_text("[1, 2]")
    orphan(journal, "good")
    lines = recover_leftovers(state)
    corrupt = sorted(line for line in lines if line.startswith("corrupt"))
    assert len(corrupt) == 3 and "bad1.json" in corrupt[0] and "moved to" in corrupt[0]
    assert "'record' must be an object" in corrupt[1]
    assert "undone FakeFault(good): undid good" in lines
    assert journal.ids() == []
    assert len(list(journal.aside.iterdir())) == 3
    assert recover_leftovers(state) == []


def test_unknown_type_is_kept_and_named(state, journal):
    journal.write(Entry("zz", "Future(x)", {"type": "from_the_future"}, owner_pid=dead_pid()))
    [line] = recover_leftovers(state)
    assert "no undo for type 'from_the_future'" in line and "pause_process" in line
    assert journal.ids() == ["zz"]


def test_entries_of_a_live_harness_are_skipped(state, journal):
    with FakeFault("live", []) as fault:
        [line] = recover_leftovers(state)
        assert line == f"skipped FakeFault(live): held by running pid {os.getpid()}"
        assert journal.ids() == [fault.id]
        assert recover_leftovers(state, include_live=True) == ["undone FakeFault(live): undid live"]
    assert journal.ids() == []


def test_missing_state_dir_is_nothing_to_do(tmp_path):
    assert recover_leftovers(tmp_path / "nowhere") == []
