"""Answers to an analyst's questions about the published warehouse, and the plain words that phrase them.

The `regime` command (regime/cli.py) prints these; regime/words.py phrases them (as it does for the report and the
alert mails), e.g. `words.describe(reading)` -> "Russell 2000 z-score vs its 50-day average on 2024-07-16: +4.42σ,
the highest on record (history since 1987-11-18); 100th percentile".

Every function takes an open connection; values always reach SQL as bound parameters ($name), never as text.
A question the warehouse cannot answer as asked raises AnswerError with a one-line message saying what would work.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, fields
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from regime import indicators as _registry
from regime import words
from regime.indicators import REGISTRY

HEADLINE = tuple(indicator.name for indicator in REGISTRY if indicator.headline)
# A record counts once its series is this old (as in marts.regime_daily.records).
RECORD_MIN_DAYS: int = int(getattr(_registry, "REGIME_RULES", {}).get("record_min_days", 0))
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class AnswerError(ValueError):
    """The question cannot be answered as asked; the message (one line) says why and what would work."""


@dataclass(frozen=True)
class Reading:
    """One reading with its place in its history: a row of marts.extremes."""

    date: date
    indicator: str
    subject: str
    value: float
    history_start: date
    highest_since: date | None  # latest earlier date whose value was >= this one; None: nothing earlier was
    lowest_since: date | None  # latest earlier date whose value was <= this one; None: nothing earlier was
    is_record_high: bool
    is_record_low: bool
    pct_rank: float  # readings up to this date with a value <= this one, over the readings up to this date

    @classmethod
    def from_row(cls, row: Any) -> Reading:
        """From a Reading, a mapping or anything indexable by column name (a dict, a pandas row)."""
        if isinstance(row, Reading):
            return row
        values = {f.name: row[f.name] for f in fields(cls)}
        for key in ("date", "history_start", "highest_since", "lowest_since"):
            values[key] = words.as_date(values[key])
        return cls(**values)

    @property
    def is_first(self) -> bool:
        return self.date == self.history_start


COLUMNS = tuple(f.name for f in fields(Reading))
_SELECT = ", ".join(COLUMNS)


# ---------------------------------------------------------------- opening the warehouse


def open_warehouse(path: Path) -> duckdb.DuckDBPyConnection:
    """The published warehouse, read-only, with no access to other files, the network or extensions
    (so not even a SELECT can write a file or fetch a URL), configuration locked."""
    missing = AnswerError(f"no warehouse at {path}: run the pipeline first (make demo)")
    if not path.is_file() or path.stat().st_size == 0:
        raise missing
    try:
        con = duckdb.connect(str(path), read_only=True, config={
            "enable_external_access": False,
            "python_enable_replacements": False,  # a query cannot read this process's Python objects
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "lock_configuration": True,
        })
    except duckdb.Error as exc:
        raise AnswerError(f"cannot open the warehouse at {path}: {first_line(exc)}") from None
    if not has_table(con, "marts", "indicators"):
        con.close()
        raise missing
    return con


def has_table(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    rows = con.execute(
        "select count(*) from information_schema.tables"
        " where table_catalog = current_database() and table_schema = $schema and table_name = $table",
        {"schema": schema, "table": table},
    ).fetchall()
    return rows[0][0] > 0


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ---------------------------------------------------------------- arguments


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


# ---------------------------------------------------------------- dates with data


def _pair_filter(indicator: str | None, subject: str | None) -> str:
    sql = ""
    if indicator is not None:
        sql += " and indicator = $indicator"
    if subject is not None:
        sql += " and subject = $subject"
    return sql


def _pair_params(indicator: str | None, subject: str | None) -> dict:
    params = {}
    if indicator is not None:
        params["indicator"] = indicator
    if subject is not None:
        params["subject"] = subject
    return params


def _what(indicator: str | None, subject: str | None) -> str:
    return " ".join(part for part in (subject, indicator) if part is not None)


def latest_date(con: duckdb.DuckDBPyConnection, indicator: str | None = None, subject: str | None = None) -> date:
    """The latest date with a (non-NULL) reading, of one indicator/subject if given."""
    rows = con.execute(
        "select max(date) from marts.indicators where value is not null" + _pair_filter(indicator, subject),
        _pair_params(indicator, subject),
    ).fetchall()
    if rows[0][0] is None:
        what = _what(indicator, subject)
        raise AnswerError(f"{what} has no readings yet" if what else "the warehouse holds no readings yet")
    return rows[0][0]


def stale_series(con: duckdb.DuckDBPyConnection, as_of: date) -> list[str]:
    """What the last validation run of the build as of `as_of` found stale ('SPX last 2024-07-17'; the gate's
    freshness warnings, meta.validation_runs), in dataset order; [] when there is no such table or run."""
    if not has_table(con, "meta", "validation_runs"):
        return []
    rows = con.execute(
        "select dataset, sample_values from meta.validation_runs where as_of = $as_of and success = 0"
        " and expectation like '%(column=stale)%'"
        " and run_at = (select max(run_at) from meta.validation_runs where as_of = $as_of) order by dataset",
        {"as_of": as_of.isoformat()}).fetchall()
    found: list[str] = []
    for _, samples in rows:
        for value in json.loads(samples or "[]"):
            if str(value) not in found:
                found.append(str(value))
    return found


def regime_dates(con: duckdb.DuckDBPyConnection) -> tuple[date | None, date | None]:
    """The first and last date of marts.regime_daily."""
    return con.execute("select min(date), max(date) from marts.regime_daily").fetchone()


def nearest_dates(con: duckdb.DuckDBPyConnection, day: date, indicator: str | None = None,
                  subject: str | None = None) -> tuple[date | None, date | None]:
    """The latest date before `day` and the earliest after it with a (non-NULL) reading."""
    rows = con.execute(
        "select max(date) filter (where date < $day), min(date) filter (where date > $day)"
        " from marts.indicators where value is not null" + _pair_filter(indicator, subject),
        {"day": day, **_pair_params(indicator, subject)},
    ).fetchall()
    return rows[0][0], rows[0][1]


def _nearest_hint(con, day: date, indicator: str | None = None, subject: str | None = None) -> str:
    near = [d.isoformat() for d in nearest_dates(con, day, indicator, subject) if d is not None]
    if not near:
        return "; there are no dates with data"
    return f"; nearest date{'s' if len(near) > 1 else ''} with data: {' and '.join(near)}"


# ---------------------------------------------------------------- readings and their extremes


# The same columns as marts.extremes, computed for the readings of one date from marts.indicators: for a warehouse
# built before marts.extremes existed. Definitions as in include/sql/marts/extremes.sql.
_COMPUTED = """
with readings as (
    select date, indicator, subject, value from marts.indicators where value is not null and isfinite(value)
),
day as (
    select * from readings where date = $day{filter}
)
select
    d.date, d.indicator, d.subject, d.value,
    min(r.date) as history_start,
    max(r.date) filter (where r.date < d.date and r.value >= d.value) as highest_since,
    max(r.date) filter (where r.date < d.date and r.value <= d.value) as lowest_since,
    count(*) filter (where r.date < d.date) > 0
        and count(*) filter (where r.date < d.date and r.value >= d.value) = 0 as is_record_high,
    count(*) filter (where r.date < d.date) > 0
        and count(*) filter (where r.date < d.date and r.value <= d.value) = 0 as is_record_low,
    count(*) filter (where r.date <= d.date and r.value <= d.value)
        / count(*) filter (where r.date <= d.date) as pct_rank
from day as d
inner join readings as r on r.indicator = d.indicator and r.subject = d.subject
group by all
order by d.indicator, d.subject
"""


def readings_on(con: duckdb.DuckDBPyConnection, day: date, indicator: str | None = None, subject: str | None = None,
                *, use_extremes: bool | None = None) -> list[Reading]:
    """The readings of `day` (of one indicator/subject if given) with their extremes, ordered by indicator and
    subject. From marts.extremes when the warehouse has it (use_extremes=None), else computed from
    marts.indicators; NULL and non-finite readings are not readings."""
    if use_extremes is None:
        use_extremes = has_table(con, "marts", "extremes")
    params = {"day": day, **_pair_params(indicator, subject)}
    if use_extremes:
        sql = (f"select {_SELECT} from marts.extremes where date = $day" + _pair_filter(indicator, subject)
               + " order by indicator, subject")
    else:
        sql = _COMPUTED.format(filter=_pair_filter(indicator, subject))
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [Reading.from_row(dict(zip(names, row, strict=True))) for row in cursor.fetchall()]


def since(con: duckdb.DuckDBPyConnection, indicator: str, subject: str, day: date | None = None) -> Reading:
    """One reading with its extremes: of `day`, or of the latest date with a reading."""
    indicator = resolve_indicator(con, indicator, subject)
    subject = resolve_subject(con, indicator, subject)
    if day is None:
        day = latest_date(con, indicator, subject)
    found = readings_on(con, day, indicator, subject)
    if found:
        return found[0]
    rows = con.execute(
        "select value from marts.indicators where date = $day and indicator = $indicator and subject = $subject",
        {"day": day, "indicator": indicator, "subject": subject},
    ).fetchall()
    what = f"{subject} {indicator}"
    problem = f"{what} on {day} has no value (not defined on that date)" if rows else f"no {what} reading on {day}"
    raise AnswerError(problem + _nearest_hint(con, day, indicator, subject))


def history(con: duckdb.DuckDBPyConnection, indicator: str, subject: str, start: date | None = None,
            end: date | None = None) -> list[tuple[date, str, str, float | None]]:
    """(date, indicator, subject, value) of the pair from start to end inclusive (default: all of it)."""
    indicator = resolve_indicator(con, indicator, subject)
    subject = resolve_subject(con, indicator, subject)
    if start is not None and end is not None and start > end:
        raise AnswerError(f"the start {start} is after the end {end}")
    rows = con.execute(
        "select date, indicator, subject, value from marts.indicators"
        " where indicator = $indicator and subject = $subject"
        " and ($start is null or date >= $start) and ($end is null or date <= $end) order by date",
        {"indicator": indicator, "subject": subject, "start": start, "end": end},
    ).fetchall()
    if not rows:
        span_text = (f"between {start} and {end}" if start and end
                     else f"from {start} on" if start else f"up to {end}" if end else "at all")
        hint = _nearest_hint(con, start or end, indicator, subject) if (start or end) else ""
        raise AnswerError(f"no {subject} {indicator} readings {span_text}{hint}")
    return rows


def ensure_day_has_data(con: duckdb.DuckDBPyConnection, day: date) -> None:
    rows = con.execute(
        "select count(*) from marts.indicators where date = $day and value is not null", {"day": day}
    ).fetchall()
    if not rows[0][0]:
        raise AnswerError(f"no readings on {day}" + _nearest_hint(con, day))


def headline_readings(con: duckdb.DuckDBPyConnection, day: date) -> list[Reading]:
    """The day's readings of the headline indicators (all of the day's readings if none of them is present)."""
    readings = readings_on(con, day)
    order = {name: i for i, name in enumerate(HEADLINE)}
    headline = [r for r in readings if r.indicator in order]
    headline.sort(key=lambda r: (order[r.indicator], r.subject))
    return headline or readings


def records_on(con: duckdb.DuckDBPyConnection, day: date, *, headline_only: bool = True,
               min_days: int | None = None) -> list[Reading]:
    """The records set on `day`: readings above (below) every earlier reading of their series. By default as
    marts.regime_daily counts them: of headline indicators, in series at least RECORD_MIN_DAYS old."""
    min_days = RECORD_MIN_DAYS if min_days is None else min_days
    return [r for r in readings_on(con, day)
            if (r.is_record_high or r.is_record_low) and (not headline_only or r.indicator in HEADLINE)
            and (r.date - r.history_start).days >= min_days]


def regime_row(con: duckdb.DuckDBPyConnection, day: date) -> dict[str, Any] | None:
    """The day's row of marts.regime_daily (all its columns), or None (no such row, or no such table)."""
    if not has_table(con, "marts", "regime_daily"):
        return None
    cursor = con.execute("select * from marts.regime_daily where date = $day", {"day": day})
    names = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    return dict(zip(names, rows[0], strict=True)) if rows else None


def build_info(con: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    if not has_table(con, "meta", "build_info"):
        return None
    cursor = con.execute("select * from meta.build_info")
    names = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    return dict(zip(names, rows[0], strict=True)) if rows else None


# ---------------------------------------------------------------- what a reading is measured against


def previous_extreme(con: duckdb.DuckDBPyConnection, reading: Reading) -> tuple[date, float] | None:
    """(date, value) of the reading a reading is measured against (words.previous_text phrases it): for a record,
    the record it broke (the highest / lowest earlier reading, the latest if tied); otherwise the reading on its
    'since' date (the last one beyond it on its side). None for a first reading."""
    r = Reading.from_row(reading)
    if r.is_first:
        return None
    high = words.side(r) == "high"
    params = {"indicator": r.indicator, "subject": r.subject, "day": r.date}
    where = ("from marts.indicators where indicator = $indicator and subject = $subject and value is not null"
             " and isfinite(value)")
    if words.is_record(r):
        order = "desc" if high else "asc"
        sql = f"select date, value {where} and date < $day order by value {order}, date desc limit 1"
    else:
        params["day"] = r.highest_since if high else r.lowest_since
        sql = f"select date, value {where} and date = $day"
    rows = con.execute(sql, params).fetchall()
    return (rows[0][0], rows[0][1]) if rows else None


def headlines(con: duckdb.DuckDBPyConnection, day: date) -> list[str]:
    """The day's headlines (marts.headlines, rank order); none in a warehouse built before that table existed."""
    if not has_table(con, "marts", "headlines"):
        return []
    rows = con.execute("select headline from marts.headlines where date = $day order by rank", {"day": day})
    return [headline for (headline,) in rows.fetchall()]


# ---------------------------------------------------------------- read-only SQL

READ_PRAGMAS = frozenset({
    "collations", "database_list", "database_size", "functions", "metadata_info", "platform", "show",
    "show_databases", "show_tables", "show_tables_expanded", "storage_info", "table_info", "user_agent", "version",
})
_READ_TYPES = frozenset({"SELECT"})  # SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE, UNPIVOT
_ALLOWED = "SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN, read-only PRAGMAs"
_PRAGMA = re.compile(r"\s*pragma\s+([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE)
_EXPLAIN = re.compile(r"\s*explain(\s+analyze)?\s+", re.IGNORECASE)
_LEADING_COMMENTS = re.compile(r"(\s+|--[^\n]*(\n|$)|/\*.*?\*/)*", re.DOTALL)


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Refuse anything but one reading statement (AnswerError). The connection is read-only besides."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise AnswerError(f"cannot parse the query: {first_line(exc)}") from None
    if not statements:
        raise AnswerError("no SQL statement given")
    for statement in statements:
        _check_statement(con, statement)
    if len(statements) > 1:
        raise AnswerError(f"one statement at a time, please (got {len(statements)})")


def _check_statement(con: duckdb.DuckDBPyConnection, statement) -> None:
    kind = statement.type.name
    text = _LEADING_COMMENTS.sub("", statement.query, count=1)
    if kind in _READ_TYPES:
        return
    pragma = _PRAGMA.match(text)
    if kind == "PRAGMA" and pragma and pragma.group(1).lower() in READ_PRAGMAS:
        return
    if kind == "EXPLAIN":
        try:
            inner = con.extract_statements(_EXPLAIN.sub("", text, count=1))
        except duckdb.Error:
            inner = []
        if len(inner) == 1:
            _check_statement(con, inner[0])
            return
    what = f"PRAGMA {pragma.group(1)}" if pragma else _keyword(text)
    raise AnswerError(f"{what} is refused: regime sql only reads the warehouse ({_ALLOWED})")


def _keyword(text: str) -> str:
    words = re.findall(r"[A-Za-z_]+", text)
    return words[0].upper() if words else "this statement"


def run_query(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[list[str], list[tuple]]:
    """(column names, rows) of one reading statement; AnswerError for anything else or a failing query."""
    check_read_only(con, sql)
    try:
        cursor = con.execute(sql)
        if cursor.description is None:
            return [], []
        names = [d[0] for d in cursor.description]
        return names, cursor.fetchall()
    except duckdb.Error as exc:
        raise AnswerError(f"query failed: {first_line(exc)}") from None


# ---------------------------------------------------------------- what happened next


def analogs(con: duckdb.DuckDBPyConnection, indicator: str, subject: str, day: date | None = None,
            threshold: float | None = None):
    """The past episodes like the reading's on `day` (default: its latest), regime.analogs.Analogs: at `threshold`
    (a configured one of marts.episodes; default: the strictest the reading is beyond), each with its forward
    returns as known on `day`."""
    from regime import analogs as _analogs

    indicator = resolve_indicator(con, indicator, subject)
    subject = resolve_subject(con, indicator, subject)
    if not has_table(con, "marts", "episodes"):
        raise AnswerError("this warehouse has no marts.episodes (it was built before that table existed): "
                          "rebuild it (make demo)")
    if day is None:
        day = latest_date(con, indicator, subject)
    reading = since(con, indicator, subject, day)
    configured = _analogs.thresholds(con, indicator, subject)
    if not configured:
        raise AnswerError(f"no episodes of {subject} {indicator} in marts.episodes: it has no configured threshold,"
                          " or never went beyond one")
    order = {"level": 0, "percentile": 1, "record": 2}
    ranked = sorted(configured, key=lambda c: (order.get(c[0], 9), abs(c[1]) if c[1] is not None else 0))
    shown = ", ".join(dict.fromkeys(_threshold_option(kind, level) for kind, level, _ in ranked))
    if threshold is not None and not any(_threshold_option(k, t) == _threshold_option("level", threshold)
                                         or t == threshold for k, t, _ in configured):
        raise AnswerError(f"no episodes of {subject} {indicator} at threshold {threshold:g}; "
                          f"its thresholds: {shown}")
    try:
        return _analogs.find(con, indicator, subject, day, threshold)
    except _analogs.NoEpisode:
        level = "any of its thresholds" if threshold is None else f"±{abs(threshold):g}"
        raise AnswerError(f"{words.reading_name(indicator, subject)} on {day} is "
                          f"{words.value_text(indicator, reading.value)}: not beyond {level}, so there is no "
                          f"episode to compare with (its thresholds: {shown})") from None


def _threshold_option(kind: str, level: float | None) -> str:
    """How a configured threshold is given to --threshold: '3' for ±3 levels, '0.99' for a percentile."""
    if kind == "record":
        return "records"
    return f"{abs(level):g}" if kind == "level" else f"{level:g}"
