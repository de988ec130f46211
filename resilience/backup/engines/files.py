"""File trees: a tar archive per set plus a manifest of every file's SHA-256.

The manifest always describes the *whole* tree at backup time; each entry names the archive
that holds its content. A FULL stores every file; an INCR stores files whose hash differs from
its parent set, a DIFF those that differ from the last FULL. Restoring any set therefore reads
only its manifest and the archives it points to, and every restored file is re-hashed.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from resilience.backup.catalog import BackupPart, BackupType
from resilience.backup.errors import BackupError, EngineError, RepositoryCorrupt
from resilience.backup.repository import Repository, sha256_file
from resilience.backup.targets import require_empty_dir


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


class FileTreeEngine:
    """Backs up one directory tree (regular files only; symlinks and sockets are skipped)."""

    kind = "files"
    engine = "files"

    def __init__(self, root: Path | str, name: str | None = None) -> None:
        self.root = Path(root).absolute()
        self.name = name or f"{self.kind}:{self.root.name}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}, name={self.name!r})"

    def sources(self) -> Iterator[tuple[str, Path]]:
        """(manifest path, file on disk) for every regular file to back up."""
        if not self.root.is_dir():
            raise EngineError(f"{self.name}: source directory {self.root} does not exist")
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            for fn in sorted(filenames):
                p = Path(dirpath) / fn
                if p.is_file() and not p.is_symlink():
                    yield str(p.relative_to(self.root)), p

    def scan(self) -> dict[str, dict]:
        out = {}
        for rel, p in self.sources():
            digest, size = sha256_file(p)
            out[rel] = {"sha256": digest, "size": size, "mode": stat.S_IMODE(p.stat().st_mode)}
        return out

    def _keys(self, set_id: str) -> tuple[str, str]:
        base = f"sets/{set_id}/{_safe(self.name)}"
        return f"{base}/files.tar.gz", f"{base}/manifest.json"

    def backup(self, repo: Repository, set_id: str, type_: BackupType, base: BackupPart | None) -> BackupPart:
        """Store the files that changed relative to `base` (the parent's part; None for FULL)."""
        if type_ is not BackupType.FULL and base is None:
            raise EngineError(f"{self.name}: a {type_} backup needs a parent part")
        old = self.load_manifest(repo, base) if base is not None else {}
        now = self.scan()
        archive_key, manifest_key = self._keys(set_id)
        changed = [rel for rel, e in now.items() if old.get(rel, {}).get("sha256") != e["sha256"]]
        manifest = {rel: e | {"archive": archive_key if rel in changed else old[rel]["archive"]}
                    for rel, e in now.items()}
        sources = dict(self.sources())
        with tempfile.TemporaryDirectory() as tmp:
            tar_path = Path(tmp) / "files.tar.gz"
            with tarfile.open(tar_path, "w:gz", compresslevel=1) as tar:
                for rel in changed:
                    tar.add(sources[rel], arcname=rel, recursive=False)
            tar_ref = repo.put_file(archive_key, tar_path)
        man_ref = repo.put_bytes(manifest_key, json.dumps(manifest, indent=1, sort_keys=True).encode())
        return BackupPart(
            kind=self.kind, name=self.name, engine=self.engine, objects=(tar_ref, man_ref),
            size=tar_ref.size + man_ref.size, source_size=sum(e["size"] for e in now.values()),
            meta={"root": str(self.root), "files": len(now), "changed": len(changed),
                  "deleted": len(set(old) - set(now)), "manifest": manifest_key, "archive": archive_key})

    @staticmethod
    def load_manifest(repo: Repository, part: BackupPart) -> dict[str, dict]:
        key = part.meta["manifest"]
        recorded = {o.key: o.sha256 for o in part.objects}.get(key)
        data = repo.get_bytes(key)
        if recorded and hashlib.sha256(data).hexdigest() != recorded:
            raise RepositoryCorrupt(f"{part.name}: manifest {key} does not match its recorded SHA-256")
        return json.loads(data)

    def restore(self, repo: Repository, part: BackupPart, target: Path) -> int:
        """Rebuild the tree of `part` into an empty `target`; returns the number of files."""
        target = require_empty_dir(target)
        manifest = self.load_manifest(repo, part)
        by_archive: dict[str, list[str]] = {}
        for rel, e in manifest.items():
            by_archive.setdefault(e["archive"], []).append(rel)
        with tempfile.TemporaryDirectory() as tmp:
            for key, rels in by_archive.items():
                local = Path(tmp) / "a.tar.gz"
                repo.get_file(key, local)
                _extract(local, rels, target, key)
                local.unlink()
        problems = check_tree(target, manifest)
        if problems:
            raise RepositoryCorrupt(f"{part.name}: {problems[0]}")
        for rel, e in manifest.items():
            os.chmod(target / rel, e["mode"])
        return len(manifest)

    @classmethod
    def verify(cls, repo: Repository, part: BackupPart) -> list[str]:
        """Deep check: every file this part's archive holds matches the manifest's SHA-256."""
        try:
            manifest = cls.load_manifest(repo, part)
        except (BackupError, ValueError) as exc:  # damaged or deleted: a problem, never an exception
            return [f"{part.name}: manifest unreadable: {exc}"]
        key = part.meta["archive"]
        mine = {rel: e for rel, e in manifest.items() if e["archive"] == key}
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "a.tar.gz"
            try:
                repo.get_file(key, local)
                _extract(local, list(mine), Path(tmp) / "x", key)
            except BackupError as exc:
                return [f"{part.name}: {exc}"]
            return [f"{part.name}: {p}" for p in check_tree(Path(tmp) / "x", mine)]


def _extract(archive: Path, rels: list[str], target: Path, key: str) -> None:
    """Extract the manifest's files. Only regular members: this engine archives nothing else, so a
    link in an archive is tampering, and without links nothing can be written outside `target` (not
    even through the realpath blind spot of tarfile's "data" filter on Python < 3.11.13)."""
    wanted = set(rels)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.name in wanted and m.isreg()]
            tar.extractall(target, members=members, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise RepositoryCorrupt(f"archive {key} is damaged: {exc}") from exc
    missing = wanted - {m.name for m in members}
    if missing:
        raise RepositoryCorrupt(f"archive {key} lacks {len(missing)} file(s), e.g. {sorted(missing)[0]}")


def check_tree(root: Path, manifest: dict[str, dict]) -> list[str]:
    """Files under `root` whose content differs from the manifest (one line each)."""
    problems = []
    for rel, e in sorted(manifest.items()):
        p = root / rel
        if not p.is_file():
            problems.append(f"{rel}: missing after restore")
        elif sha256_file(p)[0] != e["sha256"]:
            problems.append(f"{rel}: SHA-256 mismatch")
    return problems
