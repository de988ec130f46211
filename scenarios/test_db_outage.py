"""db_outage: PostgreSQL goes away under load; how fast is it noticed, and how fast does the app heal?

The server is SIGKILLed (postmaster and backends, as an OOM kill would) and restarted after the
configured hold. The app must detect it (health 503), keep answering, and recover by itself.
"""

import pytest

from harness.faults.process import KillProcess
from harness.measure import Verdict


@pytest.mark.db_outage
def test_db_outage_kill(chaos_env, chaos_experiment):
    outcome = chaos_experiment.run(
        "db_outage",
        lambda timeline: KillProcess(chaos_env.postgres, timeline=timeline, allow=chaos_env.allow_list()),
        "PostgreSQL killed (SIGKILL of the whole server) and restarted after the hold",
    )
    failed = [f"{o.name}: {o.achieved} vs {o.target}" for o in outcome.objectives if o.passed is False]
    assert outcome.verdict is Verdict.PASSED, f"{outcome.verdict.value}: {failed}; report {outcome.report}"
