"""File-tree engine against a LocalRepository: manifests, incremental/differential by content hash."""

from __future__ import annotations

import pytest

from resilience.backup import BackupType, ConfigEngine, FileTreeEngine, LocalRepository, RestoreTargetNotEmpty
from resilience.backup.errors import RepositoryCorrupt, RepositoryMissing


@pytest.fixture
def tree(tmp_path):
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "one.txt").write_text("1")
    (src / "d" / "two.txt").write_text("2")
    repo = LocalRepository(tmp_path / "repo")
    repo.init()
    return src, repo


def test_incr_stores_only_changed_and_restore_rebuilds_every_state(tree, tmp_path):
    src, repo = tree
    eng = FileTreeEngine(src)
    full = eng.backup(repo, "s1", BackupType.FULL, None)
    (src / "one.txt").write_text("1 changed")
    (src / "three.txt").write_text("3")
    incr = eng.backup(repo, "s2", BackupType.INCR, full)
    (src / "d" / "two.txt").unlink()
    incr2 = eng.backup(repo, "s3", BackupType.INCR, incr)
    diff = eng.backup(repo, "s4", BackupType.DIFF, full)
    assert (full.meta["files"], incr.meta["changed"], incr2.meta["changed"], incr2.meta["deleted"]) == (2, 2, 0, 1)
    assert diff.meta["changed"] == 2 and diff.meta["deleted"] == 1
    eng.restore(repo, full, tmp_path / "r1")
    assert (tmp_path / "r1" / "one.txt").read_text() == "1" and (tmp_path / "r1" / "d" / "two.txt").exists()
    eng.restore(repo, incr2, tmp_path / "r3")
    assert sorted(p.name for p in (tmp_path / "r3").rglob("*") if p.is_file()) == ["one.txt", "three.txt"]
    assert (tmp_path / "r3" / "one.txt").read_text() == "1 changed"
    assert FileTreeEngine.verify(repo, incr) == []


def test_restore_refuses_non_empty_target_and_leaves_it_alone(tree, tmp_path):
    src, repo = tree
    eng = FileTreeEngine(src)
    part = eng.backup(repo, "s1", BackupType.FULL, None)
    with pytest.raises(RestoreTargetNotEmpty, match="is not empty"):
        eng.restore(repo, part, src)
    assert (src / "one.txt").read_text() == "1"


def test_damaged_archive_is_detected(tree, tmp_path):
    src, repo = tree
    eng = FileTreeEngine(src)
    part = eng.backup(repo, "s1", BackupType.FULL, None)
    archive = repo.root / part.meta["archive"]
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    assert FileTreeEngine.verify(repo, part)
    with pytest.raises(RepositoryCorrupt):
        eng.restore(repo, part, tmp_path / "r")
    archive.unlink()
    with pytest.raises(RepositoryMissing, match="is missing"):
        eng.restore(repo, part, tmp_path / "r2")


def test_an_archive_whose_file_became_a_link_is_refused_and_nothing_leaves_the_target(tree, tmp_path):
    """The engine archives regular files only: a link under a manifest name is tampering. Extracted, it
    would let a later member write through it, out of the target; it is refused as a missing file."""
    import io
    import tarfile

    src, repo = tree
    eng = FileTreeEngine(src)
    part = eng.backup(repo, "s1", BackupType.FULL, None)
    outside = tmp_path / "outside"
    outside.mkdir()
    archive = repo.root / part.meta["archive"]
    with tarfile.open(archive, "w:gz") as tar:  # same names, "d/two.txt" now a link out
        link = tarfile.TarInfo("d/two.txt")
        link.type, link.linkname = tarfile.SYMTYPE, str(outside / "planted")
        tar.addfile(link)
        one = tarfile.TarInfo("one.txt")
        one.size = 1
        tar.addfile(one, io.BytesIO(b"1"))
    with pytest.raises(RepositoryCorrupt, match="lacks 1 file"):
        eng.restore(repo, part, tmp_path / "r")
    assert not (tmp_path / "r" / "d" / "two.txt").is_symlink() and list(outside.iterdir()) == []


def test_config_engine_keeps_absolute_layout(tmp_path):
    conf = tmp_path / "etc" / "app.toml"
    conf.parent.mkdir()
    conf.write_text("x = 1")
    repo = LocalRepository(tmp_path / "repo")
    repo.init()
    eng = ConfigEngine([conf])
    part = eng.backup(repo, "s1", BackupType.FULL, None)
    eng.restore(repo, part, tmp_path / "out")
    assert (tmp_path / "out" / str(conf).lstrip("/")).read_text() == "x = 1"
    with pytest.raises(Exception, match="does not exist"):
        ConfigEngine([tmp_path / "nope.toml"]).backup(repo, "s2", BackupType.FULL, None)
