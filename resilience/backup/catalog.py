"""Backup sets and the catalog that records them in the repository.

A BackupSet is one point in time of the whole system: its parts (database, Redis, file trees,
configuration) are taken together and restored together. The catalog is one JSON document with
its own SHA-256, so a flipped byte in it is caught like one in any backup object.

    FULL ◄── DIFF            (parent = the newest FULL)
    FULL ◄── INCR ◄── INCR   (parent = the newest set of any type)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from resilience.backup.errors import BackupNotFound, RepositoryCorrupt

SCHEMA_VERSION = 1
CATALOG_KEY = "catalog.json"


class BackupType(StrEnum):
    """pgBackRest's three types, applied to every part of a set."""

    FULL = "full"
    DIFF = "diff"
    INCR = "incr"

    @classmethod
    def parse(cls, value: str | BackupType) -> BackupType:
        try:
            return cls(str(value).lower())
        except ValueError:
            raise ValueError(f"backup type must be one of: full, diff, incr; got {value!r}") from None


@dataclass(frozen=True)
class ObjectRef:
    """One stored object: its key in the repository, size and SHA-256 at write time."""

    key: str
    size: int
    sha256: str


@dataclass(frozen=True)
class BackupPart:
    """What one engine stored for a set (`meta` holds engine facts: label, LSN/WAL range …)."""

    kind: str            # postgres | redis | files | config
    name: str            # unique inside the set, e.g. "postgres", "files:uploads"
    engine: str          # pgbackrest | pg_dump | redis_rdb | files | config
    objects: tuple[ObjectRef, ...] = ()
    size: int = 0        # bytes this part added to the repository
    source_size: int = 0  # bytes of the source it covers
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict) -> BackupPart:
        return cls(kind=d["kind"], name=d["name"], engine=d["engine"],
                   objects=tuple(ObjectRef(**o) for o in d.get("objects", ())),
                   size=d.get("size", 0), source_size=d.get("source_size", 0), meta=dict(d.get("meta", {})))


@dataclass(frozen=True)
class BackupSet:
    """One catalogued backup of every configured component."""

    id: str
    type: BackupType
    parent: str | None
    started_at: datetime
    finished_at: datetime
    parts: tuple[BackupPart, ...] = ()

    @property
    def size(self) -> int:
        """Bytes this set added to the repository."""
        return sum(p.size for p in self.parts)

    @property
    def checksums(self) -> dict[str, str]:
        """Object key → SHA-256 of every object the set owns."""
        return {o.key: o.sha256 for p in self.parts for o in p.objects}

    @property
    def duration_s(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    def part(self, name: str) -> BackupPart:
        for p in self.parts:
            if p.name == name:
                return p
        raise BackupNotFound(f"backup set {self.id} has no part {name!r}; it has: "
                             f"{', '.join(p.name for p in self.parts) or 'none'}")

    def parts_of(self, kind: str) -> list[BackupPart]:
        return [p for p in self.parts if p.kind == kind]

    @property
    def lsn_range(self) -> tuple[str, str] | None:
        """(start, stop) LSN of the database part, if it has one."""
        for p in self.parts_of("postgres"):
            if "lsn_start" in p.meta:
                return p.meta["lsn_start"], p.meta["lsn_stop"]
        return None

    @property
    def wal_range(self) -> tuple[str, str] | None:
        """(first, last) WAL segment the database part needs to become consistent."""
        for p in self.parts_of("postgres"):
            if "wal_start" in p.meta:
                return p.meta["wal_start"], p.meta["wal_stop"]
        return None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["type"] = str(self.type)
        d["started_at"] = self.started_at.isoformat()
        d["finished_at"] = self.finished_at.isoformat()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> BackupSet:
        return cls(id=d["id"], type=BackupType(d["type"]), parent=d.get("parent"),
                   started_at=datetime.fromisoformat(d["started_at"]),
                   finished_at=datetime.fromisoformat(d["finished_at"]),
                   parts=tuple(BackupPart.from_dict(p) for p in d.get("parts", ())))


def new_set_id(now: datetime, type_: BackupType) -> str:
    """Sortable, unique to the microsecond: 20261122-081703-123456F."""
    return now.astimezone(UTC).strftime("%Y%m%d-%H%M%S-%f") + str(type_)[0].upper()


def _digest(sets: list[dict]) -> str:
    return hashlib.sha256(json.dumps(sets, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class Catalog:
    """The ordered list of backup sets of one repository (oldest first)."""

    def __init__(self, sets: list[BackupSet] | None = None) -> None:
        self._sets: dict[str, BackupSet] = {}
        for s in sorted(sets or [], key=lambda s: s.id):
            self._sets[s.id] = s

    # -- persistence -------------------------------------------------------------------------
    def dumps(self) -> bytes:
        sets = [s.to_dict() for s in self.list()]
        doc = {"schema_version": SCHEMA_VERSION, "sha256": _digest(sets), "sets": sets}
        return json.dumps(doc, indent=1, sort_keys=True).encode()

    @classmethod
    def loads(cls, data: bytes, where: str = CATALOG_KEY) -> Catalog:
        """Parse and check the embedded digest; any damage → RepositoryCorrupt."""
        try:
            doc = json.loads(data)
            sets = doc["sets"]
            version = doc["schema_version"]
            recorded = doc["sha256"]
        except (ValueError, KeyError, TypeError) as exc:
            raise RepositoryCorrupt(f"{where}: not a valid catalog ({exc.__class__.__name__})") from exc
        if version != SCHEMA_VERSION:
            raise RepositoryCorrupt(f"{where}: schema_version {version!r} unsupported (want {SCHEMA_VERSION})")
        if _digest(sets) != recorded:
            raise RepositoryCorrupt(f"{where}: checksum mismatch, the catalog was modified or damaged")
        try:
            return cls([BackupSet.from_dict(s) for s in sets])
        except (ValueError, KeyError, TypeError) as exc:
            raise RepositoryCorrupt(f"{where}: malformed backup set ({exc})") from exc

    # -- queries -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._sets)

    def __contains__(self, set_id: object) -> bool:
        return set_id in self._sets

    def list(self, type_: BackupType | None = None) -> list[BackupSet]:
        return [s for s in self._sets.values() if type_ is None or s.type == type_]

    def get(self, set_id: str) -> BackupSet:
        """The set, or "latest"; an unknown id names the known ones."""
        if set_id == "latest":
            return self.latest()
        try:
            return self._sets[set_id]
        except KeyError:
            known = ", ".join(list(self._sets)[-5:]) or "none (the catalog is empty)"
            raise BackupNotFound(f"unknown backup set {set_id!r}; latest known: {known}") from None

    def latest(self, type_: BackupType | None = None) -> BackupSet:
        sets = self.list(type_)
        if not sets:
            what = f"{type_} backup set" if type_ else "backup set"
            raise BackupNotFound(f"no {what} in the catalog")
        return sets[-1]

    def children(self, set_id: str) -> list[BackupSet]:
        self.get(set_id)
        return [s for s in self._sets.values() if s.parent == set_id]

    def descendants(self, set_id: str) -> list[BackupSet]:
        out, todo = [], [set_id]
        while todo:
            kids = self.children(todo.pop())
            out += kids
            todo += [k.id for k in kids]
        return sorted(out, key=lambda s: s.id)

    def chain(self, set_id: str) -> list[BackupSet]:
        """The set and its ancestors back to the FULL it depends on, oldest first."""
        chain = [self.get(set_id)]
        while chain[-1].parent is not None:
            parent = chain[-1].parent
            if parent not in self._sets:
                raise RepositoryCorrupt(f"backup set {chain[-1].id} depends on {parent}, which is missing")
            chain.append(self._sets[parent])
        return chain[::-1]

    def parent_for(self, type_: BackupType) -> BackupSet | None:
        """Which set a new one of `type_` builds on (None for FULL)."""
        if type_ is BackupType.FULL:
            return None
        if type_ is BackupType.DIFF:
            return self.latest(BackupType.FULL)
        return self.latest()

    # -- changes -----------------------------------------------------------------------------
    def add(self, s: BackupSet) -> None:
        if s.id in self._sets:
            raise ValueError(f"backup set {s.id} already catalogued")
        if s.parent is not None and s.parent not in self._sets:
            raise BackupNotFound(f"parent {s.parent!r} of {s.id} is not in the catalog")
        self._sets[s.id] = s
        self._sets = dict(sorted(self._sets.items()))

    def remove(self, set_id: str) -> BackupSet:
        s = self.get(set_id)
        if self.children(set_id):
            raise ValueError(f"backup set {set_id} still has children; expire them first")
        return self._sets.pop(s.id)

    def expired_by(self, keep_full: int) -> list[BackupSet]:
        """Sets retention would drop: every FULL older than the newest `keep_full`, with its children."""
        if keep_full < 1:
            raise ValueError(f"keep_full must be at least 1, got {keep_full}")
        fulls = self.list(BackupType.FULL)
        doomed: list[BackupSet] = []
        for f in fulls[:-keep_full] if len(fulls) > keep_full else []:
            doomed += [f, *self.descendants(f.id)]
        return sorted({s.id: s for s in doomed}.values(), key=lambda s: s.id)


__all__ = ["CATALOG_KEY", "BackupPart", "BackupSet", "BackupType", "Catalog", "ObjectRef", "new_set_id"]
