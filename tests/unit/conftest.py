"""Unit tests see a private, empty state dir: no journal entry or environment record of another
test (or of a real run) may change what they observe, e.g. the default allow-list of a fault."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_state_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CHAOSDRILL_STATE_DIR", str(tmp_path_factory.mktemp("state")))
