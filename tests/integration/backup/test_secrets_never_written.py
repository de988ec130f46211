"""Secrets never written: a real fault run and a real drill over S3 (moto), with known fake keys in the
config, leave no trace of them in any file they produce or in anything they print; and every results
directory and file is owner-only."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.scenarios import QUICK

pytestmark = pytest.mark.timeout(420)
ACCESS = "AKIAFAKESECRET123"
SECRET = "fake-secret-XYZ"
TOKEN = "fake-webhook-token-0042"  # a value the user marks secret (run.secrets)
SECRETS = (ACCESS, SECRET, TOKEN)


def config(tmp_path: Path, endpoint: str, bucket: str, extra: str = "") -> Path:
    """The access key in the file, the secret key and the token through env: references."""
    conf = tmp_path / "chaosdrill.toml"
    conf.write_text(f'[run]\nresults_dir = "{tmp_path / "results"}"\nsecrets = ["env:CD_TEST_TOKEN"]\n'
                    + extra.replace("[run]\n", "", 1)
                    + '[drill]\nwarmup = 0.2\nhold = 0.5\nbackups = ["full"]\nload = false\n'
                    f'[drill.repository]\nkind = "s3"\nendpoint_url = "{endpoint}"\nbucket = "{bucket}"\n'
                    f'access_key = "{ACCESS}"\nsecret_key = "env:CD_TEST_SECRET"\n')
    return conf


def chaosdrill(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"CD_TEST_SECRET": SECRET, "CD_TEST_TOKEN": TOKEN, "COLUMNS": "200",
                        "CHAOSDRILL_STATE_DIR": str(tmp_path / "state")}
    return subprocess.run([sys.executable, "-m", "harness.cli_main", *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=360, env=env)


def leaks(root: Path, skip: Path) -> list[str]:
    """Every file under root (binary too, any encoding a secret may take) that holds a secret."""
    from urllib.parse import quote

    needles = [v.encode() for s in SECRETS for v in {s, quote(s, safe="")}]
    found = []
    for path in sorted(root.rglob("*")):
        if path == skip or path.is_symlink() or not path.is_file():
            continue
        try:
            body = path.read_bytes()
        except PermissionError:
            continue
        found += [f"{path}: {n.decode()}" for n in needles if n in body]
    return found


def assert_owner_only(results: Path) -> None:
    assert results.is_dir()
    for path in [results, *results.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_symlink():
            continue
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path}: {oct(mode)}"


def assert_no_secret_printed(proc: subprocess.CompletedProcess) -> None:
    for s in SECRETS:
        assert s not in proc.stdout and s not in proc.stderr, s


def test_a_fault_run_writes_and_prints_no_secret(tmp_path, s3_endpoint):
    conf = config(tmp_path, s3_endpoint.http_url, "secrets-run", QUICK)
    proc = chaosdrill(tmp_path, "run", "-m", "db_outage", "-c", str(conf))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (result,) = (tmp_path / "results").glob("*/result.json")
    assert '"secret_key": "**********"' in result.read_text()  # the config is dumped, masked
    assert (result.parent / "load" / "load-stats.json").is_file() and (result.parent / "report.html").is_file()
    assert leaks(tmp_path, skip=conf) == []
    assert leaks(tmp_path, skip=tmp_path / "none") == [f"{conf}: {ACCESS}"]  # the grep does find one
    assert_no_secret_printed(proc)
    assert_owner_only(tmp_path / "results")


def test_a_drill_over_s3_writes_and_prints_no_secret(tmp_path, s3_endpoint):
    conf = config(tmp_path, s3_endpoint.http_url, "secrets-drill")
    conf.write_text(conf.read_text() + f"pgbackrest_port = {s3_endpoint.tls_port}\nca_file = \"{s3_endpoint.cert}\"\n")
    proc = chaosdrill(tmp_path, "drill", "-c", str(conf), "--archive-timeout", "1s")  # an override re-parses the config
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (result,) = (tmp_path / "results").glob("*/result.json")
    assert '"verdict": "passed"' in result.read_text()
    assert leaks(tmp_path, skip=conf) == []
    assert_no_secret_printed(proc)
    assert_owner_only(tmp_path / "results")
    repo = s3_endpoint.repo("secrets-drill")
    stored = [key for key in repo.list("") if not key.startswith("pgbackrest/backup/") or key.endswith(".manifest")]
    assert stored and not [k for k in stored if any(s.encode() in repo.get_bytes(k) for s in SECRETS)]


def test_an_unset_secret_variable_is_one_line_exit_2(tmp_path, s3_endpoint):
    conf = config(tmp_path, s3_endpoint.http_url, "secrets-unset")
    conf.write_text(conf.read_text().replace("env:CD_TEST_SECRET", "env:CD_TEST_NOT_SET"))
    proc = chaosdrill(tmp_path, "drill", "-c", str(conf))
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == [f"chaosdrill: error: {conf}: drill.repository.secret_key: environment variable "
                     "CD_TEST_NOT_SET is not set"], proc.stderr
    assert_no_secret_printed(proc)
