"""The client's error mapping and request shapes, against httpx.MockTransport (no server)."""

from __future__ import annotations

import json

import httpx
import pytest

from harness.toxiproxy import (
    AlreadyExists,
    AsyncToxiproxyClient,
    BadRequest,
    Proxy,
    ProxyNotFound,
    Toxic,
    ToxicNotFound,
    ToxiproxyClient,
    ToxiproxyServerError,
    ToxiproxyUnreachable,
)

PROXY = {
    "name": "p1",
    "listen": "127.0.0.1:43787",
    "upstream": "127.0.0.1:20001",
    "enabled": True,
    "Logger": {},
    "toxics": [
        {
            "attributes": {"latency": 5, "jitter": 0},
            "name": "l",
            "type": "latency",
            "stream": "upstream",
            "toxicity": 1,
        }
    ],
}


def _err(status: int, msg: str) -> httpx.Response:
    return httpx.Response(status, text=json.dumps({"error": msg, "status": status}) + "\n")


def client_for(handler) -> ToxiproxyClient:
    return ToxiproxyClient("http://tp", transport=httpx.MockTransport(handler))


def test_proxy_parsed_into_frozen_dataclasses():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, request.content))
        return httpx.Response(201, json=PROXY)

    proxy = client_for(handler).create_proxy("p1", upstream="127.0.0.1:20001")
    assert proxy == Proxy(
        "p1",
        "127.0.0.1:43787",
        "127.0.0.1:20001",
        True,
        (Toxic("l", "latency", "upstream", 1.0, {"latency": 5, "jitter": 0}),),
    )
    assert proxy.port == 43787 and proxy.host == "127.0.0.1"
    assert seen[0][:2] == ("POST", "/proxies")
    assert json.loads(seen[0][2]) == {
        "name": "p1",
        "listen": "127.0.0.1:0",
        "upstream": "127.0.0.1:20001",
        "enabled": True,
    }
    with pytest.raises(AttributeError):
        proxy.name = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("status", "msg", "exc"),
    [
        (400, "bad request body: EOF", BadRequest),
        (404, "proxy not found", ProxyNotFound),
        (404, "toxic not found", ToxicNotFound),
        (409, "proxy already exists", AlreadyExists),
        (500, "listen tcp 127.0.0.1:1: bind: address already in use", ToxiproxyServerError),
    ],
)
def test_errors_mapped_with_server_text(status, msg, exc):
    tp = client_for(lambda r: _err(status, msg))
    with pytest.raises(exc) as info:
        tp.get_proxy("p1")
    assert info.value.message == msg
    assert info.value.status == status
    assert str(info.value) == f"HTTP {status}: {msg}"


def test_populate_error_carries_partial_proxies():
    body = {
        "error": "listen tcp 127.0.0.1:1: bind: address already in use",
        "status": 500,
        "proxies": [PROXY],
    }
    tp = client_for(lambda r: httpx.Response(500, json=body))
    with pytest.raises(ToxiproxyServerError) as info:
        tp.populate([{"name": "p1", "upstream": "x:1"}])
    assert [p.name for p in info.value.proxies] == ["p1"]


def test_transport_error_is_unreachable():
    def handler(request):
        raise httpx.ConnectError("refused")

    with pytest.raises(ToxiproxyUnreachable):
        client_for(handler).version()


def test_unreachable_real_socket_times_out_quickly():
    with ToxiproxyClient("http://127.0.0.1:9", timeout=0.5) as tp, pytest.raises(ToxiproxyUnreachable):
        tp.proxies()


def test_update_toxic_sends_only_given_fields():
    bodies = []

    def handler(request):
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=PROXY["toxics"][0])

    tp = client_for(handler)
    tp.update_toxic("p1", "l", attributes={"latency": 9})
    tp.update_toxic("p1", "l", toxicity=0.5)
    assert bodies == [{"attributes": {"latency": 9}}, {"toxicity": 0.5}]


async def test_async_twin_same_api():
    async def handler(request):
        return httpx.Response(200, text='{"version": "2.12.0"}\n')

    async with AsyncToxiproxyClient("http://tp", transport=httpx.MockTransport(handler)) as tp:
        assert await tp.version() == "2.12.0"


def test_exported_members():
    import harness.toxiproxy as pkg

    assert sorted(pkg.__all__) == pkg.__all__ or sorted(pkg.__all__, key=str.lower) == pkg.__all__
    # "@py_builtins"/"@pytest_ar": pytest assertion rewriting injects these into plugin-registered packages
    public = {n for n in dir(pkg) if not n.startswith(("_", "@"))} - {
        "client",
        "errors",
        "models",
        "server",
        "api",
        "gojson",
        "metrics",
        "pipeline",
        "proxy",
        "toxics",
    }
    assert public == set(pkg.__all__)
