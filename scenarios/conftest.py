"""Scenario-wide fixtures only; the chaosdrill pytest plugin provides chaos_env and chaos_experiment."""

from __future__ import annotations

import pytest

from harness.measure import Verdict


@pytest.fixture
def proxied_env(chaos_env):
    """The environment, for scenarios that need Toxiproxy between the app and its dependencies
    (on by default locally; skipped where `environment.local.proxy = false` turns the proxies off,
    or an external environment has no `environment.external.toxiproxy_url`)."""
    if getattr(chaos_env, "toxiproxy", None) is None and chaos_env.state().get("toxiproxy") is None:
        pytest.skip("needs proxies: environment.local.proxy = false, or no environment.external.toxiproxy_url")
    return chaos_env


def service_of(env, kind: str) -> str:
    """The environment's service of `kind` ("postgres", "redis"); skip the scenario when it has none."""
    name = env.service_of_kind(kind)
    if name is None:
        pytest.skip(f"the environment has no {kind} service (add one to [services])")
    return name


def proxy_of(env, kind: str) -> str:
    """The Toxiproxy proxy in front of the `kind` service; skip when there is none."""
    name = service_of(env, kind)
    proxy = env.proxy_for(name)
    if proxy is None:
        pytest.skip(f"service {name!r} has no Toxiproxy proxy (environment.local.proxy, or services.{name}.proxy)")
    return proxy


def kill_fault(env, kind: str, allow):
    """A fault factory (timeline → fault) that SIGKILLs the `kind` service and restarts it after the
    hold: its process locally, its container when [services] names one. Skips, before anything
    runs, when the environment offers neither."""
    from harness.faults import KillContainer, KillProcess

    name = service_of(env, kind)
    if name in env.services:
        return lambda timeline: KillProcess(env.services[name], timeline=timeline, allow=allow)
    container = env.container_for(name)
    if container is None:
        pytest.skip(f"service {name!r} is neither our process nor a named container (services.{name}.container)")
    return lambda timeline: KillContainer(container, timeline=timeline, allow=allow)


def selected_variant(config, scenario: str, variant: str, default: tuple[str, ...] | None = None) -> None:
    """Skip a variant the config does not select (`scenarios.<scenario>.variants`; where the config
    does not set it, the scenario's own `default`, else the config's default). Call it from the
    scenario's `chaos_case_selected` fixture, which runs before the environment starts."""
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


def outage_fault(request, env, kind: str, variant: str, allow):
    """The fault factory of an outage scenario's variant: "kill" the `kind` service (restarted after
    the hold) or cut it off at its proxy ("network": connections refused and cut, server untouched)."""
    if variant == "kill":
        return kill_fault(env, kind, allow)
    from harness.faults import ProxyDown

    env = request.getfixturevalue("proxied_env")
    proxy = proxy_of(env, kind)
    return lambda timeline: ProxyDown(proxy, api=env.toxiproxy_url, timeline=timeline, allow=allow)
