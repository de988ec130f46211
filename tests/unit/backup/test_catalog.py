"""Catalog logic: parents, chains, retention choice, integrity of the JSON document."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from resilience.backup import BackupNotFound, BackupPart, BackupSet, BackupType, Catalog, ObjectRef
from resilience.backup.catalog import new_set_id
from resilience.backup.errors import RepositoryCorrupt

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def make(cat: Catalog, type_: str, minute: int) -> BackupSet:
    t = BackupType.parse(type_)
    parent = cat.parent_for(t)
    s = BackupSet(id=new_set_id(T0 + timedelta(minutes=minute), t), type=t, parent=parent.id if parent else None,
                  started_at=T0 + timedelta(minutes=minute), finished_at=T0 + timedelta(minutes=minute, seconds=5),
                  parts=(BackupPart("files", "files:x", "files", (ObjectRef(f"sets/{minute}/a", 3, "ab" * 32),),
                                    size=3, meta={"wal_start": "x"}),))
    cat.add(s)
    return s


def test_parents_follow_pgbackrest_rules():
    cat = Catalog()
    f1 = make(cat, "full", 0)
    i1 = make(cat, "incr", 1)
    i2 = make(cat, "incr", 2)
    d1 = make(cat, "diff", 3)
    assert (i1.parent, i2.parent, d1.parent) == (f1.id, i1.id, f1.id)
    assert [s.id for s in cat.chain(i2.id)] == [f1.id, i1.id, i2.id]
    assert [s.id for s in cat.children(f1.id)] == [i1.id, d1.id]
    assert cat.latest().id == d1.id and cat.latest(BackupType.FULL).id == f1.id
    assert cat.get("latest").id == d1.id


def test_unknown_id_is_one_clear_line():
    cat = Catalog()
    make(cat, "full", 0)
    with pytest.raises(BackupNotFound, match="unknown backup set 'nope'; latest known: 20261122-080000-000000F"):
        cat.get("nope")
    with pytest.raises(BackupNotFound, match="no full backup set"):
        Catalog().parent_for(BackupType.DIFF)


def test_retention_keeps_n_fulls_and_expires_their_children():
    cat = Catalog()
    f1, i1 = make(cat, "full", 0), make(cat, "incr", 1)
    d1 = make(cat, "diff", 2)
    f2, i2 = make(cat, "full", 3), make(cat, "incr", 4)
    f3 = make(cat, "full", 5)
    assert [s.id for s in cat.expired_by(2)] == [f1.id, i1.id, d1.id]
    assert [s.id for s in cat.expired_by(1)] == [f1.id, i1.id, d1.id, f2.id, i2.id]
    assert cat.expired_by(3) == []
    assert f3 not in cat.expired_by(1)
    with pytest.raises(ValueError, match="keep_full must be at least 1"):
        cat.expired_by(0)


def test_round_trip_and_any_flipped_byte_is_caught():
    cat = Catalog()
    make(cat, "full", 0)
    make(cat, "incr", 1)
    data = cat.dumps()
    again = Catalog.loads(data)
    assert [s.to_dict() for s in again.list()] == [s.to_dict() for s in cat.list()]
    for i in range(0, len(data), 7):
        bad = bytearray(data)
        bad[i] ^= 0x01
        try:
            loaded = Catalog.loads(bytes(bad))
        except RepositoryCorrupt:
            continue
        # a flip inside insignificant whitespace changes nothing that matters
        assert [s.to_dict() for s in loaded.list()] == [s.to_dict() for s in cat.list()], i


def test_remove_refuses_a_parent_with_children():
    cat = Catalog()
    f1 = make(cat, "full", 0)
    make(cat, "incr", 1)
    with pytest.raises(ValueError, match="still has children"):
        cat.remove(f1.id)


def test_set_properties():
    cat = Catalog()
    s = make(cat, "full", 0)
    assert s.size == 3 and s.checksums == {"sets/0/a": "ab" * 32} and s.duration_s == 5
    with pytest.raises(BackupNotFound, match="has no part 'redis'; it has: files:x"):
        s.part("redis")
    with pytest.raises(ValueError, match="one of: full, diff, incr"):
        BackupType.parse("weekly")
