"""The embedded server's own surface: metrics flag, --config file, start errors, threaded lifecycle."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from harness.errors import ConfigError, EnvironmentStartError
from harness.toxiproxy import ToxiproxyClient
from harness.toxiproxy.server import ThreadedToxiproxyServer
from tests.integration.toxiproxy.conftest import connect, recv_all


def test_metrics_names_and_labels_like_upstream(echo):
    with ThreadedToxiproxyServer(metrics=True) as server, ToxiproxyClient(server.url) as tp:
        p = tp.create_proxy("m", upstream=echo.address)
        s = connect(p)
        s.sendall(b"hello")
        assert recv_all(s, 5) == b"hello"
        s.close()
        r = httpx.get(server.url + "/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        assert re.search(
            r'toxiproxy_proxy_received_bytes_total\{direction="upstream",listener="127\.0\.0\.1:\d+",proxy="m",upstream="[^"]+"\} 5',
            r.text,
        )
        assert "# TYPE toxiproxy_proxy_sent_bytes_total counter" in r.text
        assert "process_cpu_seconds_total" in r.text


def test_config_file_populates_at_start(tmp_path, echo):
    cfg = tmp_path / "toxiproxy.json"
    cfg.write_text(json.dumps([{"name": "c1", "listen": "127.0.0.1:0", "upstream": echo.address}]))
    with ThreadedToxiproxyServer(config_path=cfg) as server, ToxiproxyClient(server.url) as tp:
        p = tp.get_proxy("c1")
        s = connect(p)
        s.sendall(b"hi")
        assert recv_all(s, 2) == b"hi"
        s.close()


def test_bad_config_and_port_in_use_are_one_line_errors(tmp_path):
    cfg = tmp_path / "bad.json"
    cfg.write_text('[{"name": "x"}]')
    with pytest.raises(ConfigError, match="missing required field: upstream at proxy 1"):
        ThreadedToxiproxyServer(config_path=cfg).start()
    with (
        ThreadedToxiproxyServer() as server,
        pytest.raises(EnvironmentStartError, match="address already in use"),
    ):
        ThreadedToxiproxyServer(port=server.port).start()
