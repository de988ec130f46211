"""The replica failover drill (scenario replica_failover): a streaming replica takes over.

    primary env + canary + probes ─► CreateReplica (pg_basebackup -R, lag monitor) ─► Warmup
      ─► Snapshot ─► KillPrimary (SIGKILL) ─► Promote (the `start` stage: promotion + an app
      repointed at the new primary) ─► Verify (orders vs snapshot, canary) ─► Serve

A `DrillRunner` with its own steps: same timeline, journal, measures and record as a restore drill.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.canary import CanaryWriter
from harness.config import Config
from harness.drill.disaster import seed_orders
from harness.drill.drill import DrillHooks, DrillRunner, _State
from harness.drill.pipeline import Progress
from harness.drill.plan import DrillPlan, Serve, Snapshot, Step, Verify, Warmup
from harness.env.local import LocalEnvironment
from harness.measure import DRILL_DECLARED, DRILL_DISASTER
from harness.probes import HttpProbe, ProbeRunner


@dataclass(frozen=True)
class CreateReplica:
    pass


@dataclass(frozen=True)
class KillPrimary:
    pass


@dataclass(frozen=True)
class Promote:
    pass


class FailoverRunner(DrillRunner):
    """replica_failover: canary on the primary, a streaming replica (pg_basebackup -R), SIGKILL of the
    primary, promotion, and an app repointed at the new primary. Same timeline and measures as a
    restore drill: failover time = RTO (kill → promoted, verified and serving), rows lost and RPO from
    the canary; the `start` step is the promotion, `restore` does not apply."""

    def __init__(self, config: Config, results_dir: Path | None = None, *, plan: DrillPlan | None = None,
                 progress: Progress | None = None, hooks: DrillHooks | None = None,
                 scenario: str = "replica_failover") -> None:
        d = config.drill
        plan = plan or (CreateReplica(), Warmup(d.warmup + d.hold), Snapshot(), KillPrimary(), Promote(),
                        Verify(), Serve(d.serve_timeout))
        super().__init__(config, results_dir, plan=plan, progress=progress, hooks=hooks, scenario=scenario)

    def _describe(self) -> str:
        return "replica failover: primary SIGKILLed, streaming replica promoted, app repointed to it"

    def _prepare(self, st: _State, stack: ExitStack, scratch: Path) -> None:
        cfg, d = self.config, self.config.drill
        st.scratch = scratch
        source = LocalEnvironment(cfg.environment.local, label="failover-src", incidents=cfg.incidents)
        stack.callback(source.down)
        st.source = source
        self.progress(f"starting primary environment {source.id}")
        source.up()
        st.versions = source.versions()
        st.source_state = source.state()
        seed_orders(source.app_url, 20)
        st.rows_at_backup = 20
        st.canary = CanaryWriter(source.postgres.port, st.tl, interval_s=d.canary_interval).start()
        stack.callback(st.canary.stop)
        probes = [HttpProbe(f"primary {name}", source.app_url + p.path, p.timeout, p.latency_threshold,
                            p.expect_status) for name, p in cfg.probes.items()]
        st.probes = ProbeRunner(probes, st.tl, cfg.run.probe_interval).start()
        stack.callback(self._stop_observers, st)
        st.stack = stack

    def _target(self, st: _State) -> tuple[int, int, str]:
        return st.replica.port, st.source.redis.port, st.app.url

    def _do(self, step: Step, st: _State) -> dict[str, Any] | None:
        from resilience.backup import LagMonitor, Replica

        tl = st.tl
        match step:
            case CreateReplica():
                self.progress("creating a streaming replica (pg_basebackup -R)")
                st.replica = Replica.create(st.source.postgres.port, st.scratch / "replica" / "data")
                st.stack.callback(st.replica.stop, "immediate")

                def lag_alert(alert) -> None:
                    tl.event("alert", "replication", reason=alert.reason)

                st.lag = LagMonitor(st.replica, on_alert=lag_alert, interval=0.5).start()
                st.stack.callback(st.lag.stop)
                tl.event("drill.replica", "drill", port=st.replica.port)
                return {"replica_port": st.replica.port}
            case KillPrimary():
                t_kill = self._begin_disaster(st, "DISASTER: primary PostgreSQL SIGKILLed")
                st.source.postgres.kill()
                tl.event(DRILL_DISASTER, "drill", kill_started_ns=t_kill, what="SIGKILL of the primary")
                tl.event(DRILL_DECLARED, "drill", detection_delay_s=0.0)
                st.canary.stop()
                lag = st.lag.samples[-1] if st.lag.samples else None
                return {"last_acked": st.canary.last_seq, "last_lag_bytes": lag.bytes if lag else None}
            case Promote():
                from harness.env.app_process import AppProcess
                from harness.env.ports import free_port

                with st.stages.stage("start") as d:  # the promotion is the failover's start stage
                    seconds = st.replica.promote()
                    st.lag.stop()
                    st.app = AppProcess(st.scratch / "app", port=free_port(), pg_dsn=st.replica.dsn,
                                        redis_url=st.source.redis.url)
                    st.stack.callback(st.app.stop)
                    st.app.start()
                    d.update(promote_s=seconds, app=st.app.url)
                return {"promote_s": seconds}
        return super()._do(step, st)
