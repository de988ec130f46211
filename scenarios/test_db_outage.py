"""db_outage: PostgreSQL goes away under load; how fast is it noticed, and how fast does the app heal?

Two ways to take it away (`scenarios.db_outage.variants`, default ["kill"] locally so `make drill`
stays one run, both on an external stack):
- kill: the server is SIGKILLed (postmaster and backends, as an OOM kill would) and restarted after
  the hold;
- network: its proxy is disabled for the hold — new connections are refused and open ones cut —
  while the server itself keeps running.
"""

import pytest
from conftest import assert_passed, outage_fault, selected_variant


@pytest.fixture
def chaos_case_selected(variant, chaos_config):
    # On your own stack, try both: kill needs a container, network a proxy; each skips without.
    external = chaos_config.environment.kind == "external"
    selected_variant(chaos_config, "db_outage", variant, default=("kill", "network") if external else None)


@pytest.mark.db_outage
@pytest.mark.parametrize("variant", ["kill", "network"])
def test_db_outage(variant, request, chaos_env, chaos_config, chaos_experiment):
    fault = outage_fault(request, chaos_env, "postgres", variant, chaos_env.allow_list())
    what = {"kill": "PostgreSQL killed (SIGKILL of the whole server) and restarted after the hold",
            "network": "PostgreSQL unreachable: its proxy disabled (connections refused and cut)"}[variant]
    assert_passed(chaos_experiment.run("db_outage", fault, what))
