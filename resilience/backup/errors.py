"""Backup errors: every message is one line naming the bad value, fit for a CLI.

    BackupError                      (resilience.errors)
    ├── ToolMissing                  pgbackrest / pg_dump / redis-server not installed
    ├── BackupNotFound               unknown backup set id (lists the known ones)
    ├── RepositoryError              the repository cannot be used
    │   ├── RepositoryUnreachable    S3 endpoint down / timed out (may be retried)
    │   ├── RepositoryAuthError      credentials refused
    │   ├── RepositoryMissing        directory or bucket absent, catalog absent
    │   └── RepositoryCorrupt        a checksum or the catalog does not match
    ├── RestoreTargetNotEmpty        a restore would overwrite something
    ├── EngineError                  an engine's command failed (pgbackrest, pg_dump, redis)
    ├── VerifyFailed                 verification found problems (`.problems` lists them)
    └── ReplicationError             replica creation, lag probe or promotion failed
"""

from __future__ import annotations

from resilience.errors import BackupError


class ToolMissing(BackupError):
    """A required external program is not installed."""


class BackupNotFound(BackupError, LookupError):
    """No backup set with that id in the catalog."""


class RepositoryError(BackupError):
    """The repository cannot be read or written."""


class RepositoryUnreachable(RepositoryError):
    """The repository endpoint did not answer; retrying later may help."""

    retryable = True


class RepositoryAuthError(RepositoryError):
    """The repository refused our credentials."""


class RepositoryMissing(RepositoryError):
    """The repository (directory, bucket, catalog or an object) does not exist."""


class RepositoryCorrupt(RepositoryError):
    """Stored content does not match its recorded checksum."""


class RestoreTargetNotEmpty(BackupError):
    """Restores only go into new, empty places, never over existing data."""


class EngineError(BackupError):
    """A backup engine's command failed."""


class VerifyFailed(BackupError):
    """Verification found problems; the message is the first, `.problems` holds all."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [message])


class ReplicationError(BackupError):
    """Creating, monitoring or promoting a replica failed."""
