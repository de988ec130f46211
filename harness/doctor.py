"""`chaosdrill doctor`: each component chaosdrill can use, whether it is here, its version, and the fix."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from harness.errors import HarnessError


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    required: bool
    detail: str
    fix: str


def _run_version(argv: list[str], contains: str = "") -> str | None:
    """First output line (containing `contains`) of a version command, or None when it fails."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = [ln for ln in (proc.stdout + proc.stderr).strip().splitlines() if contains in ln]
    return lines[0] if proc.returncode == 0 and lines else None


def _binary(name: str, argv: list[str], required: bool, fix: str, contains: str = "") -> Check:
    path = shutil.which(argv[0])
    found = _run_version([path, *argv[1:]], contains) if path else None
    return Check(name, found is not None, required, found or f"{argv[0]} not on PATH", fix)


def _postgres() -> Check:
    from harness.env.servers import pg_bindir

    try:
        bindir = pg_bindir()
    except HarnessError as exc:
        return Check("postgresql", False, True, str(exc), "apt-get install postgresql-15 (or `make deps`)")
    found = _run_version([str(bindir / "postgres"), "--version"])
    return Check("postgresql", found is not None, True, f"{found} ({bindir})", "apt-get install postgresql-15")


def _package(dist: str, required: bool) -> Check:
    try:
        return Check(f"python: {dist}", True, required, version(dist), "")
    except PackageNotFoundError:
        return Check(f"python: {dist}", False, required, "not installed", "make deps (installs into .venv)")


def _docker() -> Check:
    try:
        import docker

        info = docker.from_env(timeout=3).version()
        return Check("docker engine", True, False, f"engine {info.get('Version')} (API {info.get('ApiVersion')})", "")
    except Exception as exc:  # any failure means "no engine reachable"
        return Check("docker engine", False, False, f"not reachable: {type(exc).__name__}",
                     "scripts/ensure-docker.sh (installs docker.io, starts dockerd with host networking only)")


def _python() -> Check:
    import platform
    import sys

    ok = sys.version_info >= (3, 11)
    return Check("python", ok, True, f"{platform.python_version()} ({sys.executable})",
                 "" if ok else "chaosdrill needs Python 3.11 or newer")


def _pg_os_user() -> Check:
    """As root, PostgreSQL tools run as the postgres OS user (initdb refuses root)."""
    import os
    import pwd

    if os.geteuid() != 0:
        return Check("postgres OS user", True, False, f"not needed: running as uid {os.geteuid()}", "")
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        return Check("postgres OS user", False, True, "missing (needed when running as root)",
                     "apt-get install postgresql-15 (creates it)")
    return Check("postgres OS user", True, True, f"uid {entry.pw_uid}", "")


def _firewall_rights() -> Check:
    from harness.faults.firewall import has_net_admin

    ok = has_net_admin()
    return Check("CAP_NET_ADMIN", ok, False, "yes: partition faults can use nft/iptables" if ok else
                 "no: network_partition is refused; Toxiproxy faults still work", "run as root for packet-drop faults")


def checks() -> list[Check]:
    return [
        _python(),
        _postgres(),
        _pg_os_user(),
        _binary("redis-server", ["redis-server", "--version"], True, "apt-get install redis-server"),
        _binary("pgbackrest", ["pgbackrest", "version"], False, "apt-get install pgbackrest (backups, DR drill)"),
        _binary("stunnel", ["stunnel", "-version"], False, "apt-get install stunnel4 (pgBackRest to S3 in tests)",
               contains="stunnel "),
        _binary("chromium", ["chromium", "--version"], False, "apt-get install chromium (report screenshots/PDF)"),
        _binary("nft", ["nft", "--version"], False, "apt-get install nftables (firewall partition faults)"),
        _firewall_rights(),
        _docker(),
        *(_package(d, True) for d in ("pydantic", "typer", "httpx", "asyncpg", "redis", "aiohttp", "locust",
                                      "jinja2", "tenacity", "psutil")),
        *(_package(d, False) for d in ("pandas", "boto3", "docker", "moto")),
    ]
