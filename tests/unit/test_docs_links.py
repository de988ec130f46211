"""The documentation users get lives in docs/: nothing points outside the repository, and every
reference into docs/ (a file, a numbered recipe, a named section, a markdown link) resolves.

The names of the old out-of-tree documents are built from pieces below, so this file does not
match the patterns it forbids.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
TEXT_SUFFIXES = {".py", ".md", ".sh", ".toml", ".txt", ".j2", ".html", ".js", ".cfg", ".ini", ".yml", ".yaml", ""}
SKIP_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis", "node_modules"}

_OLD_NAMES = "|".join(("METRICS", "RECIPES", "STYLE", "TOXIPROXY" + "_API"))
FORBIDDEN = [
    (re.compile(rf"\b(?:{_OLD_NAMES})\.md\b"), "an out-of-tree design document"),
    (re.compile(rf"\b(?:{_OLD_NAMES})\s*§"), "a section of an out-of-tree design document"),
    (re.compile("design" + r"\s+folder", re.IGNORECASE), "a folder users do not have"),
    (re.compile(re.escape("../" + "shared") + r"\b"), "a path outside the repository"),
    (re.compile(re.escape("/work/" + "shared")), "a path outside the repository"),
]
DOC_PATH = re.compile(r"\bdocs/([A-Za-z0-9_.-]+\.md)\b")
RECIPE_SECTION = re.compile(r"\bdocs/recipes\.md(?:,)?\s+(?:§|section\s+)(\d+)(?:[–-](\d+))?")
NAMED_SECTION = re.compile(r"\bdocs/([a-z_]+\.md),?\s+['\"]([^'\"\n]{3,60})['\"]")
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _files() -> list[Path]:
    """Files tracked by git; a plain walk when git is unavailable."""
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT,
                             capture_output=True, text=True, check=True, timeout=30).stdout
        paths = [ROOT / line for line in out.splitlines() if line]
    except (OSError, subprocess.SubprocessError):
        paths = [p for p in ROOT.rglob("*") if not SKIP_DIRS.intersection(p.relative_to(ROOT).parts)]
    return [p for p in paths if p.is_file() and not p.is_symlink() and p.suffix in TEXT_SUFFIXES
            and "egg-info" not in str(p)]


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def _slug(heading: str) -> str:
    """GitHub's anchor for a markdown heading."""
    s = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return s.replace(" ", "-")


def _headings(path: Path) -> list[str]:
    return [line.lstrip("#").strip() for line in path.read_text().splitlines() if line.startswith("#")]


@pytest.fixture(scope="module")
def texts() -> dict[Path, str]:
    return {p: t for p in _files() if (t := _text(p)) is not None}


def test_docs_exist() -> None:
    for name in ("README.md", "metrics.md", "recipes.md", "toxiproxy.md"):
        assert (DOCS / name).is_file(), f"docs/{name} is missing"


def test_nothing_points_outside_the_repository(texts: dict[Path, str]) -> None:
    found = []
    for path, text in texts.items():
        for n, line in enumerate(text.splitlines(), 1):
            for pattern, what in FORBIDDEN:
                if m := pattern.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{n}: {m.group(0)!r} ({what}; point into docs/)")
    assert not found, "\n".join(found)


def test_every_docs_path_exists(texts: dict[Path, str]) -> None:
    missing = sorted({f"{path.relative_to(ROOT)}: docs/{m.group(1)}"
                      for path, text in texts.items() for m in DOC_PATH.finditer(text)
                      if not (DOCS / m.group(1)).is_file()})
    assert not missing, "\n".join(missing)


def test_recipe_section_numbers_exist(texts: dict[Path, str]) -> None:
    numbers = {int(m.group(1)) for h in _headings(DOCS / "recipes.md") if (m := re.match(r"(\d+)\.\s", h))}
    bad = []
    for path, text in texts.items():
        for m in RECIPE_SECTION.finditer(text):
            for group in m.groups():
                if group is not None and int(group) not in numbers:
                    bad.append(f"{path.relative_to(ROOT)}: {m.group(0)!r} (recipes has {sorted(numbers)})")
    assert not bad, "\n".join(bad)


def test_named_sections_exist(texts: dict[Path, str]) -> None:
    bad = []
    for path, text in texts.items():
        for m in NAMED_SECTION.finditer(text):
            doc = DOCS / m.group(1)
            if not doc.is_file():
                continue  # reported by test_every_docs_path_exists
            if not any(m.group(2).lower() in h.lower() for h in _headings(doc)):
                bad.append(f"{path.relative_to(ROOT)}: no section {m.group(2)!r} in docs/{m.group(1)}")
    assert not bad, "\n".join(bad)


def test_markdown_links_resolve() -> None:
    pages = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", *sorted(DOCS.glob("*.md"))]
    bad = []
    for page in pages:
        for m in MD_LINK.finditer(page.read_text()):
            target = m.group(1)
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            file_part, _, anchor = target.partition("#")
            dest = (page.parent / file_part).resolve() if file_part else page
            if not dest.exists():
                bad.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in {_slug(h) for h in _headings(dest)}:
                bad.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not bad, "\n".join(bad)


def test_readme_defines_numbers_through_docs() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## How numbers are defined", 1)[1].split("\n## ", 1)[0]
    assert "docs/metrics.md" in section
