"""The `regime` command: ask the published warehouse questions from a shell.

    regime latest [--date D]                           the regime label, headline readings and records of a day
    regime since INDICATOR SUBJECT [--date D]          where a reading stands in its history, in plain words
    regime history INDICATOR SUBJECT [--start D] [--end D] [--csv]
    regime analogs INDICATOR SUBJECT [--threshold X] [--date D] [--csv]   what followed the past episodes like it
    regime sql "SELECT …" [--csv]                      any reading query, on a read-only connection

The warehouse is $REGIME_DATA_DIR/warehouse.duckdb (the pipeline's configuration); `--warehouse PATH` overrides
it. Tables and colour with rich when stdout is a terminal, plain text otherwise. Mistakes exit with code 2 and one
line on stderr. The questions and their phrasing live in regime/answers.py; this module parses and prints.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn, TextIO

import duckdb

from regime import answers, words
from regime.answers import AnswerError, Reading
from regime.config import ConfigError, get_settings

EXIT_USAGE = 2  # a question the warehouse cannot answer as asked, or a bad argument
EXIT_FAILURE = 1  # the warehouse failed to answer (an unexpected database error)


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line on stderr (exit 2) like every other error of the command."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"regime: {message} (see '{self.prog} --help')\n")


def _date(text: str) -> date:
    try:
        return answers.parse_date(text)
    except AnswerError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--warehouse", metavar="PATH", type=Path, default=argparse.SUPPRESS,
                        help="the warehouse file (default: $REGIME_DATA_DIR/warehouse.duckdb)")
    parser = _Parser(prog="regime", description="Ask the published regime warehouse questions (read-only).",
                     parents=[common])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    latest = commands.add_parser("latest", parents=[common], help="the regime, headline readings and records of a day",
                                 description="The regime label, the headline readings with their 'highest since' / "
                                             "'lowest since' and percentile, and the records set that day.")
    latest.add_argument("--date", type=_date, metavar="YYYY-MM-DD", help="the day (default: the latest with data)")

    since = commands.add_parser("since", parents=[common], help="where one reading stands in its history",
                                description="One reading in plain words: the highest/lowest on record or since when, "
                                            "and its percentile in its history to date.")
    since.add_argument("indicator", help="e.g. zscore_50d")
    since.add_argument("subject", help="e.g. RUT")
    since.add_argument("--date", type=_date, metavar="YYYY-MM-DD",
                       help="the day (default: the latest with a reading of INDICATOR SUBJECT)")

    history = commands.add_parser("history", parents=[common], help="the readings of one indicator and subject",
                                  description="The readings of INDICATOR SUBJECT from --start to --end inclusive.")
    history.add_argument("indicator", help="e.g. zscore_50d")
    history.add_argument("subject", help="e.g. RUT")
    history.add_argument("--start", type=_date, metavar="YYYY-MM-DD", help="first day (default: the first reading)")
    history.add_argument("--end", type=_date, metavar="YYYY-MM-DD", help="last day (default: the last reading)")
    history.add_argument("--csv", action="store_true", help="CSV on stdout: date,indicator,subject,value")

    analogs = commands.add_parser("analogs", parents=[common], help="what followed past episodes like today's",
                                  description="The earlier episodes of INDICATOR SUBJECT beyond the same threshold "
                                              "as the reading of --date (marts.episodes), each with the forward "
                                              "5/20/60-session returns of the index and of small minus large as "
                                              "known on that date, then a summary per horizon.")
    analogs.add_argument("indicator", help="e.g. zscore_50d")
    analogs.add_argument("subject", help="e.g. RUT")
    analogs.add_argument("--threshold", type=float, metavar="X",
                         help="a configured threshold, e.g. 3 (±3σ) or 0.99 (a percentile); default: the strictest "
                              "the reading is beyond")
    analogs.add_argument("--date", type=_date, metavar="YYYY-MM-DD",
                         help="the day (default: the latest with a reading of INDICATOR SUBJECT)")
    analogs.add_argument("--csv", action="store_true", help="CSV on stdout: one row per earlier episode")

    sql = commands.add_parser("sql", parents=[common], help="run one read-only query",
                              description="Run one reading statement (SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, "
                                          "EXPLAIN, read-only PRAGMAs) on a read-only connection.")
    sql.add_argument("query", help="the statement; '-' reads it from stdin")
    sql.add_argument("--csv", action="store_true", help="CSV on stdout, with a header")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a mistake already reported on stderr: return its code
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    out = Output(sys.stdout)
    try:
        path = getattr(args, "warehouse", None) or get_settings().warehouse_path
        con = answers.open_warehouse(path)
        try:
            COMMANDS[args.command](con, args, out)
        finally:
            con.close()
    except (AnswerError, ConfigError) as exc:
        print(f"regime: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except duckdb.Error as exc:
        print(f"regime: the warehouse query failed: {answers.first_line(exc)}", file=sys.stderr)
        return EXIT_FAILURE
    except BrokenPipeError:  # `regime history … | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILURE
    return 0


# ---------------------------------------------------------------- commands


def _weekdays_between(day: date, as_of) -> int:
    """Weekdays after `day` up to `as_of` (0 when `as_of` is not a date or not later)."""
    import numpy as np

    if not isinstance(as_of, date) or as_of <= day:
        return 0
    return int(np.busday_count(day + timedelta(days=1), as_of + timedelta(days=1)))


def cmd_latest(con: duckdb.DuckDBPyConnection, args: argparse.Namespace, out: Output) -> None:
    day = args.date
    if day is None:
        day = answers.latest_date(con)
    else:
        answers.ensure_day_has_data(con, day)
    for headline in answers.headlines(con, day):
        out.line(headline, style="bold")
    info = answers.build_info(con)
    if info and info.get("as_of") is not None:
        built = info.get("built_at")
        built_text = f"built {built:%Y-%m-%d %H:%M %Z}".rstrip() if isinstance(built, datetime) else ""
        source = f"from {info['source']}" if info.get("source") else ""
        details = ", ".join(part for part in (built_text, source) if part)
        out.line(f"Warehouse as of {info['as_of']}" + (f" ({details})" if details else ""), style="dim")
        behind = _weekdays_between(day, info["as_of"])
        if args.date is None and behind > 0:
            out.line(f"Its readings end {day}, {behind} weekday{'s' if behind > 1 else ''} before its as-of date: "
                     "a source is behind (the build's freshness warnings are in meta.validation_runs)",
                     style="bold yellow")
        stale = answers.stale_series(con, info["as_of"]) if isinstance(info["as_of"], date) else []
        if args.date is None and stale:
            out.line("Stale in this build (a warning: it was run for a date it was given): " + "; ".join(stale[:8])
                     + (f"; and {len(stale) - 8} more" if len(stale) > 8 else ""), style="bold yellow")

    regime = answers.regime_row(con, day)
    if regime is None:
        if not answers.has_table(con, "marts", "regime_daily"):
            why = "this warehouse has no marts.regime_daily"
        else:
            known = answers.regime_dates(con)
            why = (f"no Russell 2000 close on {day}: the regime is known from {known[0]} to {known[1]}" if known[1]
                   else "marts.regime_daily is empty: no Russell 2000 closes in the warehouse")
        out.line(f"Regime on {day}: unknown ({why})", style="bold")
    else:
        label = regime.get("label")
        out.line(f"Regime on {day}: {label if label is not None else 'unknown'}",
                 style="bold" if label in (None, "normal") else "bold yellow")
        details = [_regime_detail(name, value) for name, value in regime.items() if name not in ("date", "label")]
        if details:
            out.table(["column", "value"], details, header=False, indent=2)

    readings = answers.headline_readings(con, day)
    out.line()
    out.line(f"Headline readings on {day}", style="bold")
    out.table(
        ["reading", "value", "since", "percentile"],
        [(words.reading_name(r.indicator, r.subject), words.value_text(r.indicator, r.value), words.since_phrase(r),
          "" if r.is_first else words.percentile(r.pct_rank)) for r in readings],
        right={1},
        styles=[_record_style(r) for r in readings],
    )

    records = answers.records_on(con, day)
    out.line()
    if not records:
        out.line(f"No records set on {day}.")
        return
    out.line(f"Records set on {day}", style="bold")
    for r in records:
        out.line(_described(con, r), style=_record_style(r), indent=2)


def _regime_detail(column: str, value: Any) -> tuple[str, str]:
    """A column of marts.regime_daily with its value in its indicator's unit."""
    name, indicator = words.REGIME_COLUMNS.get(column, (column, None))
    if column == "records" and isinstance(value, str):
        return name, words.records_text(value)
    if indicator is not None and isinstance(value, float):
        return name, words.value_text(indicator, value)
    return name, cell(value)


def _described(con: duckdb.DuckDBPyConnection, r: Reading) -> str:
    """words.describe with the previous extreme the reading is measured against."""
    previous = answers.previous_extreme(con, r)
    text = words.describe(r)
    return text if previous is None else f"{text}; {words.previous_text(r.indicator, r, previous)}"


def _record_style(r: Reading) -> str | None:
    if r.is_record_high:
        return "green"
    if r.is_record_low:
        return "red"
    return None


def cmd_since(con: duckdb.DuckDBPyConnection, args: argparse.Namespace, out: Output) -> None:
    reading = answers.since(con, args.indicator, args.subject, args.date)
    out.line(_described(con, reading), style=_record_style(reading))


def cmd_history(con: duckdb.DuckDBPyConnection, args: argparse.Namespace, out: Output) -> None:
    rows = answers.history(con, args.indicator, args.subject, args.start, args.end)
    if args.csv:
        write_csv(out.stream, ["date", "indicator", "subject", "value"], rows)
        return
    _, indicator, subject, _ = rows[0]
    out.line(f"{words.reading_name(indicator, subject)} ({indicator} {subject}), {rows[0][0]} to {rows[-1][0]}"
             f" ({len(rows)} readings)", style="bold")
    out.table(["date", "value"], [(d.isoformat(), words.value_text(indicator, v)) for d, _, _, v in rows],
              right={1})


def cmd_analogs(con: duckdb.DuckDBPyConnection, args: argparse.Namespace, out: Output) -> None:
    from regime import analogs

    found = answers.analogs(con, args.indicator, args.subject, args.date, args.threshold)
    horizons = analogs.FORWARD_HORIZONS
    if args.csv:
        names = ["indicator", "subject", "kind", "threshold", "side", "start_date", "end_date", "sessions",
                 "peak_date", "peak_value", "index", *(f"index_fwd_{h}d" for h in horizons), "pair",
                 *(f"pair_fwd_{h}d" for h in horizons)]
        write_csv(out.stream, names, [
            (found.indicator, found.subject, found.kind, found.threshold, found.side, e.start_date, e.end_date,
             e.sessions, e.peak_date, e.peak_value, found.index, *(e.index_returns.get(h) for h in horizons),
             found.pair, *(e.pair_returns.get(h) for h in horizons)) for e in found.earlier])
        return
    what = words.episode_text(found.indicator, found.subject, found.kind, found.threshold, found.side)
    now = found.current
    out.line(f"{what}: {len(found.earlier)} earlier episode{'' if len(found.earlier) == 1 else 's'} before the one "
             f"that started on {now.start_date} ({words.value_text(found.indicator, found.value)} on {found.day}, "
             f"its {words.ordinal(now.sessions)} session; peak so far "
             f"{words.value_text(found.indicator, now.peak_value)} on {now.peak_date})", style="bold")
    if found.earlier:
        columns = ["start", "end", "sessions", "peak", *(f"{found.index} {h}d" for h in horizons),
                   *(f"{found.pair.replace('/', '−')} {h}d" for h in horizons)]
        rows = [(e.start_date.isoformat(), e.end_date.isoformat(), str(e.sessions),
                 f"{words.value_text(found.indicator, e.peak_value)} {e.peak_date}",
                 *(words.forward_text(found.index, e.index_returns.get(h)) for h in horizons),
                 *(words.forward_text(found.pair, e.pair_returns.get(h)) for h in horizons)) for e in found.earlier]
        out.table(columns, rows, right={2, *range(4, len(columns))})
        out.line(f"Forward returns from the close of each episode's first session, as known on {found.day}"
                 " (— : not known then).", style="dim")
    out.line()
    for which in ("index", "pair"):
        for h in horizons:
            s = analogs.summarize(found, which, h)
            out.line(words.analog_summary(s.subject, h, s.count, s.median, s.negative, s.best, s.worst))
    caveat = words.analog_caveat(len(found.earlier), analogs.MIN_EPISODES)
    if caveat:
        out.line(caveat, style="bold yellow")


def cmd_sql(con: duckdb.DuckDBPyConnection, args: argparse.Namespace, out: Output) -> None:
    query = sys.stdin.read() if args.query == "-" else args.query
    names, rows = answers.run_query(con, query)
    if args.csv:
        write_csv(out.stream, names, rows)
        return
    if not names:
        return
    right = {i for i in range(len(names)) if _numeric_column([row[i] for row in rows])}
    out.table(names, [[cell(value) for value in row] for row in rows], right=right)
    out.line(f"({len(rows)} row{'' if len(rows) == 1 else 's'})", style="dim")


COMMANDS = {"latest": cmd_latest, "since": cmd_since, "history": cmd_history, "analogs": cmd_analogs, "sql": cmd_sql}


# ---------------------------------------------------------------- printing


def _numeric_column(values: list[Any]) -> bool:
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


if __name__ == "__main__":
    sys.exit(main())
