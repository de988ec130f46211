"""Scenario-wide fixtures only; the chaosdrill pytest plugin provides chaos_env and chaos_experiment."""

from __future__ import annotations

import pytest

from harness.measure import Verdict


@pytest.fixture
def proxied_env(chaos_env):
    """The environment, for scenarios that need Toxiproxy between the app and its dependencies
    (on by default; skipped only where `environment.local.proxy = false` turns the proxies off)."""
    if chaos_env.toxiproxy is None:
        pytest.skip("needs proxies: environment.local.proxy = false in the config")
    return chaos_env


def selected_variant(config, scenario: str, variant: str, default: tuple[str, ...] | None = None) -> None:
    """Skip a variant the config does not select (`scenarios.<scenario>.variants`; where the config
    does not set it, the scenario's own `default`, else the config's default)."""
    plan = config.scenario(scenario)
    variants = plan.variants if default is None or "variants" in plan.model_fields_set else default
    if variant not in variants:
        pytest.skip(f"variant {variant!r} not selected (scenarios.{scenario}.variants)")


def assert_passed(outcome) -> None:
    """A scenario passes only when every objective was measured and met."""
    failed = [f"{o.name}: {o.achieved} vs target {o.target} {o.unit}" for o in outcome.objectives if o.passed is False]
    unmeasured = [o.name for o in outcome.objectives if o.passed is None]
    assert outcome.verdict is Verdict.PASSED, (
        f"{outcome.verdict.value}: failed {failed}, not measured {unmeasured}; report {outcome.report}")
