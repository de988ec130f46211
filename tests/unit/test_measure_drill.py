"""RTO and RPO from a drill timeline with known answers (docs/metrics.md, disaster-recovery drills)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from harness.config import Targets
from harness.measure import (
    CANARY_ACK,
    CANARY_RESTORED,
    DRILL_DECLARED,
    DRILL_DISASTER,
    DRILL_SERVING,
    Verdict,
    judge_drill,
    measure_drill,
    verdict,
)
from harness.timeline import Timeline

S = 1_000_000_000
WALL0 = datetime(2026, 11, 22, 8, 0, 0, tzinfo=UTC)


def drill_timeline(restored_seq: int | None = 95, verified: bool = True) -> Timeline:
    tl = Timeline(anchor_ns=0, anchor_wall=WALL0)
    for seq in range(1, 101):  # a canary row acknowledged every 100 ms; the 100th at t = 10.0 s
        tl.event(CANARY_ACK, "canary", t_ns=seq * S // 10, seq=seq)
    tl.event(DRILL_DISASTER, "drill", t_ns=10 * S + S // 20)  # 10.05 s
    tl.event(DRILL_DECLARED, "drill", t_ns=11 * S)
    for i, step in enumerate(("restore", "start", "verify", "serve")):
        tl.event(f"drill.{step}.start", "drill", t_ns=(12 + 2 * i) * S)
        data = {"passed": verified} if step == "verify" else {}
        tl.event(f"drill.{step}.end", "drill", t_ns=(13 + 2 * i) * S, **data)
    if restored_seq is not None:
        newest = WALL0 + timedelta(seconds=restored_seq / 10)
        tl.event(CANARY_RESTORED, "drill", t_ns=17 * S, max_seq=restored_seq, max_written_at=newest.isoformat())
    tl.event(DRILL_SERVING, "drill", t_ns=19 * S + S // 2)
    return tl


def test_rto_rpo_and_rows_lost_are_exact() -> None:
    m = measure_drill(drill_timeline(), backup_end_wall=(WALL0 + timedelta(seconds=4)).isoformat())
    assert m.rto_s == pytest.approx(8.5)
    assert m.steps == {"restore": 1.0, "start": 1.0, "verify": 1.0, "serve": 1.0}
    assert m.rpo_s == pytest.approx(0.55)  # 10.05 − 9.5
    assert (m.rows_acknowledged, m.rows_restored, m.rows_lost) == (100, 95, 5)
    assert m.backup_age_s == pytest.approx(6.05)
    assert verdict(judge_drill(m, Targets())) is Verdict.PASSED


def test_failed_verification_means_no_rto_and_a_failed_drill() -> None:
    m = measure_drill(drill_timeline(verified=False))
    assert m.verified is False and m.rto_s is None
    objectives = {o.name.split(" (")[0]: o for o in judge_drill(m, Targets())}
    assert objectives["RTO"].passed is False and objectives["restore verified"].passed is False


def test_targets_decide() -> None:
    m = measure_drill(drill_timeline())
    objectives = {o.name.split(" (")[0]: o for o in judge_drill(m, Targets(rto=5, rpo=0.1))}
    assert objectives["RTO"].passed is False and objectives["RPO"].passed is False


def test_an_empty_restore_has_no_rpo() -> None:
    tl = drill_timeline(restored_seq=None)
    tl.event(CANARY_RESTORED, "drill", t_ns=17 * S, max_seq=None, max_written_at=None)
    m = measure_drill(tl)
    assert m.rpo_s is None and m.rows_lost == 100
    assert {o.name.split(" (")[0]: o for o in judge_drill(m, Targets())}["RPO"].passed is False


def test_no_drill_events_measures_nothing() -> None:
    m = measure_drill(Timeline())
    assert (m.rto_s, m.rpo_s, m.verified) == (None, None, None)
    assert verdict(judge_drill(m, Targets())) is Verdict.INCONCLUSIVE


def test_a_stage_that_raised_did_not_finish() -> None:
    """The drill's stages are timed by pipeline.Stages: one that raised ends with `error`, and counts as
    not finished (no duration; a verify that raised is not a verdict)."""
    from harness.drill.pipeline import Stages

    tl = Timeline(anchor_ns=0, anchor_wall=WALL0)
    stages = Stages(tl, "drill", journaled=False)
    with stages.stage("restore", set="x") as d:
        d["steps"] = 3
    with pytest.raises(OSError), stages.stage("verify"):
        raise OSError("connection refused\nsecond line")
    assert stages.journal == []  # the drill journals its plan's steps itself
    assert tl.first("drill.verify.end").data == {"error": "connection refused"}
    m = measure_drill(tl)
    assert m.steps["restore"] is not None and m.steps["verify"] is None and m.verified is None
