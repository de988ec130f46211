"""`environment.kind = "external"`: chaosdrill drills a stack it did not start, and leaves it as it found it.

A LocalEnvironment with proxies plays "your stack" (app, PostgreSQL and Redis behind a Toxiproxy);
chaosdrill sees it only through [services].
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from harness.config import LocalEnvConfig, parse_config
from harness.env.external import ExternalEnvironment
from harness.env.local import LocalEnvironment
from harness.errors import FaultRefused
from harness.faults import ProxyDown
from harness.load import DEFAULT_LOCUSTFILE
from harness.toxiproxy.client import ToxiproxyClient

CLI = [sys.executable, "-m", "harness.cli_main"]


@pytest.fixture(scope="module")
def stack():
    with LocalEnvironment(LocalEnvConfig(proxy=True), label="yourstack") as env:
        yield env


def stack_config(env: LocalEnvironment, services: tuple[str, ...] = ("postgres", "redis")) -> str:
    lines = ['[environment]', 'kind = "external"', '[environment.external]', 'app = "web"',
             f'toxiproxy_url = "{env.toxiproxy_url}"',
             '[services.web]', 'kind = "http"', f'url = "{env.app_url}"']
    for name in services:
        lines += [f"[services.{name}]", f'kind = "{name}"', f'address = "{env.endpoints[name].address}"',
                  f'proxy = "{name}"']
    lines += ["[run]", 'probe_interval = "100ms"', "[load]", f'locustfile = "{DEFAULT_LOCUSTFILE}"', "users = 3",
              "[scenarios.db_outage]", 'baseline = "1s"', 'hold = "1.5s"', 'after = "1s"']
    return "\n".join(lines) + "\n"


def untouched(env: LocalEnvironment) -> None:
    """The stack still serves, and no toxic or disabled proxy of ours is left on it."""
    assert httpx.get(f"{env.app_url}/health", timeout=5).status_code == 200
    with ToxiproxyClient(env.toxiproxy_url) as tp:
        for proxy in tp.proxies().values():
            assert proxy.enabled and not proxy.toxics, proxy


def test_db_outage_runs_against_an_external_stack_and_leaves_it_running(stack, tmp_path) -> None:
    (tmp_path / "chaosdrill.toml").write_text(stack_config(stack))
    proc = subprocess.run([*CLI, "run", "-m", "db_outage"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=240, env=os.environ | {"COLUMNS": "200"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_dir,) = (tmp_path / "chaosdrill-results").iterdir()
    result = json.loads((run_dir / "result.json").read_text())
    assert result["environment"]["kind"] == "external"
    assert result["environment"]["services"]["postgres"]["proxy"] == "postgres"
    fault = result["measurements"]["fault"]
    assert fault["time_to_detect_s"] is not None and fault["mttr_s"] is not None
    assert fault["load"]["during"]["failures"] > 0  # the outage was felt by the load, through the proxy
    assert (run_dir / "report.html").exists()
    untouched(stack)


def test_faults_outside_the_listed_services_are_refused(stack) -> None:
    cfg = parse_config({"environment": {"kind": "external",
                                        "external": {"app": "web", "toxiproxy_url": stack.toxiproxy_url}},
                        "load": {"enabled": False},
                        "services": {"web": {"kind": "http", "url": stack.app_url},
                                     "postgres": {"kind": "postgres", "address": stack.endpoints["postgres"].address,
                                                  "proxy": "postgres"}}})
    with ExternalEnvironment(cfg) as env:
        with pytest.raises(FaultRefused, match="not in the environment"), \
                ProxyDown("redis", api=env.toxiproxy_url, allow=env.allow_list()):
            pass
        with ProxyDown("postgres", api=env.toxiproxy_url, allow=env.allow_list()), \
                ToxiproxyClient(env.toxiproxy_url) as tp:
            assert not tp.get_proxy("postgres").enabled
    untouched(stack)


def test_a_run_where_every_scenario_skipped_is_an_error_not_a_pass(stack, tmp_path) -> None:
    """No container named and only the kill variant selected: nothing can run, so nothing passed."""
    (tmp_path / "chaosdrill.toml").write_text(stack_config(stack) + 'variants = ["kill"]\n')
    proc = subprocess.run([*CLI, "run", "-m", "db_outage"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env=os.environ | {"COLUMNS": "200"})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no scenario ran for db_outage" in lines[0], proc.stderr
    assert "services.postgres.container" in lines[0]
    untouched(stack)


def test_a_missing_proxy_is_one_line_and_exit_4(stack, tmp_path) -> None:
    config = stack_config(stack).replace('proxy = "redis"', 'proxy = "no_such_proxy"')
    (tmp_path / "chaosdrill.toml").write_text(config)
    proc = subprocess.run([*CLI, "run", "-m", "db_outage"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env=os.environ | {"COLUMNS": "200"})
    assert proc.returncode == 4, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "services.redis.proxy: no proxy 'no_such_proxy'" in lines[0], proc.stderr
    assert not Path(tmp_path / "chaosdrill-results").exists() or not any((tmp_path / "chaosdrill-results").iterdir())
    untouched(stack)
