"""Hypothesis fuzz of the HTTP API: no crash, no 500 a real Toxiproxy would not give, no leaked listener.

Listen addresses are drawn from a fixed loopback-only list (plus malformed ones), so no fuzzed
request can bind anything but 127.0.0.1.
"""

from __future__ import annotations

import json
import os

import httpx
import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

NAMES = st.sampled_from(["a", "b", "c", "x y", "ü", "%2F", "a.b"])
TOXIC_NAMES = st.sampled_from(["t1", "t2", "latency_downstream", "timeout_upstream"])
LISTEN = st.sampled_from(
    [
        "127.0.0.1:0",
        "localhost:0",
        "",
        ":0",
        "127.0.0.1",
        "127.0.0.1:99999",
        "127.0.0.1:abc",
        "[::1",
        "1:2:3",
        "127.0.0.1:-1",
    ]
)
UPSTREAM = st.sampled_from(["127.0.0.1:9", "no-such-host.invalid:1", "", "x"])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), st.text(max_size=8)
)
ATTRS = st.dictionaries(
    st.sampled_from(
        ["latency", "jitter", "rate", "delay", "timeout", "bytes", "average_size", "size_variation", "zzz"]
    ),
    st.one_of(st.integers(-1000, 10**6), SCALARS),
    max_size=4,
)
PROXY_BODY = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(NAMES, SCALARS),
        "listen": st.one_of(LISTEN, SCALARS),
        "upstream": st.one_of(UPSTREAM, SCALARS),
        "enabled": st.one_of(st.booleans(), SCALARS),
    },
)
TOXIC_BODY = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(TOXIC_NAMES, SCALARS),
        "type": st.one_of(
            st.sampled_from(
                [
                    "latency",
                    "bandwidth",
                    "slow_close",
                    "timeout",
                    "reset_peer",
                    "slicer",
                    "limit_data",
                    "noop",
                    "nope",
                ]
            ),
            SCALARS,
        ),
        "stream": st.one_of(st.sampled_from(["upstream", "downstream", "UpStream", "side"]), SCALARS),
        "toxicity": st.one_of(st.floats(-2, 3), SCALARS),
        "attributes": st.one_of(ATTRS, SCALARS),
    },
)
BODY = st.one_of(
    PROXY_BODY.map(json.dumps),
    TOXIC_BODY.map(json.dumps),
    st.lists(PROXY_BODY, max_size=3).map(json.dumps),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
    st.just(""),
)


def _path(draw_name: str, toxic: str, kind: int) -> str:
    return [
        "/proxies",
        f"/proxies/{draw_name}",
        f"/proxies/{draw_name}/toxics",
        f"/proxies/{draw_name}/toxics/{toxic}",
        "/populate",
        "/reset",
        "/version",
        "/toxics",
    ][kind]


CALLS = st.lists(
    st.tuples(
        st.sampled_from(["GET", "POST", "PATCH", "DELETE", "PUT"]),
        NAMES,
        TOXIC_NAMES,
        st.integers(0, 7),
        BODY,
    ),
    min_size=1,
    max_size=8,
)


def _listeners() -> int:
    return sum(
        1 for c in psutil.Process(os.getpid()).net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN
    )


@pytest.fixture(scope="module")
def api(toxiproxy_url):
    with httpx.Client(base_url=toxiproxy_url, timeout=10) as client:
        yield client


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(calls=CALLS)
def test_fuzz_api(api, calls):
    from urllib.parse import quote

    baseline = _listeners()
    try:
        for method, name, toxic, kind, body in calls:
            path = _path(quote(name, safe="%"), toxic, kind)
            r = api.request(method, path, content=body.encode("utf-8", "surrogatepass"))
            assert r.status_code in {200, 201, 204, 301, 400, 403, 404, 405, 409, 500}, (
                method,
                path,
                body,
                r.status_code,
            )
            if r.status_code == 500:
                error = r.json()["error"]
                assert error.startswith("listen tcp"), (
                    method,
                    path,
                    body,
                    error,
                )
            if r.status_code in (200, 201) and path != "/version":
                json.loads(r.text)
        proxies = api.get("/proxies").json()
        enabled = sum(1 for p in proxies.values() if p["enabled"])
        if not os.environ.get("TOXIPROXY_URL"):
            assert _listeners() == baseline + enabled, proxies
    finally:
        for name in api.get("/proxies").json():
            api.delete("/proxies/" + quote(name, safe=""))
    if not os.environ.get("TOXIPROXY_URL"):
        assert _listeners() == baseline
