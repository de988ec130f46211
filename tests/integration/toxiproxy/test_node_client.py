"""A Toxiproxy client from another language, unchanged: npm's toxiproxy-node-client (written for the
real Go server) drives our embedded server through proxies, toxics, populate, reset and errors.

`make deps` installs the pinned client into .venv/npm when node is on the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

NODE = shutil.which("node")
CLIENT = Path(__file__).resolve().parents[3] / ".venv" / "npm" / "node_modules" / "toxiproxy-node-client"
SCRIPT = Path(__file__).with_name("node") / "conformance.js"

pytestmark = pytest.mark.skipif(NODE is None or not CLIENT.is_dir(),
                                reason="node or toxiproxy-node-client missing (make deps installs the client)")


def test_the_node_client_works_unchanged(toxiproxy_url, tp, echo) -> None:
    proc = subprocess.run([NODE, str(SCRIPT), toxiproxy_url, echo.address], capture_output=True, text=True,
                          timeout=60, env=os.environ | {"TOXIPROXY_NODE_CLIENT": str(CLIENT)})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["version"]
    assert out["created"]["name"] == "node_echo" and out["created"]["enabled"] is True
    assert out["direct"]["echoed"] == "ping"
    assert out["toxic"]["type"] == "latency" and out["toxic"]["attributes"]["latency"] == 200
    assert out["delayed"]["echoed"] == "ping" and out["delayed"]["ms"] >= 200
    assert out["updated"]["latency"] == 50 and out["fetched"]["latency"] == 50
    assert out["after_remove"]["echoed"] == "ping"
    assert out["disabled"] is False and out["refused"] is True
    assert out["populated"] == ["node_pop"]
    assert out["all"] == ["node_echo", "node_pop"]
    assert "no_such_proxy" in out["missing"] or "404" in out["missing"] or "not found" in out["missing"]
    assert out["left"] == []
