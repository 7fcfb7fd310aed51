"""The `regime` command: ask the published warehouse questions from a shell, and print the answers.

    regime latest [--date D]                           the regime label, headline readings and records of a day
    regime since INDICATOR SUBJECT [--date D]          where a reading stands in its history, in plain words
    regime history INDICATOR SUBJECT [--start D] [--end D] [--csv]
    regime analogs INDICATOR SUBJECT [--threshold X] [--date D] [--csv]   what followed the past episodes like it
    regime sql "SELECT …" [--csv]                      any reading query, on a read-only connection

The warehouse is $REGIME_DATA_DIR/warehouse.duckdb (the pipeline's configuration); `--warehouse PATH` overrides
it. Tables and colour with rich when stdout is a terminal, plain text otherwise. Mistakes exit with code 2 and one
line on stderr. The arguments are parsed in regime/arguments.py, the questions answered in regime/answers.py and
phrased by regime/words.py, the connection and `regime sql`'s guard are regime/readonly.py, the printing
regime/output.py; this module runs each command.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import duckdb

from regime import answers, objectstore, readonly, remote_warehouse, words
from regime.answers import Reading
from regime.arguments import EXIT_FAILURE, EXIT_USAGE, build_parser
from regime.config import ConfigError, get_settings
from regime.output import Output, cell, numeric_column, write_csv
from regime.readonly import AnswerError


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a mistake already reported on stderr: return its code
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    out = Output(sys.stdout)
    try:
        where = getattr(args, "warehouse", None)  # s3://…: the latest build published there, downloaded
        path = remote_warehouse.warehouse_path(where) if where else get_settings().warehouse_path
        con = readonly.open_warehouse(path)
        try:
            COMMANDS[args.command](con, args, out)
        finally:
            con.close()
    except (AnswerError, ConfigError, objectstore.ObjectStoreError) as exc:
        print(f"regime: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except duckdb.Error as exc:
        print(f"regime: the warehouse query failed: {readonly.first_line(exc)}", file=sys.stderr)
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
        if not readonly.has_table(con, "marts", "regime_daily"):
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
    names, rows = readonly.run_query(con, query)
    if args.csv:
        write_csv(out.stream, names, rows)
        return
    if not names:
        return
    right = {i for i in range(len(names)) if numeric_column([row[i] for row in rows])}
    out.table(names, [[cell(value) for value in row] for row in rows], right=right)
    out.line(f"({len(rows)} row{'' if len(rows) == 1 else 's'})", style="dim")


COMMANDS = {"latest": cmd_latest, "since": cmd_since, "history": cmd_history, "analogs": cmd_analogs, "sql": cmd_sql}


if __name__ == "__main__":
    sys.exit(main())
