"""Toxic faults and ProxyDown against an in-memory Toxiproxy API (httpx.MockTransport): no sockets."""

from __future__ import annotations

import json

import httpx
import pytest

from harness.errors import FaultRefused, RevertFailed
from harness.faults.journal import Entry, Journal, recover_leftovers
from harness.faults.network import LatencyToxic, ProxyDown, SlicerToxic
from harness.toxiproxy.client import ToxiproxyClient
from harness.toxiproxy.errors import ToxiproxyUnreachable

URL = "http://127.0.0.1:8474"


class FakeApi:
    """Just the routes the faults use, with Toxiproxy's status codes and error bodies."""

    def __init__(self) -> None:
        self.proxies = {"pg": {"name": "pg", "listen": "127.0.0.1:25432", "upstream": "127.0.0.1:5432",
                               "enabled": True, "toxics": []}}
        self.down = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("refused", request=request)
        parts = request.url.path.strip("/").split("/")
        if parts == ["proxies"]:
            return httpx.Response(200, json=self.proxies)
        proxy = self.proxies.get(parts[1])
        if proxy is None:
            return httpx.Response(404, json={"error": "proxy not found", "status": 404})
        if len(parts) == 2 and request.method == "GET":
            return httpx.Response(200, json=proxy)
        if len(parts) == 2 and request.method == "PATCH":
            proxy.update(json.loads(request.content))
            return httpx.Response(200, json=proxy)
        if parts[2:] == ["toxics"] and request.method == "POST":
            toxic = json.loads(request.content)
            if any(t["name"] == toxic["name"] for t in proxy["toxics"]):
                return httpx.Response(409, json={"error": "toxic already exists", "status": 409})
            proxy["toxics"].append(toxic)
            return httpx.Response(200, json=toxic)
        if len(parts) == 4 and request.method == "DELETE":
            before = len(proxy["toxics"])
            proxy["toxics"] = [t for t in proxy["toxics"] if t["name"] != parts[3]]
            if len(proxy["toxics"]) == before:
                return httpx.Response(404, json={"error": "toxic not found", "status": 404})
            return httpx.Response(204)
        return httpx.Response(405)


@pytest.fixture
def api(state):
    fake = FakeApi()
    client = ToxiproxyClient(URL, transport=httpx.MockTransport(fake))
    fake.client = client
    return fake


def test_toxic_on_and_off(api):
    with SlicerToxic("pg", average_size=10, delay=5, stream="upstream", toxicity=0.3, api=api.client) as fault:
        [toxic] = api.proxies["pg"]["toxics"]
        assert toxic == {"name": fault.name, "type": "slicer", "stream": "upstream", "toxicity": 0.3,
                         "attributes": {"average_size": 10, "size_variation": 0, "delay": 5}}
        assert fault.name.startswith("chaosdrill_slicer_upstream_")
    assert api.proxies["pg"]["toxics"] == []


def test_proxy_down_and_up(api):
    with ProxyDown("pg", api=api.client):
        assert api.proxies["pg"]["enabled"] is False
    assert api.proxies["pg"]["enabled"] is True


def test_toxic_already_removed_by_someone_is_fine(api):
    with LatencyToxic("pg", latency=5, api=api.client):
        api.proxies["pg"]["toxics"].clear()


def test_unreachable_api_at_revert_keeps_the_entry_for_cleanup(api, state):
    fault = LatencyToxic("pg", latency=5, api=api.client)
    with pytest.raises(RevertFailed, match=r"LatencyToxic\(pg, downstream\): revert failed: toxiproxy at "), fault:
        api.down = True
    assert Journal().ids() == [fault.id]
    api.down = False
    assert len(api.proxies["pg"]["toxics"]) == 1


def test_api_down_before_apply_is_one_mapped_error(api):
    api.down = True
    with pytest.raises(ToxiproxyUnreachable), ProxyDown("pg", api=api.client):
        pass


def test_unknown_proxy_is_refused_with_the_known_names(api):
    with pytest.raises(FaultRefused, match=r"proxy 'redis' not found in pg \(http://127.0.0.1:8474\)"), \
            ProxyDown("redis", api=api.client):
        pass
    assert Journal().ids() == []


def test_non_loopback_upstream_is_refused(api):
    api.proxies["pg"]["upstream"] = "198.51.100.20:5432"
    with pytest.raises(FaultRefused, match="upstream: '198.51.100.20' is not a loopback address"), \
            LatencyToxic("pg", latency=1, api=api.client):
        pass
    assert api.proxies["pg"]["toxics"] == []


def test_journal_records_are_undone_by_type(state, monkeypatch, api):
    import harness.faults.network as network

    transport = httpx.MockTransport(api)
    monkeypatch.setattr(network, "ToxiproxyClient",
                        lambda url, **kw: ToxiproxyClient(url, transport=transport))
    api.proxies["pg"]["enabled"] = False
    api.proxies["pg"]["toxics"].append({"name": "chaosdrill_latency_downstream_x", "type": "latency"})
    journal = Journal()
    journal.write(Entry("t1", "LatencyToxic(pg)", {"type": "toxic", "api": URL, "proxy": "pg",
                                                    "toxic": "chaosdrill_latency_downstream_x"}, owner_pid=2**22 + 3))
    journal.write(Entry("t2", "ProxyDown(pg)", {"type": "proxy_disabled", "api": URL, "proxy": "pg"},
                        owner_pid=2**22 + 3))
    journal.write(Entry("t3", "ProxyDown(gone)", {"type": "proxy_disabled", "api": URL, "proxy": "gone"},
                        owner_pid=2**22 + 3))
    lines = recover_leftovers(state)
    assert sorted(lines) == [
        "undone LatencyToxic(pg): removed toxic chaosdrill_latency_downstream_x of proxy pg at http://127.0.0.1:8474",
        "undone ProxyDown(gone): no longer exists: proxy gone at http://127.0.0.1:8474",
        "undone ProxyDown(pg): enabled proxy pg at http://127.0.0.1:8474",
    ]
    assert api.proxies["pg"]["enabled"] and api.proxies["pg"]["toxics"] == []
