"""The terminal summary a person reads (issue 8, item 8): the report's human units, the full run id."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import pytest
from rich.console import Console

from harness import cli
from harness.measure import Objective, Verdict
from reports.run_report import format_target, format_value

RUN_ID = "20261122T082654Z-db_outage-2faadf"


@dataclass
class FakeOutcome:
    objectives: list[Objective]
    verdict: Verdict = Verdict.PASSED
    run_id: str = RUN_ID
    report: str | None = None
    extra: dict = field(default_factory=dict)


OBJECTIVES = [
    Objective.judge("time to detect", 60.0, 0.002581, "s"),
    Objective.judge("RTO", 14400.0, 75.0, "s"),
    Objective.judge("availability after recovery", 0.99, 1.0, "ratio", better="higher"),
    Objective("restore verified", 1, 1.0, "bool", "higher", True),
    Objective.judge("MTTR", 1800.0, None, "s"),
]


@pytest.mark.parametrize(("value", "unit", "text"), [
    (0.002581, "s", "2.58 ms"), (0.5, "s", "500 ms"), (5.1, "s", "5.1 s"), (75, "s", "1 min 15 s"),
    (900, "s", "15 min"), (14400, "s", "4 h"), (1, "ratio", "100 %"), (0.995, "ratio", "99.5 %"),
    (1, "bool", "yes"), (1.0, "bool", "yes"), (0, "bool", "no"), (None, "s", "not measured"),
    (12, "", "12"), (3, "rows", "3 rows"),
])
def test_values_are_shown_in_human_units(value, unit, text) -> None:
    assert format_value(value, unit) == text


def test_the_html_report_and_the_cli_share_one_formatter() -> None:
    for obj in OBJECTIVES:
        as_dict = obj.__dict__
        assert format_target(as_dict, "target") == format_value(obj.target, obj.unit)


def test_summary_rows_use_human_units_and_the_bound() -> None:
    rows = cli.summary_rows(FakeOutcome(OBJECTIVES))
    assert rows == [
        ("time to detect", "≤ 1 min", "2.58 ms", "pass"),
        ("RTO", "≤ 4 h", "1 min 15 s", "pass"),
        ("availability after recovery", "≥ 99 %", "100 %", "pass"),
        ("restore verified", "≥ yes", "yes", "pass"),
        ("MTTR", "≤ 30 min", "—", "not measured"),
    ]


def test_the_printed_summary_keeps_the_run_id_whole_on_a_narrow_terminal(monkeypatch) -> None:
    def printed(width: int) -> str:
        buf = io.StringIO()
        monkeypatch.setattr(cli, "console", Console(file=buf, width=width, color_system=None))
        monkeypatch.setattr(cli, "out", Console(file=io.StringIO(), width=width, color_system=None))
        cli._print_outcomes([FakeOutcome(OBJECTIVES)])
        return buf.getvalue()

    assert RUN_ID in printed(30)  # narrower than the id: it wraps, never "2026…"
    text = printed(80)
    assert RUN_ID in text
    for raw in ("0.002581", "14400", " ratio", " bool", "…"):
        assert raw not in text, (raw, text)
    assert "2.58 ms" in text and "100 %" in text and "yes" in text


class _Reporter:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def section(self, title: str) -> None:
        self.lines.append(f"== {title}")

    def line(self, text: str) -> None:
        self.lines.append(text)


class _Config:
    def __init__(self, outcomes) -> None:
        from harness.pytest_plugin import OUTCOMES_KEY

        self.stash = {OUTCOMES_KEY: outcomes}

    def getoption(self, name: str):
        return False


def test_the_pytest_summary_uses_the_same_units() -> None:
    from harness.pytest_plugin import pytest_terminal_summary

    reporter = _Reporter()
    pytest_terminal_summary(reporter, 0, _Config([FakeOutcome(OBJECTIVES)]))
    text = "\n".join(reporter.lines)
    assert RUN_ID in text
    assert "time to detect: 2.58 ms (target ≤ 1 min)" in text
    assert "restore verified: yes (target ≥ yes)" in text
    assert "MTTR: not measured (target ≤ 30 min)" in text
    assert "ratio" not in text and "bool" not in text
