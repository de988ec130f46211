"""Unit fixtures for faults: a private state dir with the fake undo registered."""

from __future__ import annotations

import pytest

from harness.faults.journal import UNDO, Journal
from tests.unit.faults.fakes import UNDONE, undo_fake


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAOSDRILL_STATE_DIR", str(tmp_path))
    UNDO["fake"] = undo_fake
    UNDONE.clear()
    yield tmp_path
    UNDO.pop("fake", None)


@pytest.fixture
def journal(state):
    return Journal.in_state_dir(state)
