"""File-tree sources of a restore test, as users' trees are: a deploy tree whose `current` is an
absolute symlink (checked inside the restored copy when its origin is known, named when not, never
hashed from the live system), and damaged or unsafe tarballs (a named failed check, exit 3, nothing
written outside the throwaway environment)."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile

import pytest

from harness.config import parse_config
from harness.drill.restore_test import RestoreTestRunner

from .conftest import config_for

pytestmark = pytest.mark.timeout(120)


def deploy_tree(tmp_path):
    """/…/srv/app with releases/v3 and `current -> /…/srv/app/releases/v3` (absolute), its sha256sum
    manifest made through the link, and a tarball of it; then the live tree is gone."""
    app = tmp_path / "srv" / "app"
    (app / "releases" / "v3").mkdir(parents=True)
    (app / "releases" / "v3" / "app.py").write_text("print('v3')\n")
    (app / "current").symlink_to(app / "releases" / "v3")
    digest = hashlib.sha256(b"print('v3')\n").hexdigest()
    manifest = tmp_path / "SHA256SUMS"
    manifest.write_text(f"{digest}  ./releases/v3/app.py\n{digest}  ./current/app.py\n")
    tarball = tmp_path / "app.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(app, arcname=".")
    shutil.rmtree(tmp_path / "srv")
    return app, manifest, tarball


def checks_of(tmp_path, files: dict):
    outcome = RestoreTestRunner(parse_config(config_for(tmp_path, {"files": [files]}), "t")).run()
    return outcome, {c["name"]: c for c in outcome.checks}


def test_an_absolute_link_into_the_trees_origin_is_checked_inside_the_restored_copy(tmp_path):
    app, manifest, tarball = deploy_tree(tmp_path)
    outcome, checks = checks_of(tmp_path, {"path": str(tarball), "manifest": str(manifest), "origin": str(app)})
    check = checks["files app.tar.gz: every file matches SHA256SUMS"]
    assert check["passed"], check
    assert check["data"]["restored"] == 2 and check["data"]["unexpected"] == []  # the link is not a file of its own
    assert outcome.measurements.rto_s is not None
    from harness.config import RestoreTestFiles
    from harness.drill.sources import FileTreeSource
    from resilience.backup.errors import BackupError

    source = FileTreeSource(RestoreTestFiles(path=str(tarball)))
    source.open()
    assert source.restore(tmp_path / "copy-1") == 1  # regular files: the link is not one
    source = FileTreeSource(RestoreTestFiles(path=str(tmp_path / "copy-1")))
    source.open()
    assert source.restore(tmp_path / "copy-2") == 1 and (tmp_path / "copy-2" / "current").is_symlink()
    os.mkfifo(tmp_path / "copy-1" / "queue")  # a file copytree cannot copy: that source fails by name
    with pytest.raises(BackupError, match=f"{tmp_path / 'copy-1'}: cannot copy \\(Error: .*named pipe"):
        source.restore(tmp_path / "copy-3")

    outcome, checks = checks_of(tmp_path, {"path": str(tarball), "manifest": str(manifest)})
    check = checks["files app.tar.gz: every file matches SHA256SUMS"]
    assert not check["passed"] and check["data"]["linked_out"] == ["current/app.py"]
    assert check["objects"] == [f"current/app.py: current is a symlink to {app}/releases/v3, outside the restored "
                                "tree (set the source's `origin` to where the tree lived, to follow it inside the copy)"]


def test_a_damaged_or_unsafe_tarball_fails_its_check_by_name(tmp_path):
    _, manifest, tarball = deploy_tree(tmp_path)
    truncated = tmp_path / "truncated.tar.gz"
    whole = tarball.read_bytes()
    truncated.write_bytes(whole[: len(whole) // 2])
    outcome, checks = checks_of(tmp_path, {"path": str(truncated), "manifest": str(manifest)})
    check = checks["files truncated.tar.gz: restored"]
    assert not check["passed"] and check["objects"][0].startswith(f"{truncated}: cannot extract (")
    assert outcome.verdict.value == "failed" and outcome.error is None

    outside = tmp_path / "outside"
    outside.mkdir()
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:  # a link out of the tree, then a file written through it
        link = tarfile.TarInfo("out")
        link.type, link.linkname = tarfile.SYMTYPE, str(outside)
        tar.addfile(link)
        member = tarfile.TarInfo("out/planted.txt")
        member.size = 3
        tar.addfile(member, io.BytesIO(b"hi\n"))
    (tmp_path / "chaosdrill.toml").write_text(
        f'[run]\nresults_dir = "{tmp_path / "results"}"\n[[restore_test.files]]\npath = "{evil}"\n')
    proc = subprocess.run([sys.executable, "-m", "harness.cli_main", "restore-test", "-c", str(tmp_path / "chaosdrill.toml")],
                          capture_output=True, text=True, timeout=100)
    assert proc.returncode == 3, proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert f"FAIL files evil.tar: restored: {evil}: cannot extract (FilterError: 'out/planted.txt' would go through the symlink 'out')" in proc.stderr, proc.stderr
    assert list(outside.iterdir()) == []


def test_without_postgres_rpo_is_the_oldest_sources_newest_data_labelled_weaker(tmp_path, redis_server):
    """No PostgreSQL source: the RDB's save time (its header's ctime) and each tree's newest file
    mtime are the evidence, labelled weaker; the oldest source bounds the RPO."""
    import os
    import time
    from datetime import UTC, datetime

    import redis

    from harness.drill.sources import rdb_ctime

    r = redis.Redis(port=redis_server.port)
    r.mset({f"k{i}": i for i in range(10)})
    before = int(time.time())
    r.save()
    rdb = redis_server.base / "dump.rdb"
    assert before <= rdb_ctime(rdb).timestamp() <= time.time() + 1
    os.utime(rdb, (0, 0))  # the header is read, not the file's mtime
    tree = tmp_path / "uploads"
    tree.mkdir()
    (tree / "a.txt").write_text("a\n")
    (tree / "b.txt").write_text("b\n")
    old = time.time() - 1800
    os.utime(tree / "a.txt", (old, old))
    os.utime(tree / "b.txt", (old - 600, old - 600))

    outcome, _ = checks_of(tmp_path, {"path": str(tree)})
    m = outcome.measurements
    assert outcome.verdict.value == "passed", outcome.checks
    assert m.rpo_evidence == "newest file modification time in uploads" and m.rpo_strength == "weaker"
    assert 1790 <= m.rpo_s <= 1800 + 60

    cfg = parse_config(config_for(tmp_path, {"files": [{"path": str(tree)}], "redis": [{"path": str(rdb)}]},
                                  rpo="10min"), "t")
    both = RestoreTestRunner(cfg).run()
    assert both.measurements.rpo_evidence == "newest file modification time in uploads (the oldest of 2 sources)"
    assert both.verdict.value == "failed" and both.measurements.rpo_s >= 1790  # 30 min old data vs a 10 min target

    os.utime(tree / "a.txt", None)  # now: the RDB (saved before) is the oldest
    both = RestoreTestRunner(cfg).run()
    assert both.measurements.rpo_evidence == "RDB save time (ctime in dump.rdb) (the oldest of 2 sources)"
    assert datetime.fromisoformat(both.measurements.newest_data_wall) == rdb_ctime(rdb) <= datetime.now(UTC)
    html = (both.run_dir / "report.html").read_text()  # what was restored, and the evidence, without a PostgreSQL source
    assert f"{tree}: 2 file(s) restored" in html and f"{rdb}: 10 key(s) loaded" in html
    assert "RDB save time (ctime in dump.rdb) (the oldest of 2 sources) <span" in html
    assert "restore files, load RDB files" in html and "WAL replay" not in html


def test_rdb_ctime_is_none_for_what_is_not_an_rdb_header(tmp_path):
    from harness.drill.sources import rdb_ctime

    for name, data in (("empty", b""), ("text", b"hello"), ("cut", b"REDIS0010\xfa\x09redis"),
                       ("noaux", b"REDIS0010\xfe\x00"), ("short-int", b"REDIS0010\xfa\x05ctime\xc2\x01"),
                       ("1970", b"REDIS0010\xfa\x05ctime\xc0\x05"), ("future", b"REDIS0010\xfa\x05ctime\x0a9999999999"),
                       ("spaces", b"REDIS0010\xfa\x05ctime\x0c 1700000000 ")):
        (tmp_path / name).write_bytes(data)
        assert rdb_ctime(tmp_path / name) is None, name
    assert rdb_ctime(tmp_path / "missing") is None
    ok = tmp_path / "ok"
    ok.write_bytes(b"REDIS0010\xfa\x05ctime\xc2" + (1_700_000_000).to_bytes(4, "little") + b"\xfe\x00")
    assert rdb_ctime(ok).timestamp() == 1_700_000_000


def _tar(path, *members):
    """A tarball of (name, type, linkname, data) members, made by hand: what no honest `tar` writes."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, type_, linkname, data in members:
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mode = type_, linkname, 0o755
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)


def test_nothing_is_written_through_a_link_even_where_realpath_is_blind(tmp_path):
    """Links kept out of the tree stay inert: a member written (or hard-linked) through any symlink, or
    with a `..`, is refused, including the long-path trick that blinds tarfile's own "data" filter
    on Python < 3.11.13 (CVE-2025-4517)."""
    from harness.config import RestoreTestFiles
    from harness.drill.sources import FileTreeSource
    from resilience.backup.errors import BackupError

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("live\n")
    comp, steps, chain = "d" * 247, "abcdefghijklmnop", []
    path = ""
    for s in steps:  # deep directories, each reached through a short link
        chain += [(f"{path}{comp}", tarfile.DIRTYPE, "", None), (f"{path}{s}", tarfile.SYMTYPE, comp, None)]
        path += comp + "/"
    blind = "/".join(steps) + "/" + "l" * 254
    cases = {
        "blind": [*chain, (blind, tarfile.SYMTYPE, "../" * len(steps), None), ("esc", tarfile.SYMTYPE, str(outside), None),
                  (blind + "/esc/pwned", tarfile.REGTYPE, "", b"owned\n")],
        "through": [("esc", tarfile.SYMTYPE, str(outside), None), ("esc/pwned", tarfile.REGTYPE, "", b"owned\n")],
        "over": [("esc", tarfile.SYMTYPE, str(outside / "pwned"), None), ("esc", tarfile.REGTYPE, "", b"owned\n")],
        "hardlink": [("esc", tarfile.SYMTYPE, str(outside), None), ("h", tarfile.LNKTYPE, "esc/secret", None)],
        "dotdot": [("a", tarfile.DIRTYPE, "", None), ("a/../../pwned", tarfile.REGTYPE, "", b"owned\n")],
    }
    for name, members in cases.items():
        _tar(tmp_path / f"{name}.tar", *members)
        source = FileTreeSource(RestoreTestFiles(path=str(tmp_path / f"{name}.tar")))
        source.open()
        with pytest.raises(BackupError, match=f"{name}.tar: cannot extract"):
            source.restore(tmp_path / "dest" / name)
        assert sorted(p.name for p in outside.iterdir()) == ["secret"], name
        assert (outside / "secret").read_text() == "live\n"
        assert not (tmp_path / "pwned").exists()


def test_the_rdb_save_time_is_read_from_the_restored_copy(tmp_path):
    """The source RDB may be saved again while the test runs: the evidence is the copy that was restored."""
    import os
    from datetime import UTC, datetime

    from harness.config import RestoreTestRedis
    from harness.drill.sources import RedisRdbSource

    def rdb(path, seconds):
        path.write_bytes(b"REDIS0010\xfa\x05ctime\xc2" + seconds.to_bytes(4, "little") + b"\xfe\x00")

    source, copy = tmp_path / "dump.rdb", tmp_path / "restored.rdb"
    rdb(copy, 1_700_000_000)
    rdb(source, 1_700_003_600)  # saved again an hour later, after the copy
    src = RedisRdbSource(RestoreTestRedis(path=str(source)))
    src.open()
    assert src.saved_at(copy) == (datetime.fromtimestamp(1_700_000_000, UTC), "RDB save time (ctime in dump.rdb)")
    copy.write_bytes(b"REDIS0010\xfe\x00")  # no ctime: the copy's mtime, never the source's
    os.utime(copy, (1_700_000_100, 1_700_000_100))
    assert src.saved_at(copy)[0].timestamp() == 1_700_000_100
    assert src.saved_at(copy)[1] == "modification time of dump.rdb"
