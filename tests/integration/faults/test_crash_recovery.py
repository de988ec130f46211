"""SIGKILL a harness at random points while faults are active; recover_leftovers() must undo them all.

The child (crash_child.py, forked from a zygote so a kill cycle costs no Python start-up) pauses a
real Redis, kills another one (restarted from its recipe by cleanup), adds toxics and disables a
proxy on the embedded Toxiproxy server, partitions loopback ports with nft and with iptables (with
rights), and pauses, stops and kills a container each (no Docker engine: the test skips, saying why). After each kill we
first check that something was left behind (so the test would notice an undo that does nothing),
then run cleanup and check that nothing of it remains.
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

from harness.env.ports import free_port
from harness.env.procs import kill_tree, strays, wait_gone
from harness.env.servers import RedisServer
from harness.faults import Journal, recover_leftovers
from harness.faults.firewall import chaosdrill_nft_tables, find_tool, has_net_admin
from harness.toxiproxy.client import ToxiproxyClient
from harness.toxiproxy.server import ThreadedToxiproxyServer
from tests.integration.faults.conftest import run_redis_container
from tests.integration.faults.helpers import redis_ping

ROOT = Path(__file__).resolve().parents[3]
MIN_DIRTY_KILLS = 20  # kills that left journalled faults behind
MAX_KILLS = 40


@pytest.fixture
def toxiproxy_url():
    """The embedded Toxiproxy's URL (its toxics and disabled proxies are among the faults killed)."""
    with ThreadedToxiproxyServer(port=0) as server:
        yield server.url


def iptables_rules(port: int) -> list[str]:
    """Our tagged iptables rules on `port` (other sessions' rules on other ports are not ours to see)."""
    out = subprocess.run([find_tool("iptables") or "iptables", "-S", "INPUT"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "chaosdrill-" in line and f"--dport {port} " in line]


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

    def __init__(self, client: ToxiproxyClient, redis_pid: int, proxies: list[str], containers: list,
                 kill_port: int, iptables_port: int | None) -> None:
        self.client, self.redis_pid, self.proxies, self.containers = client, redis_pid, proxies, containers
        self.kill_port, self.iptables_port = kill_port, iptables_port

    def __call__(self) -> list[str]:
        found = []
        if psutil.Process(self.redis_pid).status() == psutil.STATUS_STOPPED:
            found.append(f"redis pid {self.redis_pid} stopped")
        if not redis_ping(self.kill_port):
            found.append(f"killed redis not answering on 127.0.0.1:{self.kill_port}")
        if self.iptables_port is not None:
            found += [f"iptables rule {rule}" for rule in iptables_rules(self.iptables_port)]
        for name in self.proxies:
            proxy = self.client.get_proxy(name)
            found += [f"toxic {t.name} on {name}" for t in proxy.toxics]
            if not proxy.enabled:
                found.append(f"proxy {name} disabled")
        found += [f"nft table {t}" for t in chaosdrill_nft_tables()] if has_net_admin() else []
        for container in self.containers:
            container.reload()
            if container.status != "running":
                found.append(f"container {container.name} {container.status}")
        return found


@pytest.fixture
def killable_redis(scratch_dir):
    """A Redis that the child kills and cleanup restarts from its recipe; every incarnation is stopped after."""
    server = RedisServer(scratch_dir / "redis-kill")
    server.start()
    yield server
    pids = []
    for pid in strays(str(server.base)):
        pids += kill_tree(pid)
    wait_gone(pids)


def test_sigkill_at_random_points_leaves_nothing_after_cleanup(redis_server, killable_redis, docker_engine,
                                                               toxiproxy_url, tmp_path):
    state = tmp_path / "state"
    kinds = ("pause", "stop", "kill")
    # No engine: the test skips, naming why (docker_engine), rather than silently leaving containers out.
    containers = [run_redis_container(docker_engine, f"crash-{k}") for k in kinds]
    firewall = has_net_admin()
    iptables_port = free_port() if firewall and find_tool("iptables") else None
    rng = random.Random()
    env = {**os.environ, "CHAOSDRILL_STATE_DIR": str(state)}
    zygote = subprocess.Popen([sys.executable, "-m", "tests.integration.faults.crash_child"], cwd=ROOT, env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        with contextlib.ExitStack() as stack:
            client = stack.enter_context(ToxiproxyClient(toxiproxy_url))
            upstream = f"127.0.0.1:{redis_server.port}"
            proxies = [client.create_proxy(n, upstream=upstream).name for n in ("crash_toxic", "crash_down")]
            leftovers = Leftovers(client, redis_server.pid, proxies, containers, killable_redis.port, iptables_port)
            cfg = {"pause_pid": redis_server.pid, "api": toxiproxy_url,
                   "toxic_proxy": proxies[0], "down_proxy": proxies[1],
                   "kill": {"argv": killable_redis.argv(), "cwd": str(killable_redis.base),
                            "port": killable_redis.port},
                   "nft_port": redis_server.port if firewall else None, "iptables_port": iptables_port,
                   "containers": {}}
            assert leftovers() == [], "nothing is in effect before the first kill"
            dirty, report = 0, []
            i = -1
            while dirty < MIN_DIRTY_KILLS and i + 1 < MAX_KILLS:
                i += 1
                cfg["seed"] = rng.randrange(2**32)
                # Container faults cost the most (vfs start/stop): each is in about half of the kills.
                cfg["containers"] = {k: c.name for k, c in zip(kinds, containers, strict=True) if rng.random() < 0.5}
                zygote.stdin.write(json.dumps(cfg) + "\n")
                zygote.stdin.flush()
                # Children share the zygote's stdout: a killed child's last "<pid> active/cleared"
                # may still be in the pipe. Skip those; the next line of the zygote itself is "pid N".
                line = zygote.stdout.readline().split()
                while line[:1] != ["pid"] and len(line) == 2 and line[0].isdigit():
                    line = zygote.stdout.readline().split()
                assert line[:1] == ["pid"], f"zygote said {line}"
                child = int(line[1])
                try:
                    # Most kills land after the first full apply (while held, reverting or re-applying);
                    # every fourth lands anywhere from start-up on, mid-apply included.
                    if i % 4 != 3:
                        assert wait_line(zygote, f"{child} active", 60), f"kill {i}: the child never got all faults active"
                        time.sleep(rng.uniform(0, 0.15))
                    else:
                        time.sleep(rng.uniform(0, 0.6))
                finally:
                    os.kill(child, signal.SIGKILL)
                    wait_gone([child])
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
            undone = " ".join(line for r in report for line in r[3])
            hit = ["KillProcess(redis-kill)", "PauseProcess"]
            hit += ["nft table", "iptables rule(s)"] if iptables_port is not None else ["nft table"] if firewall else []
            hit += ["PauseContainer", "StopContainer", "KillContainer", "LatencyToxic", "ProxyDown"]
            missed = [kind for kind in hit if kind not in undone]
            assert not missed, f"no crash left {missed} to undo: {report}"
            for name in proxies:
                client.delete_proxy(name)
    finally:
        zygote.kill()
        zygote.wait()
        for container in containers:
            container.remove(force=True)
    assert psutil.Process(redis_server.pid).status() != psutil.STATUS_STOPPED
