"""Checks on a restored copy that the DR drill and the restore test share.

Whatever was restored (chaosdrill's own backup set in a drill, YOUR pgBackRest repository or dump in
a restore test), the same questions are asked of it the same way: did the server finish recovery,
does pg_amcheck find corruption in any database, does PostgreSQL report data checksum failures, does
every restored file match its manifest. Each answer is one `Check` (name, verdict, detail, the objects
it names). What only one side can ask stays there: rows against a snapshot and a canary in the drill
(drill.py), tables against the previous restore test, WAL replay against the archive's end and the
user's SQL assertions in the restore test (restore_test.py).
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.drill.pipeline import Check, connect
from harness.env.ports import LOOPBACK

# pg_amcheck names what it found: `heap table "db.schema.table", block 0, offset 1:` / `btree index "…":`
_AMCHECK_OBJECT = re.compile(r'^(heap table|btree index|index|table|relation) "([^"]+)"', re.I)


def server_recovered(port: int, version: str) -> Check:
    """The restored server left recovery (promoted): it serves writes, as the production copy would."""
    with connect(port) as conn:
        recovering = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
    return Check("server starts and reaches consistency", not recovering,
                 f"{version if 'PostgreSQL' in version else f'PostgreSQL {version}'} on {LOOPBACK}:{port}; recovery {'still running' if recovering else 'ended, promoted'}")


def amcheck(tool: list[str], port: int, *, heapallindexed: bool = False, jobs: int = 2,
            timeout: float = 24 * 3600) -> tuple[Check, dict[str, Any]]:
    """pg_amcheck over every database (heap and btree; `--install-missing` adds the extension to the
    throwaway copy). Returns the check and its facts (exit code, first 40 output lines)."""
    args = [*tool, "-h", LOOPBACK, "-p", str(port), "-U", "postgres", "--all", "--install-missing", "--jobs", str(jobs)]
    if heapallindexed:
        args.append("--heapallindexed")
    t0 = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    took = round(time.monotonic() - t0, 3)  # one value for the detail and the facts
    text = (proc.stdout or "") + (proc.stderr or "")
    objects = sorted({m.group(0) for ln in text.splitlines() if (m := _AMCHECK_OBJECT.match(ln.strip()))})
    ok = proc.returncode == 0
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    facts = {"exit": proc.returncode, "heapallindexed": heapallindexed, "duration_s": took,
             "output": text.strip().splitlines()[:40]}
    check = Check("pg_amcheck: heap and btree of every database" + (" (--heapallindexed)" if heapallindexed else ""),
                  ok, f"no corruption found ({took:.2f} s)" if ok else f"exit {proc.returncode}: {first}",
                  objects or ([first] if not ok else []))
    return check, facts


def amcheck_missing(tool: Path, port: int) -> str | None:
    """Why pg_amcheck could not run on a copy served by these binaries, asked of a running server of the
    same installation before anything is destroyed: the program, or the amcheck extension (contrib)."""
    if not tool.is_file():
        return f"{tool} not found (install the PostgreSQL client package of this major)"
    with connect(port) as conn:
        if conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'amcheck'").fetchone() is None:
            return "the amcheck extension is not installed (PostgreSQL's contrib modules)"
    return None


def data_checksums(port: int) -> str:
    with connect(port) as conn:
        return conn.execute("SHOW data_checksums").fetchone()[0]


def checksum_failures(port: int) -> Check:
    """The data checksum failures PostgreSQL counted while the copy was read (recovery, checks, amcheck)."""
    with connect(port) as conn:
        rows = conn.execute("SELECT coalesce(datname, '(shared)'), checksum_failures FROM pg_stat_database "
                            "WHERE checksum_failures > 0").fetchall()
    return Check("data checksum failures PostgreSQL reports", not rows,
                 "none" if not rows else f"{sum(r[1] for r in rows)} failure(s)",
                 [f"database {d}: {n} checksum failure(s)" for d, n in rows])


def tree_check(name: str, root: Path | None, expected: Mapping[str, str], *, sizes: Mapping[str, int] | None = None,
               extras_fail: bool = True, origins: Sequence[Path] = (), files: Sequence[Path] | None = None) -> Check:
    """A restored file tree against a manifest (relative path → SHA-256; `sizes` when the manifest has them).

    Missing and changed files always fail; files the manifest does not name fail when `extras_fail`
    (a manifest chaosdrill wrote lists every file), else they are counted in the detail only (a
    user's `sha256sum` file may leave out itself or a README). `origins`: where the tree lived when
    it was backed up, so an absolute symlink into it is followed inside the restored copy. `files`:
    the tree's `restored_files`, when the caller has listed them already."""
    from resilience.backup.repository import sha256_file

    if root is None or not root.is_dir():
        return Check(name, False, f"{root or 'the tree'} was not restored", [str(root or name)],
                     {"files": len(expected), "restored": 0, "root": str(root) if root else None})
    expected = {_under_origin(k, origins): v for k, v in expected.items()}  # `sha256sum /srv/app/*` names
    if sizes is not None:
        sizes = {_under_origin(k, origins): v for k, v in sizes.items()}
    found = {str(p.relative_to(root)): p for p in (restored_files(root) if files is None else files)}
    # a path the manifest names that is reached through a symlink (the file or a directory above it;
    # sha256sum follows links) counts as the file it leads to, if that file was restored too; one
    # leading out of the tree (or nowhere, or round in a loop) would verify the live system, not the backup
    outside: dict[str, str] = {}
    for rel in sorted(set(expected) - set(found)):
        target = _follow_in_tree(root, rel, origins)
        if isinstance(target, Path):
            found[rel] = target
        elif target:
            outside[rel] = f"{rel}: {target}"
    missing = sorted(set(expected) - set(found) - set(outside))
    changed = []
    for rel in sorted(set(expected) & set(found)):
        digest, size = sha256_file(found[rel])
        if digest != expected[rel] or (sizes is not None and size != sizes.get(rel)):
            changed.append(rel)
    unexpected = sorted(set(found) - set(expected))
    passed = not missing and not changed and not outside and not (extras_fail and unexpected)
    detail = (f"{len(expected)} in the manifest, {len(found)} restored; {len(missing)} missing, {len(changed)} changed, "
              f"{len(unexpected)} not in the manifest" + (f", {len(outside)} linked out of the tree" if outside else ""))
    objects = ([f"{k}: missing" for k in missing[:20]] + list(outside.values())[:20]
               + [f"{k}: SHA-256 differs" for k in changed[:20]]
               + ([f"{k}: not in the manifest" for k in unexpected[:20]] if extras_fail else []))
    data = {"files": len(expected), "restored": len(found), "missing": missing[:20], "changed": changed[:20],
            "unexpected": unexpected[:20], "root": str(root), **({"linked_out": sorted(outside)[:20]} if outside else {})}
    if sizes is not None:
        data["bytes"] = sum(sizes.values())
    return Check(name, passed, detail, objects, data)


def restored_files(root: Path) -> list[Path]:
    """The regular files of a restored tree; a symlink is not a file of its own (rglob enters no linked dir)."""
    return [p for p in root.rglob("*") if stat.S_ISREG(p.lstat().st_mode)]  # one lstat each: never follows


def _posix_parts(path: Path) -> tuple[str, ...]:
    """`path.parts` with pathlib's "//" root read as "/", as the kernel reads it."""
    parts = path.parts
    return ("/", *parts[1:]) if parts[:1] == ("//",) else parts


def _in_origin(path: Path, origins: Sequence[Path]) -> tuple[str, ...] | None:
    """The parts of an absolute `path` below the first origin it lies in (lexically), or None."""
    parts = _posix_parts(path)
    for o in origins:
        root = _posix_parts(o)
        if parts[:len(root)] == root:
            return parts[len(root):]
    return None


def _under_origin(path: str, origins: Sequence[Path]) -> str:
    """A manifest's absolute path under one of the tree's origins, as a path relative to the tree."""
    rest = _in_origin(Path(path), origins) if os.path.isabs(path) else None
    return str(Path(*rest)) if rest else path


_MAX_LINKS = 40  # as the kernel's ELOOP limit


def _follow_in_tree(root: Path, rel: str, origins: Sequence[Path]) -> Path | str | None:
    """Where `rel` leads inside `root`, following symlinks as the kernel would but never out of the
    tree: the restored file (a Path); why it is not one (a str); or None when no symlink is on the way
    (plainly missing). An absolute link into one of `origins` is read as the same place in `root`.

    Written out rather than `Path.resolve()`: that resolves against the live system, where an absolute
    link names the original tree, not this copy of it."""
    if os.path.isabs(rel):  # the manifest names a path on some system: never looked up on this one
        return "an absolute path outside the tree's origin, not looked up on this system"
    try:
        return _walk_in_tree(root, rel, origins)
    except OSError as exc:  # a name too long, a permission: named, never a traceback
        return f"cannot follow ({exc.strerror or type(exc).__name__})"


def _walk_in_tree(root: Path, rel: str, origins: Sequence[Path]) -> Path | str | None:
    # A link's text is split on "/" by hand: pathlib drops the "" and "." parts, and with them the
    # kernel's rule that what comes before a "/", "." or ".." must be a directory (else ENOTDIR/ENOENT).
    pending, here, links, last = list(Path(rel).parts), [], 0, ""
    while pending:
        part = pending.pop(0)
        if part in ("", ".", ".."):
            at = root.joinpath(*here)  # used as a directory here
            if not at.is_dir():
                if not links:
                    return None
                return "symlink that leads nowhere" if not at.exists() else "symlink that uses a file as a directory"
            if part == "..":
                if not here:
                    return f"{last} leads above the restored tree" if links else None
                here.pop()
            continue
        path = root.joinpath(*here, part)
        if not path.is_symlink():
            here.append(part)
            continue
        links, last = links + 1, "/".join((*here, part))
        if links > _MAX_LINKS:
            return "symlink loop"
        text = os.readlink(path)
        if not text.startswith("/"):
            pending[:0] = text.split("/")
            continue
        rest = _in_origin(Path(text), origins)
        if rest is None:
            return f"{last} is a symlink to {text}, outside the restored tree" + (
                "" if origins else " (set the source's `origin` to where the tree lived, to follow it inside the copy)")
        trailing = [""] if text.rsplit("/", 1)[-1] in ("", ".") else []  # ".../v3/" names a directory
        here, pending[:0] = [], [*rest, *trailing]
    if not links:
        return None
    final = root.joinpath(*here)  # never a link itself: the walk followed every one
    if final.is_file():
        return final
    return "symlink that leads nowhere" if not final.exists() else "symlink to a directory, not a file"


def as_entry(check: Check) -> dict[str, Any]:
    """The drill's result form of a check (checks keyed by name): verdict, detail, objects and its data."""
    return {"passed": check.passed, "detail": check.detail, "objects": check.objects[:50], **check.data}
