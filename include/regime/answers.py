"""Answers to an analyst's questions about the published warehouse: a day's readings with their extremes, records,
regime row and headlines, one pair's history, what a reading is measured against, and its past analogs.

The `regime` command (regime/cli.py) prints these; regime/words.py phrases them (as it does for the report and the
alert mails), e.g. `words.describe(reading)` -> "Russell 2000 z-score vs its 50-day average on 2024-07-16: +4.42σ,
the highest on record (history since 1987-11-18); 100th percentile".

Every function takes an open connection; values always reach SQL as bound parameters ($name), never as text.
A question the warehouse cannot answer as asked raises AnswerError (regime/readonly.py) with a one-line message
saying what would work; names are resolved as regime/arguments.py does for the command line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import date
from typing import Any

import duckdb

from regime import indicators as _registry
from regime import words
from regime.arguments import resolve_indicator, resolve_subject
from regime.indicators import REGISTRY
from regime.readonly import AnswerError, has_table

HEADLINE = tuple(indicator.name for indicator in REGISTRY if indicator.headline)
# A record counts once its series is this old (as in marts.regime_daily.records).
RECORD_MIN_DAYS: int = int(getattr(_registry, "REGIME_RULES", {}).get("record_min_days", 0))


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
