"""Restore-test target `docker`: the restored PostgreSQL runs in a container of the image the user
names (`[restore_test] image`, the major the backup needs), on the host's network, on a loopback port.

    restore on the host (pgbackrest restore into the fresh environment's dir)
      └─► docker run --network host --pid host -u <postgres uid> -v <dir>:<dir> IMAGE postgres -D <dir>/data

Why it is built this way:
- The fresh environment's dir is bind-mounted at the same path and the server runs as the host's
  postgres uid (the host's passwd/group files mounted read-only), so file ownership needs no
  translation and every path in the settings means the same inside and out.
- `--pid host`: the pid in postmaster.pid is a host pid and the server carries the environment's
  CHAOSDRILL_CHILD marker, so `chaosdrill env down` and `cleanup` stop a containerised server exactly
  like a local one (by pid and marker) even after the harness was killed; `--rm` lets Docker remove
  the container once its server is gone.
- Images (the public `postgres:N` too) carry no pgBackRest, so the WAL a restore replays is fetched
  on the host with `pgbackrest archive-get` into a staging dir inside the mounted dir and replayed with
  `restore_command` = test -f + cat (busybox images have no cp).
- Client tools (initdb, pg_controldata, psql, pg_amcheck, createdb, pg_restore) run from the same
  image: `docker exec` into the running server, `docker run --rm` before it runs. The host needs no
  PostgreSQL binaries of that major, which is the point of a container target.

The Docker CLI is used rather than the docker SDK: every call here is one command whose exit status
and last line are what a user would see, and exec output is plain text.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from harness.env.ports import LOOPBACK, port_in_use, wait_for_port
from harness.env.procs import MARKER_ENV, child_env, wait_until
from harness.env.servers import PG_OS_USER, PostgresServer
from harness.errors import EnvironmentStartError

IMAGE_PATH = "/usr/lib/postgresql/{major}/bin:/usr/local/bin:/usr/local/sbin:/usr/bin:/bin:/usr/sbin:/sbin"
DEFAULT_IMAGE = "chaosdrill-compose-postgres:{major}"  # built here from Debian's packages (scripts/build-compose-images.sh)
LABEL = "chaosdrill.restore_test"


def _last_line(proc: subprocess.CompletedProcess) -> str:
    return ((proc.stderr or "").strip() or (proc.stdout or "").strip() or "no output").splitlines()[-1]


def docker_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    if shutil.which("docker") is None:
        raise EnvironmentStartError("restore_test.target = docker: the docker command is missing "
                                    "(apt-get install docker.io; scripts/ensure-docker.sh starts an engine)")
    try:
        return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise EnvironmentStartError(f"docker {args[0]}: no answer in {timeout:.0f} s") from None


def pg_user_ids() -> tuple[int, int]:
    """The uid:gid the server runs as: the host's postgres user when we are root, else ourselves."""
    if os.geteuid() == 0:
        entry = pwd.getpwnam(PG_OS_USER)
        return entry.pw_uid, entry.pw_gid
    return os.getuid(), os.getgid()


def image_name(template: str, major: int) -> str:
    return template.replace("{major}", str(major))


def check_image(image: str, major: int) -> str:
    """The engine answers, the image is there and holds PostgreSQL `major`; its `postgres --version`.
    One line (exit 4) otherwise."""
    info = docker_cli("version", "--format", "{{.Server.Version}}", timeout=30)
    if info.returncode != 0:
        raise EnvironmentStartError(f"restore_test.target = docker: no Docker engine answers ({_last_line(info)}); "
                                    "start one (scripts/ensure-docker.sh) or set DOCKER_HOST")
    if docker_cli("image", "inspect", image, timeout=30).returncode != 0:
        raise EnvironmentStartError(
            f"restore_test.image: {image} is not on this Docker engine; docker pull it, or build the local "
            "PostgreSQL image with scripts/build-compose-images.sh (chaosdrill-compose-postgres:15)")
    # every major's bin dir on the PATH, so an image of another major says which it holds
    probe = 'for d in /usr/lib/postgresql/*/bin; do PATH="$PATH:$d"; done; exec postgres --version'
    proc = docker_cli("run", "--rm", "--network", "none", "-e", f"PATH={IMAGE_PATH.format(major=major)}",
                      "--entrypoint", "sh", image, "-c", probe, timeout=60)
    found = re.search(r"PostgreSQL\)? (\d+)", proc.stdout or "")
    if proc.returncode != 0 or not found:
        raise EnvironmentStartError(f"restore_test.image: {image} has no PostgreSQL server on its PATH "
                                    f"({_last_line(proc)})")
    if int(found.group(1)) != major:
        raise EnvironmentStartError(f"restore_test.image: {image} holds PostgreSQL {found.group(1)}, the backup "
                                    f"needs {major}; name an image of PostgreSQL {major} (e.g. postgres:{major})")
    return proc.stdout.strip()


@dataclass
class ContainerPostgres(PostgresServer):
    """A PostgresServer whose server and client tools run in a container of `image` (see module doc)."""

    image: str = ""
    major: int = 0
    env_id: str = ""
    mounts: list[Path] = field(default_factory=list)  # more host paths the tools read (a dump), read-only

    def __post_init__(self) -> None:
        super().__post_init__()
        self.bindir = Path(f"/usr/lib/postgresql/{self.major}/bin")  # inside the image (recorded, shown)

    @classmethod
    def replacing(cls, pg: PostgresServer, image: str, major: int, env_id: str) -> ContainerPostgres:
        """The same cluster (dir, port, settings, marker) served from a container instead."""
        return cls(base=pg.base, port=pg.port, settings=pg.settings, fast=pg.fast, name=pg.name, marker=pg.marker,
                   image=image, major=major, env_id=env_id)

    @property
    def container(self) -> str:
        return f"chaosdrill-rt-{self.env_id or self.port}"

    @property
    def docker_label(self) -> str:
        """On every container of this cluster, the server's and the one-off tools': what a teardown
        from the environment's record (`chaosdrill cleanup`, `env down`) removes."""
        return f"{LABEL}={self.env_id}"

    def _common(self) -> list[str]:
        uid, gid = pg_user_ids()
        return ["-u", f"{uid}:{gid}", "-e", f"PATH={IMAGE_PATH.format(major=self.major)}",
                "-e", f"{MARKER_ENV}={self.marker or ''}"]

    def _mounts(self) -> list[str]:
        args = ["-v", f"{self.base}:{self.base}", "-v", "/etc/passwd:/etc/passwd:ro", "-v", "/etc/group:/etc/group:ro"]
        for m in self.mounts:
            args += ["-v", f"{m}:{m}:ro"]
        return args

    def tool(self, name: str) -> list[str]:
        """`docker exec` into the server while it runs (its postmaster is a host pid: --pid host, so no
        engine round trip is needed to know), else a one-off `docker run --rm` of the image."""
        if self.running():
            return ["docker", "exec", *self._common(), self.container, name]
        return ["docker", "run", "--rm", "--network", "host", "--label", self.docker_label, *self._common(),
                *self._mounts(), "--entrypoint", name, self.image]

    def _run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run([*self.tool(args[0]), *args[1:]], capture_output=True, text=True, timeout=timeout,
                              env=child_env(self.marker))
        if check and proc.returncode != 0:
            raise EnvironmentStartError(f"{args[0]} (in {self.image}) failed (exit {proc.returncode}): "
                                        f"{_last_line(proc)}")
        return proc

    def start(self, timeout: float = 30) -> None:
        if port_in_use(self.port):
            raise EnvironmentStartError(f"PostgreSQL: port {self.port} on {LOOPBACK} is already in use")
        docker_cli("rm", "-f", self.container, timeout=60)  # a leftover of a killed run under the same name
        self.log.touch()
        shutil.chown(self.log, *pg_user_ids())
        proc = docker_cli("run", "-d", "--rm", "--name", self.container, "--network", "host", "--pid", "host",
                          "--label", self.docker_label, *self._common(), *self._mounts(), "--entrypoint", "sh",
                          self.image, "-c", f'exec postgres -D "{self.data}" >>"{self.log}" 2>&1', timeout=120)
        if proc.returncode != 0:
            raise EnvironmentStartError(f"docker run {self.image}: {_last_line(proc)}")
        if not wait_for_port(self.port, timeout=timeout):
            tail = (self.log.read_text(errors="replace").strip().splitlines() or ["(empty log)"])[-1]
            self.stop()
            raise EnvironmentStartError(f"PostgreSQL in {self.image} did not listen on {LOOPBACK}:{self.port}: {tail}")

    def stop(self, mode: str = "fast") -> None:
        """The shutdown signal pg_ctl would send, straight to the postmaster (a host pid: --pid host);
        `docker exec pg_ctl` is not used here because the exec session dies with the container."""
        pid = self.pid
        if pid is not None:
            sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            if not wait_until(lambda: not psutil.pid_exists(pid), timeout=60, interval=0.05):
                self.kill()
        docker_cli("rm", "-f", self.container, timeout=60)  # may race Docker's own --rm: wait until it is gone
        wait_until(lambda: docker_cli("container", "inspect", self.container, timeout=30).returncode != 0,
                   timeout=30, interval=0.1)
