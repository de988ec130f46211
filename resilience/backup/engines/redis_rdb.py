"""Redis snapshots: BGSAVE → dump.rdb → repository; restore into a new directory.

Restore avoids the AOF trap (docs/recipes.md, section 3): a Redis 7 started with `--appendonly yes` and no
appendonlydir ignores dump.rdb and comes up EMPTY. So the restored server starts with
`appendonly no`, loads the RDB, and only then `CONFIG SET appendonly yes` rewrites the AOF
from memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
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
from resilience.backup.runner import die_with_parent as die_with_parent_fn
from resilience.backup.runner import which
from resilience.backup.targets import require_empty_dir

LOOPBACK = "127.0.0.1"
EXPIRY_SLACK_MS = 2000  # keys expiring this close to the check are not counted either way

# key → {type, SHA-1 of a canonical value, PEXPIRETIME}; sorted by key. Atomic (a script), so
# inside MULTI before BGSAVE it sees what the fork saves.
KEYS_LUA = """
local out = {}
local keys = redis.call('KEYS', ARGV[1])
table.sort(keys)
local function sorted_concat(t) table.sort(t); return table.concat(t, '\\n') end
for _, k in ipairs(keys) do
  local t = redis.call('TYPE', k)['ok']
  local v = ''
  if t == 'string' then v = redis.call('GET', k)
  elseif t == 'hash' then
    local h, ps = redis.call('HGETALL', k), {}
    for i = 1, #h, 2 do ps[#ps + 1] = h[i] .. '\\0' .. h[i + 1] end
    v = sorted_concat(ps)
  elseif t == 'list' then v = table.concat(redis.call('LRANGE', k, 0, -1), '\\n')
  elseif t == 'set' then v = sorted_concat(redis.call('SMEMBERS', k))
  elseif t == 'zset' then
    local z, ps = redis.call('ZRANGE', k, 0, -1, 'WITHSCORES'), {}
    for i = 1, #z, 2 do ps[#ps + 1] = z[i] .. '\\0' .. z[i + 1] end
    v = sorted_concat(ps)
  end
  out[#out + 1] = {k, t, redis.sha1hex(v), redis.call('PEXPIRETIME', k)}
end
return out
"""


def _decode(b) -> str:
    return b.decode() if isinstance(b, bytes) else str(b)


def parse_key_rows(rows: list) -> dict[str, dict]:
    """KEYS_LUA's reply as {key: {"type", "sha1", "expire_at_ms"}} (-1 = no expiry)."""
    return {_decode(k): {"type": _decode(t), "sha1": _decode(h), "expire_at_ms": int(e)} for k, t, h, e in rows}


def key_digest(manifest: dict[str, dict]) -> str:
    """One SHA-256 over the sorted key manifest (type and value hash; expiry left out)."""
    text = "".join(f"{k}\0{e['type']}\0{e['sha1']}\n" for k, e in sorted(manifest.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def diff_key_manifests(expected: dict[str, dict], restored: dict[str, dict], now_ms: int,
                       slack_ms: int = EXPIRY_SLACK_MS) -> dict[str, list[str]]:
    """missing / changed / unexpected keys of `restored` against the backup's `expected`.

    Keys that had expired by `now_ms` are not expected any more (Redis drops them on load),
    and keys within `slack_ms` of their expiry are ignored both ways.
    """
    def live(e: dict) -> bool | None:
        exp = e["expire_at_ms"]
        if exp < 0 or exp > now_ms + slack_ms:
            return True
        return False if exp < now_ms - slack_ms else None  # None: too close to call

    missing, changed, unexpected = [], [], []
    for key, e in sorted(expected.items()):
        state = live(e)
        got = restored.get(key)
        if got is None:
            if state:
                missing.append(key)
        elif state is not None and (got["type"], got["sha1"]) != (e["type"], e["sha1"]):
            changed.append(key)
    for key in sorted(set(restored) - set(expected)):
        unexpected.append(key)
    return {"missing": missing, "changed": changed, "unexpected": unexpected}


def _client(host: str, port: int, password: str | None = None, timeout: float = 5) -> redis.Redis:
    """Bounded client: redis-py's default retries hide faults for minutes (docs/recipes.md, section 6)."""
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
                 name: str = "redis", timeout_s: float = 300, key_pattern: str | None = "*") -> None:
        """`key_pattern`: which keys the manifest covers (None: none; the script blocks Redis
        while it reads them, so narrow it on a large server)."""
        self.host, self.port, self.password, self.name, self.timeout_s = host, port, password, name, timeout_s
        self.key_pattern = key_pattern

    def __repr__(self) -> str:
        return f"RedisRdbEngine({self.host}:{self.port})"

    def _redis_error(self, exc: Exception, what: str) -> EngineError:
        return EngineError(f"redis {self.host}:{self.port}: {what} failed: {exc}")

    def snapshot(self) -> Path:
        """BGSAVE and wait for it; returns the path of the fresh dump.rdb."""
        return self.snapshot_with_keys()[0]

    def snapshot_with_keys(self) -> tuple[Path, dict[str, dict] | None]:
        """BGSAVE and wait for it; the key manifest is taken in the same MULTI/EXEC, just before."""
        r = _client(self.host, self.port, self.password)
        manifest = None
        try:
            saves = r.info("persistence")["rdb_saves"]
            deadline = time.monotonic() + self.timeout_s
            while True:
                try:
                    if self.key_pattern is None:
                        r.bgsave()
                    else:
                        pipe = r.pipeline(transaction=True)
                        pipe.eval(KEYS_LUA, 0, self.key_pattern)
                        pipe.bgsave()
                        rows, _ = pipe.execute()
                        manifest = parse_key_rows(rows)
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
        return rdb, manifest

    def backup(self, repo: Repository, set_id: str, type_: BackupType, base: BackupPart | None) -> BackupPart:
        """A full RDB every time; `type_` and `base` are accepted so all engines share one call."""
        rdb, manifest = self.snapshot_with_keys()
        with tempfile.TemporaryDirectory() as tmp:  # copy first: the next BGSAVE may replace it mid-upload
            copy = Path(tmp) / "dump.rdb"
            copy.write_bytes(rdb.read_bytes())
            if manifest is not None:
                # The manifest taken with the BGSAVE could miss a key written at that instant (seen in
                # drills: the stored RDB held one key more), so it describes the bytes stored instead.
                manifest = self._manifest_of(copy)
            ref = repo.put_file(f"sets/{set_id}/{self.name}/dump.rdb", copy)
        refs = [ref]
        meta = {"rdb": ref.key, "source": f"{self.host}:{self.port}"}
        if manifest is not None:
            keys_ref = repo.put_bytes(f"sets/{set_id}/{self.name}/keys.json",
                                      json.dumps(manifest, sort_keys=True).encode())
            refs.append(keys_ref)
            meta |= {"key_pattern": self.key_pattern, "keys": len(manifest), "keys_digest": key_digest(manifest),
                     "keys_manifest": keys_ref.key}
        return BackupPart(kind=self.kind, name=self.name, engine=self.engine, objects=tuple(refs),
                          size=sum(o.size for o in refs), source_size=ref.size, meta=meta)

    def _manifest_of(self, rdb: Path) -> dict[str, dict]:
        """KEYS_LUA over exactly these RDB bytes: loaded by a throwaway redis-server on a loopback port."""
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copyfile(rdb, Path(tmp) / "dump.rdb")
            server = RedisRdbEngine._serve(Path(tmp), None, timeout=self.timeout_s, die_with_parent=True)
            r = _client(LOOPBACK, server.port, timeout=self.timeout_s)
            try:
                return parse_key_rows(r.eval(KEYS_LUA, 0, self.key_pattern))
            except redis.RedisError as exc:
                raise self._redis_error(exc, "reading the key manifest of the RDB") from exc
            finally:
                r.close()
                server.process.kill()
                server.process.wait(10)

    @staticmethod
    def load_key_manifest(repo: Repository, part: BackupPart) -> dict[str, dict]:
        """The part's key manifest, checked against the SHA-256 the catalog recorded."""
        key = part.meta.get("keys_manifest")
        if not key:
            raise EngineError(f"{part.name}: this backup has no key manifest (taken with key_pattern=None)")
        data = repo.get_bytes(key)
        recorded = {o.key: o.sha256 for o in part.objects}.get(key)
        if recorded and hashlib.sha256(data).hexdigest() != recorded:
            raise RepositoryCorrupt(f"{repo.describe()}: {key} does not match its recorded SHA-256")
        return json.loads(data)

    @staticmethod
    def key_manifest(port: int, pattern: str = "*", host: str = LOOPBACK, password: str | None = None) -> dict:
        """The live manifest of a (restored) server, same script as at backup time."""
        r = _client(host, port, password)
        try:
            return parse_key_rows(r.eval(KEYS_LUA, 0, pattern))
        except redis.RedisError as exc:
            raise EngineError(f"redis {host}:{port}: key manifest failed: {exc}") from exc
        finally:
            r.close()

    @classmethod
    def compare_keys(cls, repo: Repository, part: BackupPart, port: int, host: str = LOOPBACK) -> dict:
        """A restored server against the backup's manifest: counts, digests, missing/changed/unexpected."""
        expected = cls.load_key_manifest(repo, part)
        restored = cls.key_manifest(port, part.meta.get("key_pattern", "*"), host)
        diff = diff_key_manifests(expected, restored, int(time.time() * 1000))
        return {"passed": not any(diff.values()), "keys_at_backup": len(expected), "keys_restored": len(restored),
                "digest_at_backup": part.meta.get("keys_digest"), "digest_restored": key_digest(restored),
                **{k: v[:20] for k, v in diff.items()}}

    @staticmethod
    def enable_aof(port: int, host: str = LOOPBACK, timeout: float = 60) -> dict:
        """`CONFIG SET appendonly yes` on a server that loaded an RDB, and wait for the AOF rewrite.

        Only then does a restart with `--appendonly yes` come back with the keys (docs/recipes.md, section 3).
        """
        r = _client(host, port, timeout=5)
        try:
            r.config_set("appendonly", "yes")
            deadline = time.monotonic() + timeout
            while True:
                info = r.info("persistence")
                if (info.get("aof_enabled") and not info.get("aof_rewrite_in_progress")
                        and not info.get("aof_rewrite_scheduled")):
                    break
                if time.monotonic() > deadline:
                    raise EngineError(f"redis {host}:{port}: AOF rewrite still running after {timeout:.0f} s")
                time.sleep(0.01)
            if info.get("aof_last_bgrewrite_status") != "ok":
                raise EngineError(f"redis {host}:{port}: AOF rewrite failed; see the Redis log")
            return {"appendonly": r.config_get("appendonly")["appendonly"], "keys": r.dbsize()}
        except redis.RedisError as exc:
            raise EngineError(f"redis {host}:{port}: enabling AOF failed: {exc}") from exc
        finally:
            r.close()

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

        target = RedisRdbEngine.fetch(repo, part, target).parent
        return RedisRdbEngine._serve(target, port, appendonly=appendonly, timeout=timeout)

    @staticmethod
    def _serve(target: Path, port: int | None, *, appendonly: bool = False, timeout: float = 120,
               die_with_parent: bool = False) -> RestoredRedis:
        """A new redis-server on `target`/dump.rdb, on a loopback port, once it has loaded it.
        `die_with_parent`: a throwaway one (the backup's key manifest) dies with the harness, even a
        SIGKILLed one; a restored server does not (a kept environment outlives the run)."""
        from resilience.backup.postgres import free_port

        binary = which("redis-server", "install redis-server")
        port = port or free_port()
        args = [binary, "--port", str(port), "--bind", LOOPBACK, "--dir", str(target), "--dbfilename", "dump.rdb",
                "--daemonize", "no", "--save", "", "--appendonly", "no", "--logfile", str(target / "redis.log")]
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=die_with_parent_fn() if die_with_parent else None)
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
                RedisRdbEngine.enable_aof(port, timeout=timeout)
            keys = r.dbsize()
        except Exception:
            proc.kill()
            proc.wait(10)
            raise
        finally:
            r.close()
        return RestoredRedis(port=port, dir=target, keys=keys, process=proc)
