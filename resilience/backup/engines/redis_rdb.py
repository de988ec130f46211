"""Redis snapshots: BGSAVE → dump.rdb → repository; restore into a new directory.

Restore avoids the AOF trap (RECIPES.md §2): a Redis 7 started with `--appendonly yes` and no
appendonlydir ignores dump.rdb and comes up EMPTY. So the restored server starts with
`appendonly no`, loads the RDB, and only then `CONFIG SET appendonly yes` rewrites the AOF
from memory.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from resilience.backup.catalog import BackupPart, BackupType
from resilience.backup.errors import EngineError, RepositoryCorrupt
from resilience.backup.repository import Repository, sha256_file
from resilience.backup.runner import which
from resilience.backup.targets import require_empty_dir

LOOPBACK = "127.0.0.1"


def _client(host: str, port: int, password: str | None = None, timeout: float = 5) -> redis.Redis:
    """Bounded client: redis-py's default retries hide faults for minutes (RECIPES §7)."""
    return redis.Redis(host=host, port=port, password=password, socket_timeout=timeout,
                       socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0))


@dataclass
class RestoredRedis:
    """A redis-server we started on a restored RDB; `stop()` it when the drill is done."""

    port: int
    dir: Path
    keys: int
    process: subprocess.Popen = field(repr=False)

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(10)


class RedisRdbEngine:
    """Snapshots one Redis server (always full: an RDB has no increments)."""

    kind = "redis"
    engine = "redis_rdb"

    def __init__(self, host: str = LOOPBACK, port: int = 6379, password: str | None = None,
                 name: str = "redis", timeout_s: float = 300) -> None:
        self.host, self.port, self.password, self.name, self.timeout_s = host, port, password, name, timeout_s

    def __repr__(self) -> str:
        return f"RedisRdbEngine({self.host}:{self.port})"

    def _redis_error(self, exc: Exception, what: str) -> EngineError:
        return EngineError(f"redis {self.host}:{self.port}: {what} failed: {exc}")

    def snapshot(self) -> Path:
        """BGSAVE and wait for it; returns the path of the fresh dump.rdb."""
        r = _client(self.host, self.port, self.password)
        try:
            saves = r.info("persistence")["rdb_saves"]
            deadline = time.monotonic() + self.timeout_s
            while True:
                try:
                    r.bgsave()
                    break
                except redis.ResponseError as exc:  # a save already running: wait, then ask again
                    if "in progress" not in str(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            while True:
                info = r.info("persistence")
                if info["rdb_saves"] > saves and not info["rdb_bgsave_in_progress"]:
                    break
                if time.monotonic() > deadline:
                    raise EngineError(f"redis {self.host}:{self.port}: BGSAVE still running after {self.timeout_s:.0f} s")
                time.sleep(0.02)
            if info["rdb_last_bgsave_status"] != "ok":
                raise EngineError(f"redis {self.host}:{self.port}: BGSAVE failed; see the Redis log")
            rdb = Path(r.config_get("dir")["dir"]) / r.config_get("dbfilename")["dbfilename"]
        except redis.RedisError as exc:
            raise self._redis_error(exc, "BGSAVE") from exc
        finally:
            r.close()
        return rdb

    def backup(self, repo: Repository, set_id: str, type_: BackupType, base: BackupPart | None) -> BackupPart:
        """A full RDB every time; `type_` and `base` are accepted so all engines share one call."""
        rdb = self.snapshot()
        with tempfile.TemporaryDirectory() as tmp:  # copy first: the next BGSAVE may replace it mid-upload
            copy = Path(tmp) / "dump.rdb"
            copy.write_bytes(rdb.read_bytes())
            ref = repo.put_file(f"sets/{set_id}/{self.name}/dump.rdb", copy)
        return BackupPart(kind=self.kind, name=self.name, engine=self.engine, objects=(ref,), size=ref.size,
                          source_size=ref.size, meta={"rdb": ref.key, "source": f"{self.host}:{self.port}"})

    @staticmethod
    def fetch(repo: Repository, part: BackupPart, target: Path) -> Path:
        """Fetch-only restore: put the set's RDB as `dump.rdb` into an empty `target` dir and return it.

        For callers that start Redis themselves (a drill's fresh environment): a redis-server
        started there with `appendonly no` and the default dbfilename loads it.
        """
        target = require_empty_dir(target)
        dest = target / "dump.rdb"
        repo.get_file(part.meta["rdb"], dest)
        ref = next((o for o in part.objects if o.key == part.meta["rdb"]), None)
        if ref is not None and sha256_file(dest)[0] != ref.sha256:
            raise RepositoryCorrupt(f"{repo.describe()}: {ref.key} does not match its recorded SHA-256")
        return dest

    @staticmethod
    def restore(repo: Repository, part: BackupPart, target: Path, port: int | None = None,
                appendonly: bool = True, timeout: float = 120) -> RestoredRedis:
        """Start a new redis-server on the RDB in an empty `target` dir, on a loopback port."""
        from resilience.backup.postgres import free_port

        binary = which("redis-server", "install redis-server")
        target = RedisRdbEngine.fetch(repo, part, target).parent
        port = port or free_port()
        args = [binary, "--port", str(port), "--bind", LOOPBACK, "--dir", str(target), "--dbfilename", "dump.rdb",
                "--daemonize", "no", "--save", "", "--appendonly", "no", "--logfile", str(target / "redis.log")]
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        r = _client(LOOPBACK, port, timeout=1)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if proc.poll() is not None:
                    raise EngineError(f"restored redis-server exited {proc.returncode}; see {target / 'redis.log'}")
                try:
                    if r.ping() and not r.info("persistence")["loading"]:
                        break
                except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                    pass
                if time.monotonic() > deadline:
                    raise EngineError(f"restored redis on {LOOPBACK}:{port} not ready after {timeout:.0f} s")
                time.sleep(0.01)
            if appendonly:
                r.config_set("appendonly", "yes")
            keys = r.dbsize()
        except Exception:
            proc.kill()
            proc.wait(10)
            raise
        finally:
            r.close()
        return RestoredRedis(port=port, dir=target, keys=keys, process=proc)
