"""The evidence policy: what the organisation promises its auditors (docs/evidence.md).

A small TOML file, as strict as chaosdrill.toml: unknown keys and bad values are one line naming
the key path and what is allowed (ConfigError, exit 2). Without `--policy`, the documented default
(`harness/evidence/default_policy.toml`) is used. Objectives not set here come from the
`[targets]` of chaosdrill.toml.
"""

from __future__ import annotations

import math
import re
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from harness.config import SCENARIO_NAMES, Duration, Targets
from harness.errors import ConfigError
from harness.inputs import read_text_file

MAX_POLICY_BYTES = 1 << 20
DEFAULT_POLICY = "default_policy.toml"
# How often a drill must pass: at most this many days between two passing runs.
FREQUENCIES = {"daily": 1, "weekly": 7, "monthly": 31, "quarterly": 92, "yearly": 366}
OBJECTIVE_KEYS = ("rto", "rpo", "mttr", "time_to_detect")
_EVERY = re.compile(r"^\s*([0-9]{1,4})\s*d(?:ays?)?\s*$")


def _every(value: Any) -> float:
    """A frequency name, or a number of days ("10d"): the longest allowed gap between two passes, in days."""
    if isinstance(value, str) and value in FREQUENCIES:
        return float(FREQUENCIES[value])
    if isinstance(value, str) and (m := _EVERY.match(value)) and 1 <= int(m.group(1)) <= 3660:
        return float(m.group(1))
    raise ValueError(f"expected one of {', '.join(FREQUENCIES)} or a number of days like \"14d\" (1–3660)")


Every = Annotated[float, BeforeValidator(_every)]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Organisation(_Strict):
    name: Name = "Example organisation"
    time_zone: str = "UTC"  # the periods (quarters, months) and every time shown in the pack

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value[:60]!r}; allowed: an IANA name like UTC or Europe/Berlin") \
                from None
        return value


class Scope(_Strict):
    systems: tuple[Name, ...] = Field(default=(), max_length=200)
    assets: tuple[Name, ...] = Field(default=(), max_length=200)


class Drill(_Strict):
    every: Every
    purpose: str = Field("", max_length=500)


class Objectives(_Strict):
    """RTO/RPO/MTTR/TTD targets the runs are judged against; unset ones come from chaosdrill.toml [targets]."""

    rto: Duration | None = None
    rpo: Duration | None = None
    mttr: Duration | None = None
    time_to_detect: Duration | None = None


class Person(_Strict):
    name: Name
    role: Name


class Control(_Strict):
    framework: Name
    title: Name
    asks: str = Field(max_length=2000)   # what the control asks, in our words
    why: str = Field(max_length=2000)    # why the mapped drills and objectives evidence it
    drills: tuple[str, ...] = Field(min_length=1)
    objectives: tuple[Literal["rto", "rpo", "mttr", "time_to_detect"], ...] = ()


class Archive(_Strict):
    """WORM archive of packs (`--upload s3://…`): S3 Object Lock retention."""

    lock_mode: Literal["GOVERNANCE", "COMPLIANCE"] = "GOVERNANCE"
    retain_days: int = Field(400, ge=1, le=36500)
    endpoint_url: str | None = None  # default: AWS; e.g. http://127.0.0.1:9000 for a local S3-compatible store
    region: str = "us-east-1"


class Policy(_Strict):
    organisation: Organisation = Organisation()
    scope: Scope = Scope()
    drills: dict[str, Drill] = Field(min_length=1)
    objectives: Objectives = Objectives()
    participants: tuple[Person, ...] = ()
    approver: Person
    controls: dict[str, Control] = Field(min_length=1)
    archive: Archive = Archive()

    @field_validator("drills")
    @classmethod
    def _known_drills(cls, value: dict[str, Drill]) -> dict[str, Drill]:
        for name in value:
            if name not in SCENARIO_NAMES:
                raise ValueError(f"unknown drill {name!r}; allowed: {', '.join(SCENARIO_NAMES)}")
        return value

    @model_validator(mode="after")
    def _controls_name_required_drills(self) -> Policy:
        for cid, control in self.controls.items():
            for d in control.drills:
                if d not in self.drills:
                    raise ValueError(f"controls.{cid}.drills: {d!r} is not a required drill; "
                                     f"defined in [drills]: {', '.join(self.drills)}")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.organisation.time_zone)


def targets_of(policy: Policy, targets: Targets | None = None) -> dict[str, float]:
    """The objective targets in seconds: the policy's, else chaosdrill.toml's [targets]."""
    t = targets or Targets()
    out = {}
    for key in OBJECTIVE_KEYS:
        value = getattr(policy.objectives, key)
        out[key] = float(value if value is not None else getattr(t, key))
    return {k: v for k, v in out.items() if math.isfinite(v)}


def _model_at(loc: tuple[str, ...]) -> type[BaseModel] | None:
    current: Any = Policy
    parts = list(loc)
    while parts:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        fld = current.model_fields.get(parts.pop(0))
        if fld is None:
            return None
        current = fld.annotation
        origin = getattr(current, "__origin__", None)
        if origin in (dict, tuple):  # dict[str, Model] / tuple[Model, ...]: skip the key or index
            current = current.__args__[-1] if origin is dict else current.__args__[0]
            if parts:
                parts.pop(0)
        elif hasattr(current, "__args__") and origin is None:  # Optional[Model]
            current = next((a for a in current.__args__ if isinstance(a, type) and issubclass(a, BaseModel)), None)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _describe(err: dict) -> str:
    loc = tuple(str(p) for p in err["loc"])
    path = ".".join(loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        owner = _model_at(loc[:-1])
        allowed = ", ".join(owner.model_fields) if owner else "see docs/evidence.md"
        return f"{path}: unknown key; allowed: {allowed}"
    if err["type"] == "missing":
        return f"{path}: required (see docs/evidence.md)"
    msg = err["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
    got = err.get("input")
    shown = "" if isinstance(got, dict | list | tuple) or got is None else f" (got {str(repr(got))[:60]})"
    if not loc and re.match(r"^[A-Za-z_][\w .\-§]*: ", msg):
        return f"{msg}"
    return f"{path}: {msg}{shown}"


def parse_policy(data: dict[str, Any], source: str) -> Policy:
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(exc.errors()[0])}") from None


def default_policy_text() -> str:
    return files("harness.evidence").joinpath(DEFAULT_POLICY).read_text(encoding="utf-8")


def load_policy(path: str | Path | None = None) -> tuple[Policy, str]:
    """(the policy, where it came from); `path` None = the shipped default."""
    if path is None:
        text, source = default_policy_text(), f"default policy ({DEFAULT_POLICY})"
    else:
        text, source = read_text_file(path, "policy file", MAX_POLICY_BYTES), str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: invalid TOML: nested too deeply") from None
    return parse_policy(data, source), source
