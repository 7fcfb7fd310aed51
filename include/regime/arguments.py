"""The `regime` command's arguments: its argparse parser, and the checks that turn what was typed into what the
warehouse holds (dates, indicator and subject names, with suggestions when they do not match).
"""

from __future__ import annotations

import argparse
import difflib
import re
from datetime import date
from typing import NoReturn

import duckdb

from regime.readonly import AnswerError

EXIT_USAGE = 2  # a question the warehouse cannot answer as asked, or a bad argument
EXIT_FAILURE = 1  # the warehouse failed to answer (an unexpected database error)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


# ---------------------------------------------------------------- the command line


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line on stderr (exit 2) like every other error of the command."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"regime: {message} (see '{self.prog} --help')\n")


def _date(text: str) -> date:
    try:
        return parse_date(text)
    except AnswerError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--warehouse", metavar="PATH", type=str, default=argparse.SUPPRESS,
                        help="the warehouse file, or s3://bucket/prefix: the latest build published there "
                             "(default: $REGIME_DATA_DIR/warehouse.duckdb)")
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


# ---------------------------------------------------------------- dates and names


def parse_date(text: str) -> date:
    if _DATE.fullmatch(text.strip()):
        try:
            return date.fromisoformat(text.strip())
        except ValueError:
            pass
    raise AnswerError(f"invalid date {text!r}: expected YYYY-MM-DD, e.g. 2024-07-16")


def indicator_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [name for (name,) in con.execute("select distinct indicator from marts.indicators order by 1").fetchall()]


def subject_names(con: duckdb.DuckDBPyConnection, indicator: str | None = None) -> list[str]:
    rows = con.execute(
        "select distinct subject from marts.indicators where $indicator is null or indicator = $indicator order by 1",
        {"indicator": indicator},
    ).fetchall()
    return [name for (name,) in rows]


def resolve_indicator(con: duckdb.DuckDBPyConnection, name: str, subject: str | None = None) -> str:
    """The indicator as the warehouse spells it (case-insensitive if unambiguous), or AnswerError with suggestions.
    `subject`, the argument given after it, only serves to spot the two given the wrong way round."""
    known = indicator_names(con)
    found = _match(name, known)
    if found is not None:
        return found
    message = f"unknown indicator {name!r}"
    rows = con.execute("select distinct indicator from marts.indicators where subject = $subject order by 1",
                       {"subject": name}).fetchall()
    of_subject = [indicator for (indicator,) in rows]
    if of_subject:
        example = subject if subject in of_subject else of_subject[0]
        raise AnswerError(f"{message}: that is a subject; give the indicator first, e.g. {example} {name}")
    raise AnswerError(message + _suggest(name, known, "indicators"))


def resolve_subject(con: duckdb.DuckDBPyConnection, indicator: str, name: str) -> str:
    """The subject of `indicator` as the warehouse spells it, or AnswerError with suggestions."""
    rows = con.execute(
        "select count(*) from marts.indicators where indicator = $indicator and subject = $subject",
        {"indicator": indicator, "subject": name},
    ).fetchall()
    if rows[0][0]:
        return name
    known = subject_names(con, indicator)
    found = _match(name, known)
    if found is not None:
        return found
    raise AnswerError(f"unknown subject {name!r} for {indicator}" + _suggest(name, known, f"subjects of {indicator}"))


def _match(name: str, known: list[str]) -> str | None:
    if name in known:
        return name
    folded = [k for k in known if k.casefold() == name.casefold()]
    return folded[0] if len(folded) == 1 else None


def _suggest(name: str, known: list[str], what: str) -> str:
    by_fold: dict[str, str] = {}
    for k in known:
        by_fold.setdefault(k.casefold(), k)
    close = [by_fold[m] for m in difflib.get_close_matches(name.casefold(), list(by_fold), n=3, cutoff=0.6)]
    if close:
        return "; did you mean " + _either([repr(c) for c in close]) + "?"
    if not known:
        return f"; there are no {what}"
    shown = ", ".join(known[:10]) + (f", … ({len(known)} in all)" if len(known) > 10 else "")
    return f"; known {what}: {shown}"


def _either(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]
