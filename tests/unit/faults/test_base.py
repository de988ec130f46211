"""Fault lifecycle: journal before apply, four timeline events, no reuse, partial apply reverted."""

from __future__ import annotations

import pytest

from harness.errors import RevertFailed
from harness.faults.base import FaultSet, FaultState
from harness.timeline import FAULT_ACTIVE, FAULT_APPLY_START, FAULT_CLEARED, FAULT_REVERT_START, Timeline
from tests.unit.faults.fakes import FakeFault


def kinds(tl: Timeline) -> list[str]:
    return [e.kind for e in tl.events]


def test_lifecycle_records_four_events_and_clears_journal(journal):
    tl, log = Timeline(), []
    fault = FakeFault("db", log, timeline=tl)
    assert fault.state is FaultState.PENDING
    with fault:
        assert fault.state is FaultState.ACTIVE
        assert journal.ids() == [fault.id]
        assert journal.read(fault.id).record == {"type": "fake", "name": "db", "undo_fails": False}
        assert kinds(tl) == [FAULT_APPLY_START, FAULT_ACTIVE]
    assert fault.state is FaultState.REVERTED
    assert journal.ids() == []
    assert kinds(tl) == [FAULT_APPLY_START, FAULT_ACTIVE, FAULT_REVERT_START, FAULT_CLEARED]
    assert {e.source for e in tl.events} == {"FakeFault(db)"}
    assert log == ["check db", "apply db", "revert db half=True"]


def test_no_timeline_is_fine(journal):
    with FakeFault("db", []) as fault:
        assert journal.ids() == [fault.id]


def test_reuse_is_refused(journal):
    fault = FakeFault("db", [])
    with fault, pytest.raises(RuntimeError, match="is active"):
        fault.inject()
    with pytest.raises(RuntimeError, match="used once"), fault:
        pass


def test_clear_before_inject_is_an_error(journal):
    with pytest.raises(RuntimeError, match="never injected"):
        FakeFault("db", []).clear()


def test_failed_apply_reverts_the_applied_part_and_reraises(journal):
    tl, log = Timeline(), []
    fault = FakeFault("db", log, fail_apply=True, timeline=tl)
    with pytest.raises(OSError, match="half-way"), fault:
        pytest.fail("the body must not run")
    assert log[-1] == "revert db half=True"
    assert fault.state is FaultState.REVERTED
    assert journal.ids() == []
    assert kinds(tl) == [FAULT_APPLY_START, FAULT_REVERT_START, FAULT_CLEARED]
    assert "apply failed" in tl.events[1].data["reason"]


def test_failed_revert_keeps_the_journal_entry(journal):
    fault = FakeFault("db", [], fail_revert=True)
    with pytest.raises(RevertFailed, match=r"FakeFault\(db\): revert failed: db revert broke") as info, fault:
        pass
    assert info.value.exit_code == 5
    assert journal.ids() == [fault.id]
    assert fault.state is FaultState.ACTIVE


def test_body_exception_still_reverts(journal):
    log = []
    with pytest.raises(KeyError), FakeFault("db", log):
        raise KeyError("boom")
    assert log[-1].startswith("revert db")
    assert journal.ids() == []


def test_faultset_undoes_in_reverse_order(journal):
    log = []
    with FaultSet(FakeFault("a", log), FakeFault("b", log), FakeFault("c", log)):
        assert len(journal.ids()) == 3
    assert [x for x in log if not x.startswith("check")] == [
        "apply a", "apply b", "apply c", "revert c half=True", "revert b half=True", "revert a half=True"]
    assert journal.ids() == []


def test_faultset_reverts_earlier_faults_when_one_apply_fails(journal):
    log = []
    faults = FaultSet(FakeFault("a", log), FakeFault("b", log), FakeFault("c", log, fail_apply=True),
                      FakeFault("d", log))
    with pytest.raises(OSError, match="c apply broke"), faults:
        pytest.fail("the body must not run")
    assert [x for x in log if not x.startswith("check")] == [
        "apply a", "apply b", "apply c", "revert c half=True", "revert b half=True", "revert a half=True"]
    assert [f.state for f in faults.faults] == [FaultState.REVERTED] * 3 + [FaultState.PENDING]
    assert journal.ids() == []


def test_faultset_tries_every_revert_when_one_fails(journal):
    log = []
    a, b, c = FakeFault("a", log), FakeFault("b", log, fail_revert=True), FakeFault("c", log)
    with pytest.raises(RevertFailed, match=r"FakeFault\(b\)"), FaultSet(a, b, c):
        pass
    assert [x for x in log if x.startswith("revert")] == [
        "revert c half=True", "revert b half=True", "revert a half=True"]
    assert journal.ids() == [b.id]


def test_refused_fault_leaves_no_trace(journal):
    from harness.errors import FaultRefused

    tl, log = Timeline(), []
    with pytest.raises(FaultRefused), FakeFault("db", log, port=0, timeline=tl):
        pass
    assert log == ["check db"]
    assert tl.events == []
    assert journal.ids() == []
