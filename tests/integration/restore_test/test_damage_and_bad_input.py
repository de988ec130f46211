"""Damage fails the right check naming the object; bad input is one line and a non-zero exit with
nothing left running; pg_dump, Redis RDB and file-tree sources restored and checked."""

from __future__ import annotations

import subprocess
import sys
import tarfile

import pytest
import redis

from harness.config import parse_config
from harness.drill.restore_test import RestoreTestRunner
from harness.env.local import load_state

from .conftest import BIN, config_for, make_user_cluster, seed, tree_digest

pytestmark = pytest.mark.timeout(300)


def cli(tmp_path, toml: str, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "chaosdrill.toml").write_text(toml)
    return subprocess.run([sys.executable, "-m", "harness.cli_main", "restore-test", "-c", str(tmp_path / "chaosdrill.toml"),
                           "--results", str(tmp_path / "results"), *args], capture_output=True, text=True, timeout=280)


def failed(outcome) -> dict[str, dict]:
    return {c["name"]: c for c in outcome.checks if not c["passed"]}


def test_flipped_byte_in_a_backup_data_file_is_named(user_cluster, tmp_path):
    label = user_cluster.pgbackrest("info", "--output=json").split('"label":"')[1].split('"')[0]
    table_file = user_cluster.psql("select pg_relation_filepath('orders')", db="shop")
    doomed = user_cluster.repo / "backup" / "main" / label / "pg_data" / table_file
    doomed = doomed if doomed.exists() else doomed.with_name(doomed.name + ".gz")
    data = bytearray(doomed.read_bytes())
    data[len(data) // 2] ^= 0xFF
    doomed.write_bytes(bytes(data))
    cfg = parse_config(config_for(tmp_path, {"pgbackrest": {"path": str(user_cluster.repo), "stanza": "main"}}), "t")
    outcome = RestoreTestRunner(cfg).run()
    assert outcome.verdict.value == "failed"
    bad = failed(outcome)
    verify = next(c for n, c in bad.items() if n.startswith("repository verified"))
    assert any(table_file.rsplit("/", 1)[-1] in o for o in verify["objects"]), verify
    assert not [r for r in load_state() if r["id"] == outcome.env_id]


def test_missing_wal_segment_is_named_and_replay_falls_short(user_cluster, tmp_path):
    for i in range(3):  # more archived WAL after the backup, then a hole in the middle of it
        user_cluster.psql(f"insert into orders(item) select 'wave {i}' from generate_series(1, 50)", db="shop")
        user_cluster.switch_wal()
    segs = sorted(p for p in (user_cluster.repo / "archive" / "main").rglob("0000000100000000000000*")
                  if "backup" not in p.name)
    hole = segs[-2]
    hole.unlink()
    cfg = parse_config(config_for(tmp_path, {"pgbackrest": {"path": str(user_cluster.repo), "stanza": "main"}}), "t")
    outcome = RestoreTestRunner(cfg).run()
    bad = failed(outcome)
    verify = next(c for n, c in bad.items() if n.startswith("repository verified"))
    assert any(hole.name[:24] in o for o in verify["objects"]), verify
    assert "WAL replay ended where the archive ends" in bad
    assert outcome.verdict.value == "failed"


def test_bad_input_is_one_line_and_nothing_runs(user_cluster, tmp_path):
    before = {r["id"] for r in load_state()}
    base = f'[restore_test.pgbackrest]\npath = "{user_cluster.repo}"\n'
    cases = [
        (base + 'stanza = "nope"\n', (), 2, "stanza 'nope'"),
        (f'[restore_test.pgbackrest]\npath = "{tmp_path}/no-such-repo"\nstanza = "main"\n', (), 2, "does not exist"),
        (base + 'stanza = "main"\n', ("--backup", "20990101-000000F"), 2, "no backup '20990101-000000F'"),
        (base + f'stanza = "main"\n[restore_test]\npg_bin_root = "{tmp_path}/empty"\n', (), 4,
         "needs PostgreSQL 15"),
        ("", (), 2, "nothing to restore"),
    ]
    (tmp_path / "empty").mkdir()
    for toml, args, code, words in cases:
        toml = toml.replace('[restore_test.pgbackrest]\npath', '[restore_test.pgbackrest]\npath', 1)
        if "[restore_test]\n" in toml:  # the table before its sub-table
            head, rest = toml.split("[restore_test]\n", 1)
            toml = "[restore_test]\n" + rest + head
        proc = cli(tmp_path, toml, *args)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == code, (toml, proc.stderr)
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert {r["id"] for r in load_state()} <= before


def test_json_and_junit_for_ci(user_cluster, tmp_path):
    """`--json` (stdout, against its schema) and `--junit`: every named check is a test result, a
    failed one a <failure> with its detail; bad input is the error document with exit 2."""
    import json

    import jsonschema
    from junitparser import Failure, JUnitXml

    from harness.ci_output import SUMMARY_SCHEMA

    junit = tmp_path / "junit.xml"
    toml = (f'[targets]\nrto = "300s"\nrpo = "1h"\n[restore_test]\namcheck = false\n'
            f'[[restore_test.checks]]\nname = "exactly one order"\ndatabase = "shop"\n'
            f'sql = "select count(*) from orders"\nexpect = "= 1"\n'
            f'[restore_test.pgbackrest]\npath = "{user_cluster.repo}"\nstanza = "main"\n')
    proc = cli(tmp_path, toml, "--json", "--junit", str(junit))
    assert proc.returncode == 3, proc.stderr
    doc = json.loads(proc.stdout)
    jsonschema.validate(doc, SUMMARY_SCHEMA)
    [run] = doc["runs"]
    assert doc["command"] == "restore-test" and run["scenario"] == "restore_test" and run["verdict"] == "failed"
    checks = {c["name"]: c for c in run["checks"]}
    assert checks["SQL: exactly one order"]["passed"] is False and "expected = 1" in checks["SQL: exactly one order"]["detail"]
    assert checks["server starts and reaches consistency"]["passed"] is True
    [suite] = list(JUnitXml.fromfile(str(junit)))
    cases = {c.name: c for c in suite}
    assert set(cases) >= {f"check: {n}" for n in checks}
    [failure] = [r for r in cases["check: SQL: exactly one order"].result if isinstance(r, Failure)]
    assert "expected = 1" in failure.message
    assert not cases["check: server starts and reaches consistency"].result  # passed

    bad = cli(tmp_path, f'[restore_test.pgbackrest]\npath = "{user_cluster.repo}"\nstanza = "nope"\n', "--json")
    err = json.loads(bad.stdout)
    jsonschema.validate(err, SUMMARY_SCHEMA)
    assert bad.returncode == 2 and err["exit_code"] == 2 and "stanza 'nope'" in err["error"] and not err["runs"]


def test_unreadable_repository_is_one_line(user_cluster, tmp_path):
    user_cluster.repo.chmod(0o000)  # the postgres OS user (pgBackRest) can no longer read it
    try:
        proc = cli(tmp_path, f'[restore_test.pgbackrest]\npath = "{user_cluster.repo}"\nstanza = "main"\n')
    finally:
        user_cluster.repo.chmod(0o750)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr


def test_pg_dump_redis_and_files(scratch_dir, tmp_path, redis_server):
    c = make_user_cluster(scratch_dir / "dumpsrc", track_commit_timestamp=False)
    try:
        seed(c)
        dumps = scratch_dir / "dumps"
        dumps.mkdir()
        subprocess.run([str(BIN / "pg_dump"), "-h", "127.0.0.1", "-p", str(c.port), "-U", "postgres", "-Fc", "-f",
                        str(dumps / "shop-2.dump"), "shop"], check=True)
    finally:
        c.stop()
    r = redis.Redis(port=redis_server.port)
    r.mset({f"user:{i}": i for i in range(300)})
    r.save()
    rdb = redis_server.base / "dump.rdb"
    keys = tmp_path / "keys.txt"
    keys.write_text("".join(f"user:{i}\n" for i in range(300)))
    tree = tmp_path / "uploads"
    (tree / "a").mkdir(parents=True)
    (tree / "a" / "one.txt").write_text("one\n")
    (tree / "two.bin").write_bytes(bytes(range(256)))
    tarball = tmp_path / "uploads.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(tree, arcname=".")
    import hashlib

    manifest = tmp_path / "SHA256SUMS"
    manifest.write_text("".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  ./{p.relative_to(tree)}\n"
                                for p in sorted(tree.rglob("*")) if p.is_file()))
    digests = {p: tree_digest(p.parent) for p in (dumps / "shop-2.dump", rdb)}
    rt = {"pg_dump": {"path": str(dumps / "shop-*.dump")},
          "redis": [{"path": str(rdb), "keys": str(keys)}],
          "files": [{"path": str(tarball), "manifest": str(manifest)}],
          "rpo_column": "shop.public.orders.created_at",
          "checks": [{"name": "orders", "database": "shop", "sql": "select count(*) from orders", "expect": "= 2000"}]}
    outcome = RestoreTestRunner(parse_config(config_for(tmp_path, rt), "t")).run()
    assert outcome.verdict.value == "passed", outcome.checks
    assert outcome.measurements.rpo_evidence == "newest shop.public.orders.created_at"
    assert all(tree_digest(p.parent) == d for p, d in digests.items())

    # damage: a truncated dump, a changed file, a Redis key missing from the RDB
    whole = (dumps / "shop-2.dump").read_bytes()
    (dumps / "shop-3.dump").write_bytes(whole[: len(whole) * 2 // 3])
    r.delete("user:7")
    r.save()
    (tree / "two.bin").write_bytes(b"changed")
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(tree, arcname=".")
    bad = failed(RestoreTestRunner(parse_config(config_for(tmp_path, rt), "t")).run())
    assert any(n.startswith("pg_restore of shop-3.dump") for n in bad), bad
    assert any("two.bin: SHA-256 differs" in o for c in bad.values() for o in c["objects"]), bad
    assert any("missing key user:7" in o for c in bad.values() for o in c["objects"]), bad
