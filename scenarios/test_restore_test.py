"""restore_test: restore YOUR latest backup into a fresh environment and check it (RTO, RPO, integrity).

With `[restore_test]` in chaosdrill.toml (a pgBackRest repository + stanza, or pg_dump files, plus
optional Redis RDB files and file trees) this restores exactly that, read-only, like
`chaosdrill restore-test`. Without a configured source it restores a small demo repository it makes
first with plain pgbackrest commands (harness/drill/demo.py), so the scenario always runs.
"""

import pytest
from conftest import assert_passed

from harness.pytest_plugin import OUTCOMES_KEY


@pytest.mark.restore_test
def test_restore_test(chaos_config, chaos_results_dir, pytestconfig):
    from harness.drill.demo import demo_pgbackrest
    from harness.drill.restore_test import RestoreTestRunner

    hook = pytestconfig.hook

    def run(config):
        outcome = RestoreTestRunner(config, chaos_results_dir,
                                    progress=lambda message: hook.pytest_chaosdrill_progress(message=message)).run()
        pytestconfig.stash[OUTCOMES_KEY].append(outcome)
        hook.pytest_chaosdrill_run_finished(outcome=outcome)
        return outcome

    if chaos_config.restore_test.configured:
        assert_passed(run(chaos_config))
        return
    with demo_pgbackrest(chaos_config.environment.local) as source:
        rt = chaos_config.restore_test.model_copy(update={"pgbackrest": source})
        assert_passed(run(chaos_config.model_copy(update={"restore_test": rt})))
