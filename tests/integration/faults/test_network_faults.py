"""Toxic and ProxyDown faults against the embedded Toxiproxy server, with Redis behind a proxy."""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

import pytest

from harness.errors import FaultRefused
from harness.faults import AllowList, Journal, recover_leftovers
from harness.faults.journal import Entry
from harness.faults.network import (
    BandwidthToxic,
    LatencyToxic,
    LimitDataToxic,
    ProxyDown,
    ResetPeerToxic,
    SlicerToxic,
    SlowCloseToxic,
    TimeoutToxic,
)
from harness.timeline import FAULT_ACTIVE, FAULT_APPLY_START, FAULT_CLEARED, FAULT_REVERT_START, Timeline
from harness.toxiproxy.client import ToxiproxyClient
from harness.toxiproxy.server import ThreadedToxiproxyServer
from tests.integration.faults.helpers import redis_ping


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAOSDRILL_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.fixture(scope="module")
def toxiproxy():
    """A real Toxiproxy when TOXIPROXY_URL is set (it must reach loopback upstreams), else the embedded one."""
    if os.environ.get("TOXIPROXY_URL"):
        yield SimpleNamespace(url=os.environ["TOXIPROXY_URL"].rstrip("/"))
        return
    with ThreadedToxiproxyServer(port=0) as embedded:
        yield embedded


@pytest.fixture
def proxied(toxiproxy, redis_server):
    """(client, proxy) for a proxy "redis_<port>" in front of the test Redis."""
    client = ToxiproxyClient(toxiproxy.url)
    proxy = client.create_proxy(f"redis_{redis_server.port}", upstream=f"127.0.0.1:{redis_server.port}")
    yield client, proxy
    client.delete_proxy(proxy.name)
    client.close()


CASES = [
    (LatencyToxic, {"latency": 300, "jitter": 10}),
    (BandwidthToxic, {"rate": 1}),
    (SlowCloseToxic, {"delay": 200}),
    (TimeoutToxic, {"timeout": 0}),
    (ResetPeerToxic, {"timeout": 0}),
    (SlicerToxic, {"average_size": 1, "size_variation": 0, "delay": 1000}),
    (LimitDataToxic, {"bytes": 3}),
]


@pytest.mark.parametrize(("cls", "attrs"), CASES, ids=[c.type for c, _ in CASES])
def test_each_toxic_is_added_under_its_wire_type_and_removed(proxied, toxiproxy, cls, attrs):
    client, proxy = proxied
    tl = Timeline()
    with cls(proxy.name, api=toxiproxy.url, stream="upstream", toxicity=0.5, timeline=tl, **attrs) as fault:
        [toxic] = client.toxics(proxy.name)
        assert (toxic.name, toxic.type, toxic.stream, toxic.toxicity) == (fault.name, cls.type, "upstream", 0.5)
        assert toxic.attributes == attrs
        record = Journal().read(fault.id).record
        assert record == {"type": "toxic", "api": toxiproxy.url, "proxy": proxy.name, "toxic": fault.name,
                          "server": record["server"]}
        if not os.environ.get("TOXIPROXY_URL"):  # the embedded server runs in this process
            assert record["server"][0] == os.getpid()
    assert client.toxics(proxy.name) == []
    assert [e.kind for e in tl.events] == [FAULT_APPLY_START, FAULT_ACTIVE, FAULT_REVERT_START, FAULT_CLEARED]
    assert Journal().ids() == []


def test_latency_is_felt_through_the_proxy(proxied, toxiproxy):
    client, proxy = proxied
    assert redis_ping(proxy.port)
    with LatencyToxic(proxy.name, latency=300, api=toxiproxy.url):
        t0 = time.monotonic()
        assert redis_ping(proxy.port, timeout=3)
        assert time.monotonic() - t0 >= 0.29
    assert redis_ping(proxy.port)


def test_timeout_toxic_starves_clients(proxied, toxiproxy):
    _, proxy = proxied
    with TimeoutToxic(proxy.name, api=ToxiproxyClient(toxiproxy.url)):
        assert not redis_ping(proxy.port, timeout=0.3)
    assert redis_ping(proxy.port)


def test_proxy_down_and_up(proxied, toxiproxy):
    client, proxy = proxied
    with ProxyDown(proxy.name, api=toxiproxy.url):
        assert client.get_proxy(proxy.name).enabled is False
        assert not redis_ping(proxy.port)
    assert client.get_proxy(proxy.name).enabled is True
    assert redis_ping(proxy.port)


def test_unknown_proxy_lists_the_known(proxied, toxiproxy):
    _, proxy = proxied
    with pytest.raises(FaultRefused, match=rf"proxy 'nope' not found in .*{proxy.name}"), \
            LatencyToxic("nope", latency=1, api=toxiproxy.url):
        pass


def test_non_loopback_api_and_upstream_are_refused(toxiproxy):
    with pytest.raises(FaultRefused, match=r"Toxiproxy API http://203.0.113.7:8474: '203.0.113.7' is not a loopback"), \
            ProxyDown("x", api="http://203.0.113.7:8474"):
        pass
    client = ToxiproxyClient(toxiproxy.url)
    client.create_proxy("remote", upstream="203.0.113.7:5432")
    try:
        with pytest.raises(FaultRefused, match=r"upstream: '203.0.113.7' is not a loopback"), \
                ProxyDown("remote", api=toxiproxy.url):
            pass
        assert client.get_proxy("remote").enabled
    finally:
        client.delete_proxy("remote")


def test_allow_list_by_upstream_or_listen(proxied, toxiproxy, redis_server):
    _, proxy = proxied
    with pytest.raises(FaultRefused, match="is not in the environment"), \
            ProxyDown(proxy.name, api=toxiproxy.url, allow=AllowList.of(endpoints=[("127.0.0.1", 1)])):
        pass
    with ProxyDown(proxy.name, api=toxiproxy.url, allow=AllowList.of(endpoints=[("127.0.0.1", proxy.port)])):
        pass
    with ProxyDown(proxy.name, api=toxiproxy.url,
                   allow=AllowList.of(endpoints=[("localhost", redis_server.port)])):
        pass


def test_a_toxic_of_the_same_name_is_never_touched(proxied, toxiproxy):
    client, proxy = proxied
    client.add_toxic(proxy.name, "latency", name="theirs", attributes={"latency": 5})
    with pytest.raises(FaultRefused, match="already has a toxic named 'theirs'"), \
            LatencyToxic(proxy.name, latency=1, name="theirs", api=toxiproxy.url):
        pass
    assert [t.name for t in client.toxics(proxy.name)] == ["theirs"]


def test_bad_stream_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"stream must be one of: upstream, downstream; got: 'sideways'"):
        LatencyToxic("p", latency=1, stream="sideways")


def test_cleanup_removes_toxics_and_enables_proxies(proxied, toxiproxy, state):
    client, proxy = proxied
    for fault in (LatencyToxic(proxy.name, latency=100, api=toxiproxy.url), ProxyDown(proxy.name, api=toxiproxy.url)):
        fault._prepare()
        Journal().write(Entry(fault.id, fault.label, fault.journal_record(), owner_pid=2**22 + 5))
        fault._apply()
    assert len(client.toxics(proxy.name)) == 1 and not client.get_proxy(proxy.name).enabled
    lines = recover_leftovers(state)
    assert len(lines) == 2 and all(line.startswith("undone ") for line in lines)
    assert client.toxics(proxy.name) == [] and client.get_proxy(proxy.name).enabled
    assert redis_ping(proxy.port)


def test_undo_after_the_server_died_reports_gone_with_its_server(tmp_path, redis_server):
    """A crashed harness often takes its embedded Toxiproxy down with it: its toxics and disabled
    proxies died with that process, so cleanup says so and clears the entries instead of failing forever."""
    from harness.env.app_process import ToxiproxyProcess
    from harness.env.ports import free_port
    from harness.faults.journal import recover

    proc = ToxiproxyProcess(tmp_path / "tp", free_port())
    proc.start()
    try:
        with ToxiproxyClient(proc.url) as client:
            client.create_proxy("r", upstream=f"127.0.0.1:{redis_server.port}")
        toxic = LatencyToxic("r", latency=100, api=proc.url)
        down = ProxyDown("r", api=proc.url)
        toxic.inject()
        down.inject()
        assert Journal().read(toxic.id).record["server"][0] == proc.pid
    finally:
        proc.kill()
    lines = [o.line for o in recover(include_live=True)]
    assert sorted(lines) == sorted([
        f"undone {toxic.label}: toxic {toxic.name} of proxy r at {proc.url} gone with its server "
        f"(pid {toxic.server[0]} no longer runs; {proc.url} unreachable)",
        f"undone {down.label}: disabled proxy r at {proc.url} gone with its server "
        f"(pid {down.server[0]} no longer runs; {proc.url} unreachable)",
    ])
    assert Journal().ids() == []


def test_undo_with_the_api_unreachable_and_no_known_server_keeps_the_entry():
    from harness.env.ports import free_port

    api = f"http://127.0.0.1:{free_port()}"
    Journal().write(Entry("t1", "LatencyToxic(r, downstream)",
                          {"type": "toxic", "api": api, "proxy": "r", "toxic": "x", "server": None}))
    (line,) = recover_leftovers(include_live=True)
    assert line.startswith("FAILED LatencyToxic(r, downstream): ") and "entry kept" in line
    assert Journal().ids() == ["t1"]
