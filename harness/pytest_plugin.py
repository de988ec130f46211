"""chaosdrill's pytest plugin (entry point pytest11): options, scenario markers, fixtures."""

from __future__ import annotations

from harness.config import SCENARIO_NAMES


def pytest_configure(config) -> None:
    for name in SCENARIO_NAMES:
        config.addinivalue_line("markers", f"{name}: chaosdrill scenario '{name}'")
