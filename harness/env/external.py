"""Your own stack as an environment (`environment.kind = "external"`): chaosdrill starts and stops none of it.

The `[services]` section says where each service is reached (loopback: a docker-compose stack with
host networking, a `kubectl port-forward`, an ssh tunnel), which Toxiproxy proxy stands in front of
it (network faults through `environment.external.toxiproxy_url`, a real Toxiproxy or ours), and
which Docker container runs it (kill / pause / stop faults). Faults may touch exactly these
endpoints and containers (`allow_list()`); everything else is refused.

Offers what FaultExperiment and the scenarios use from LocalEnvironment: `app_url`, `endpoints`,
`services`, `toxiproxy_url`, `proxy_for()`, `container_for()`, `allow_list()`, `state()`,
`versions()`. It has no process services and no `fresh()`: a DR drill restores into a local one.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import httpx

from harness.config import Config, ServiceConfig
from harness.env.base import Endpoint, Service
from harness.errors import EnvironmentStartError, HarnessError
from harness.scope import AllowList


class ExternalEnvironment:
    """The services of `[services]`, checked reachable on entry; nothing is started or stopped."""

    app = None  # no reference-app event log to merge: breaker events come only from probes

    def __init__(self, config: Config) -> None:
        if config.environment.kind != "external":
            raise HarnessError("ExternalEnvironment needs environment.kind = 'external'")
        self.config = config
        self.external = config.environment.external
        self.specs: dict[str, ServiceConfig] = dict(config.services)
        digest = hashlib.sha256(repr(sorted((n, s.model_dump_json()) for n, s in self.specs.items())).encode())
        self.id = f"external-{digest.hexdigest()[:8]}"
        self._versions: dict[str, str] = {}

    # -- what the harness sees -------------------------------------------------------------
    @property
    def services(self) -> dict[str, Service]:
        return {}  # nothing here is a process of ours; containers are reached via container_for()

    @property
    def endpoints(self) -> dict[str, Endpoint]:
        return {name: Endpoint(*spec.endpoint()) for name, spec in self.specs.items()}

    @property
    def app_url(self) -> str:
        return (self.specs[self.external.app].url or "").rstrip("/")

    @property
    def toxiproxy_url(self) -> str:
        if self.external.toxiproxy_url is None:
            raise EnvironmentStartError("this environment has no Toxiproxy: set environment.external.toxiproxy_url")
        return self.external.toxiproxy_url.rstrip("/")

    def service_of_kind(self, kind: str) -> str | None:
        """The first service of `kind` in [services] (scenarios ask for "the postgres service")."""
        if kind == "http":
            return self.external.app
        return next((name for name, spec in self.specs.items() if spec.kind == kind), None)

    def proxy_for(self, service: str) -> str | None:
        """The Toxiproxy proxy in front of `service`, or None when it has none."""
        spec = self.specs.get(service)
        return spec.proxy if spec else None

    def container_for(self, service: str) -> str | None:
        spec = self.specs.get(service)
        return spec.container if spec else None

    def allow_list(self) -> AllowList:
        """Faults may touch the configured endpoints and containers, nothing else."""
        return AllowList.of(endpoints=[(e.host, e.port) for e in self.endpoints.values()],
                            containers=[s.container for s in self.specs.values() if s.container])

    def state(self) -> dict[str, Any]:
        return {"id": self.id, "kind": "external",
                "app": {"url": self.app_url},
                "services": {n: s.model_dump(exclude_none=True) for n, s in self.specs.items()},
                "toxiproxy": self.external.toxiproxy_url}

    def versions(self) -> dict[str, str]:
        return dict(self._versions)

    def fresh(self, **_kw: Any):
        raise HarnessError("an external environment cannot build a fresh copy of itself; "
                           "DR drills restore into the local environment")

    # -- lifecycle: check, never start -----------------------------------------------------
    def up(self) -> ExternalEnvironment:
        """Wait (≤ ready_timeout) until the app answers HTTP and every named proxy exists."""
        deadline = time.monotonic() + self.external.ready_timeout
        last = ""
        while True:
            try:
                httpx.get(self.app_url + "/", timeout=2.0)
                break
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}".splitlines()[0]
            if time.monotonic() > deadline:
                raise EnvironmentStartError(f"services.{self.external.app}: {self.app_url} did not answer within "
                                            f"{self.external.ready_timeout:g} s ({last})")
            time.sleep(0.2)
        wanted = {n: s.proxy for n, s in self.specs.items() if s.proxy}
        if wanted:
            self._check_proxies(wanted)
        return self

    def _check_proxies(self, wanted: dict[str, str]) -> None:
        from harness.toxiproxy.client import ToxiproxyClient
        from harness.toxiproxy.errors import ToxiproxyError

        try:
            with ToxiproxyClient(self.toxiproxy_url, timeout=5.0) as client:
                self._versions["toxiproxy"] = client.version()
                present = client.proxies()
        except (ToxiproxyError, httpx.HTTPError) as exc:
            raise EnvironmentStartError(f"environment.external.toxiproxy_url: {self.toxiproxy_url} is not a "
                                        f"Toxiproxy API ({str(exc).splitlines()[0]})") from None
        for service, proxy in wanted.items():
            if proxy not in present:
                raise EnvironmentStartError(f"services.{service}.proxy: no proxy {proxy!r} at {self.toxiproxy_url}; "
                                            f"it has: {', '.join(sorted(present)) or 'none'}")

    def down(self) -> None:
        """Nothing to stop: the stack is yours. Faults were undone by their own context managers."""

    def __enter__(self) -> ExternalEnvironment:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()
