"""Faults as context managers that cannot leak: journalled before they act, undone on the way out.

Lifecycle of one fault (each arrow names the timeline event recorded)::

    PENDING ──prepare/check──► (FaultRefused: nothing happened, nothing journalled)
       │
       │ journal.write(entry)       durable before anything changes
       │ ─► fault.apply_start
       ▼
    ACTIVE ──_apply() raised──► _revert() ─► fault.revert_start, fault.cleared, journal.remove ─► REVERTED
       │                            └─ _revert() raised ─► RevertFailed (entry kept for cleanup)
       │ ─► fault.active
       │ ... hold (the `with` body) ...
       │ ─► fault.revert_start
       │ _revert()                  raised ─► RevertFailed (entry kept; `chaosdrill cleanup` undoes it)
       │ ─► fault.cleared
       │ journal.remove(entry)
       ▼
    REVERTED ──enter again──► RuntimeError (a fault is used once; make a new one)

A crash anywhere between `journal.write` and `journal.remove` leaves the entry, and
`recover_leftovers()` undoes it from `journal_record()` alone: no Python object survives a SIGKILL.
"""

from __future__ import annotations

import enum
import uuid
from abc import ABC, abstractmethod
from contextlib import ExitStack
from typing import Any, ClassVar

import psutil

from harness.errors import FaultRefused, RevertFailed
from harness.faults.journal import Entry, Journal
from harness.scope import AllowList, is_loopback, require_loopback  # noqa: F401  (their home before harness.scope)
from harness.timeline import FAULT_ACTIVE, FAULT_APPLY_START, FAULT_CLEARED, FAULT_REVERT_START, Timeline


class FaultState(enum.Enum):
    """Where a fault is in its one-way life; see the module diagram."""

    PENDING = "pending"
    ACTIVE = "active"
    REVERTED = "reverted"


def protected_pids() -> set[int]:
    """Pids no fault may touch: init, this process and its ancestors (pausing those would hang us)."""
    me = psutil.Process()
    return {0, 1, me.pid, *(p.pid for p in me.parents())}


def default_allow() -> AllowList | None:
    """The allow-list of a fault given none: every environment this process runs or the state dir
    records (`chaosdrill env up` ones included); None (loopback only) when there is no environment."""
    from harness.env.local import known_allow_list

    return known_allow_list()


def check_pid_safe(pid: int, what: str) -> None:
    if pid in protected_pids():
        raise FaultRefused(f"{what}: pid {pid} is init, the harness itself or one of its parents")


class Fault(ABC):
    """A reversible fault used as a context manager; subclasses fill in the five hooks below.

    `allow` confines it to the environment; None means the known environments' allow-list
    (`default_allow()`: the environments of this process and those recorded in the state dir), or
    loopback only where there is no environment at all. `timeline` records its four events;
    `journal` defaults to $CHAOSDRILL_STATE_DIR/journal.
    """

    env_scoped: ClassVar[bool] = True  # False: targets no local environment knows (containers)

    def __init__(self, *, allow: AllowList | None = None, timeline: Timeline | None = None,
                 journal: Journal | None = None) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.allow = allow
        self.timeline = timeline
        self.journal = journal
        self.state = FaultState.PENDING

    # -- hooks ---------------------------------------------------------------------------
    def _prepare(self) -> None:  # noqa: B027 - optional hook
        """Resolve the target (pids, container ids, proxy) before it is checked and journalled."""

    @abstractmethod
    def _check(self, allow: AllowList | None) -> None:
        """Raise FaultRefused when the target is off loopback or outside `allow` (when given)."""

    @abstractmethod
    def journal_record(self) -> dict[str, Any]:
        """JSON-able undo recipe, usable without this object: {"type": <registered undo>, ...}."""

    @abstractmethod
    def _apply(self) -> None:
        """Make the fault take effect."""

    @abstractmethod
    def _revert(self) -> None:
        """Undo whatever part of `_apply` happened; must be idempotent."""

    @property
    def label(self) -> str:
        """Short name for the timeline and cleanup lines, e.g. `PauseProcess(redis)`."""
        return f"{type(self).__name__}({self.target_label()})"

    def target_label(self) -> str:
        return self.id

    # -- lifecycle -----------------------------------------------------------------------
    def _event(self, kind: str, **data: Any) -> None:
        if self.timeline is not None:
            self.timeline.event(kind, self.label, fault=type(self).__name__, fault_id=self.id, **data)

    def inject(self) -> None:
        """Check, journal, apply. On a failed apply, revert what was applied and re-raise."""
        if self.state is not FaultState.PENDING:
            raise RuntimeError(f"{self.label} is {self.state.value}; a fault is used once, create a new one")
        self._prepare()
        if self.allow is None and self.env_scoped:
            self.allow = default_allow()
        self._check(self.allow)
        if self.journal is None:
            self.journal = Journal()
        self.journal.write(Entry(self.id, self.label, self.journal_record()))
        self._event(FAULT_APPLY_START)
        self.state = FaultState.ACTIVE
        try:
            self._apply()
        except BaseException as exc:
            self._clear(reason=f"apply failed: {exc}")
            raise
        self._event(FAULT_ACTIVE)

    def clear(self) -> None:
        """Revert and drop the journal entry; raises RevertFailed (entry kept) when the revert fails."""
        if self.state is FaultState.PENDING:
            raise RuntimeError(f"{self.label} was never injected")
        if self.state is FaultState.REVERTED:
            return
        self._clear()

    def _clear(self, **data: Any) -> None:
        self._event(FAULT_REVERT_START, **data)
        try:
            self._revert()
        except Exception as exc:
            raise RevertFailed(f"{self.label}: revert failed: {exc}; run `chaosdrill cleanup`") from exc
        self.state = FaultState.REVERTED
        self._event(FAULT_CLEARED, **data)
        assert self.journal is not None
        self.journal.remove(self.id)

    def __enter__(self) -> Fault:
        self.inject()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.clear()

    def __repr__(self) -> str:
        return f"<{self.label} {self.state.value} id={self.id}>"


class FaultSet:
    """Several faults held together; entered in order, undone in reverse, even when one apply fails."""

    def __init__(self, *faults: Fault) -> None:
        self.faults = list(faults)
        self._stack: ExitStack | None = None

    def __enter__(self) -> FaultSet:
        with ExitStack() as stack:
            for fault in self.faults:
                stack.enter_context(fault)
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc_info: Any) -> bool:
        stack, self._stack = self._stack, None
        return bool(stack.__exit__(*exc_info)) if stack is not None else False

