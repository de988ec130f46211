"""The bad-input corpus (tests/fixtures/bad_input/cases.toml) through the real CLI: no traceback, ever.

Every case runs `python -m harness.cli_main ARGS` in a fresh copy of the corpus directory, with a
private state directory, and must end with exactly one line containing the case's `expect`, the
case's exit code, no "Traceback", and nothing started or written (no environment record, no file
added to or changed in the copy). Validation-only: no case starts PostgreSQL.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "bad_input"
CASES = tomllib.loads((CORPUS / "cases.toml").read_text())["case"]
CLI = [sys.executable, "-m", "harness.cli_main"]
REPO = Path(__file__).resolve().parents[2]


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root (not following links) with its size and mtime."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            found[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return found


def _chaosdrill(args: list[str], cwd: Path, state: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"COLUMNS": "200", "CHAOSDRILL_STATE_DIR": str(state),
                        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env,
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, Path]:
    work = tmp_path / "corpus"
    shutil.copytree(CORPUS, work, symlinks=True)  # the symlink loop stays a loop
    state = tmp_path / "state"
    state.mkdir()
    return work, state


def test_the_corpus_has_every_case_of_the_issue() -> None:
    names = {c["name"] for c in CASES}
    assert len(names) == len(CASES), "case names are unique"
    for needed in ("report-result-array", "report-result-null", "report-result-string", "report-result-binary",
                   "report-result-deep-nesting", "report-result-int-1e400", "report-result-missing-anchor",
                   "report-timeline-missing", "report-timeline-binary", "report-timeline-wrong-columns",
                   "report-out-missing-dir", "report-out-under-a-file", "report-out-a-directory",
                   "config-symlink-loop", "config-dev-zero", "drill-repository-path-a-file",
                   "config-hold-1e308", "config-hold-inf", "config-mttr-nan", "config-deadline-huge",
                   "run-results-under-a-file", "toxiproxy-port-99999", "run-bad-k-expression"):
        assert needed in names
    for case in CASES:
        assert set(case) <= {"name", "args", "expect", "exit", "note"}, case["name"]
        assert case["args"] and case["expect"] and isinstance(case["exit"], int), case["name"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_bad_input_is_one_line_with_its_exit_code(case: dict, corpus: tuple[Path, Path]) -> None:
    work, state = corpus
    before = _snapshot(work)
    proc = _chaosdrill(case["args"], work, state)
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, output
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert len(lines) == 1, output
    assert case["expect"] in lines[0], lines[0]
    assert lines[0].startswith("chaosdrill: error: "), lines[0]
    assert proc.returncode == case["exit"], output
    assert _snapshot(work) == before, "a bad input must leave the files as they were"
    assert not [p for p in state.rglob("*.json")], "no environment was recorded: nothing may start"
    assert not (work / "chaosdrill-results").exists()


def test_the_intact_run_of_the_corpus_renders(corpus: tuple[Path, Path]) -> None:
    """The damaged runs are copies of report/good with one thing broken; the original renders."""
    work, state = corpus
    proc = _chaosdrill(["report", "report/good", "--out", "out.html"], work, state)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "out.html"
    html = (work / "out.html").read_text()
    assert "20261122T080000Z-db_outage-b4d1n9" in html
