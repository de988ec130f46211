"""Generated run results of every kind, written through the real result writer (harness.results.write_run).

Fault runs go through the real measurement and judgement (a synthetic probe timeline with an
outage of the asked length → measure_fault → judge_fault); DR drills and failovers carry the
measurements a real `chaosdrill drill` writes (backup set, LSN/WAL range, checks, RTO steps).
Used by the history and evidence tests and by bench/bench_evidence.py.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness.config import Config, Targets
from harness.measure import LOAD_SNAPSHOT, Objective, judge_fault, measure_fault, verdict
from harness.results import RunRecord, write_run
from harness.timeline import FAULT_ACTIVE, FAULT_APPLY_START, FAULT_CLEARED, Sample, Timeline

MS = 1_000_000
VERSIONS = {"postgres": "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)",
            "redis": "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64",
            "pgbackrest": "pgBackRest 2.45", "app": "chaosdrill reference app 0.1.0"}
_CONFIG = Config().model_dump(mode="json")


def _run_id(scenario: str, started: datetime, rnd: random.Random) -> str:
    return f"{started:%Y%m%dT%H%M%SZ}-{scenario}-{rnd.getrandbits(24):06x}"


def fault_run(results: Path, scenario: str, started: datetime, *, outage_s: float = 2.0, targets: Targets | None = None,
              seed: int = 0, samples: int = 120, no_effect: bool = False) -> Path:
    """A fault run: probe samples every 100 ms, the service down for `outage_s` after 2 s (none if no_effect)."""
    rnd = random.Random(seed)
    tl = Timeline(anchor_wall=started)
    t0 = tl.anchor_ns
    down_from, down_to = 20, 20 + int(outage_s * 10)
    for i in range(samples):
        bad = not no_effect and down_from <= i < down_to
        lat = (3 + rnd.random() * 8) * MS
        tl.add_sample(Sample(t0 + i * 100 * MS, "app_health", not bad, int(lat), "HTTP 503" if bad else None, not bad))
        if i % 5 == 0:
            tl.event(LOAD_SNAPSHOT, "locust", t_ns=t0 + i * 100 * MS, requests=25, failures=10 if bad else 0,
                     latencies_ms=[round(lat / MS, 2)] * 3)
    tl.event(FAULT_APPLY_START, "KillProcess(postgres)", t_ns=t0 + 1950 * MS)
    tl.event(FAULT_ACTIVE, "KillProcess(postgres)", t_ns=t0 + 1990 * MS)
    tl.event(FAULT_CLEARED, "KillProcess(postgres)", t_ns=t0 + (down_to * 100 - 50) * MS)
    m = measure_fault(tl, streak=3, deadline_s=60)
    objectives = judge_fault(m, targets or Targets())
    run_id = _run_id(scenario, started, rnd)
    record = RunRecord(run_id=run_id, scenario=scenario, started_at=started.isoformat(),
                       finished_at=(started + timedelta(seconds=samples / 10)).isoformat(),
                       verdict=verdict(objectives).value, objectives=[o.__dict__ for o in objectives],
                       measurements={"fault": m.to_dict()}, config=_CONFIG,
                       environment={"kind": "local", "id": "env-gen", "description": f"generated {scenario}",
                                    "versions": dict(VERSIONS)})
    return write_run(results / run_id, record, tl).parent


def drill_run(results: Path, started: datetime, *, scenario: str = "dr_restore", rto_s: float = 4.2,
              rpo_s: float = 1.0, status: str = "completed", targets: Targets | None = None, seed: int = 0,
              checks_pass: bool = True, rpo_measured: bool = True) -> Path:
    """A DR drill (or failover) result as `chaosdrill drill` writes it, with the asked RTO/RPO and status."""
    rnd = random.Random(seed)
    t = targets or Targets()
    tl = Timeline(anchor_wall=started)
    t0 = tl.anchor_ns
    for i in range(0, 100):
        tl.event("canary.ack", "canary", t_ns=t0 + i * 100 * MS, seq=i + 1)
    tl.event("drill.disaster", "drill", t_ns=t0 + 9_000 * MS)
    tl.event("drill.declared", "drill", t_ns=t0 + 9_010 * MS)
    serving = t0 + 9_010 * MS + int(rto_s * 1e9)
    tl.event("drill.serving", "drill", t_ns=serving)
    failover = scenario == "replica_failover"
    completed = status == "completed"
    lsn = rnd.randrange(2, 200)
    bset = None if failover else {
        "id": f"{started:%Y%m%d-%H%M%S}-000000I", "type": "incr", "parent": f"{started:%Y%m%d-%H%M%S}-000000F",
        "started_at": started.isoformat(), "finished_at": (started + timedelta(seconds=3)).isoformat(),
        "parts": {"postgres": {"engine": "pgbackrest", "size": 73994, "lsn_start": f"0/{lsn:X}000070",
                               "lsn_stop": f"0/{lsn + 1:X}0007B0", "wal_start": f"{1:08X}{0:08X}{lsn:08X}",
                               "wal_stop": f"{1:08X}{0:08X}{lsn + 1:08X}"}},
        "lsn_range": f"0/{lsn:X}000070 → 0/{lsn + 1:X}0007B0",
        "wal_range": f"{1:08X}{0:08X}{lsn:08X} → {1:08X}{0:08X}{lsn + 1:08X}", "size": 158913}
    checks = {"orders subset of snapshot": {"passed": checks_pass, "restored": 61, "snapshot": 62},
              "canary rows contiguous": {"passed": True, "rows": 103, "max_seq": 103}}
    objectives = [Objective.judge("RTO (declared → verified and serving)", t.rto, rto_s if completed else None, "s"),
                  Objective.judge("RPO (disaster − newest restored commit)", t.rpo,
                                  rpo_s if completed and rpo_measured else None, "s"),
                  Objective.judge("restore verified", 1, 1.0 if checks_pass and completed else 0.0, "bool", "higher")]
    result = verdict(objectives)
    if status != "completed":
        result = result.FAILED
    run_id = _run_id(scenario, started, rnd)
    record = RunRecord(
        run_id=run_id, scenario=scenario, started_at=started.isoformat(),
        finished_at=(started + timedelta(seconds=20)).isoformat(), verdict=result.value,
        objectives=[o.__dict__ for o in objectives],
        measurements={"drill": {"rto_s": rto_s if completed else None, "rpo_s": rpo_s if completed else None,
                                "steps": {"restore": None if failover else rto_s * 0.4, "start": rto_s * 0.5,
                                          "verify": rto_s * 0.05, "serve": rto_s * 0.05},
                                "rows_lost": 3 if completed else None, "verified": checks_pass and completed},
                      "status": status, "error": None if completed else "Restore: pgbackrest restore exited 1",
                      "backup_set": bset, "backups": [bset] if bset else [],
                      "verification": {"passed": checks_pass, "checks": checks,
                                       "smoke": {"passed": True, "detail": "order 7 created and read back"}}},
        config=_CONFIG, environment={"kind": "local", "id": "drill-gen", "description": f"generated {scenario}",
                                     "versions": dict(VERSIONS), "repository": "local repository /tmp/repo"},
        steps=[{"step": "TakeBackup", "status": "completed", "detail": {"set": bset["id"] if bset else None}}])
    return write_run(results / run_id, record, tl).parent


def at(day: str, hour: int = 10) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)

