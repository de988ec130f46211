"""Bad input to `chaosdrill drill` through the real CLI: one clear line, a non-zero exit, and the source
environment untouched (refused before it starts where nothing needs it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.env.ports import free_port

pytestmark = pytest.mark.timeout(300)
STARTED = "starting source environment"


def write_config(tmp_path: Path, repository: str = "") -> Path:
    conf = tmp_path / "chaosdrill.toml"
    conf.write_text(f'[run]\nresults_dir = "{tmp_path / "results"}"\n'
                    '[drill]\nwarmup = 0.2\nhold = 0.5\nbackups = ["full"]\nload = false\n' + repository)
    return conf


def drill(conf: Path, *args: str, env: dict | None = None, state: Path | None = None):
    full_env = dict(os.environ, **(env or {}))
    if state is not None:
        full_env["CHAOSDRILL_STATE_DIR"] = str(state)
    return subprocess.run([sys.executable, "-m", "harness.cli_main", "drill", "-c", str(conf), *args],
                          capture_output=True, text=True, timeout=240, env=full_env)


def one_error_line(proc) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("chaosdrill: error:"), lines[0]
    return lines[0]


def path_without(tool: str, tmp_path: Path) -> str:
    """A PATH with every program of the current PATH linked in, except `tool`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for d in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            src, dest = Path(d) / name, bin_dir / name
            if name != tool and not dest.exists() and os.access(src, os.X_OK) and src.is_file():
                dest.symlink_to(src)
    return str(bin_dir)


def test_pgbackrest_missing_refuses_before_the_source_starts(tmp_path):
    path = path_without("pgbackrest", tmp_path)
    assert (Path(path) / "redis-server").exists() and not (Path(path) / "pgbackrest").exists()
    proc = drill(write_config(tmp_path), env={"PATH": path}, state=tmp_path / "state")
    assert proc.returncode == 2, proc.stderr
    assert "pgbackrest not found on PATH" in one_error_line(proc)
    assert STARTED not in proc.stdout + proc.stderr
    assert not list((tmp_path / "state").glob("envs/*.json"))
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def flip_byte(path: Path, at: int | None = None) -> int:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if at is None else at
    data[i] ^= 0x01
    path.write_bytes(bytes(data))
    return i


def test_corrupt_repository_of_a_previous_drill_is_one_line_naming_the_damage(tmp_path, scratch_dir):
    repo = scratch_dir / "repo"  # the postgres OS user must reach it (tmp_path is private to root)
    conf = write_config(tmp_path, f'[drill.repository]\nkind = "local"\npath = "{repo}"\n')
    first = drill(conf, state=tmp_path / "state")
    assert first.returncode == 0, first.stdout + first.stderr
    (result,) = (tmp_path / "results").glob("*/result.json")
    used = json.loads(result.read_text())["measurements"]["backup_set"]
    set_id, label = used["id"], used["parts"]["postgres"]["label"]
    (manifest,) = (repo / "pgbackrest" / "backup").glob(f"drill-*/{label}/backup.manifest")  # a stanza per cluster
    assert (repo / "catalog.json").is_file()

    at = flip_byte(manifest)  # one byte in a catalogued pgBackRest object
    proc = drill(conf, "--backup-id", set_id, state=tmp_path / "state")
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc)
    assert set_id in line and f"{label}/backup.manifest: SHA-256 mismatch" in line
    assert STARTED not in proc.stdout + proc.stderr
    flip_byte(manifest, at)

    rdb = repo / "sets" / set_id / "redis" / "dump.rdb"
    at = flip_byte(rdb)  # one byte in the Redis snapshot
    proc = drill(conf, "--backup-id", set_id, state=tmp_path / "state")
    assert proc.returncode == 2 and f"sets/{set_id}/redis/dump.rdb: SHA-256 mismatch" in one_error_line(proc)
    flip_byte(rdb, at)

    # intact again: refused all the same, since it belongs to the first drill's cluster
    proc = drill(conf, "--backup-id", set_id, state=tmp_path / "state")
    assert proc.returncode == 2 and "is intact" in one_error_line(proc) and "another cluster" in proc.stderr
    assert STARTED not in proc.stdout + proc.stderr

    catalog = repo / "catalog.json"
    text = catalog.read_text()
    catalog.write_text(text.replace(set_id, set_id[:-2] + ("0" if set_id[-2] != "0" else "1") + set_id[-1], 1))
    proc = drill(conf, "--backup-id", set_id, state=tmp_path / "state")
    assert proc.returncode == 2
    assert "catalog.json: checksum mismatch, the catalog was modified or damaged" in one_error_line(proc)
    assert STARTED not in proc.stdout + proc.stderr
    assert not list((tmp_path / "state").glob("envs/*.json"))
    catalog.write_text(text)


def test_a_repository_serves_drill_after_drill(tmp_path, scratch_dir):
    """Each drill's cluster is new (another system id): it gets a stanza of its own in the same repository."""
    repo = scratch_dir / "repo"
    conf = write_config(tmp_path, f'[drill.repository]\nkind = "local"\npath = "{repo}"\n')
    for _ in range(2):
        proc = drill(conf, state=tmp_path / "state")
        assert proc.returncode == 0, proc.stdout + proc.stderr
    results = sorted((tmp_path / "results").glob("*/result.json"))
    used = [json.loads(r.read_text())["measurements"]["backup_set"]["id"] for r in results]
    assert len(set(used)) == 2
    assert len(list((repo / "pgbackrest" / "backup").glob("drill-*"))) == 2
    catalog = json.loads((repo / "catalog.json").read_text())
    assert all(u in json.dumps(catalog) for u in used)


def test_s3_endpoint_unreachable_is_one_line(tmp_path):
    port = free_port()  # bound and released: nothing listens there
    conf = write_config(tmp_path, f'[drill.repository]\nkind = "s3"\nendpoint_url = "http://127.0.0.1:{port}"\n'
                                  'bucket = "drill"\naccess_key = "test"\nsecret_key = "test"\n')
    proc = drill(conf, state=tmp_path / "state")
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc)
    assert "endpoint unreachable" in line and f"127.0.0.1:{port}" in line
    assert STARTED not in proc.stdout + proc.stderr


def test_s3_wrong_credentials_against_a_real_moto_server(s3_endpoint, tmp_path, monkeypatch):
    from moto import settings

    s3_endpoint.repo("drill-auth").init()
    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # the (in-process) moto checks every key now
    conf = write_config(tmp_path, f'[drill.repository]\nkind = "s3"\nendpoint_url = "{s3_endpoint.http_url}"\n'
                                  'bucket = "drill-auth"\naccess_key = "AKIAWRONG"\nsecret_key = "nope"\n'
                                  f'pgbackrest_port = {s3_endpoint.tls_port}\nca_file = "{s3_endpoint.cert}"\n')
    proc = drill(conf, state=tmp_path / "state")
    assert proc.returncode == 2, proc.stderr
    assert "credentials refused" in one_error_line(proc)
    assert STARTED not in proc.stdout + proc.stderr


def test_a_drill_over_s3_restores_and_passes(s3_endpoint, tmp_path):
    """The success path over a real S3 HTTP server (moto, stunnel in front for pgBackRest's TLS)."""
    s3_endpoint.repo("drill-ok").init()
    conf = write_config(tmp_path, f'[drill.repository]\nkind = "s3"\nendpoint_url = "{s3_endpoint.http_url}"\n'
                                  'bucket = "drill-ok"\naccess_key = "test"\nsecret_key = "test"\n'
                                  f'pgbackrest_port = {s3_endpoint.tls_port}\nca_file = "{s3_endpoint.cert}"\n')
    proc = drill(conf, state=tmp_path / "state")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (result,) = (tmp_path / "results").glob("*/result.json")
    data = json.loads(result.read_text())
    assert data["verdict"] == "passed"
    assert "s3" in json.dumps(data["environment"]["repository"])
    objects = s3_endpoint.repo("drill-ok").list("")
    assert any("catalog.json" in key for key in objects) and any("pgbackrest/" in key for key in objects)
