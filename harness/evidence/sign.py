"""Sign-off and tamper evidence for an evidence pack.

`sign` appends an approval to `<pack>/signoff.json`: who, role, note, when (UTC), and the SHA-256
of `manifest.sha256` — which names the SHA-256 of every other file, so one hash pins the whole pack.
`verify` re-hashes every file and reports each one changed, added or removed since the manifest,
and whether each approval still matches the manifest.

The approval is an attestation, not a cryptographic signature: anyone who can write the pack can
write signoff.json. For a signature with a key, sign `manifest.sha256` with a tool built for it,
e.g. `ssh-keygen -Y sign -f ~/.ssh/id_ed25519 -n chaosdrill-evidence manifest.sha256` (it writes
`manifest.sha256.sig`, which `verify` does not count as an added file); docs/evidence.md says why.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.evidence.pack import MANIFEST, NOT_IN_MANIFEST, SIGNOFF, sha256_file

_LINE = re.compile(r"^([0-9a-f]{64})  (.+)$")
DETACHED_SIGNATURES = {f"{MANIFEST}.sig", f"{MANIFEST}.asc"}


@dataclass
class VerifyReport:
    pack: Path
    files: int = 0
    changed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    signoffs: list[dict[str, Any]] = field(default_factory=list)  # each with "matches"
    signoff_problem: str | None = None

    @property
    def intact(self) -> bool:
        return not (self.changed or self.added or self.removed)

    @property
    def ok(self) -> bool:
        return self.intact and self.signoff_problem is None and all(s["matches"] for s in self.signoffs)

    def to_dict(self) -> dict[str, Any]:
        return {"pack": str(self.pack), "ok": self.ok, "intact": self.intact, "files": self.files,
                "changed": self.changed, "added": self.added, "removed": self.removed,
                "signoffs": self.signoffs, "signoff_problem": self.signoff_problem}


def check_pack(pack: Path | str) -> Path:
    pack = Path(pack)
    if not pack.is_dir():
        raise ConfigError(f"{pack}: not an evidence pack (not a directory)")
    if not (pack / MANIFEST).is_file():
        raise ConfigError(f"{pack}: not an evidence pack (no {MANIFEST})")
    return pack


def read_manifest(pack: Path) -> dict[str, str]:
    entries: dict[str, str] = {}
    try:
        text = (pack / MANIFEST).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{pack / MANIFEST}: cannot read the manifest ({type(exc).__name__})") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _LINE.match(line)
        if not m or m.group(2).startswith("/") or ".." in m.group(2).split("/"):
            raise ConfigError(f"{pack / MANIFEST}: line {n} is not '<sha256>  <relative path>'")
        entries[m.group(2)] = m.group(1)
    return entries


def manifest_digest(pack: Path) -> str:
    return sha256_file(pack / MANIFEST)


def _load_signoffs(pack: Path) -> list[dict[str, Any]]:
    path = pack / SIGNOFF
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise ConfigError(f"{path}: damaged sign-off file ({type(exc).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("approvals"), list) \
            or not all(isinstance(a, dict) for a in data["approvals"]):
        raise ConfigError(f"{path}: damaged sign-off file (expected {{\"approvals\": [...]}})")
    return data["approvals"]


def sign(pack: Path | str, by: str, role: str | None = None, note: str | None = None,
         now: datetime | None = None) -> dict[str, Any]:
    """Record an approval of the pack as it is now; refused (exit 3 via verify) when the pack was altered."""
    pack = check_pack(pack)
    for what, value, limit in (("--by", by, 200), ("--role", role, 200), ("--note", note, 2000)):
        if value is not None and (not value.strip() or len(value) > limit or any(ord(c) < 32 for c in value)):
            raise ConfigError(f"{what}: give 1–{limit} printable characters")
    report = verify(pack)
    if not report.intact:
        what = "; ".join(f"{k}: {', '.join(v[:5])}" for k, v in
                         (("changed", report.changed), ("added", report.added), ("removed", report.removed)) if v)
        from harness.errors import TargetMissed

        raise TargetMissed(f"{pack}: refusing to sign a pack that differs from its manifest ({what})")
    approvals = _load_signoffs(pack)
    approval = {"by": by.strip(), "role": role.strip() if role else None, "note": note.strip() if note else None,
                "at": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
                "manifest_sha256": manifest_digest(pack)}
    approvals.append(approval)
    tmp = pack / f"{SIGNOFF}.tmp"
    tmp.write_text(json.dumps({"signoff_schema_version": 1, "approvals": approvals}, indent=2) + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, pack / SIGNOFF)
    return approval


def verify(pack: Path | str) -> VerifyReport:
    """Re-hash every file of the pack against manifest.sha256; check each approval against the manifest."""
    pack = check_pack(pack)
    expected = read_manifest(pack)
    report = VerifyReport(pack, files=len(expected))
    present = set()
    for dirpath, dirnames, filenames in os.walk(pack):
        dirnames.sort()
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), pack).replace(os.sep, "/")
            if rel in NOT_IN_MANIFEST or rel in DETACHED_SIGNATURES:
                continue
            present.add(rel)
    for rel in sorted(present - set(expected)):
        report.added.append(rel)
    for rel, digest in sorted(expected.items()):
        if rel not in present:
            report.removed.append(rel)
            continue
        try:
            actual = sha256_file(pack / rel)
        except OSError:
            report.removed.append(rel)
            continue
        if actual != digest:
            report.changed.append(rel)
    current = hashlib.sha256((pack / MANIFEST).read_bytes()).hexdigest()
    try:
        approvals = _load_signoffs(pack)
    except ConfigError as exc:
        report.signoff_problem = str(exc)
        approvals = []
    for a in approvals:
        report.signoffs.append({"by": a.get("by"), "role": a.get("role"), "at": a.get("at"),
                                "manifest_sha256": a.get("manifest_sha256"),
                                "matches": a.get("manifest_sha256") == current})
    return report
