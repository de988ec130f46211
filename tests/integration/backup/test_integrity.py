"""A flipped byte anywhere in a repository is detected; retention; refusal of bad input."""

from __future__ import annotations

import random

import pytest

from resilience.backup import (
    BackupManager,
    BackupNotFound,
    LocalRepository,
    PgBackRest,
    RepositoryMissing,
    RestoreTargetNotEmpty,
    RestoreTargets,
    ToolMissing,
    VerifyFailed,
)

from .conftest import make_archiving_pg


def flip_random_byte(repo, rng: random.Random) -> tuple[str, bytes]:
    """Flip one bit of one byte of a random object; returns (key, original bytes) to undo it."""
    keys = [k for k in repo.list() if not k.endswith(".tmp")]
    key = rng.choice(keys)
    data = repo.get_bytes(key)
    bad = bytearray(data)
    bad[rng.randrange(len(bad))] ^= 1 << rng.randrange(8)
    repo.put_bytes(key, bytes(bad))
    return key, data


def assert_every_flip_detected(mgr: BackupManager, repo, seed: int, flips: int) -> list[str]:
    rng = random.Random(seed)
    seen = []
    for _ in range(flips):
        key, original = flip_random_byte(repo, rng)
        report = mgr.verify()
        repo.put_bytes(key, original)
        assert not report.ok, f"flipping a byte in {key} went unnoticed"
        with pytest.raises(VerifyFailed):
            report.raise_for_problems()
        seen.append(key)
    assert mgr.verify().ok
    return seen


def test_corruption_in_local_repository_is_detected(stack):
    mgr = stack.manager()
    mgr.backup("full")
    (stack.files / "a.txt").write_text("changed")
    mgr.backup("incr")
    assert mgr.verify().ok
    keys = assert_every_flip_detected(mgr, stack.repo, seed=5, flips=4)
    # and the layers pgbackrest's own verify never reads
    for key in ("catalog.json", *[k for k in stack.repo.list("pgbackrest") if k.endswith((".copy", ".gz"))][:2]):
        original = stack.repo.get_bytes(key)
        bad = bytearray(original)
        bad[len(bad) // 3] ^= 0x10
        stack.repo.put_bytes(key, bytes(bad))
        assert not mgr.verify().ok, key
        stack.repo.put_bytes(key, original)
        keys.append(key)
    print("flipped:", keys)


def test_corruption_in_s3_repository_is_detected(s3_endpoint, scratch_dir, redis_server):
    from resilience.backup import RedisRdbEngine

    repo = s3_endpoint.repo("flip-bucket", prefix="r")
    repo.init()
    pg, br = make_archiving_pg(scratch_dir, repo)
    try:
        files = scratch_dir / "files"
        files.mkdir()
        (files / "x").write_text("x" * 1000)
        mgr = BackupManager(repo, pg=br, redis=RedisRdbEngine(port=redis_server.port), files=[files])
        mgr.setup()
        mgr.backup("full")
        assert_every_flip_detected(mgr, repo, seed=11, flips=1)  # S3 verify costs ~10 s on moto
    finally:
        pg.stop("immediate")


def test_missing_wal_breaks_continuity(stack):
    mgr = stack.manager()
    mgr.backup("full")
    for _ in range(3):
        stack.pg.psql("insert into canary select g, 'x' from generate_series(100000, 100100) g "
                      "on conflict do nothing; select pg_switch_wal()")
    mgr.backup("incr")
    wal = sorted(k for k in stack.repo.list("pgbackrest/archive") if k.rsplit("/", 1)[-1][:24].isalnum()
                 and len(k.rsplit("/", 1)[-1]) > 40)
    victim = wal[len(wal) // 2]
    (stack.repo.root / victim).unlink()
    report = mgr.verify()
    assert any("missing" in p for p in report.problems), report.problems


def test_retention_keeps_n_fulls_and_expires_children(stack):
    mgr = stack.manager()
    f1 = mgr.backup("full")
    i1 = mgr.backup("incr")
    f2 = mgr.backup("full")
    i2 = mgr.backup("incr")
    f3 = mgr.backup("full")
    gone = mgr.expire(keep_full=2)
    assert [s.id for s in gone] == [f1.id, i1.id]
    assert [s.id for s in mgr.catalog().list()] == [f2.id, i2.id, f3.id]
    labels = {b.label for b in stack.br.info().backups}
    assert f1.part("postgres").meta["label"] not in labels
    assert {f2.part("postgres").meta["label"], f3.part("postgres").meta["label"]} <= labels
    assert not any(k.startswith(f"sets/{f1.id}") or k.startswith(f"sets/{i1.id}") for k in stack.repo.list())
    report = mgr.verify()
    assert report.ok, report.problems
    with pytest.raises(BackupNotFound, match=f"unknown backup set '{f1.id}'"):
        mgr.restore(f1.id, RestoreTargets(pg_data=stack.base / "r"))


def test_bad_input_is_one_line_and_leaves_the_source_alone(stack, tmp_path, monkeypatch):
    mgr = stack.manager()
    s = mgr.backup("full")
    before = sorted(p.name for p in stack.pg.data.iterdir())
    targets = RestoreTargets(pg_data=stack.pg.data, redis_dir=tmp_path / "r", files_dir=tmp_path / "f",
                             config_dir=tmp_path / "c")
    with pytest.raises(RestoreTargetNotEmpty, match="is not empty") as exc:
        mgr.restore(s.id, targets)
    assert "\n" not in str(exc.value)
    assert sorted(p.name for p in stack.pg.data.iterdir()) == before and stack.pg.running()
    assert not (tmp_path / "r").exists()  # refused before anything was written
    with pytest.raises(BackupNotFound, match="unknown backup set 'nope'"):
        mgr.restore("nope", targets)
    with pytest.raises(ValueError, match="RestoreTargets.redis_dir is required"):
        mgr.restore(s.id, RestoreTargets(pg_data=tmp_path / "p"))
    with pytest.raises(BackupNotFound, match="has no part among"):
        mgr.restore(s.id, RestoreTargets(pg_data=tmp_path / "p"), parts=["mysql"])
    gone = BackupManager(LocalRepository(tmp_path / "no-such-repo"))
    with pytest.raises(RepositoryMissing, match="does not exist"):
        gone.restore("latest", targets)
    assert not gone.verify().ok
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissing, match="pgbackrest not found on PATH"):
        PgBackRest(repo=stack.repo, workdir=tmp_path / "w", pg_data=stack.pg.data, pg_port=stack.pg.port)


def test_restore_with_verify_refuses_a_damaged_set_before_writing(stack, tmp_path):
    from resilience.backup import VerifyFailed

    mgr = stack.manager()
    mgr.setup()
    s = mgr.backup("full")
    rdb = stack.repo.root / s.part("redis").meta["rdb"]
    data = bytearray(rdb.read_bytes())
    data[len(data) // 2] ^= 0x01
    rdb.write_bytes(bytes(data))
    targets = RestoreTargets(pg_data=tmp_path / "pg", redis_dir=tmp_path / "redis", files_dir=tmp_path / "files",
                             config_dir=tmp_path / "config")
    with pytest.raises(VerifyFailed, match="redis/dump.rdb: SHA-256 mismatch") as err:
        mgr.restore(s.id, targets, verify=True)
    assert "\n" not in str(err.value)
    assert not any((tmp_path / d).exists() for d in ("pg", "redis", "files", "config"))
