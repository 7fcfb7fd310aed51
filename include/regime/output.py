"""How the `regime` command prints: lines and tables drawn by rich on a terminal, plain aligned text otherwise,
cells and CSV.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TextIO


def numeric_column(values: list[Any]) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(isinstance(v, int | float | Decimal) and not isinstance(v, bool) for v in present)


def cell(value: Any) -> str:
    """A value for a table: NULL, true/false, ISO dates, floats to 4 decimals, lists as [a, b]."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        if value != 0 and abs(value) < 0.001:
            return f"{value:.4g}"
        return f"{value:.4f}".rstrip("0").rstrip(".")
    if isinstance(value, date | datetime):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(cell(v) for v in value) + "]"
    return str(value)


def csv_cell(value: Any) -> str:
    """A value for CSV: empty for NULL, full precision for floats."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return cell(value)


def write_csv(stream: TextIO, names: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(names)
    for row in rows:
        writer.writerow([csv_cell(value) for value in row])


class Output:
    """Lines and tables: rich (colour, boxes) on a terminal, plain aligned text otherwise."""

    def __init__(self, stream: TextIO, rich: bool | None = None):
        self.stream = stream
        self.rich = _isatty(stream) if rich is None else rich
        self._console = None
        if self.rich:
            from rich.console import Console

            self._console = Console(file=stream, force_terminal=True, highlight=False, markup=False, emoji=False)

    def line(self, text: str = "", style: str | None = None, indent: int = 0) -> None:
        if self._console is None:
            print(" " * indent + text if text else "", file=self.stream)
        else:
            from rich.text import Text

            line = Text(" " * indent)
            line.append(text, style=style or "")
            self._console.print(line, soft_wrap=True)  # long sentences wrap in the terminal, not in the text

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[str]], *, right: set[int] = frozenset(),
              header: bool = True, indent: int = 0, styles: Sequence[str | None] | None = None) -> None:
        if self._console is None:
            for text in plain_table(columns, rows, right=right, header=header):
                print(" " * indent + text, file=self.stream)
            return
        from rich import box
        from rich.padding import Padding
        from rich.table import Table
        from rich.text import Text

        table = Table(box=box.SIMPLE_HEAD if header else None, show_header=header, pad_edge=False)
        for i, name in enumerate(columns):
            table.add_column(Text(name), justify="right" if i in right else "left")
        for i, row in enumerate(rows):
            table.add_row(*(Text(value) for value in row), style=styles[i] if styles else None)
        self._console.print(Padding(table, (0, 0, 0, indent)) if indent else table)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def plain_table(columns: Sequence[str], rows: Sequence[Sequence[str]], *, right: set[int] = frozenset(),
                header: bool = True) -> list[str]:
    """Aligned columns separated by two spaces, a dashed rule under the header; no trailing spaces."""
    shown = [list(columns)] if header else []
    widths = [max(len(str(r[i])) for r in [*shown, *rows]) for i in range(len(columns))]

    def fmt(row: Sequence[str]) -> str:
        parts = [str(v).rjust(w) if i in right else str(v).ljust(w) for i, (v, w) in enumerate(zip(row, widths,
                                                                                                    strict=True))]
        return "  ".join(parts).rstrip()

    lines = []
    if header:
        lines.append(fmt(columns))
        lines.append("  ".join("-" * w for w in widths))
    lines.extend(fmt(row) for row in rows)
    return lines
