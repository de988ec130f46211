"""ExternalEnvironment from [services]: endpoints, proxies, containers, allow-list; a dead app is one line."""

from __future__ import annotations

import socket

import pytest

from harness.config import parse_config
from harness.env.external import ExternalEnvironment
from harness.errors import EnvironmentStartError, FaultRefused, HarnessError

STACK = {
    "environment": {"kind": "external", "external": {"app": "web", "toxiproxy_url": "http://127.0.0.1:8474",
                                                     "ready_timeout": "300ms"}},
    "load": {"enabled": False},
    "probes": {"web_health": {"service": "web", "path": "/healthz"}},
    "services": {
        "web": {"kind": "http", "url": "http://127.0.0.1:18080/"},
        "db": {"kind": "postgres", "address": "127.0.0.1:15432", "proxy": "db_proxy", "container": "pg-1"},
        "cache": {"kind": "redis", "address": "localhost:16379"},
    },
}


def test_endpoints_proxies_and_containers_come_from_services() -> None:
    env = ExternalEnvironment(parse_config(STACK))
    assert env.app_url == "http://127.0.0.1:18080"
    assert {n: e.address for n, e in env.endpoints.items()} == {
        "web": "127.0.0.1:18080", "db": "127.0.0.1:15432", "cache": "localhost:16379"}
    assert env.proxy_for("db") == "db_proxy" and env.proxy_for("cache") is None
    assert env.container_for("db") == "pg-1" and env.container_for("web") is None
    assert env.services == {} and env.app is None
    assert env.state()["kind"] == "external" and env.state()["services"]["db"]["proxy"] == "db_proxy"


def test_allow_list_admits_exactly_the_configured_endpoints_and_containers() -> None:
    allow = ExternalEnvironment(parse_config(STACK)).allow_list()
    allow.check_endpoint("127.0.0.1", 15432, "fault")
    allow.check_endpoint("::1", 16379, "fault")  # loopback names are one host
    with pytest.raises(FaultRefused, match="127.0.0.1:5432 is not in the environment"):
        allow.check_endpoint("127.0.0.1", 5432, "fault")
    allow.check_container(["pg-1"], "fault")
    with pytest.raises(FaultRefused, match="container other is not in the environment"):
        allow.check_container(["other"], "fault")


def test_the_id_is_stable_for_the_same_services() -> None:
    assert ExternalEnvironment(parse_config(STACK)).id == ExternalEnvironment(parse_config(STACK)).id


def test_an_app_that_does_not_answer_is_one_line() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = parse_config(STACK | {"services": STACK["services"] | {"web": {"kind": "http",
                                                                          "url": f"http://127.0.0.1:{port}"}}})
    with pytest.raises(EnvironmentStartError, match=rf"services.web: http://127.0.0.1:{port} did not answer within 0.3 s"):
        ExternalEnvironment(cfg).up()


def test_no_fresh_copy_and_no_toxiproxy_without_a_url() -> None:
    cfg = parse_config(STACK | {"environment": {"kind": "external", "external": {"app": "web"}},
                                "services": {"web": STACK["services"]["web"]}})
    env = ExternalEnvironment(cfg)
    with pytest.raises(EnvironmentStartError, match="set environment.external.toxiproxy_url"):
        _ = env.toxiproxy_url
    with pytest.raises(HarnessError, match="DR drills restore into the local environment"):
        env.fresh()
