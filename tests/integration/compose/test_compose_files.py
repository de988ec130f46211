"""docker-compose.chaos.yml, its local override and chaosdrill.compose.toml agree, and validate with the Compose
implementation's own `config` (Debian's docker-compose 1.29); no Docker engine needed. The stack itself runs
in test_compose_stack.py (`make test-compose`)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from harness.config import load_config

ROOT = Path(__file__).resolve().parents[3]
BASE, LOCAL = ROOT / "docker-compose.chaos.yml", ROOT / "docker-compose.chaos.local.yml"
SERVICES = {"postgres", "redis", "toxiproxy", "s3", "app", "locust-master", "locust-worker"}

needs_compose = pytest.mark.skipif(shutil.which("docker-compose") is None,
                                   reason="docker-compose not installed (make deps installs Debian's)")


def compose(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["docker-compose", "-p", "chaosdrill", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env=env)


@needs_compose
def test_the_public_file_validates_and_publishes_on_loopback_only() -> None:
    proc = compose("-f", str(BASE), "config")
    assert proc.returncode == 0, proc.stderr
    doc = yaml.safe_load(proc.stdout)
    assert set(doc["services"]) == SERVICES
    assert set(doc["volumes"]) == {"pgdata", "redisdata", "s3data"}
    for name, svc in doc["services"].items():
        for port in svc.get("ports", []):  # compose 1.29 prints the short form: HOST_IP:HOST:CONTAINER/PROTO
            assert str(port).startswith("127.0.0.1:"), (name, port)
        if not name.startswith("locust"):
            assert "healthcheck" in svc, name
        else:
            assert svc["profiles"] == ["load"], name
    assert doc["services"]["toxiproxy"]["image"] == "ghcr.io/shopify/toxiproxy:2.12.0"
    assert doc["services"]["postgres"]["image"] == "postgres:15" and doc["services"]["redis"]["image"] == "redis:7"
    proxies = {p["name"]: p for p in json.loads((ROOT / "compose" / "toxiproxy.json").read_text())}
    assert proxies["postgres"]["upstream"] == "postgres:5432" and proxies["redis"]["upstream"] == "redis:6379"
    app = " ".join(doc["services"]["app"]["command"])
    assert "@toxiproxy:15433/" in app and "redis://toxiproxy:15380/" in app, "the app must go through the proxies"


@needs_compose
def test_the_local_override_runs_everything_on_host_networking_and_loopback(tmp_path) -> None:
    proc = subprocess.run([str(ROOT / "scripts" / "compose-local.sh"), "config"], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/local/bin:/usr/bin:/bin",
                                           "CHAOSDRILL_COMPOSE_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    doc = yaml.safe_load((tmp_path / "local.yml").read_text())
    assert set(doc["services"]) == SERVICES
    for name, svc in doc["services"].items():
        assert svc["network_mode"] == "host", name
        assert "ports" not in svc and "build" not in svc and "networks" not in svc, name
        assert svc["image"].startswith("chaosdrill-compose-"), name
        command = " ".join(map(str, svc.get("command", [])))
        assert "0.0.0.0" not in command, name
        for mount in svc.get("volumes", []):  # named volumes, or the checkout read-only
            assert not mount.startswith("/") or mount.endswith(":ro"), (name, mount)
    assert "networks" not in doc or not doc["networks"]
    for proxy in json.loads((ROOT / "compose" / "toxiproxy.local.json").read_text()):
        assert proxy["listen"].startswith("127.0.0.1:") and proxy["upstream"].startswith("127.0.0.1:"), proxy


def test_the_external_environment_names_the_stack() -> None:
    cfg = load_config(ROOT / "chaosdrill.compose.toml")
    assert cfg.environment.kind == "external"
    services = cfg.services
    doc = yaml.safe_load(BASE.read_text())["services"]
    containers = {svc["container_name"] for svc in doc.values()}
    for name in ("postgres", "redis"):
        assert services[name].proxy == name and services[name].container in containers
    proxies = {p["name"]: p["listen"].split(":")[1] for p in
               json.loads((ROOT / "compose" / "toxiproxy.local.json").read_text())}
    assert services["postgres"].endpoint() == ("127.0.0.1", int(proxies["postgres"]))
    assert services["redis"].endpoint() == ("127.0.0.1", int(proxies["redis"]))
    assert cfg.environment.external.toxiproxy_url == "http://127.0.0.1:15474"
    assert cfg.drill.repository.kind == "s3" and cfg.drill.repository.endpoint_url == "http://127.0.0.1:15900"
