"""chaosdrill.toml as strict pydantic models: environment, services, probes, load, targets, scenarios.

Every model is frozen and forbids unknown keys, so a typo is an error, not a silently ignored
setting. Durations accept seconds (`30`, `0.1`) or a string with a unit (`"100ms"`, `"60s"`,
`"15min"`, `"4h"`). `load_config()` turns any problem into one `ConfigError` line naming the
file, the key path, the bad value and what is allowed.

Secrets (S3 keys, `run.secrets`) are `SecretStr`: dumped as "**********", never shown in an
error. A secret may be written `"env:NAME"` to read it from environment variable NAME (unset or
empty is a config error naming the key); every secret of a loaded config is registered with
`harness.redact`, which scrubs it from everything chaosdrill writes or prints.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from harness import redact
from harness.errors import ConfigError
from harness.inputs import read_text_file

DEFAULT_CONFIG_NAME = "chaosdrill.toml"
_UNITS = {"ms": 1e-3, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|sec|m|min|h|d)?\s*$")
DURATION_HELP = "seconds or a number with a unit ms/s/min/h/d, e.g. 100ms, 60s, 15min, 4h"
MAX_DURATION = 30 * 86400.0  # 30 days: the longest duration any setting accepts (finite, fits every timer)
MAX_CONFIG_BYTES = 1 << 20  # a chaosdrill.toml larger than 1 MiB is not one


def _parse_duration(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a duration ({DURATION_HELP})")
    try:
        if isinstance(value, int | float):
            seconds = float(value)
        elif isinstance(value, str) and len(value) <= 64 and (m := _DURATION.match(value)):
            seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
        else:
            raise ValueError(f"expected a duration ({DURATION_HELP})")
    except OverflowError:  # an integer too large for a float
        seconds = math.inf
    if math.isnan(seconds):
        raise ValueError("a duration must be a finite number")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if seconds > MAX_DURATION:
        raise ValueError("a duration must be at most 30 days (2592000 s)")
    return seconds


Duration = Annotated[float, BeforeValidator(_parse_duration)]
Port = Annotated[int, Field(ge=0, le=65535)]
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ENV_PREFIX = "env:"


def _secret_value(value: Any) -> Any:
    """A secret as written, or `env:NAME`: the value of environment variable NAME."""
    if value is None or isinstance(value, SecretStr):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a string, or {ENV_PREFIX}NAME to read it from environment variable NAME")
    if value.startswith(ENV_PREFIX):
        name = value.removeprefix(ENV_PREFIX)
        if not _ENV_NAME.match(name):
            raise ValueError(f"{ENV_PREFIX}{name}: not an environment variable name")
        found = os.environ.get(name)
        if not found:
            raise ValueError(f"environment variable {name} is not set")
        return found
    return value


# A secret: never dumped ("**********"), never shown in an error, scrubbed from every output.
Secret = Annotated[SecretStr, BeforeValidator(_secret_value)]


class Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class RunConfig(Strict):
    """How a run samples and how long it may wait (docs/metrics.md, 'Probes and samples': Δ and K)."""

    results_dir: str = "chaosdrill-results"
    secrets: tuple[Secret, ...] = ()  # more values to scrub from every output (e.g. "env:SHOP_API_TOKEN")
    probe_interval: Duration = Field(0.1, gt=0)
    health_check_interval: Duration = Field(0.5, gt=0)  # the harness's PostgreSQL/Redis health checks
    recovery_streak: int = Field(3, ge=1, le=1000)
    deadline: Duration = Field(60.0, gt=0)
    # repeats (docs/metrics.md, "Repeats and regression"): each in a fresh environment; `--repeat` wins
    repeat: int = Field(1, ge=1, le=100)
    repeat_rule: Literal["all", "p95"] = "all"  # all: every repeat passes; p95: the worst-side p95 meets the target


class RegressionConfig(Strict):
    """Regression alarms against earlier runs (`--baseline`; docs/metrics.md, "Repeats and regression")."""

    baseline: str | None = None  # default --baseline: "last:N", a run or series id, or a series.json
    tolerance: float = Field(0.25, ge=0, le=100)  # regressed only beyond this relative change of the median
    alpha: float = Field(0.05, gt=0, lt=1)  # one-sided Mann-Whitney U significance level
    min_history: int = Field(3, ge=1, le=10_000)  # fewer baseline runs: "not enough history"


class AppConfig(Strict):
    """How the reference app protects itself: its circuit breakers and automatic recovery.

    The library's defaults are the design's (open after 5 failures, retry after 60 s); the
    `database_connection` recovery closes the breaker as soon as the pool validates, so the wait
    only matters when recovery fails.
    """

    breaker_failure_threshold: int = Field(5, ge=1, le=10_000)
    breaker_wait_in_open: Duration = Field(60.0, gt=0)
    recovery_attempts: int = Field(3, ge=1, le=100)
    recovery_wait: Duration = Field(1.0, ge=0)


class LocalEnvConfig(Strict):
    """Ports for the embedded local environment; 0 picks a free loopback port."""

    postgres_port: Port = 0
    redis_port: Port = 0
    app_port: Port = 0
    pg_bindir: str | None = None
    app: AppConfig = AppConfig()
    proxy: bool = True  # the embedded Toxiproxy sits between the app and PostgreSQL/Redis


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _loopback_host(host: str | None, what: str) -> None:
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"{what} host {host!r} is not loopback; chaosdrill reaches services on "
                         "127.0.0.1/::1 only (port-forward or tunnel a remote stack)")


def _loopback_url(value: str | None, what: str) -> str | None:
    if value is not None:
        from urllib.parse import urlsplit

        _loopback_host(urlsplit(value).hostname, what)
    return value


def _split_address(address: str) -> tuple[str, int]:
    from urllib.parse import urlsplit

    parts = urlsplit(f"//{address}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None or port == 0:
        raise ValueError("expected host:port, e.g. 127.0.0.1:5432")
    return parts.hostname, port


class ServiceConfig(Strict):
    """A service of your own stack (`environment.kind = "external"`): where clients reach it,
    and what faults may act on it.

    `url` (http services) or `address` (host:port) is where the harness and your app reach it;
    `proxy` names the Toxiproxy proxy in front of it (network faults); `container` the Docker
    container running it (kill / pause / stop faults). Hosts must be loopback.
    """

    kind: Literal["http", "postgres", "redis", "tcp"] = "tcp"
    url: str | None = Field(None, pattern=r"^https?://")
    address: str | None = None
    proxy: str | None = Field(None, min_length=1)
    container: str | None = Field(None, min_length=1)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None:
            _loopback_host(_split_address(value)[0], "address")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _loopback_url(value, "url")

    def endpoint(self) -> tuple[str, int]:
        """(host, port) clients connect to."""
        if self.address is not None:
            return _split_address(self.address)
        from urllib.parse import urlsplit

        parts = urlsplit(self.url or "")
        return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


class ExternalEnvConfig(Strict):
    """Your own stack, already running: chaosdrill starts nothing and stops nothing of it.

    `app` names the http service that probes and load target; `toxiproxy_url` is the Toxiproxy
    API (a real one, or `chaosdrill toxiproxy`) in front of your services, for network faults.
    """

    app: str = "app"
    toxiproxy_url: str | None = Field(None, pattern=r"^https?://")
    ready_timeout: Duration = Field(10.0, gt=0)

    @field_validator("toxiproxy_url")
    @classmethod
    def _toxiproxy_url(cls, value: str | None) -> str | None:
        return _loopback_url(value, "toxiproxy_url")


class EnvironmentConfig(Strict):
    """Where the services live: `local` (the embedded default: chaosdrill starts PostgreSQL, Redis
    and the reference app) or `external` (your stack, described in `[services]`)."""

    kind: Literal["local", "external"] = "local"
    local: LocalEnvConfig = LocalEnvConfig()
    external: ExternalEnvConfig = ExternalEnvConfig()


class ProbeConfig(Strict):
    """An HTTP steady-state probe of a service of the environment."""

    kind: Literal["http"] = "http"
    service: str | None = Field(None, min_length=1)  # an http service; default: the environment's app
    path: str = Field("/health", pattern=r"^/")
    timeout: Duration = Field(1.0, gt=0)
    latency_threshold: Duration = Field(0.5, gt=0)
    expect_status: int = Field(200, ge=100, le=599)


class LoadConfig(Strict):
    """Locust load during scenarios (bounded: users × throughput_per_user requests/s)."""

    enabled: bool = True
    locustfile: str | None = None  # default: the bundled one, which drives the reference app
    users: int = Field(10, ge=1, le=1000)
    spawn_rate: float = Field(10.0, gt=0, le=1000)
    throughput_per_user: float = Field(5.0, gt=0, le=100)
    # 0: one Locust process (one core). N: Locust's distributed mode, a master on a loopback port plus N
    # worker processes on this machine (README, "Load"; docs/recipes.md for workers on other machines).
    workers: int = Field(0, ge=0, le=64)


class Targets(Strict):
    """Objectives; defaults are the design's seed numbers. A run is judged against these."""

    time_to_detect: Duration = 60.0
    mttr: Duration = 1800.0
    rto: Duration = 4 * 3600.0
    rpo: Duration = 15 * 60.0
    breaker_decision: Duration = 0.1
    breaker_failure_threshold: int = Field(5, ge=1, le=10_000)
    breaker_wait_in_open: Duration = 60.0
    health_postgres_latency: Duration = 1.0
    health_redis_latency: Duration = 0.5
    health_interval: Duration = 30.0
    recovery_time: Duration = 30.0
    recovery_success_rate: float = Field(0.95, ge=0, le=1)
    availability_after: float = Field(0.99, ge=0, le=1)
    p95_latency_after: Duration = 0.5
    load_error_rate_after: float = Field(0.01, ge=0, le=1)


class IncidentSinkConfig(Strict):
    """One place the reference app's alerts and incidents go (`[incidents.sinks.NAME]`).

    log: the app's log. jsonl: one JSON object per line appended to `path`. webhook: a POST of
    each item as JSON to `url` (loopback, like every endpoint chaosdrill reaches), each attempt
    bounded by `timeout`, `retries` more attempts after a connection error, timeout, 5xx or 429;
    `token` is sent in `header` ("Authorization" → "Bearer <token>", any other header the bare
    token). The token is a secret: write it as "env:NAME" to read environment variable NAME.
    """

    kind: Literal["log", "jsonl", "webhook"]
    path: str | None = Field(None, min_length=1)
    url: str | None = Field(None, pattern=r"^https?://")
    timeout: Duration = Field(2.0, gt=0, le=60)
    retries: int = Field(2, ge=0, le=10)
    header: str = Field("Authorization", pattern=r"^[A-Za-z0-9-]{1,64}$")
    token: Secret | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _loopback_url(value, "url")

    @model_validator(mode="after")
    def _fields_of_the_kind(self) -> IncidentSinkConfig:
        if self.kind == "jsonl" and self.path is None:
            raise ValueError("path: required for a jsonl sink")
        if self.kind == "webhook" and self.url is None:
            raise ValueError("url: required for a webhook sink")
        if self.kind != "jsonl" and self.path is not None:
            raise ValueError(f"path: only for a jsonl sink, not {self.kind!r}")
        if self.kind != "webhook" and (self.url is not None or self.token is not None):
            raise ValueError(f"url, token: only for a webhook sink, not {self.kind!r}")
        return self

    def spec(self) -> dict[str, Any]:
        """What the app needs to build the sink (the token in clear: hand it over privately)."""
        out: dict[str, Any] = {"kind": self.kind}
        if self.kind == "jsonl":
            out["path"] = str(Path(self.path or "").resolve())
        if self.kind == "webhook":
            out.update(url=self.url, timeout=self.timeout, retries=self.retries, header=self.header,
                       token=self.token.get_secret_value() if self.token else None)
        return out


class IncidentsConfig(Strict):
    """Where the reference app's alerts and incidents go, besides the run's timeline (always).
    Repeats of one alert within `dedup_window` are counted, not sent again."""

    sinks: dict[str, IncidentSinkConfig] = Field(default_factory=dict)
    dedup_window: Duration = Field(300.0, ge=0)

    def spec(self) -> dict[str, Any]:
        return {"dedup_window": self.dedup_window, "sinks": [s.spec() for s in self.sinks.values()]}


SCENARIO_NAMES = ("db_outage", "network_latency", "network_partition", "cache_outage",
                  "dr_restore", "replica_failover", "restore_test")


GUARD_KINDS = ("availability", "load_error_rate", "p99_latency", "http", "command")


class GuardConfig(Strict):
    """A stop condition, evaluated continuously while the fault is held (harness/guards.py).

    - availability: good samples / samples of `probe` completed in the last `window` < `threshold`
      (a ratio, the floor), once at least `min_samples` are in the window;
    - load_error_rate: failed / requests of the load completed in the last `window` > `threshold`
      (a ratio, the ceiling), once at least `min_samples` requests are in it;
    - p99_latency: nearest-rank p99 of the `source` ("probe": `probe`'s samples; "load": the load's
      requests) completed in the last `window` > `threshold` (a duration, the ceiling);
    - http: GET `url` (loopback) every `interval`; trips when the status is not `expect_status` or
      the URL does not answer within `timeout` (an alarm endpoint that cannot be read stops the run);
    - command: run `command` (argv, no shell) every `interval`; trips on a non-zero exit or `timeout`.
    """

    kind: Literal["availability", "load_error_rate", "p99_latency", "http", "command"]
    threshold: float | None = None
    window: Duration = Field(2.0, gt=0, le=3600)
    min_samples: int = Field(3, ge=1, le=100_000)
    probe: str | None = Field(None, min_length=1)  # default: the first probe
    source: Literal["probe", "load"] = "probe"
    url: str | None = Field(None, pattern=r"^https?://")
    expect_status: int = Field(200, ge=100, le=599)
    command: tuple[str, ...] | None = Field(None, min_length=1)
    timeout: Duration = Field(2.0, gt=0, le=600)
    interval: Duration = Field(1.0, gt=0, le=3600)  # http and command guards; data guards run every probe

    @model_validator(mode="before")
    @classmethod
    def _threshold_by_kind(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("kind") == "p99_latency" and data.get("threshold") is not None:
            data = dict(data, threshold=_parse_duration(data["threshold"]))
        return data

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _loopback_url(value, "url")

    @model_validator(mode="after")
    def _fields_of_the_kind(self) -> GuardConfig:
        if self.kind in ("availability", "load_error_rate", "p99_latency"):
            if self.threshold is None:
                what = "a duration, e.g. 800ms" if self.kind == "p99_latency" else "a ratio 0..1, e.g. 0.9"
                raise ValueError(f"threshold: required for a {self.kind} guard ({what})")
            if self.kind != "p99_latency" and not 0 <= self.threshold <= 1:
                raise ValueError(f"threshold: {self.threshold} is not a ratio; allowed: 0..1")
        if self.kind == "http" and self.url is None:
            raise ValueError("url: required for an http guard")
        if self.kind == "command" and not self.command:
            raise ValueError("command: required for a command guard (a list: program and arguments)")
        return self


class ScenarioConfig(Strict):
    """Timing of one fault scenario: baseline → fault held for `hold` → observe `after` recovery.

    `variants` picks how db_outage takes the database away: "kill" (SIGKILL of the server) and/or
    "network" (its proxy disabled: connections refused and cut). `latency` is what network_latency
    adds to each direction; `partition_mode` is how network_partition cuts: "drop" (packets vanish,
    clients hit their timeouts) or "reject" (connections reset at once).
    """

    baseline: Duration = 2.0
    hold: Duration = Field(5.0, gt=0)
    after: Duration = 3.0
    variants: tuple[Literal["kill", "network"], ...] = Field(("kill",), min_length=1)
    latency: Duration = Field(0.4, gt=0, le=60)
    partition_mode: Literal["drop", "reject"] = "drop"
    guards: dict[str, GuardConfig] = Field(default_factory=dict)  # added to [guards] (same name: replaces it)


class DrillRepositoryConfig(Strict):
    """Where a drill's backups go. local: `path` (default a temp dir removed after the drill);
    s3: boto3 reaches `endpoint_url`, pgBackRest reaches `pgbackrest_host:pgbackrest_port` over TLS
    (docs/recipes.md §4: it checks the DNS name, so "localhost"; `ca_file` for a self-signed cert)."""

    kind: Literal["local", "s3"] = "local"
    path: str | None = None
    endpoint_url: str | None = None
    bucket: str | None = None
    prefix: str = "chaosdrill"
    region: str = "us-east-1"
    access_key: Secret | None = None  # default (kind = "s3"): $AWS_ACCESS_KEY_ID
    secret_key: Secret | None = None  # default (kind = "s3"): $AWS_SECRET_ACCESS_KEY
    ca_file: str | None = None
    pgbackrest_host: str = "localhost"
    pgbackrest_port: Port = 443
    verify_tls: bool = True
    # kind = "s3": Object Lock retention (WORM) for every object, pgBackRest's included (the bucket's default
    # retention); both or neither. pgBackRest's expire cannot delete a locked object before it expires.
    lock_mode: Literal["GOVERNANCE", "COMPLIANCE"] | None = None
    lock_days: int | None = Field(None, ge=1, le=36500)

    @model_validator(mode="after")
    def _lock_both_or_neither(self) -> DrillRepositoryConfig:
        if (self.lock_mode is None) != (self.lock_days is None):
            raise ValueError("lock_mode and lock_days: set both (Object Lock retention) or neither")
        if self.lock_mode is not None and self.kind != "s3":
            raise ValueError("lock_mode/lock_days: only for kind = \"s3\" (S3 Object Lock)")
        return self

    @model_validator(mode="before")
    @classmethod
    def _keys_from_environment(cls, data: Any) -> Any:
        """S3 keys not in the file come from the standard AWS environment variables."""
        if isinstance(data, dict) and data.get("kind") == "s3":
            for key, var in (("access_key", "AWS_ACCESS_KEY_ID"), ("secret_key", "AWS_SECRET_ACCESS_KEY")):
                if data.get(key) is None and os.environ.get(var):
                    data = {**data, key: os.environ[var]}
        return data


class DrillConfig(Strict):
    """The DR drill (`chaosdrill drill`, scenario dr_restore): backup policy, RPO levers, timings.

    `backups` is the policy: the first must be "full", each next one follows `backup_interval` later.
    `archive_timeout` is the RPO lever (0 = off: only full WAL segments are archived); `push_wal`
    archives the crashed primary's newest WAL before its directory is destroyed (docs/recipes.md §4, RPO).
    """

    backups: tuple[Literal["full", "diff", "incr"], ...] = Field(("full", "incr"), min_length=1)
    backup_interval: Duration = 1.0
    warmup: Duration = 1.0
    hold: Duration = 2.0
    archive_timeout: Duration = Field(1.0, le=3600)
    push_wal: bool = False
    detection_delay: Duration = 0.0
    canary_interval: Duration = Field(0.1, gt=0, le=10)
    backup_id: str = "latest"
    load: bool = True
    serve_timeout: Duration = Field(30.0, gt=0)
    amcheck: bool = True  # pg_amcheck every database of the restored copy (harness/drill/checks.py), as restore-test does
    repository: DrillRepositoryConfig = DrillRepositoryConfig()

    @field_validator("backups")
    @classmethod
    def _full_first(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if value[0] != "full":
            raise ValueError(f"the first backup of the policy must be 'full', got {value[0]!r}")
        return value


_EXPECT = re.compile(r"^\s*(?:(=|==|!=|<>|>=|<=|>|<)\s*(-?[0-9]+(?:\.[0-9]+)?)|between\s+(-?[0-9]+(?:\.[0-9]+)?)"
                     r"\s+and\s+(-?[0-9]+(?:\.[0-9]+)?))\s*$", re.I)
EXPECT_HELP = "a comparison with a number: '> 0', '= 42', '>= 1', '!= 0', 'between 1 and 10'"


class RestoreTestPgBackRest(Strict):
    """A user's own pgBackRest repository (read-only): a local `path` (its repo1-path) or S3
    (`endpoint`, `bucket`, `prefix` = its repo1-path, `region`; keys from the file, "env:NAME", or
    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY); `cipher_pass` for an encrypted repository."""

    kind: Literal["local", "s3"] = "local"
    path: str | None = Field(None, min_length=1)
    stanza: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    cipher_pass: Secret | None = None
    endpoint: str | None = None  # host[:port] pgBackRest reaches over TLS (loopback)
    bucket: str | None = None
    prefix: str = "/"
    region: str = "us-east-1"
    access_key: Secret | None = None
    secret_key: Secret | None = None
    ca_file: str | None = None
    verify_tls: bool = True
    endpoint_url: str | None = None  # how chaosdrill itself reads the bucket (boto3); default https://endpoint

    @model_validator(mode="before")
    @classmethod
    def _keys_from_environment(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("kind") == "s3":
            for key, var in (("access_key", "AWS_ACCESS_KEY_ID"), ("secret_key", "AWS_SECRET_ACCESS_KEY")):
                if data.get(key) is None and os.environ.get(var):
                    data = {**data, key: os.environ[var]}
        return data

    @model_validator(mode="after")
    def _where(self) -> RestoreTestPgBackRest:
        if self.kind == "local" and self.path is None:
            raise ValueError("path: required for a local pgBackRest repository (its repo1-path)")
        if self.kind == "s3":
            missing = [k for k in ("endpoint", "bucket", "access_key", "secret_key") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"{', '.join(missing)}: required for kind = 's3'")
            _loopback_host(_split_address(self.endpoint if ":" in self.endpoint else self.endpoint + ":443")[0],
                           "endpoint")
            _loopback_url(self.endpoint_url, "endpoint_url")
        return self


class RestoreTestPgDump(Strict):
    """A pg_dump archive (custom or directory format): a path, or a glob whose newest match is used."""

    path: str = Field(..., min_length=1)
    database: str | None = Field(None, min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")  # default: the dumped name


class RestoreTestRedis(Strict):
    """An RDB file (or a glob: the newest match), with an optional key list (one key per line)."""

    path: str = Field(..., min_length=1)
    keys: str | None = None
    min_keys: int = Field(0, ge=0)


class RestoreTestFiles(Strict):
    """A directory or tarball, with an optional manifest in `sha256sum` format ("<hex>  <path>").
    `origin`: the absolute path the tree lived at when it was backed up (default: `path` for a
    directory), so an absolute symlink into it (`current -> /srv/app/releases/v3`) is checked as the
    same place in the restored copy, not followed out to the live system."""

    path: str = Field(..., min_length=1)
    manifest: str | None = None
    origin: str | None = None

    @field_validator("origin")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not os.path.isabs(value):
            raise ValueError(f"{value!r} is not an absolute path")
        return value


class RestoreTestCheck(Strict):
    """A SQL assertion: the first column of the first row compared with `expect`."""

    name: str = Field(..., min_length=1, max_length=200)
    database: str = "postgres"
    sql: str = Field(..., min_length=1)
    expect: str = "> 0"
    timeout: Duration = Field(30.0, gt=0, le=3600)

    @field_validator("expect")
    @classmethod
    def _expect(cls, value: str) -> str:
        if not _EXPECT.match(value):
            raise ValueError(f"{value!r} is not an expectation; allowed: {EXPECT_HELP}")
        return value


class RestoreTestConfig(Strict):
    """`chaosdrill restore-test` (scenario restore_test): restore YOUR latest backup into a fresh
    environment and check it. One PostgreSQL source (`pgbackrest` or `pg_dump`), optional Redis RDB
    files and file trees; `checks` are SQL assertions. `backup` = "latest" or a pgBackRest label;
    `target_time` = point-in-time recovery (ISO time, UTC when no zone); `disaster_time` = what RPO
    is measured against (default: the start of the test). `rpo_column` = "db.schema.table.column",
    a timestamp whose newest value is the newest data when `track_commit_timestamp` is off."""

    pgbackrest: RestoreTestPgBackRest | None = None
    pg_dump: RestoreTestPgDump | None = None
    redis: tuple[RestoreTestRedis, ...] = ()
    files: tuple[RestoreTestFiles, ...] = ()
    checks: tuple[RestoreTestCheck, ...] = ()
    backup: str = Field("latest", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    target_time: str | None = None
    disaster_time: str | None = None
    rpo_column: str | None = Field(None, pattern=r"^[^.]+\.[^.]+\.[^.]+\.[^.]+$")
    amcheck: bool = True
    heapallindexed: bool = False
    row_shrink_tolerance: float = Field(0.1, ge=0, le=1)
    smoke_command: str | None = None
    smoke_url: str | None = Field(None, pattern=r"^https?://")
    smoke_timeout: Duration = Field(60.0, gt=0)
    keep: bool = False
    pg_bin_root: str = "/usr/lib/postgresql"  # where /<major>/bin of each installed PostgreSQL lives
    # local: the restored server runs from this host's binaries of the major the backup needs; docker: in a
    # container of `image` ({major} = that major) on a real Docker engine, host network, loopback port
    target: Literal["local", "docker"] = "local"
    image: str = Field("chaosdrill-compose-postgres:{major}", min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/@{}-]*$")

    @field_validator("target_time", "disaster_time")
    @classmethod
    def _iso(cls, value: str | None) -> str | None:
        if value is not None:
            from datetime import datetime

            try:
                datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(f"{value!r} is not an ISO time, e.g. 2026-01-31T12:00:00+00:00") from None
        return value

    @field_validator("smoke_url")
    @classmethod
    def _smoke_url(cls, value: str | None) -> str | None:
        return _loopback_url(value, "smoke_url")

    @model_validator(mode="after")
    def _one_source(self) -> RestoreTestConfig:
        if self.pgbackrest is not None and self.pg_dump is not None:
            raise ValueError("pgbackrest, pg_dump: give one PostgreSQL source, not both")
        if self.pg_dump is not None and (self.backup != "latest" or self.target_time):
            raise ValueError("backup, target_time: only for a pgbackrest source (a dump is one point in time)")
        return self

    @property
    def configured(self) -> bool:
        return bool(self.pgbackrest or self.pg_dump or self.redis or self.files)


class Config(Strict):
    run: RunConfig = RunConfig()
    environment: EnvironmentConfig = EnvironmentConfig()
    services: dict[str, ServiceConfig] = Field(default_factory=dict)
    probes: dict[str, ProbeConfig] = Field(default_factory=lambda: {"app_health": ProbeConfig()})
    load: LoadConfig = LoadConfig()
    targets: Targets = Targets()
    scenarios: dict[str, ScenarioConfig] = Field(default_factory=dict)
    drill: DrillConfig = DrillConfig()
    restore_test: RestoreTestConfig = RestoreTestConfig()
    incidents: IncidentsConfig = IncidentsConfig()
    guards: dict[str, GuardConfig] = Field(default_factory=dict)  # stop conditions of every fault run
    regression: RegressionConfig = RegressionConfig()

    @field_validator("scenarios")
    @classmethod
    def _known_scenarios(cls, value: dict[str, ScenarioConfig]) -> dict[str, ScenarioConfig]:
        for name in value:
            if name not in SCENARIO_NAMES:
                raise ValueError(f"unknown scenario {name!r}; allowed: {', '.join(SCENARIO_NAMES)}")
        return value

    @field_validator("probes")
    @classmethod
    def _some_probe(cls, value: dict[str, ProbeConfig]) -> dict[str, ProbeConfig]:
        if not value:
            raise ValueError("at least one probe is needed to measure anything")
        return value

    @model_validator(mode="after")
    def _services_fit_the_environment(self) -> Config:
        if self.environment.kind == "local":
            if self.services:
                raise ValueError("services: only for environment.kind = 'external' "
                                 "(the local environment starts its own postgres, redis and app)")
            http = {"app"}
        else:
            app = self.environment.external.app
            if app not in self.services:
                raise ValueError(f"environment.external.app: no service {app!r} in [services]; "
                                 f"defined: {', '.join(self.services) or 'none'}")
            for name, svc in self.services.items():
                if svc.kind == "http" and svc.url is None:
                    raise ValueError(f"services.{name}.url: required for an http service")
                if svc.kind != "http" and svc.address is None:
                    raise ValueError(f"services.{name}.address: required for a {svc.kind} service (host:port)")
            if self.services[app].kind != "http":
                raise ValueError(f"services.{app}.kind: the app probes and load target must be 'http'")
            if any(s.proxy for s in self.services.values()) and self.environment.external.toxiproxy_url is None:
                raise ValueError("environment.external.toxiproxy_url: required when a service names a proxy")
            if self.load.enabled and self.load.locustfile is None:
                raise ValueError("load.locustfile: required with environment.kind = 'external' (the bundled "
                                 "one drives the reference app); or set load.enabled = false")
            http = {n for n, s in self.services.items() if s.kind == "http"}
        for where, guards in [("guards", self.guards)] + [(f"scenarios.{n}.guards", sc.guards)
                                                          for n, sc in self.scenarios.items()]:
            for name, g in guards.items():
                if g.probe is not None and g.probe not in self.probes:
                    raise ValueError(f"{where}.{name}.probe: no probe {g.probe!r}; defined: {', '.join(self.probes)}")
                of_load = g.kind == "load_error_rate" or (g.kind == "p99_latency" and g.source == "load")
                if of_load and not self.load.enabled:
                    raise ValueError(f"{where}.{name}: a {g.kind} guard of the load needs load.enabled = true")
        for name, probe in self.probes.items():
            if probe.service is not None and probe.service not in http:
                raise ValueError(f"probes.{name}.service: must be an http service of the environment; "
                                 f"allowed: {', '.join(sorted(http))}")
        return self

    @property
    def app_service(self) -> str:
        """The http service probes (by default) and load target."""
        return "app" if self.environment.kind == "local" else self.environment.external.app

    def scenario(self, name: str) -> ScenarioConfig:
        return self.scenarios.get(name, ScenarioConfig())

    def guards_for(self, scenario: str) -> dict[str, GuardConfig]:
        """The stop conditions of `scenario`: [guards], then scenarios.<name>.guards (which win by name)."""
        return self.guards | self.scenario(scenario).guards


def _model_at(loc: tuple[str, ...]) -> type[BaseModel] | None:
    """The model class that owns the keys at `loc`, to list the allowed keys in an error."""
    current: Any = Config
    parts = list(loc)
    while parts:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(parts.pop(0))
        if field is None:
            return None
        current = field.annotation
        if getattr(current, "__origin__", None) is dict:  # dict[str, Model]: skip the user's name
            current = current.__args__[-1]
            if parts:
                parts.pop(0)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _is_secret(loc: tuple[str, ...]) -> bool:
    """Whether the key at `loc` (or the list it is an item of) holds a secret: its value is never shown."""
    for i in range(len(loc), 0, -1):
        owner = _model_at(loc[:i - 1])
        field = owner.model_fields.get(loc[i - 1]) if owner else None
        if field is not None:
            return "SecretStr" in repr(field.annotation)
    return False


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else f"{text[:limit - 1]}…"


def describe_error(err: dict) -> str:
    """One pydantic error as 'key.path: problem (got value)'."""
    loc = tuple(str(p) for p in err["loc"])
    path = ".".join(loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        owner = _model_at(loc[:-1])
        allowed = ", ".join(owner.model_fields) if owner else "see the documentation"
        return f"{path}: unknown key; allowed: {allowed}"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "literal_error":
        msg = msg.replace("Input should be", "must be")
    got = err.get("input")
    shown = "" if isinstance(got, dict) or got is None or _is_secret(loc) else f" (got {_shorten(repr(got))})"
    if not loc and re.match(r"^[a-z_][a-z0-9_.]*: ", msg):
        return f"{msg}{shown}"  # a cross-field rule that names its own key path
    return f"{path}: {msg}{shown}"


def parse_config(data: dict[str, Any], source: str = DEFAULT_CONFIG_NAME) -> Config:
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(redact.redact(f"{source}: {describe_error(first)}")) from None
    redact.register_config(cfg)
    return cfg


def load_config(path: str | Path | None = None) -> Config:
    """Load `path`, or ./chaosdrill.toml when present, else the defaults."""
    if path is None:
        default = Path(DEFAULT_CONFIG_NAME)
        if not os.path.lexists(default):  # a dangling link or a link loop is read, and refused in one line
            return Config()
        path = default
    path = Path(path)
    text = read_text_file(path, "config file", MAX_CONFIG_BYTES)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: nested too deeply") from None
    return parse_config(data, str(path))
