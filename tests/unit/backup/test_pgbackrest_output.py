"""pgBackRest's output, read the way the engine reads it: verify problems and one-line error mapping."""

from __future__ import annotations

import pytest

from resilience.backup.engines.pgbackrest import classify_error, parse_verify_output
from resilience.backup.errors import (
    EngineError,
    RepositoryAuthError,
    RepositoryCorrupt,
    RepositoryMissing,
    RepositoryUnreachable,
)

BEGIN = ("2026-12-01 19:28:30.033 P00   INFO: verify command begin 2.45: --config=/x/pgbackrest.conf "
         "--job-retry=0 --log-level-console=detail --log-level-stderr=off --stanza=drill")
RANGE = ("2026-12-01 19:28:30.438 P00 DETAIL: archiveId: 15-1, wal start: 000000010000000000000001, "
         "wal stop: 000000010000000000000002")
END = "2026-12-01 19:28:30.441 P00   INFO: verify command end: completed successfully (412ms)"


def test_a_clean_run_has_no_problems():
    assert parse_verify_output(0, "\n".join([BEGIN, RANGE, END])) == []


def test_exit_0_with_error_lines_is_a_failure():
    out = "\n".join([BEGIN, "2026-12-01 19:28:30.194 P01  ERROR: [028]: unable to read backup.manifest: "
                     "invalid format", RANGE, END])  # verify says "completed successfully" regardless
    problems = parse_verify_output(0, out)
    assert len(problems) == 1 and "ERROR: [028]" in problems[0]


def test_exit_0_with_an_invalid_checksum_and_status_error_is_a_failure():
    # verbatim from pgBackRest 2.45 after one flipped byte in a bundle (exit code 0)
    out = "\n".join([BEGIN, "2026-12-01 19:28:30.194 P02   INFO: invalid checksum "
                     "'20261201-192826F/pg_data/base/4/2838.lz4'", RANGE,
                     "2026-12-01 19:28:30.441 P00   INFO: stanza: drill", "      status: error",
                     "        backup: 20261201-192826F, status: invalid, total files checked: 964", END])
    problems = parse_verify_output(0, out)
    assert any("invalid checksum" in p for p in problems) and any("status: error" in p for p in problems)


def test_a_non_zero_exit_without_output_is_still_a_failure():
    assert parse_verify_output(56, "") == ["pgbackrest verify exited 56"]


@pytest.mark.parametrize(("line", "kind"), [
    ("ERROR: [039]: HTTP request failed with 403 (Forbidden): InvalidAccessKeyId", RepositoryAuthError),
    ("ERROR: [039]: S3 request failed with 403: SignatureDoesNotMatch", RepositoryAuthError),
    ("ERROR: [049]: unable to get address for 'nohost.invalid': [-2] Name or service not known",
     RepositoryUnreachable),
    ("ERROR: [039]: HostConnectError: unable to connect to 'localhost:1': [111] Connection refused",
     RepositoryUnreachable),
    ("ERROR: [101]: TLS error [1:167772427] wrong version number", RepositoryUnreachable),
    ("ERROR: [055]: unable to load info file '/r/backup/drill/backup.info' or '/r/backup/drill/backup.info.copy'",
     RepositoryMissing),
    ("ERROR: [028]: invalid checksum in '/r/archive/drill/archive.info'", RepositoryCorrupt),
    ("ERROR: [027]: no database found", EngineError),
    ("ERROR: [056]: unable to find primary cluster - cannot proceed", EngineError),
])
def test_errors_map_to_what_a_caller_can_act_on(line, kind):
    err = classify_error("pgbackrest backup", 39, line)
    assert type(err) is kind
    assert line in str(err) and "\n" not in str(err) and str(err).startswith("pgbackrest backup")


def test_the_database_being_down_is_not_blamed_on_the_repository():
    line = "WARN: unable to check pg1: [DbConnectError] unable to connect to 'dbname='postgres' port=5"
    assert type(classify_error("pgbackrest check", 27, line)) is EngineError
    assert "PostgreSQL unreachable" in str(classify_error("pgbackrest check", 27, line))
