"""`chaosdrill verify`: intact → 0, damage → 3 naming each damaged object, bad input → 2; one line, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys

from .test_corruption_matrix import _wal_keys


def verify(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli_main", "verify", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def test_verify_command_exit_codes_and_named_damage(stack, tmp_path):
    mgr = stack.manager()
    full = mgr.backup("full")
    stack.pg.psql("insert into canary values (100001, 'x'); select pg_switch_wal()")
    stack.pg.psql("insert into canary values (100002, 'x'); select pg_switch_wal()")
    stack.pg.psql("insert into canary values (100003, 'x'); select pg_switch_wal()")
    mgr.pg.archive_now()
    repo = str(stack.repo.root)

    ok = verify("--repository", repo, cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "repository: intact" in ok.stdout and "WAL segment(s)" in ok.stdout

    ok = verify("--repository", repo, "--backup-id", full.id, "--json", cwd=tmp_path)
    doc = json.loads(ok.stdout)
    assert ok.returncode == 0 and doc["ok"] and doc["sets"] == [full.id] and doc["pgbackrest_verified"]

    # two damaged objects: each is named on its own line
    wal = _wal_keys(stack.repo)
    seg = sorted(wal)[-2]
    (stack.repo.root / wal[seg]).unlink()
    rdb = stack.repo.root / "sets" / full.id / "redis" / "dump.rdb"
    data = bytearray(rdb.read_bytes())
    data[len(data) // 2] ^= 1
    rdb.write_bytes(bytes(data))
    bad = verify("--repository", repo, cwd=tmp_path)
    assert bad.returncode == 3, bad.stdout + bad.stderr
    damaged = [ln for ln in bad.stdout.splitlines() if ln.startswith("damaged:")]
    assert any(seg in ln for ln in damaged) and any("redis/dump.rdb" in ln for ln in damaged), bad.stdout
    assert "DAMAGED" in bad.stdout and "Traceback" not in bad.stdout + bad.stderr

    unknown = verify("--repository", repo, "--backup-id", "20990101-000000-000000F", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown backup set" in unknown.stderr, unknown.stderr
    missing = verify("--repository", str(tmp_path / "nope"), cwd=tmp_path)
    assert missing.returncode == 2 and "not a directory" in missing.stderr
    unset = verify(cwd=tmp_path)  # no chaosdrill.toml: nothing configured to verify
    assert unset.returncode == 2 and "nothing to verify" in unset.stderr
    for proc in (unknown, missing, unset):
        assert "Traceback" not in proc.stdout + proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
