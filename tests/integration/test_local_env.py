"""The local environment against real PostgreSQL, Redis and the app: up, fresh, down, no leftovers."""

from __future__ import annotations

import os
import socket

import httpx
import psutil
import pytest

from harness.config import LocalEnvConfig
from harness.env.local import LocalEnvironment, load_state, teardown_recorded
from harness.env.ports import port_in_use
from harness.errors import EnvironmentStartError


def alive(pid: int | None) -> bool:
    try:
        return pid is not None and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def leftovers(env: LocalEnvironment, pids: list[int], ports: list[int]) -> list[str]:
    found = [f"pid {p} alive" for p in pids if alive(p)]
    found += [f"port {p} open" for p in ports if port_in_use(p)]
    if env.base.exists():
        found.append(f"dir {env.base} exists")
    found += [f"process {p.pid} mentions {env.base}" for p in psutil.process_iter(["cmdline"])
              if str(env.base) in " ".join(p.info["cmdline"] or [])]
    found += [f"record {r['id']}" for r in load_state(env.id)]
    return found


def snapshot(env: LocalEnvironment) -> tuple[list[int], list[int]]:
    pids = [svc.pid for svc in env.services.values()]
    pids += [c.pid for c in psutil.Process(env.postgres.pid).children(recursive=True)]
    ports = [e.port for e in (*env.endpoints.values(), *env.upstreams.values())]
    return pids, ports + ([env.toxiproxy.port] if env.toxiproxy else [])


PROXIED = LocalEnvConfig(proxy=True)


def dead_pid() -> int:
    """A pid that just exited (the owner of a record after a harness crash)."""
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_up_serves_and_down_leaves_nothing() -> None:
    env = LocalEnvironment().up()  # proxies are on by default
    pids, ports = snapshot(env)
    try:
        assert all(alive(p) for p in pids[:4])  # postgres, redis, app, toxiproxy
        assert set(env.services) == {"postgres", "redis", "app", "toxiproxy"}
        assert load_state(env.id), "a running environment is recorded for crash cleanup"
        health = httpx.get(f"{env.app_url}/health", timeout=5).json()
        assert health["checks"]["postgres"]["ok"] and health["checks"]["redis"]["ok"]
        assert all(e.host == "127.0.0.1" for e in env.endpoints.values())
        assert env.endpoints["redis"].port == env.proxy_ports["redis"] != env.redis.port
        assert_default_allow_list_is_the_environment(env)
    finally:
        env.down()
    assert leftovers(env, pids, ports) == []


def assert_default_allow_list_is_the_environment(env: LocalEnvironment) -> None:
    """Faults given no allow-list may touch this environment's services, and nothing else on loopback."""
    import subprocess

    from harness.errors import FaultRefused
    from harness.faults import PauseProcess

    stray = subprocess.Popen(["sleep", "30"])
    try:
        with pytest.raises(FaultRefused, match=rf"pid {stray.pid} is not in the environment"):
            PauseProcess(pids=[stray.pid]).inject()
        with PauseProcess(env.redis):
            assert psutil.Process(env.redis.pid).status() == psutil.STATUS_STOPPED
    finally:
        stray.kill()
        stray.wait()


def test_fresh_is_a_separate_empty_environment() -> None:
    with LocalEnvironment() as env:
        httpx.post(f"{env.app_url}/orders", json={"customer": "c", "item": "i", "quantity": 1, "amount": 1},
                   timeout=5).raise_for_status()
        other = env.fresh()
        try:
            assert other.base != env.base
            assert {e.port for e in other.endpoints.values()}.isdisjoint({e.port for e in env.endpoints.values()})
            assert httpx.get(f"{other.app_url}/orders", timeout=5).json() == []
            assert len(httpx.get(f"{env.app_url}/orders", timeout=5).json()) == 1
        finally:
            pids, ports = snapshot(other)
            other.down()
        assert leftovers(other, pids, ports) == []


def test_teardown_from_the_record_alone_after_the_owner_died() -> None:
    """What `chaosdrill cleanup` does when the harness was killed: only the JSON record is left."""
    env = LocalEnvironment().up()
    pids, ports = snapshot(env)
    env.redis.pause()  # a paused leftover must be stoppable too
    (record,) = load_state(env.id)
    line = teardown_recorded(record)
    assert env.id in line
    assert leftovers(env, pids, ports) == []


def test_services_restarted_after_up_are_torn_down_after_a_crash() -> None:
    """A KillProcess revert restarts Redis in-process (re-recorded); cleanup's undo of a kill restarts
    the app from its journal record alone (a pid no record knows). When the owner then dies,
    `chaosdrill cleanup` must stop both: no process, port, dir or record of the environment remains."""
    from harness.cleanup import cleanup_all
    from harness.faults import Journal, KillProcess
    from harness.faults.process import undo_kill
    from harness.state import write_json_atomic

    env = LocalEnvironment().up()
    pids, ports = snapshot(env)
    try:
        old_redis = env.redis.pid
        with KillProcess(env.redis, allow=env.allow_list()):
            pass
        assert env.redis.pid != old_redis and alive(env.redis.pid)
        (record,) = load_state(env.id)
        assert record["redis"]["pid"] == env.redis.pid, "a restarted service is re-recorded"

        kill = KillProcess(env.app, allow=env.allow_list())
        kill.inject()
        entry = Journal().read(kill.id).record
        Journal().remove(kill.id)
        assert "restarted app" in undo_kill(entry)
        restarted = [p.pid for p in psutil.process_iter(["cmdline"])
                     if "harness.app" in " ".join(p.info["cmdline"] or []) and str(env.base) in " ".join(p.info["cmdline"])]
        assert restarted and port_in_use(env.app.port)
        assert load_state(env.id)[0]["app"]["pid"] not in restarted, "the record cannot know this pid"
        pids += [env.redis.pid, *restarted]

        (record,) = load_state(env.id)
        from harness.env.local import envs_dir

        write_json_atomic(envs_dir() / f"{env.id}.json", record | {"owner_pid": dead_pid()})
        lines = cleanup_all()
        assert any(env.id in line for line in lines), lines
        assert leftovers(env, pids, ports) == []
    finally:
        env.down()


def chaosdrill_dirs() -> set[str]:
    import tempfile
    from pathlib import Path

    return {p.name for p in Path(tempfile.gettempdir()).glob("chaosdrill-env-*")}


def test_clients_go_through_proxies_and_faults_act_behind_them() -> None:
    from harness.toxiproxy.client import ToxiproxyClient

    with LocalEnvironment(PROXIED) as env:
        assert {n: e.port for n, e in env.endpoints.items()} == env.proxy_ports
        assert env.endpoints["postgres"] != env.upstreams["postgres"]
        with ToxiproxyClient(env.toxiproxy_url) as tp:
            assert {p.name: p.upstream for p in tp.proxies().values()} == {
                n: e.address for n, e in env.upstreams.items()}
            tp.disable_proxy("postgres")
            assert httpx.get(f"{env.app_url}/health", timeout=5).status_code == 503
            tp.enable_proxy("postgres")
        assert httpx.get(f"{env.app_url}/health", timeout=5).status_code == 200


def test_without_proxies_clients_reach_services_directly() -> None:
    with LocalEnvironment(LocalEnvConfig(proxy=False)) as env:
        assert env.toxiproxy is None and env.endpoints == env.upstreams
        with pytest.raises(EnvironmentStartError, match="runs without proxies"):
            _ = env.toxiproxy_url
        assert httpx.get(f"{env.app_url}/health", timeout=5).status_code == 200


def test_port_in_use_is_one_clear_line_and_nothing_starts() -> None:
    before = chaosdrill_dirs()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(EnvironmentStartError, match=rf"^PostgreSQL: port {port} on 127.0.0.1 is already in use$"):
            LocalEnvironment(LocalEnvConfig(postgres_port=port))
        with pytest.raises(EnvironmentStartError, match=rf"^Redis: port {port} on 127.0.0.1 is already in use$"):
            LocalEnvironment(LocalEnvConfig(redis_port=port))
    assert chaosdrill_dirs() == before


def test_app_port_taken_after_start_cleans_up_what_started() -> None:
    env = LocalEnvironment()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", env.app.port))
        busy.listen()
        with pytest.raises(EnvironmentStartError, match="app: port .* already in use"):
            env.up()
    assert not env.postgres.running() and not env.redis.running()
    assert not env.base.exists()


def test_missing_postgres_binaries_is_one_clear_line(monkeypatch) -> None:
    monkeypatch.setenv("CHAOSDRILL_PG_BINDIR", "/nonexistent/bin")
    before = chaosdrill_dirs()
    with pytest.raises(EnvironmentStartError) as info:
        LocalEnvironment()
    assert str(info.value).startswith("PostgreSQL binaries not found in /nonexistent/bin")
    assert "\n" not in str(info.value)
    assert chaosdrill_dirs() == before


def test_runs_as_the_postgres_user_when_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("only meaningful as root")
    with LocalEnvironment(with_app=False) as env:
        assert psutil.Process(env.postgres.pid).username() == "postgres"


def test_strays_are_processes_that_name_the_dir_or_run_detached_in_it(tmp_path) -> None:
    import subprocess
    import sys

    from harness.env.procs import strays

    base = tmp_path / "chaosdrill-env-x"
    base.mkdir()
    sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]
    named = subprocess.Popen([*sleeper, str(base / "data")])
    inside = subprocess.Popen(sleeper, cwd=base, start_new_session=True)
    elsewhere = subprocess.Popen(sleeper, cwd=tmp_path, start_new_session=True)
    try:
        found = strays(str(base))
        assert named.pid in found and inside.pid in found
        assert elsewhere.pid not in found and os.getpid() not in found
    finally:
        for proc in (named, inside, elsewhere):
            proc.kill()
            proc.wait()


def test_an_environment_torn_down_from_its_record_no_longer_widens_the_default_allow_list() -> None:
    from harness.env.local import known_allow_list

    env = LocalEnvironment(LocalEnvConfig(proxy=False)).up()
    port = env.postgres.port
    assert known_allow_list().has_endpoint("127.0.0.1", port)
    (record,) = load_state(env.id)
    teardown_recorded(record)
    allow = known_allow_list()
    assert allow is None or not allow.has_endpoint("127.0.0.1", port)


def test_wait_promoted_returns_on_a_primary_and_stops_at_once_for_a_dead_server(pg_server) -> None:
    """A server that is not in recovery answers at once; one whose postmaster is gone (a FATAL in
    recovery stops it) is named in one line instead of being polled until the timeout."""
    pg_server.wait_promoted(timeout=30)
    pg_server.stop("immediate")
    with pytest.raises(EnvironmentStartError, match=f"port {pg_server.port} stopped during recovery; see "):
        pg_server.wait_promoted(timeout=30)
