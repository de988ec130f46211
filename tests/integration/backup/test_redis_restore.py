"""Redis backups on a real Redis 7: the key manifest is taken with the BGSAVE, a restored server is
checked against it, and after a restore AOF is on and the keys survive a restart (docs/recipes.md §3)."""

from __future__ import annotations

import subprocess
import time

import pytest
import redis

from resilience.backup import LocalRepository, RedisRdbEngine
from resilience.backup.catalog import BackupType
from resilience.backup.engines.redis_rdb import key_digest
from resilience.backup.runner import which


def fill(port: int) -> None:
    r = redis.Redis(port=port)
    r.mset({f"order:{i}": f'{{"id": {i}}}' for i in range(200)})
    r.expire("order:7", 300)
    r.hset("order:h", mapping={"a": "1", "b": "2"})
    r.rpush("order:l", "x", "y", "z")
    r.set("other", "not covered by the pattern")


def restart_with_aof(d, port: int) -> subprocess.Popen:
    """A redis-server on the same dir as production would run it: appendonly yes."""
    proc = subprocess.Popen([which("redis-server", "install redis-server"), "--port", str(port), "--bind",
                             "127.0.0.1", "--dir", str(d), "--dbfilename", "dump.rdb", "--appendonly", "yes",
                             "--save", "", "--daemonize", "no"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    r = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)
    deadline = time.monotonic() + 20
    while True:
        try:
            if r.ping() and not r.info("persistence")["loading"]:
                return proc
        except (redis.ConnectionError, redis.BusyLoadingError):
            pass
        assert time.monotonic() < deadline, "restarted redis-server never became ready"
        time.sleep(0.02)


@pytest.fixture
def backed_up(redis_server, scratch_dir):
    fill(redis_server.port)
    repo = LocalRepository(scratch_dir / "repo")
    repo.init()
    eng = RedisRdbEngine(port=redis_server.port, key_pattern="order:*")
    part = eng.backup(repo, "20260101-000000-000000F", BackupType.FULL, None)
    return repo, part


def test_manifest_is_taken_with_the_bgsave(backed_up, redis_server):
    repo, part = backed_up
    assert part.meta["keys"] == 202 and part.meta["key_pattern"] == "order:*"
    manifest = RedisRdbEngine.load_key_manifest(repo, part)
    assert "other" not in manifest and manifest["order:7"]["expire_at_ms"] > 0
    assert part.meta["keys_digest"] == key_digest(manifest) == key_digest(
        RedisRdbEngine.key_manifest(redis_server.port, "order:*"))
    assert {o.key for o in part.objects} == {part.meta["rdb"], part.meta["keys_manifest"]}


def test_restored_server_matches_and_tampering_is_caught(backed_up, scratch_dir):
    repo, part = backed_up
    restored = RedisRdbEngine.restore(repo, part, scratch_dir / "restored")
    try:
        ok = RedisRdbEngine.compare_keys(repo, part, restored.port)
        assert ok["passed"] and ok["keys_restored"] == ok["keys_at_backup"] == 202
        assert ok["digest_restored"] == ok["digest_at_backup"]
        r = redis.Redis(port=restored.port)
        r.delete("order:3")
        r.set("order:4", "tampered")
        r.rpush("order:l", "extra")
        r.set("order:new", "never backed up")
        bad = RedisRdbEngine.compare_keys(repo, part, restored.port)
        assert bad["passed"] is False
        assert bad["missing"] == ["order:3"] and bad["changed"] == ["order:4", "order:l"]
        assert bad["unexpected"] == ["order:new"] and bad["digest_restored"] != bad["digest_at_backup"]
    finally:
        restored.stop()


def test_after_restore_aof_is_on_and_keys_survive_a_restart(backed_up, scratch_dir):
    from resilience.backup.postgres import free_port

    repo, part = backed_up
    restored = RedisRdbEngine.restore(repo, part, scratch_dir / "restored")
    r = redis.Redis(port=restored.port)
    assert r.config_get("appendonly") == {"appendonly": "yes"}
    r.set("order:after-restore", "written after the restore")
    time.sleep(1.2)  # appendfsync everysec
    restored.process.kill()
    restored.process.wait(10)
    port = free_port()
    proc = restart_with_aof(restored.dir, port)
    try:
        again = redis.Redis(port=port)
        assert again.get("order:after-restore") == b"written after the restore"
        again.delete("order:after-restore")
        assert RedisRdbEngine.compare_keys(repo, part, port)["passed"]
    finally:
        proc.kill()
        proc.wait(10)


def test_the_aof_trap_is_real_without_enable_aof(backed_up, scratch_dir):
    """The control: restored with AOF left off, a restart with appendonly yes comes up EMPTY."""
    from resilience.backup.postgres import free_port

    repo, part = backed_up
    restored = RedisRdbEngine.restore(repo, part, scratch_dir / "restored", appendonly=False)
    restored.stop()
    port = free_port()
    proc = restart_with_aof(restored.dir, port)
    try:
        assert redis.Redis(port=port).dbsize() == 0
    finally:
        proc.kill()
        proc.wait(10)


@pytest.mark.parametrize("dies", [True, False])
def test_a_throwaway_redis_dies_with_a_sigkilled_harness(tmp_path, dies):
    """The redis-server that reads a backup's key manifest is spawned with PR_SET_PDEATHSIG: a harness
    SIGKILLed while it runs (no `finally` runs) leaves no server behind; a restored one (dies=False,
    a kept environment's) does outlive its parent, as it must."""
    import os
    import signal
    import sys

    script = ("import os, signal, sys\nfrom pathlib import Path\n"
              "from resilience.backup.engines.redis_rdb import RedisRdbEngine\n"
              f"s = RedisRdbEngine._serve(Path({str(tmp_path)!r}), None, die_with_parent={dies})\n"
              "print(s.process.pid, flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    pid = int(proc.stdout.split()[0])

    def alive() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        with open(f"/proc/{pid}/stat") as f:  # an unreaped zombie is dead too
            return f.read().split(") ")[1][0] != "Z"

    deadline = time.monotonic() + 5
    while alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert alive() is (not dies)
    finally:
        if alive():
            os.kill(pid, signal.SIGKILL)
