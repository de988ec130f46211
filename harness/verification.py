"""`chaosdrill verify`: the configured backup repository through the one verification path.

Bad input (no repository configured, a path that is not a directory, an unknown set id) is a
ConfigError (exit 2) before anything is read; a repository that cannot be reached or a missing
pgbackrest is a tool error (exit 4); damage is never an exception: it comes back in the report,
one line per damaged object, and the command exits 3.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from harness.config import Config
from harness.errors import ConfigError, HarnessError
from resilience.backup.errors import (
    BackupNotFound,
    RepositoryAuthError,
    RepositoryMissing,
    RepositoryUnreachable,
)
from resilience.backup.verify import VerifyReport, load_catalog, verify_repository
from resilience.errors import BackupError


def run_verify(cfg: Config, *, backup_id: str | None = None, repository: Path | None = None) -> VerifyReport:
    """Verify `repository` (a local directory) or `[drill.repository]`; one set's chain or every set."""
    from harness.drill import make_repository

    rc = cfg.drill.repository
    if repository is not None:
        if not repository.is_dir():
            raise ConfigError(f"--repository: {repository} is not a directory")
        rc = rc.model_copy(update={"kind": "local", "path": str(repository.resolve())})
    elif rc.kind == "local" and not rc.path:
        raise ConfigError("nothing to verify: set [drill.repository] path (or kind = \"s3\"), or pass --repository PATH")
    elif rc.kind == "local" and not Path(rc.path).is_dir():
        raise ConfigError(f"drill.repository.path: {rc.path} is not a directory")
    with tempfile.TemporaryDirectory(prefix="chaosdrill-verify-") as scratch:
        repo = make_repository(rc, Path(scratch))
        try:
            repo.check()
        except (RepositoryUnreachable, RepositoryAuthError) as exc:
            raise HarnessError(str(exc)) from None
        except RepositoryMissing as exc:
            raise ConfigError(str(exc)) from None
        if backup_id is not None:
            try:
                load_catalog(repo).get(backup_id)
            except BackupNotFound as exc:
                raise ConfigError(str(exc)) from None
            except BackupError:
                pass  # a damaged or missing catalog is damage: verify_repository reports it
        return verify_repository(repo, set_id=backup_id)  # its own temp dir, reachable by the postgres user
