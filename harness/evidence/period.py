"""Reporting periods: `2026-Q4`, `2026-11`, `2026`, or --since/--until dates, in the policy's time zone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from harness.errors import ConfigError

_QUARTER = re.compile(r"^(\d{4})-?Q([1-4])$", re.IGNORECASE)
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_YEAR = re.compile(r"^(\d{4})$")
PERIOD_HELP = "a quarter 2026-Q4, a month 2026-11 or a year 2026"


@dataclass(frozen=True)
class Period:
    label: str
    start: datetime  # aware, inclusive
    end: datetime    # aware, exclusive
    kind: str        # quarter | month | year | range

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400

    def previous(self) -> Period:
        """The period of the same kind just before this one (a range: the same length before it)."""
        tz = self.start.tzinfo
        if self.kind == "quarter":
            y, q = self.start.year, (self.start.month - 1) // 3 + 1
            y, q = (y - 1, 4) if q == 1 else (y, q - 1)
            return quarter(y, q, tz)
        if self.kind == "month":
            y, m = (self.start.year - 1, 12) if self.start.month == 1 else (self.start.year, self.start.month - 1)
            return month(y, m, tz)
        if self.kind == "year":
            return year(self.start.year - 1, tz)
        length = self.end - self.start
        start = self.start - length
        return Period(f"{start.date()} – {(self.start - timedelta(days=1)).date()}", start, self.start, "range")


def _tz(tz) -> ZoneInfo:
    return tz or ZoneInfo("UTC")


def quarter(y: int, q: int, tz=None) -> Period:
    tz = _tz(tz)
    start = datetime(y, 3 * q - 2, 1, tzinfo=tz)
    end = datetime(y + 1, 1, 1, tzinfo=tz) if q == 4 else datetime(y, 3 * q + 1, 1, tzinfo=tz)
    return Period(f"{y}-Q{q}", start, end, "quarter")


def month(y: int, m: int, tz=None) -> Period:
    tz = _tz(tz)
    start = datetime(y, m, 1, tzinfo=tz)
    end = datetime(y + 1, 1, 1, tzinfo=tz) if m == 12 else datetime(y, m + 1, 1, tzinfo=tz)
    return Period(f"{y}-{m:02d}", start, end, "month")


def year(y: int, tz=None) -> Period:
    tz = _tz(tz)
    return Period(str(y), datetime(y, 1, 1, tzinfo=tz), datetime(y + 1, 1, 1, tzinfo=tz), "year")


def parse_day(text: str, what: str, tz=None) -> datetime:
    """A date (YYYY-MM-DD, midnight in `tz`) or an ISO 8601 time; one-line ConfigError otherwise."""
    tz = _tz(tz)
    try:
        if re.match(r"^\d{4}-\d{2}-\d{2}$", text.strip()):
            d = date.fromisoformat(text.strip())
            return datetime(d.year, d.month, d.day, tzinfo=tz)
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"{what}: {text[:40]!r} is not a date; allowed: YYYY-MM-DD or an ISO 8601 time") from None
    return t.replace(tzinfo=tz) if t.tzinfo is None else t


def until_bound(text: str, what: str, tz=None) -> datetime:
    """--until: a bare date includes that whole day; a time is exclusive."""
    t = parse_day(text, what, tz)
    return t + timedelta(days=1) if re.match(r"^\d{4}-\d{2}-\d{2}$", text.strip()) else t


def current_quarter(now: datetime | None = None, tz=None) -> Period:
    now = (now or datetime.now(UTC)).astimezone(_tz(tz))
    return quarter(now.year, (now.month - 1) // 3 + 1, _tz(tz))


def resolve(period: str | None, since: str | None, until: str | None, tz=None, now: datetime | None = None) -> Period:
    """The period asked for on the command line (default: the current quarter)."""
    tz = _tz(tz)
    if period and (since or until):
        raise ConfigError("--period: give either --period or --since/--until, not both")
    if period:
        text = period.strip()
        if m := _QUARTER.match(text):
            return quarter(int(m.group(1)), int(m.group(2)), tz)
        if (m := _MONTH.match(text)) and 1 <= int(m.group(2)) <= 12:
            return month(int(m.group(1)), int(m.group(2)), tz)
        if m := _YEAR.match(text):
            return year(int(m.group(1)), tz)
        raise ConfigError(f"--period: {period[:40]!r} is not a period; allowed: {PERIOD_HELP}")
    if since or until:
        if not (since and until):
            raise ConfigError(f"--{'until' if since else 'since'}: required with --{'since' if since else 'until'}")
        start, end = parse_day(since, "--since", tz), until_bound(until, "--until", tz)
        if end <= start:
            raise ConfigError(f"--until: {until} is not after --since {since}")
        if end - start > timedelta(days=3660):
            raise ConfigError("--since/--until: a period of at most 10 years")
        return Period(f"{start.date()} – {(end - timedelta(microseconds=1)).date()}", start, end, "range")
    return current_quarter(now, tz)
