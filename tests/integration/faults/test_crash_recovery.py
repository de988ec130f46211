"""SIGKILL a harness at random points while faults are active; recover_leftovers() must undo them all.

The child (crash_child.py) pauses a real Redis, adds toxics and disables a proxy on the embedded
Toxiproxy server, partitions a loopback port with nft (with rights) and pauses a container (when an
engine runs). After each kill we first check that something was left behind (so the test would
notice an undo that does nothing), then run cleanup and check that nothing of it remains.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from harness.faults import Journal, recover_leftovers
from harness.faults.firewall import chaosdrill_nft_tables, has_net_admin
from harness.toxiproxy.client import ToxiproxyClient
from tests.integration.faults.conftest import run_redis_container

ROOT = Path(__file__).resolve().parents[3]
MIN_DIRTY_KILLS = 20  # kills that left journalled faults behind
MAX_KILLS = 40


@pytest.fixture
def toxiproxy_url():
    """The embedded Toxiproxy's URL, or None where that server is not in the tree (network faults left out)."""
    try:
        from harness.toxiproxy.server import ThreadedToxiproxyServer
    except ImportError:
        yield None
        return
    with ThreadedToxiproxyServer(port=0) as server:
        yield server.url


@pytest.fixture
def maybe_docker(request):
    """The Docker client when an engine can be had, else None (the rest of the test still runs)."""
    try:
        return request.getfixturevalue("docker_engine")
    except pytest.skip.Exception:
        return None


def wait_line(proc: subprocess.Popen, want: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.05)
        if ready:
            line = proc.stdout.readline()
            if not line:
                return False
            if line.strip() == want:
                return True
        elif proc.poll() is not None:
            return False
    return False


class Leftovers:
    """What of the child's faults is in effect right now, one phrase per fault."""

    def __init__(self, client: ToxiproxyClient | None, redis_pid: int, proxies: list[str], container) -> None:
        self.client, self.redis_pid, self.proxies, self.container = client, redis_pid, proxies, container

    def __call__(self) -> list[str]:
        found = []
        if psutil.Process(self.redis_pid).status() == psutil.STATUS_STOPPED:
            found.append(f"redis pid {self.redis_pid} stopped")
        for name in self.proxies:
            proxy = self.client.get_proxy(name)
            found += [f"toxic {t.name} on {name}" for t in proxy.toxics]
            if not proxy.enabled:
                found.append(f"proxy {name} disabled")
        found += [f"nft table {t}" for t in chaosdrill_nft_tables()] if has_net_admin() else []
        if self.container is not None:
            self.container.reload()
            if self.container.status != "running":
                found.append(f"container {self.container.name} {self.container.status}")
        return found


def test_sigkill_at_random_points_leaves_nothing_after_cleanup(redis_server, maybe_docker, toxiproxy_url,
                                                               tmp_path):
    state = tmp_path / "state"
    container = run_redis_container(maybe_docker, "crash") if maybe_docker is not None else None
    rng = random.Random()
    try:
        with contextlib.ExitStack() as stack:
            client, proxies = None, []
            if toxiproxy_url is not None:
                client = stack.enter_context(ToxiproxyClient(toxiproxy_url))
                upstream = f"127.0.0.1:{redis_server.port}"
                proxies = [client.create_proxy(n, upstream=upstream).name for n in ("crash_toxic", "crash_down")]
            leftovers = Leftovers(client, redis_server.pid, proxies, container)
            cfg = {"pause_pid": redis_server.pid, "api": toxiproxy_url,
                   "toxic_proxy": proxies[0] if proxies else None, "down_proxy": proxies[1] if proxies else None, "nft_port": redis_server.port if has_net_admin() else None,
                   "container": container.name if container is not None else None}
            env = {**os.environ, "CHAOSDRILL_STATE_DIR": str(state)}
            dirty, report = 0, []
            i = -1
            while dirty < MIN_DIRTY_KILLS and i + 1 < MAX_KILLS:
                i += 1
                cfg["seed"] = rng.randrange(2**32)
                child = subprocess.Popen([sys.executable, "-m", "tests.integration.faults.crash_child",
                                          json.dumps(cfg)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
                try:
                    # Most kills land after the first full apply (while held, reverting or re-applying);
                    # every fourth lands anywhere from start-up on, mid-apply included.
                    if i % 4 != 3:
                        assert wait_line(child, "active", 60), f"kill {i}: the child never got all faults active"
                        time.sleep(rng.uniform(0, 0.15))
                    else:
                        time.sleep(rng.uniform(0.3, 1.5))
                finally:
                    child.send_signal(signal.SIGKILL)
                    child.wait()
                    child.stdout.close()
                before = leftovers()
                entries = Journal.in_state_dir(state).ids()
                if entries:
                    dirty += 1
                lines = recover_leftovers(state)
                after = leftovers()
                report.append((i, len(entries), before, lines))
                assert not [line for line in lines if not line.startswith("undone ")], (i, lines)
                assert after == [], f"kill {i}: left after cleanup: {after}; cleanup said: {lines}"
                assert Journal.in_state_dir(state).ids() == []
                assert len(lines) == len(entries)
                # Whatever was in effect must have had a journal entry to undo it.
                assert not before or entries, f"kill {i}: effects without journal entries: {before}"
            assert dirty >= MIN_DIRTY_KILLS, f"only {dirty} of {i + 1} kills hit active faults: {report}"
            assert sum(1 for r in report if r[2]) >= MIN_DIRTY_KILLS // 2, report
            for name in proxies:
                client.delete_proxy(name)
    finally:
        if container is not None:
            container.remove(force=True)
    assert psutil.Process(redis_server.pid).status() != psutil.STATUS_STOPPED
