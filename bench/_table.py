"""Shared output for benchmarks: a rich table on stdout plus bench/results/<name>.md and .json."""

from __future__ import annotations

import json
import platform
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results"


def show(title: str, columns: list[str], rows: list[list]) -> None:
    """The table on stdout only (smoke runs and trials of settings write nothing)."""
    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*[str(c) for c in row])
    Console().print(table)


def publish(name: str, title: str, columns: list[str], rows: list[list], extra: dict | None = None,
            write: bool = True) -> None:
    """Print the table and, unless `write` is off, write bench/results/<name>.md and .json."""
    if not write:
        show("(not written) " + title, columns, rows)
        return
    show(title, columns, rows)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    md = [f"# {title}", "", f"Measured {stamp} on {platform.node()} ({platform.platform()}).", "",
          "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    md += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    (RESULTS / f"{name}.md").write_text("\n".join(md) + "\n")
    (RESULTS / f"{name}.json").write_text(json.dumps(
        {"title": title, "measured_at": stamp, "columns": columns, "rows": rows, **(extra or {})}, indent=2,
        default=str))
