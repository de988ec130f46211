"""A fake fault whose undo is registered under type "fake", for lifecycle and journal tests."""

from __future__ import annotations

from typing import Any

from harness.errors import FaultRefused
from harness.faults.base import AllowList, Fault

UNDONE: list[dict[str, Any]] = []


def undo_fake(record: dict[str, Any]) -> str:
    if record.get("undo_fails"):
        raise RuntimeError("the undo broke")
    UNDONE.append(record)
    return f"undid {record['name']}"


class FakeFault(Fault):
    """Records hook calls in `log`; can fail in apply or revert, and after a partial apply."""

    def __init__(self, name: str, log: list[str], *, fail_apply: bool = False, fail_revert: bool = False,
                 port: int = 5432, undo_fails: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        self.name, self.log, self.port = name, log, port
        self.fail_apply, self.fail_revert, self.undo_fails = fail_apply, fail_revert, undo_fails
        self.applied_half = False

    def target_label(self) -> str:
        return self.name

    def _check(self, allow: AllowList | None) -> None:
        self.log.append(f"check {self.name}")
        if allow is not None:
            allow.check_endpoint("127.0.0.1", self.port, self.label)
        if self.port == 0:
            raise FaultRefused("port 0")

    def journal_record(self) -> dict[str, Any]:
        return {"type": "fake", "name": self.name, "undo_fails": self.undo_fails}

    def _apply(self) -> None:
        assert self.journal is not None and self.id in self.journal.ids(), "journal written before apply"
        self.applied_half = True
        self.log.append(f"apply {self.name}")
        if self.fail_apply:
            raise OSError(f"{self.name} apply broke half-way")

    def _revert(self) -> None:
        self.log.append(f"revert {self.name} half={self.applied_half}")
        if self.fail_revert:
            raise OSError(f"{self.name} revert broke")
        self.applied_half = False
