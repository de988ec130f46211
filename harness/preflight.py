"""Checks run before anything starts: bad input is one line and a non-zero exit, with nothing left running.

Every entry point (`chaosdrill run`, `drill`, `env up` and the pytest plugin) calls `preflight(config)`
after the config validated and before the first server starts. It also exports
`environment.local.pg_bindir` as `CHAOSDRILL_PG_BINDIR`: `resilience/` (which never imports the
harness config) and the harness's servers both read the binaries' location from there.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from harness.config import Config
from harness.env.ports import LOOPBACK, port_in_use
from harness.errors import ConfigError, EnvironmentStartError

PG_BINDIR_ENV = "CHAOSDRILL_PG_BINDIR"


def export_settings(config: Config) -> None:
    """Make process-wide settings of the config visible to every component and child process."""
    bindir = config.environment.local.pg_bindir
    if bindir:
        os.environ[PG_BINDIR_ENV] = bindir


def preflight(config: Config) -> None:
    """Raise a one-line ConfigError / EnvironmentStartError for what would fail half-way through a start."""
    export_settings(config)
    if config.load.enabled:
        _check_load(config)
    if config.environment.kind == "local":
        _check_local(config)
    _check_drill_repository(config)
    # an external stack is checked once, by the environment itself on entry (the app answers, every
    # named proxy exists); its one-line error reaches the CLI through pytest_chaosdrill_error


def _check_drill_repository(config: Config) -> None:
    """A local repository path is a writable directory (or can be made one); a CA file is readable."""
    from harness.inputs import check_writable_dir, read_text_file

    repo = config.drill.repository
    if repo.kind == "local" and repo.path is not None:
        check_writable_dir(repo.path, "drill.repository.path")
    if repo.kind == "s3" and repo.ca_file is not None:
        read_text_file(repo.ca_file, "drill.repository.ca_file", 1 << 20)


def _check_load(config: Config) -> None:
    if config.load.locustfile is not None and not Path(config.load.locustfile).is_file():
        raise ConfigError(f"load.locustfile: {config.load.locustfile} is not a file; allowed: a Locust "
                          "locustfile (.py) of yours")
    if shutil.which("locust") is None and not _locust_importable():
        raise EnvironmentStartError("locust is not installed: run `make deps` (or set load.enabled = false)")


def _check_local(config: Config) -> None:
    local = config.environment.local
    if local.pg_bindir is not None:
        missing = [tool for tool in ("initdb", "pg_ctl", "postgres") if not (Path(local.pg_bindir) / tool).exists()]
        if missing:
            raise ConfigError(f"environment.local.pg_bindir: {local.pg_bindir} has no {', '.join(missing)}; "
                              "allowed: a PostgreSQL bin directory such as /usr/lib/postgresql/15/bin")
    from harness.env.servers import pg_bindir, redis_binary

    pg_bindir()  # EnvironmentStartError naming the package when PostgreSQL is not installed
    redis_binary()
    for key in ("postgres_port", "redis_port", "app_port"):
        port = getattr(local, key)
        if port and port_in_use(port, LOOPBACK):
            raise ConfigError(f"environment.local.{key}: {LOOPBACK}:{port} is in use; "
                              "allowed: a free port, or 0 for any free loopback port")


def _locust_importable() -> bool:
    """Locust is run as `python -m locust` by harness.load; find it without importing (gevent patching)."""
    import importlib.util

    return importlib.util.find_spec("locust") is not None
