"""Pure parts of the restore test: expectations, table comparison, the PostgreSQL major resolver,
WAL segment arithmetic, the read-only user repository, and the RTO/RPO measurement."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from harness.config import parse_config
from harness.drill.restore_test import compare_tables, count_session, expectation_met
from harness.drill.sources import MajorVersionMissing, installed_majors, resolve_bindir, wal_segment_of
from harness.errors import ConfigError
from harness.measure import RT_DECLARED, RT_NEWEST, RT_READY, judge_restore_test, measure_restore_test
from harness.timeline import Timeline
from resilience.backup.repository import PgBackRestLocalRepository, ReadOnlyRepositoryError


@pytest.mark.parametrize(("value", "expect", "ok"), [
    (1, "> 0", True), (0, "> 0", False), (42, "= 42", True), (42, "== 42", True), (41, "!= 42", True),
    (5, "between 1 and 10", True), (11, "between 1 and 10", False), (None, "> 0", False), ("7", ">= 7", True),
    (3.5, "< 4", True), (4, "<= 3", False)])
def test_expectations(value, expect, ok):
    assert expectation_met(value, expect) is ok


def test_a_bad_expectation_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"restore_test\.checks\.0\.expect"):
        parse_config({"restore_test": {"checks": [{"name": "x", "sql": "select 1", "expect": "about 3"}]}}, "t")


def test_one_postgres_source_only():
    with pytest.raises(ConfigError, match="give one PostgreSQL source"):
        parse_config({"restore_test": {"pgbackrest": {"path": "/r", "stanza": "main"},
                                       "pg_dump": {"path": "/d.dump"}}}, "t")


def test_tables_baseline_then_vanished_and_shrunk_named():
    now = {"db.public.a": {"rows": 100, "bytes": 1}, "db.public.b": {"rows": 80, "bytes": 1}}
    ok, objects, detail = compare_tables(now, None, 0.1)
    assert ok and "baseline recorded" in detail
    before = {"db.public.a": {"rows": 100, "bytes": 1}, "db.public.b": {"rows": 100, "bytes": 1},
              "db.public.c": {"rows": 5, "bytes": 1}}
    ok, objects, _ = compare_tables(now, before, 0.1)
    assert not ok
    assert objects == ["db.public.c: vanished (had 5 rows)", "db.public.b: 100 → 80 rows"]
    assert compare_tables(now, before | {"db.public.c": now["db.public.a"]}, 0.25)[0] is False  # c vanished
    assert compare_tables(now, {"db.public.b": {"rows": 85, "bytes": 1}}, 0.1)[0] is True  # within tolerance


def _fake_install(root, major):
    b = root / str(major) / "bin"
    b.mkdir(parents=True)
    (b / "pg_ctl").write_text(f"#!/bin/sh\necho 'pg_ctl (PostgreSQL) {major}.1'\n")
    (b / "pg_ctl").chmod(0o755)


def test_major_resolver(tmp_path, monkeypatch):
    monkeypatch.delenv("CHAOSDRILL_PG_BINDIR", raising=False)
    _fake_install(tmp_path, 15)
    _fake_install(tmp_path, 17)
    assert installed_majors(tmp_path) == [15, 17]
    assert resolve_bindir(15, tmp_path) == tmp_path / "15" / "bin"
    assert resolve_bindir(16, tmp_path, exact=False) == tmp_path / "17" / "bin"  # a dump restores into newer
    with pytest.raises(MajorVersionMissing) as err:
        resolve_bindir(16, tmp_path)  # a physical backup needs exactly its major
    assert err.value.exit_code == 4
    assert "needs PostgreSQL 16" in str(err.value) and "postgresql-16" in str(err.value)
    assert "\n" not in str(err.value)
    monkeypatch.setenv("CHAOSDRILL_PG_BINDIR", str(tmp_path / "17" / "bin"))
    assert resolve_bindir(17, tmp_path / "nowhere") == tmp_path / "17" / "bin"


def test_wal_segment_of():
    assert wal_segment_of("0/30137E0") == "000000010000000000000003"
    assert wal_segment_of("1/FF000000", 2) == "0000000200000001000000FF"


def test_user_repository_maps_keys_and_refuses_writes(tmp_path):
    (tmp_path / "backup" / "main").mkdir(parents=True)
    (tmp_path / "backup" / "main" / "backup.info").write_text("x")
    repo = PgBackRestLocalRepository(tmp_path, cipher_pass="s3cr3t-pass")
    assert repo.exists("pgbackrest/backup/main/backup.info")
    assert repo.list("pgbackrest/backup/") == ["pgbackrest/backup/main/backup.info"]
    assert not repo.exists("catalog.json")
    opts = repo.pgbackrest_options()
    assert opts["repo1-path"] == str(tmp_path) and opts["repo1-cipher-type"] == "aes-256-cbc"
    for write in (lambda: repo.put_bytes("pgbackrest/x", b"1"), lambda: repo.delete("pgbackrest/backup/main/backup.info")):
        with pytest.raises(ReadOnlyRepositoryError):
            write()
    assert (tmp_path / "backup" / "main" / "backup.info").exists()
    if os.geteuid() != 0:
        tmp_path.chmod(0)
        try:
            with pytest.raises(Exception, match="not readable"):
                repo.check()
        finally:
            tmp_path.chmod(0o755)


def test_measure_rto_rpo_and_evidence():
    tl = Timeline()
    t0 = tl.now_ns()
    tl.event(RT_DECLARED, "restore_test", t_ns=t0)
    for i, stage in enumerate(("verify", "restore", "start", "checks")):
        tl.event(f"restore_test.{stage}.start", "restore_test", t_ns=t0 + i * 10**9)
        tl.event(f"restore_test.{stage}.end", "restore_test", t_ns=t0 + (i + 1) * 10**9)
    disaster = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    tl.event(RT_NEWEST, "restore_test", wall=(disaster - timedelta(seconds=90)).isoformat(),
             evidence="newest orders.created_at", strength="strong")
    tl.event(RT_READY, "restore_test", t_ns=t0 + 4 * 10**9)
    m = measure_restore_test(tl, disaster_wall=disaster, backup_end_wall=disaster - timedelta(hours=2), checked=True)
    assert m.rto_s == pytest.approx(4.0) and m.rpo_s == pytest.approx(90.0) and m.backup_age_s == pytest.approx(7200)
    assert m.steps["restore"] == pytest.approx(1.0) and m.steps["amcheck"] is None
    targets = parse_config({"targets": {"rto": "10s", "rpo": "1min"}}, "t").targets
    rto, rpo, checked = judge_restore_test(m, targets)
    assert rto.passed and rpo.passed is False and "newest orders.created_at" in rpo.note and checked.passed
    failed = measure_restore_test(tl, disaster_wall=disaster, checked=False)
    assert failed.rto_s is None and judge_restore_test(failed, targets)[0].passed is False


def test_s3_source_needs_loopback_endpoints_and_keys(monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    base = {"kind": "s3", "endpoint": "localhost:9443", "bucket": "b", "stanza": "main"}
    with pytest.raises(ConfigError, match="access_key, secret_key: required"):
        parse_config({"restore_test": {"pgbackrest": base}}, "t")
    monkeypatch.setenv("RT_KEY", "AKIAUNITTEST")
    keyed = base | {"access_key": "env:RT_KEY", "secret_key": "env:RT_KEY"}
    cfg = parse_config({"restore_test": {"pgbackrest": keyed | {"endpoint_url": "http://127.0.0.1:9000"}}}, "t")
    assert cfg.restore_test.pgbackrest.access_key.get_secret_value() == "AKIAUNITTEST"
    for bad in ({"endpoint": "s3.amazonaws.com:443"}, {"endpoint_url": "https://s3.example.com"}):
        with pytest.raises(ConfigError, match="not loopback"):
            parse_config({"restore_test": {"pgbackrest": keyed | bad}}, "t")


def test_one_tree_check_for_drill_and_restore_test(tmp_path):
    """harness/drill/checks.tree_check: missing and changed files always fail and are named; files the
    manifest leaves out fail only where the manifest lists every file (the drill's own)."""
    import hashlib

    from harness.drill.checks import tree_check

    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("a\n")
    (root / "sub" / "b.txt").write_text("b\n")
    (root / "extra.txt").write_text("not in the manifest\n")
    sha = {rel: hashlib.sha256((root / rel).read_bytes()).hexdigest() for rel in ("a.txt", "sub/b.txt")}
    sizes = {rel: (root / rel).stat().st_size for rel in sha}

    lenient = tree_check("files", root, sha, extras_fail=False)
    assert lenient.passed and lenient.data["unexpected"] == ["extra.txt"] and "1 not in the manifest" in lenient.detail
    strict = tree_check("files", root, sha, sizes=sizes)
    assert not strict.passed and strict.objects == ["extra.txt: not in the manifest"] and strict.data["bytes"] == 4

    (root / "sub" / "b.txt").write_text("B\n")  # same size, other bytes
    (root / "a.txt").unlink()
    damaged = tree_check("files", root, sha, sizes=sizes, extras_fail=False)
    assert not damaged.passed and damaged.objects == ["a.txt: missing", "sub/b.txt: SHA-256 differs"]
    assert damaged.data["missing"] == ["a.txt"] and damaged.data["changed"] == ["sub/b.txt"]

    gone = tree_check("files", tmp_path / "never-restored", sha)
    assert not gone.passed and "was not restored" in gone.detail


def test_the_counting_session_sets_jit_only_where_it_exists() -> None:
    """PostgreSQL 10 has no `jit` setting and refuses `SET jit`: a restore of a 10 backup must still count."""
    assert "jit" not in count_session(100022)
    assert "max_parallel_workers_per_gather" in count_session(100022)
    assert count_session(110000).startswith("SET jit = off; ") and "jit" in count_session(150010)


def test_tree_check_follows_a_listed_symlink_only_inside_the_restored_tree(tmp_path):
    """`sha256sum` follows links, and the restore keeps them: a listed link to a restored file is that
    file; a link out of the tree (to the live system) is named, never hashed as if it were the backup."""
    import hashlib

    from harness.drill.checks import tree_check

    root = tmp_path / "tree"
    (root / "conf").mkdir(parents=True)
    (root / "conf" / "app.yml").write_text("port: 1\n")
    (root / "current.yml").symlink_to("conf/app.yml")
    live = tmp_path / "live.yml"
    live.write_text("secret: live\n")
    (root / "live.yml").symlink_to(live)
    digest = {p: hashlib.sha256(b).hexdigest() for p, b in
              (("conf/app.yml", b"port: 1\n"), ("current.yml", b"port: 1\n"), ("live.yml", b"secret: live\n"))}

    inside = tree_check("files", root, {k: digest[k] for k in ("conf/app.yml", "current.yml")})
    assert inside.passed, inside.objects
    out = tree_check("files", root, digest)
    assert not out.passed and out.objects == [
        f"live.yml: live.yml is a symlink to {live}, outside the restored tree (set the source's `origin` to where "
        "the tree lived, to follow it inside the copy)"]
    assert "1 linked out of the tree" in out.detail and out.data["missing"] == []
    assert out.data["linked_out"] == ["live.yml"]
    (root / "conf" / "app.yml").write_text("port: 2\n")
    changed = tree_check("files", root, {k: digest[k] for k in ("conf/app.yml", "current.yml")})
    assert changed.objects == ["conf/app.yml: SHA-256 differs", "current.yml: SHA-256 differs"]


def test_tree_check_names_looping_dangling_and_directory_links(tmp_path):
    """A link loop or a dangling link is a named failure, never a traceback; a file under a linked
    directory counts when the directory is inside the tree, and is named when it leads out."""
    import hashlib

    from harness.drill.checks import tree_check

    root = tmp_path / "tree"
    (root / "v3").mkdir(parents=True)
    (root / "v3" / "a.txt").write_text("a\n")
    (root / "current").symlink_to("v3")  # a directory link inside the tree
    (tmp_path / "live").mkdir()
    (tmp_path / "live" / "b.txt").write_text("b\n")
    (root / "live").symlink_to(tmp_path / "live")  # a directory link out of the tree
    (root / "loop1").symlink_to("loop2")
    (root / "loop2").symlink_to("loop1")
    (root / "gone").symlink_to("nowhere")
    (root / "adir.txt").mkdir()  # a directory where the manifest names a file: plainly missing
    sha = hashlib.sha256(b"a\n").hexdigest()
    expected = {"v3/a.txt": sha, "current/a.txt": sha, "live/b.txt": hashlib.sha256(b"b\n").hexdigest(),
                "loop1": sha, "gone": sha, "adir.txt": sha}

    check = tree_check("files", root, expected, extras_fail=False)
    assert not check.passed
    assert check.objects == ["adir.txt: missing", "gone: symlink that leads nowhere",
                             f"live/b.txt: live is a symlink to {tmp_path / 'live'}, outside the restored tree "
                             "(set the source's `origin` to where the tree lived, to follow it inside the copy)",
                             "loop1: symlink loop"]
    assert check.data["linked_out"] == ["gone", "live/b.txt", "loop1"] and check.data["missing"] == ["adir.txt"]
    assert tree_check("files", root, {k: expected[k] for k in ("v3/a.txt", "current/a.txt")},
                      extras_fail=False).passed


def test_tree_check_reads_absolute_links_into_the_origin_as_the_restored_copy(tmp_path):
    """A deploy tree (`current -> /srv/app/releases/v3`, absolute) restored elsewhere: with the tree's
    origin known, the link is the same place in the copy; `..` never climbs out of the copy, whatever
    the link says; without an origin the link is named, never followed to the live system."""
    import hashlib
    from pathlib import Path

    from harness.drill.checks import tree_check

    origin = Path("/srv/app-that-is-not-here")
    root = tmp_path / "tree"
    (root / "releases" / "v3").mkdir(parents=True)
    (root / "releases" / "v3" / "app.py").write_text("v3\n")
    (root / "current").symlink_to(origin / "releases" / "v3")  # absolute, into the tree's old place
    (root / "releases" / "v3" / "self").symlink_to(origin / "current" / "app.py")  # absolute, through a link
    (root / "esc").symlink_to(f"{origin}/../../etc")  # absolute into the origin, then out with ..
    (root / "up").symlink_to("../../..")  # relative, out of the tree
    sha = hashlib.sha256(b"v3\n").hexdigest()
    good = {"releases/v3/app.py": sha, "current/app.py": sha, "current/self": sha}

    assert tree_check("files", root, good, origins=[origin]).passed
    unknown = tree_check("files", root, good)
    assert not unknown.passed and unknown.data["linked_out"] == ["current/app.py", "current/self"]
    assert unknown.objects[0].startswith(f"current/app.py: current is a symlink to {origin}/releases/v3, outside")
    bad = tree_check("files", root, {"esc/passwd": sha, "up/etc/passwd": sha}, origins=[origin], extras_fail=False)
    assert bad.objects == ["esc/passwd: esc leads above the restored tree", "up/etc/passwd: up leads above the restored tree"]
    (root / "releases" / "v3" / "app.py").write_text("v4\n")  # the file the links lead to changed: each is named
    changed = tree_check("files", root, good, origins=[origin])
    assert changed.data["changed"] == ["current/app.py", "current/self", "releases/v3/app.py"]


def test_a_file_trees_origin_must_be_absolute() -> None:
    from harness.config import parse_config
    from harness.errors import ConfigError

    with pytest.raises(ConfigError, match="is not an absolute path"):
        parse_config({"restore_test": {"files": [{"path": "/backups/app.tgz", "origin": "srv/app"}]}}, "t")
    cfg = parse_config({"restore_test": {"files": [{"path": "/backups/app.tgz", "origin": "/srv/app"}]}}, "t")
    assert cfg.restore_test.files[0].origin == "/srv/app"


def test_tree_check_never_looks_up_an_absolute_manifest_path_on_this_system(tmp_path):
    """`sha256sum /srv/app/*` writes absolute names: under the tree's origin they are the restored copy's
    files; anywhere else they are named, never hashed from this machine (here /bin/sh, which exists)."""
    import hashlib
    from pathlib import Path

    from harness.drill.checks import tree_check

    root = tmp_path / "tree"
    root.mkdir()
    (root / "app.py").write_text("v3\n")
    live = hashlib.sha256(Path("/bin/sh").read_bytes()).hexdigest()
    check = tree_check("files", root, {"/bin/sh": live}, extras_fail=False)
    assert not check.passed and check.objects == [
        "/bin/sh: an absolute path outside the tree's origin, not looked up on this system"]
    mine = {"/srv/app/app.py": hashlib.sha256(b"v3\n").hexdigest()}
    assert tree_check("files", root, mine, sizes={"/srv/app/app.py": 3}, origins=[Path("/srv/app")]).passed


def test_tree_check_names_a_link_it_cannot_follow(tmp_path):
    """A link target with a name longer than the file system allows: named, never a traceback."""
    from harness.drill.checks import tree_check

    root = tmp_path / "tree"
    root.mkdir()
    (root / "long").symlink_to("a" * 300)
    check = tree_check("files", root, {"long": "0" * 64, "b" * 300: "0" * 64})
    assert check.data["linked_out"] == ["b" * 300, "long"] and not check.passed
    assert "long: cannot follow (File name too long)" in check.objects
    assert f"{'b' * 300}: cannot follow (File name too long)" in check.objects


def test_tree_check_reads_links_as_the_kernel_does_a_double_slash_root_and_a_trailing_slash(tmp_path):
    """`//srv/app/...` is `/srv/app/...` to the kernel, so it lies in the origin; a link whose text ends
    in "/" must lead to a directory (the kernel says ENOTDIR for a file), so it is named, not hashed."""
    import hashlib
    from pathlib import Path

    from harness.drill.checks import tree_check

    origin = Path("/srv/app-that-is-not-here")
    root = tmp_path / "tree"
    (root / "releases" / "v3").mkdir(parents=True)
    (root / "releases" / "v3" / "app.py").write_text("v3\n")
    (root / "current").symlink_to(f"/{origin}/releases/v3")  # "//srv/…"
    (root / "slashed").symlink_to("releases/v3/app.py/")
    (root / "via").symlink_to("current/")  # a trailing "/" on a directory is fine
    sha = hashlib.sha256(b"v3\n").hexdigest()

    assert tree_check("files", root, {"current/app.py": sha, "via/app.py": sha}, origins=[origin],
                      extras_fail=False).passed
    assert tree_check("files", root, {f"/{origin}/releases/v3/app.py": sha}, origins=[origin], extras_fail=False).passed
    # what comes before "/", "." or ".." must be a directory, as the kernel says (ENOTDIR, ENOENT)
    (root / "dotted").symlink_to("releases/v3/app.py/.")
    (root / "updown").symlink_to("releases/v3/app.py/../app.py")
    (root / "ghost").symlink_to("releases/gone/../v3/app.py")
    (root / "abs").symlink_to(f"{origin}/releases/v3/app.py/")
    (root / "fine").symlink_to("releases/./v3//app.py")
    assert tree_check("files", root, {"fine": sha}, extras_fail=False).passed
    bad = tree_check("files", root, {k: sha for k in ("slashed", "dotted", "updown", "ghost", "abs")},
                     origins=[origin], extras_fail=False)
    assert bad.objects == ["abs: symlink that uses a file as a directory", "dotted: symlink that uses a file as a directory",
                           "ghost: symlink that leads nowhere", "slashed: symlink that uses a file as a directory",
                           "updown: symlink that uses a file as a directory"]
    for name in ("slashed", "dotted", "updown", "ghost", "abs"):  # the kernel agrees (abs: via its origin)
        if name != "abs":
            with pytest.raises((NotADirectoryError, FileNotFoundError)):
                (root / name).read_bytes()
    assert (root / "fine").read_bytes() == b"v3\n"
