"""Scenario-wide fixtures only; the chaosdrill pytest plugin provides chaos_env and chaos_experiment."""

from __future__ import annotations

import pytest

from harness.measure import Verdict


@pytest.fixture
def proxied_env(chaos_env):
    """The environment, for scenarios that need Toxiproxy between the app and its dependencies."""
    if chaos_env.toxiproxy is None:
        pytest.skip("needs proxies: set environment.local.proxy = true in chaosdrill.toml")
    return chaos_env


def assert_passed(outcome) -> None:
    """A scenario passes only when every objective was measured and met."""
    failed = [f"{o.name}: {o.achieved} vs target {o.target} {o.unit}" for o in outcome.objectives if o.passed is False]
    unmeasured = [o.name for o in outcome.objectives if o.passed is None]
    assert outcome.verdict is Verdict.PASSED, (
        f"{outcome.verdict.value}: failed {failed}, not measured {unmeasured}; report {outcome.report}")
