"""The remediation file a team keeps (TOML, `[[item]]`), and the items an evidence pack proposes.

    [[item]]
    id = "REM-7"
    finding = "db_outage MTTR above target after the pool change"
    owner = "Database administration"
    opened = 2026-10-14
    due = 2026-11-15
    status = "open"            # open | in progress | done | accepted (risk accepted)
    closed = 2026-11-02        # when done or accepted
    runs = ["20261014T101500Z-db_outage-1a2b3c"]   # the runs it answers (optional)
    scenario = "db_outage"     # optional

Strict like chaosdrill.toml: one line naming the key on bad input (exit 2).
"""

from __future__ import annotations

import tomllib
from datetime import date, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.errors import ConfigError
from harness.inputs import read_text_file

MAX_REMEDIATION_BYTES = 4 << 20
OPEN_STATUSES = ("open", "in progress")
STATUSES = ("open", "in progress", "done", "accepted")


class Item(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=80)
    finding: str = Field(min_length=1, max_length=2000)
    owner: str = Field(min_length=1, max_length=200)
    opened: date
    due: date
    status: Literal["open", "in progress", "done", "accepted"]
    closed: date | None = None
    runs: tuple[str, ...] = ()
    scenario: str | None = None
    note: str = Field("", max_length=2000)

    @model_validator(mode="after")
    def _closed_when_done(self) -> Item:
        if self.status in ("done", "accepted") and self.closed is None:
            raise ValueError(f"closed: required when status is {self.status!r} (the date it was closed)")
        if self.status in OPEN_STATUSES and self.closed is not None:
            raise ValueError(f"closed: only for status done or accepted (status is {self.status!r})")
        return self


class RemediationFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    item: tuple[Item, ...] = ()

    @model_validator(mode="after")
    def _unique_ids(self) -> RemediationFile:
        seen = set()
        for i, it in enumerate(self.item):
            if it.id in seen:
                raise ValueError(f"item[{i}].id: {it.id!r} is used twice")
            seen.add(it.id)
        return self


def _as_date(value):
    return value.date() if isinstance(value, datetime) else value


def load_remediation(path: str | Path | None) -> list[Item]:
    """The items of `path` (none when path is None)."""
    if path is None:
        return []
    text = read_text_file(path, "remediation file", MAX_REMEDIATION_BYTES)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    for it in data.get("item", []) if isinstance(data.get("item"), list) else []:
        if isinstance(it, dict):
            for k in ("opened", "due", "closed"):
                if k in it:
                    it[k] = _as_date(it[k])
    try:
        return list(RemediationFile.model_validate(data).item)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
        if err["type"] == "extra_forbidden":
            owner = Item if len(err["loc"]) > 2 else RemediationFile
            msg = f"unknown key; allowed: {', '.join(owner.model_fields)}"
        elif err["type"] == "missing":
            msg = "required"
        if msg.startswith(("closed:", "item[")):
            loc, msg = (loc.rsplit(".", 1)[0], msg) if not msg.startswith("item[") else ("", msg)
        got = err.get("input")
        shown = "" if err["type"] in ("missing", "extra_forbidden") or isinstance(got, dict | list) \
            else f" (got {str(repr(got))[:60]})"
        raise ConfigError(f"{path}: {loc + ': ' if loc else ''}{msg}{shown}") from None
