"""The HTTP API matches Toxiproxy 2.12 (docs/toxiproxy.md): routes, codes, bodies, headers, defaults."""

from __future__ import annotations

import json
import re
import socket

import httpx
import pytest

from harness.toxiproxy import AlreadyExists, BadRequest, ProxyNotFound, ToxicNotFound, ToxiproxyServerError

XID = re.compile(r"^[0-9a-v]{20}$")


@pytest.fixture
def http(toxiproxy_url, tp):
    with httpx.Client(base_url=toxiproxy_url, timeout=10, headers={"User-Agent": "conformance"}) as c:
        yield c


def _error(resp: httpx.Response, status: int, message: str) -> None:
    assert resp.status_code == status
    assert resp.headers["content-type"] == "text/plain; charset=utf-8"
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.text == json.dumps({"error": message, "status": status}, separators=(",", ":")) + "\n"


def test_version_exact_body_and_headers(http):
    r = http.get("/version")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json;charset=utf-8"
    assert re.fullmatch(r'\{"version": "[^"]+"\}\n', r.text)
    assert XID.match(r.headers["x-toxiproxy-request-id"])


def test_proxy_create_shape_order_and_resolved_listen(http, echo):
    r = http.post("/proxies", json={"name": "p1", "listen": "localhost:0", "upstream": echo.address})
    assert r.status_code == 201
    assert r.headers["content-type"] == "application/json"
    assert not r.text.endswith("\n")
    body = r.json()
    assert list(body) == ["name", "listen", "upstream", "enabled", "Logger", "toxics"]
    assert body["Logger"] == {} and body["toxics"] == [] and body["enabled"] is True
    assert re.fullmatch(r"127\.0\.0\.1:\d+", body["listen"]) and not body["listen"].endswith(":0")
    assert http.get("/proxies").json() == {"p1": body}
    assert http.get("/proxies/p1").json() == body


def test_empty_index_and_toxic_list(http, echo):
    assert http.get("/proxies").text == "{}"
    http.post("/proxies", json={"name": "p", "upstream": echo.address, "listen": "127.0.0.1:0"})
    assert http.get("/proxies/p/toxics").text == "[]"


def test_disabled_proxy_keeps_listen_verbatim_and_upstream_is_not_validated(http):
    r = http.post(
        "/proxies",
        json={"name": "d", "listen": "127.0.0.1:0", "upstream": "no-such-host.invalid:1", "enabled": False},
    )
    assert r.status_code == 201
    assert r.json()["listen"] == "127.0.0.1:0"
    assert r.json()["enabled"] is False
    assert r.json()["upstream"] == "no-such-host.invalid:1"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{n", 400, "bad request body: invalid character 'n' looking for beginning of object key string"),
        (b"", 400, "bad request body: EOF"),
        (
            b'{"name":"x","upstream":"a:1","enabled":"yes"}',
            400,
            "bad request body: json: cannot unmarshal string into Go struct field Proxy.enabled of type bool",
        ),
        (b'{"upstream":"a:1"}', 400, "missing required field: name"),
        (b'{"name":"x"}', 400, "missing required field: upstream"),
        (
            b'{"name":"x","upstream":"a:1","listen":"127.0.0.1"}',
            500,
            "listen tcp: address 127.0.0.1: missing port in address",
        ),
    ],
)
def test_proxy_create_errors(http, body, status, message):
    _error(http.post("/proxies", content=body), status, message)
    assert http.get("/proxies").json() == {}


def test_duplicate_proxy_and_listen_in_use(http, echo):
    p = http.post("/proxies", json={"name": "a", "listen": "127.0.0.1:0", "upstream": echo.address}).json()
    _error(
        http.post("/proxies", json={"name": "a", "listen": "127.0.0.1:0", "upstream": echo.address}),
        409,
        "proxy already exists",
    )
    _error(
        http.post("/proxies", json={"name": "b", "listen": p["listen"], "upstream": echo.address}),
        500,
        f"listen tcp {p['listen']}: bind: address already in use",
    )


def test_unknown_host_listen_error(http):
    r = http.post("/proxies", json={"name": "x", "listen": "no-such-host.invalid:0", "upstream": "a:1"})
    assert r.status_code == 500
    assert re.fullmatch(r"listen tcp: lookup no-such-host\.invalid on \S+: no such host", r.json()["error"])


def test_not_found_errors(http):
    _error(http.get("/proxies/nope"), 404, "proxy not found")
    _error(http.delete("/proxies/nope"), 404, "proxy not found")
    _error(http.get("/proxies/nope/toxics"), 404, "proxy not found")


def test_unrouted_and_wrong_method(http):
    for path in ("/toxics", "/proxies/", "/nothing"):
        r = http.get(path)
        assert (r.status_code, r.text) == (404, "404 page not found\n")
        assert "x-toxiproxy-request-id" not in r.headers
    for method, path in (("PUT", "/proxies"), ("GET", "/reset"), ("DELETE", "/version")):
        r = http.request(method, path)
        assert r.status_code == 405 and r.content == b""
        assert "content-type" not in r.headers and "x-toxiproxy-request-id" not in r.headers


def test_browsers_are_refused(http):
    r = http.get("/version", headers={"User-Agent": "Mozilla/5.0 (X11)"})
    assert (r.status_code, r.text) == (403, "User agent not allowed\n")


def test_metrics_off_by_default(http):
    assert http.get("/metrics").status_code == 404


def test_update_proxy_patch_semantics(http, echo, tp):
    p = tp.create_proxy("u", upstream=echo.address)
    tp.add_toxic("u", "latency", attributes={"latency": 1})
    r = http.patch("/proxies/u", json={"name": "ignored", "enabled": False})
    assert r.status_code == 200
    assert r.json()["name"] == "u" and r.json()["enabled"] is False and r.json()["listen"] == p.listen
    with pytest.raises(OSError):
        socket.create_connection((p.host, p.port), timeout=1).recv(1)
    assert http.post("/proxies/u", json={"enabled": True}).json()["enabled"] is True  # deprecated POST
    moved = tp.update_proxy("u", listen="127.0.0.1:0")
    assert moved.port != p.port and [t.name for t in moved.toxics] == ["latency_downstream"]


def test_failed_listen_change_leaves_proxy_disabled_with_new_listen(http, echo, tp):
    a = tp.create_proxy("a", upstream=echo.address)
    tp.create_proxy("b", upstream=echo.address)
    r = http.patch("/proxies/b", json={"listen": a.listen})
    assert r.status_code == 500
    assert r.json()["error"] == f"listen tcp {a.listen}: bind: address already in use"
    b = tp.get_proxy("b")
    assert (b.enabled, b.listen) == (False, a.listen)


def test_delete_and_reset(http, echo, tp):
    tp.create_proxy("a", upstream=echo.address)
    tp.create_proxy("b", upstream=echo.address, enabled=False)
    tp.add_toxic("a", "latency", stream="upstream")
    r = http.post("/reset")
    assert (r.status_code, r.content) == (204, b"")
    proxies = tp.proxies()
    assert set(proxies) == {"a", "b"} and all(p.enabled and not p.toxics for p in proxies.values())
    r = http.delete("/proxies/a")
    assert (r.status_code, r.content) == (204, b"")
    assert set(tp.proxies()) == {"b"}


# --- toxics -----------------------------------------------------------------------------------------
DEFAULTS = {
    "latency": {"latency": 0, "jitter": 0},
    "bandwidth": {"rate": 0},
    "slow_close": {"delay": 0},
    "timeout": {"timeout": 0},
    "reset_peer": {"timeout": 0},
    "slicer": {"average_size": 0, "size_variation": 0, "delay": 0},
    "limit_data": {"bytes": 0},
    "noop": {},
}


@pytest.mark.parametrize("type_", list(DEFAULTS))
def test_toxic_defaults(http, echo_proxy, type_):
    r = http.post("/proxies/echo/toxics", json={"type": type_})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.text == json.dumps(
        {
            "attributes": DEFAULTS[type_],
            "name": f"{type_}_downstream",
            "type": type_,
            "stream": "downstream",
            "toxicity": 1,
        },
        separators=(",", ":"),
    )


def test_toxic_create_quirks(http, echo_proxy):
    r = http.post(
        "/proxies/echo/toxics",
        json={
            "type": "latency",
            "stream": "UPSTREAM",
            "toxicity": 0,
            "attributes": {"latency": -5, "bogus": 1},
        },
    )
    assert r.json() == {
        "attributes": {"latency": -5, "jitter": 0},
        "name": "latency_UPSTREAM",
        "type": "latency",
        "stream": "UPSTREAM",
        "toxicity": 0,
    }
    r = http.post("/proxies/echo/toxics", json={"type": "noop", "name": "n", "toxicity": 2.5})
    assert r.json()["toxicity"] == 2.5


def test_toxic_order_upstream_first_then_insertion(tp, echo_proxy):
    tp.add_toxic("echo", "noop", name="d1")
    tp.add_toxic("echo", "noop", name="u1", stream="upstream")
    tp.add_toxic("echo", "noop", name="d2")
    tp.add_toxic("echo", "noop", name="u2", stream="upstream")
    assert [t.name for t in tp.toxics("echo")] == ["u1", "u2", "d1", "d2"]
    assert [t.name for t in tp.get_proxy("echo").toxics] == ["u1", "u2", "d1", "d2"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"type": "nope"}, 400, "invalid toxic type"),
        ({}, 400, "invalid toxic type"),
        (
            {"type": "latency", "stream": "sideways"},
            400,
            "stream was invalid, can be either upstream or downstream",
        ),
        (
            {"type": "latency", "attributes": {"latency": "100"}},
            400,
            "bad request body: json: cannot unmarshal string into Go struct field LatencyToxic.attributes.latency of type int64",
        ),
    ],
)
def test_toxic_create_errors(http, echo_proxy, body, status, message):
    _error(http.post("/proxies/echo/toxics", json=body), status, message)


def test_toxic_float_attribute_rejected(http, echo_proxy):
    r = http.post("/proxies/echo/toxics", json={"type": "latency", "attributes": {"latency": 1.5}})
    assert r.status_code == 400
    assert r.json()["error"].endswith("into Go struct field LatencyToxic.attributes.latency of type int64")


def test_duplicate_toxic_name_across_streams(tp, echo_proxy):
    tp.add_toxic("echo", "latency", name="x", stream="upstream")
    with pytest.raises(AlreadyExists, match="toxic already exists"):
        tp.add_toxic("echo", "bandwidth", name="x", stream="downstream")


def test_toxic_update_merges_and_ignores_identity(http, tp, echo_proxy):
    tp.add_toxic("echo", "latency", name="l", attributes={"latency": 10, "jitter": 2}, toxicity=0.5)
    r = http.patch(
        "/proxies/echo/toxics/l",
        json={"attributes": {"latency": 20}, "type": "bandwidth", "stream": "upstream", "name": "zz"},
    )
    assert r.json() == {
        "attributes": {"latency": 20, "jitter": 2},
        "name": "l",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 0.5,
    }
    assert http.post("/proxies/echo/toxics/l", json={"toxicity": 1}).json()["toxicity"] == 1


def test_toxic_get_delete_not_found(http, tp, echo_proxy):
    tp.add_toxic("echo", "noop", name="n")
    assert tp.get_toxic("echo", "n").type == "noop"
    assert http.delete("/proxies/echo/toxics/n").status_code == 204
    with pytest.raises(ToxicNotFound, match="toxic not found"):
        tp.get_toxic("echo", "n")
    with pytest.raises(ToxicNotFound):
        tp.update_toxic("echo", "n", toxicity=1)
    with pytest.raises(ProxyNotFound):
        tp.add_toxic("nope", "noop")


# --- populate ---------------------------------------------------------------------------------------
def test_populate_create_keep_replace(http, tp, echo):
    r = http.post("/populate", json=[{"name": "a", "listen": "127.0.0.1:0", "upstream": echo.address}])
    assert r.status_code == 201 and r.headers["content-type"] == "application/json"
    a = r.json()["proxies"][0]
    tp.add_toxic("a", "latency")
    # same resolved listen (localhost vs 127.0.0.1) and upstream: kept, toxics too
    port = a["listen"].rsplit(":", 1)[1]
    kept = tp.populate([{"name": "a", "listen": f"localhost:{port}", "upstream": echo.address}])
    assert [t.name for t in kept[0].toxics] == ["latency_downstream"]
    # changed upstream: replaced, toxics lost
    replaced = tp.populate(
        [{"name": "a", "listen": f"127.0.0.1:{port}", "upstream": f"localhost:{echo.port}"}]
    )
    assert replaced[0].upstream == f"localhost:{echo.port}" and replaced[0].toxics == ()


def test_populate_empty_and_validation(http, tp, echo):
    r = http.post("/populate", json=[])
    assert (r.status_code, r.text) == (201, '{"proxies":null}')
    r = http.post(
        "/populate", json=[{"name": "ok", "upstream": echo.address, "listen": "127.0.0.1:0"}, {"name": "bad"}]
    )
    assert r.status_code == 400
    assert r.json() == {
        "error": "missing required field: upstream at proxy 2",
        "status": 400,
        "proxies": None,
    }
    assert tp.proxies() == {}
    r = http.post("/populate", content=b"{n")
    assert r.status_code == 400 and r.json()["proxies"] is None


def test_populate_listen_failure_keeps_earlier_items(http, tp, echo):
    taken = tp.create_proxy("taken", upstream=echo.address)
    body = [
        {"name": "first", "listen": "127.0.0.1:0", "upstream": echo.address},
        {"name": "second", "listen": taken.listen, "upstream": echo.address},
    ]
    r = http.post("/populate", json=body)
    assert r.status_code == 500
    data = r.json()
    assert data["error"] == f"listen tcp {taken.listen}: bind: address already in use"
    assert [p["name"] for p in data["proxies"]] == ["first"]
    assert "first" in tp.proxies()
    with pytest.raises(ToxiproxyServerError) as info:
        tp.populate(body[1:])
    assert info.value.status == 500


def test_client_error_mapping_against_server(tp):
    with pytest.raises(BadRequest, match="missing required field: upstream"):
        tp.create_proxy("x", upstream="")


def test_populate_applies_in_order_a_bad_listen_keeps_earlier_items(http, tp, echo):
    """Items are validated first, then applied one by one: a listen address that cannot be used in
    item 2 answers 500 listing item 1, which stays created (issue 12, item 2)."""
    body = [
        {"name": "one", "listen": "127.0.0.1:0", "upstream": echo.address},
        {"name": "two", "listen": "127.0.0.1", "upstream": echo.address},
        {"name": "three", "listen": "127.0.0.1:0", "upstream": echo.address},
    ]
    r = http.post("/populate", json=body)
    assert r.status_code == 500
    data = r.json()
    assert data["error"] == "listen tcp: address 127.0.0.1: missing port in address"
    assert data["status"] == 500
    assert [p["name"] for p in data["proxies"]] == ["one"] and data["proxies"][0]["enabled"] is True
    assert set(tp.proxies()) == {"one"}
    s = socket.create_connection(tuple(tp.get_proxy("one").listen.rsplit(":", 1)), timeout=5)
    s.close()


def test_populate_duplicate_names_last_wins(http, tp, echo):
    body = [
        {"name": "dup", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"},
        {"name": "dup", "listen": "127.0.0.1:0", "upstream": echo.address},
    ]
    r = http.post("/populate", json=body)
    assert r.status_code == 201, r.text
    assert [p["name"] for p in r.json()["proxies"]] == ["dup", "dup"]
    proxies = tp.proxies()
    assert list(proxies) == ["dup"] and proxies["dup"].upstream == echo.address and proxies["dup"].enabled
    s = socket.create_connection(tuple(proxies["dup"].listen.rsplit(":", 1)), timeout=5)
    s.sendall(b"hi")
    assert s.recv(2) == b"hi"
    s.close()


def test_json_null_bodies_are_client_errors(http, tp, echo):
    """`null` decodes to an empty Go struct: missing fields (400), an invalid toxic type (400), or
    an update that changes nothing (200), as upstream."""
    assert http.post("/proxies", content=b"null").json() == {"error": "missing required field: name", "status": 400}
    assert http.post("/populate", content=b"null").status_code == 201
    tp.create_proxy("n", upstream=echo.address)
    _error(http.post("/proxies/n/toxics", content=b"null"), 400, "invalid toxic type")
    assert http.patch("/proxies/n", content=b"null").status_code == 200
    tp.add_toxic("n", "latency", name="l")
    assert http.patch("/proxies/n/toxics/l", content=b"null").status_code == 200


@pytest.mark.parametrize("name", ["a/b", ".", "..", "x" * 4097, "é" * 2049])
def test_unaddressable_names_are_refused(http, tp, echo, name):
    """A name no URL can address again is refused at creation, so whatever exists can be deleted."""
    r = http.post("/proxies", json={"name": name, "upstream": echo.address, "enabled": False})
    assert r.status_code == 400 and r.json()["error"].startswith("invalid proxy name")
    r = http.post("/populate", json=[{"name": name, "upstream": echo.address, "enabled": False}])
    assert r.status_code == 400 and tp.proxies() == {}
    tp.create_proxy("p", upstream=echo.address, enabled=False)
    r = http.post("/proxies/p/toxics", json={"name": name, "type": "noop"})
    assert r.status_code == 400 and r.json()["error"].startswith("invalid toxic name")


def test_long_and_odd_names_can_be_read_and_deleted(http, tp, echo):
    from urllib.parse import quote

    for name in ["é" * 2048, "x" * 4096, "a b?c#d%e", "\u2028\n\t", "\ufffd"]:
        r = http.post("/proxies", json={"name": name, "upstream": echo.address, "enabled": False})
        assert r.status_code == 201, r.text
        path = "/proxies/" + quote(name, safe="")
        assert http.get(path).json()["name"] == name
        assert http.post(path + "/toxics", json={"name": name, "type": "noop"}).status_code == 200
        assert http.delete(path + "/toxics/" + quote(name, safe="")).status_code == 204
        assert http.delete(path).status_code == 204
    assert tp.proxies() == {}
