"""dr_restore: lose the database and the cache, restore the latest backup set into a fresh environment.

Backups follow `[drill]` (a full, then incrementals) while a canary writes every 100 ms under load;
then PostgreSQL is stopped with `-m immediate` and its data directory destroyed, Redis killed and its
directory removed, the app's uploads and config removed. The latest set is restored into a NEW
environment, checked row by row against a snapshot (Redis keys against the BGSAVE's manifest, files
against their SHA-256 manifest), and smoke-tested through the app. Achieved RTO and RPO are judged against `[targets]`.
"""

import pytest
from conftest import assert_passed


@pytest.mark.dr_restore
def test_dr_restore(chaos_drill):
    assert_passed(chaos_drill.run())
