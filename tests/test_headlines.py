"""marts.headlines: one to three ranked sentences per day saying what was historic, checked by hand on a small fixture
(group records, records, "highest since" readings, quiet days, the cap at three, VIX kept apart from the equity
indexes), against the rules' definition on random data, and through the validation suite. On the real reference data
(the article's day: the Russell 2000's 4.42σ close, the most stretched of any tracked index):
tests/test_reference_acceptance.py."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regime import warehouse, words
from regime.extremes.build import build as build_extremes
from regime.indicators import REGIME_RULES
from regime.sql import FULL, run_model
from regime.validation import headlines as suite
from regime.validation.context import RunContext
from regime.validation.gate import run_suites

COLUMNS = ["date", "rank", "headline", "indicator", "subject", "value"]
D0 = date(2023, 12, 31)  # SPX, VIX, RVX and RUT/SPX start here, RUT a day later (and a year later: 2024)
RULES = {"record_min_days": 3, "headline_since_days": 5}  # the fixture's short history


def d(i: int) -> date:
    return D0 + timedelta(days=i)


# zscore_50d of four subjects and rel_ret_5d of a pair (kind None: never compared), on days 0..12
SERIES = {
    ("zscore_50d", "SPX"): [1.0, 0.5, 0.7, 0.8, 0.9, 1.1, 1.1, 1.1, 1.1, 1.1, 0.6, 1.4, 1.4],
    ("zscore_50d", "RUT"): [None, 0.5, 0.9, 0.6, 1.2, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.25, 1.25],
    ("zscore_50d", "VIX"): [4.0, 1.0, 1.0, 1.1, 1.05, 4.5, 4.5, 4.5, 4.5, 4.5, 4.5, 4.5, 4.5],
    ("zscore_50d", "RVX"): [1.0, 1.5, 1.2, 1.3, 1.4, 1.35, 1.35, 1.35, 1.35, 1.35, 1.35, 1.6, 1.6],
    ("rel_ret_5d", "RUT/SPX"): [0.0, 0.01, 0.004, 0.005, 0.02, 0.01, 0.01, 0.01, 0.01, 0.01, 0.002, 0.03, 0.03],
}

EXPECTED = [
    # day 1: records of series a day old (record_min_days 3): none; days 2, 3: nothing beyond a few days
    # day 4: RUT 1.2 beats every earlier index reading (SPX 1.0, RUT 0.9; not VIX's 4.0: another kind)
    (d(4), 1, "Russell 2000 closed 1.20σ above its 50-day average: the most stretched close of any tracked index"
              " since records began in 2023", "zscore_50d", "RUT", 1.2),
    (d(4), 2, "Russell 2000 vs S&P 500, 5-day relative return at +2.00 pp: the highest on record (history since"
              " 2023-12-31)", "rel_ret_5d", "RUT/SPX", 0.02),
    # day 5: VIX 4.5 beats VIX 4.0 and RVX 1.5; SPX 1.1 is its own record only (RUT read 1.2 the day before)
    (d(5), 1, "VIX closed 4.50σ above its 50-day average: the most stretched close of any tracked volatility index"
              " since records began in 2023", "zscore_50d", "VIX", 4.5),
    (d(5), 2, "S&P 500 z-score vs its 50-day average at +1.10σ: the highest on record (history since 2023-12-31)",
     "zscore_50d", "SPX", 1.1),
    # days 6-9: every reading repeats the day before: nothing
    # day 10: two "lowest since" readings, the older since-date first (against the registry's indicator order)
    (d(10), 1, "Russell 2000 vs S&P 500, 5-day relative return at +0.20 pp: the lowest since 2023-12-31 (10 days)",
     "rel_ret_5d", "RUT/SPX", 0.002),
    (d(10), 2, "S&P 500 z-score vs its 50-day average at +0.60σ: the lowest since 2024-01-01 (9 days)",
     "zscore_50d", "SPX", 0.6),
    # day 11: a group record, then three records: RVX and RUT/SPX (11 days of history; zscore_50d comes first in the
    # registry) before RUT (10 days), which is left out: three a day at most
    (d(11), 1, "S&P 500 closed 1.40σ above its 50-day average: the most stretched close of any tracked index since"
               " records began in 2023", "zscore_50d", "SPX", 1.4),
    (d(11), 2, "RVX (Russell 2000 volatility) z-score vs its 50-day average at +1.60σ: the highest on record (history"
               " since 2023-12-31)", "zscore_50d", "RVX", 1.6),
    (d(11), 3, "Russell 2000 vs S&P 500, 5-day relative return at +3.00 pp: the highest on record (history since"
               " 2023-12-31)", "rel_ret_5d", "RUT/SPX", 0.03),
    # day 12: repeats again: nothing
]


def _warehouse(rows, first_closes: dict[str, date] | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory warehouse with marts.indicators from (date, indicator, subject, value) rows, marts.extremes
    from them (the real engine), marts.prices with a close on each date of the zscore_50d readings (and on
    `first_closes`: {symbol: an earlier first close}), and the UDFs the model calls."""
    con = duckdb.connect()
    for schema in warehouse.SCHEMAS:
        con.execute(f"create schema {schema}")
    con.execute("create table marts.indicators (date date, indicator varchar, subject varchar, value double)")
    con.execute("create table marts.prices (date date, symbol varchar, close double)")
    if rows:
        con.executemany("insert into marts.indicators values ($1, $2, $3, $4)", rows)
        con.execute("insert into marts.prices select date, subject, 100.0 from marts.indicators"
                    " where indicator = 'zscore_50d'")
    for symbol, day in (first_closes or {}).items():
        con.execute("insert into marts.prices values ($1, $2, 100.0)", [day, symbol])
    build_extremes(con, {})
    warehouse.register_words(con)
    return con


def _fixture_rows() -> list[tuple]:
    return [(d(i), indicator, subject, value) for (indicator, subject), values in SERIES.items()
            for i, value in enumerate(values) if value is not None]


LAST = d(12)


def _headlines(con, since: date = FULL, as_of: date = LAST, **params) -> list[tuple]:
    bound = {**REGIME_RULES, **RULES, "as_of": as_of, "since": since, **params}
    run_model(con, "marts.headlines", "marts/headlines.sql", bound)
    return con.execute("select * from marts.headlines order by date, rank").fetchall()


def test_headlines_by_hand():
    con = _warehouse(_fixture_rows())
    got = _headlines(con)
    assert [c for c, in con.execute("select column_name from (describe marts.headlines)").fetchall()] == COLUMNS
    assert con.execute("select column_type from (describe marts.headlines)").fetchall() == [
        ("DATE",), ("INTEGER",), ("VARCHAR",), ("VARCHAR",), ("VARCHAR",), ("DOUBLE",)]
    assert got == EXPECTED


def test_an_update_recomputes_only_the_days_after_since_and_as_of_bounds_them():
    con = _warehouse(_fixture_rows())
    assert _headlines(con, since=d(5)) == [row for row in EXPECTED if row[0] > d(5)]
    assert _headlines(con, as_of=d(10)) == [row for row in EXPECTED if row[0] <= d(10)]


def test_a_group_records_history_begins_with_its_first_close():
    """An index's records begin with its prices, before its first 50-day z-score: SPX closing since mid-2022 makes
    the group records "since records began in 2022"; nothing else changes."""
    con = _warehouse(_fixture_rows(), first_closes={"SPX": date(2022, 6, 30)})
    got = _headlines(con)
    assert [row for row in got if row[:2] == (d(11), 1)][0][2] == (
        "S&P 500 closed 1.40σ above its 50-day average: the most stretched close of any tracked index since records"
        " began in 2022")
    earlier = "tracked index since records began in 2022"  # not the volatility index: VIX and RVX have no prices
    assert got == [(*row[:2], row[2].replace("tracked index since records began in 2023", earlier), *row[3:])
                   for row in EXPECTED]
    assert sum("records began in 2022" in row[2] for row in got) == 2


def test_parameters_change_what_is_historic():
    con = _warehouse(_fixture_rows())
    # records count from day 1 on: four, each of a day's history; zscore_50d first, then by subject. SPX's 0.5 low is
    # no group record (RUT starts that day: SPX alone has history), nor VIX's 1.0 (RVX read 1.0 the day before)
    day_1 = [row for row in _headlines(con, record_min_days=0) if row[0] == d(1)]
    assert [(row[1], row[4], row[2].split(": ")[1]) for row in day_1] == [
        (1, "RVX", "the highest on record (history since 2023-12-31)"),
        (2, "SPX", "the lowest on record (history since 2023-12-31)"),
        (3, "VIX", "the lowest on record (history since 2023-12-31)")]
    # nothing is "the highest in more than 10 days", and no series is 20 days old: no records, no rows
    assert _headlines(con, headline_since_days=10, record_min_days=20) == []
    # rel_ret_5d is no headline indicator any more: its rows go, the others move up
    only_z = _headlines(con, headline_indicators=["zscore_50d"])
    assert [(r[0], r[1], r[4]) for r in only_z] == [
        (d(4), 1, "RUT"), (d(5), 1, "VIX"), (d(5), 2, "SPX"), (d(10), 1, "SPX"), (d(11), 1, "SPX"),
        (d(11), 2, "RVX"), (d(11), 3, "RUT")]


def test_a_group_needs_two_subjects_with_history():
    # RUT alone: its records are records, not "the most stretched of any tracked index"
    rows = [r for r in _fixture_rows() if r[2] != "SPX"]
    got = _headlines(_warehouse(rows))
    rut = [r for r in got if r[4] == "RUT"]
    assert [(r[0], r[2]) for r in rut] == [
        (d(4), "Russell 2000 z-score vs its 50-day average at +1.20σ: the highest on record (history since"
               " 2024-01-01)"),
        (d(11), "Russell 2000 z-score vs its 50-day average at +1.25σ: the highest on record (history since"
                " 2024-01-01)")]


def test_a_same_day_tie_is_a_group_record_of_both_and_a_higher_one_wins():
    rows = _fixture_rows() + [(d(i), "zscore_50d", "NDX", 0.0) for i in range(4)] + [(d(4), "zscore_50d", "NDX", 1.2)]
    got = [r[:2] + r[3:5] for r in _headlines(_warehouse(rows)) if r[0] == d(4)]
    # RUT and NDX both 1.2: both group records (NDX's history is as long as the group's: ranked by subject)
    assert got == [(d(4), 1, "zscore_50d", "NDX"), (d(4), 2, "zscore_50d", "RUT"), (d(4), 3, "rel_ret_5d", "RUT/SPX")]
    rows[-1] = (d(4), "zscore_50d", "NDX", 1.3)
    got = [(r[1], r[4], r[2].split(":")[1]) for r in _headlines(_warehouse(rows)) if r[0] == d(4)]
    assert got[:2] == [(1, "NDX", " the most stretched close of any tracked index since records began in 2023"),
                       (2, "RUT/SPX", " the highest on record (history since 2023-12-31)")]
    # RUT's 1.2 is still its own record: ranked after the older RUT/SPX series
    assert got[2] == (3, "RUT", " the highest on record (history since 2024-01-01)")


def test_an_empty_warehouse_has_no_headlines():
    assert _headlines(_warehouse([])) == []


# ------------------------------------------------------------------------ against the definition, on random data


def by_definition(rows: list[tuple], rules: dict, as_of: date) -> list[tuple]:
    """The rules of include/sql/marts/headlines.sql written the obvious, quadratic way: each reading against every
    earlier reading of its series and of its group."""
    frame = pd.DataFrame(rows, columns=["date", "indicator", "subject", "value"])
    frame = frame[frame.value.notna() & (frame.date <= as_of)
                  & frame.indicator.isin(rules["headline_indicators"])].sort_values("date")
    order = list(rules["headline_indicators"])
    min_days, since_days = rules["record_min_days"], rules["headline_since_days"]
    starts = frame.groupby(["indicator", "subject"]).date.min().to_dict()
    candidates = []
    for r in frame.itertuples():
        series = frame[(frame.indicator == r.indicator) & (frame.subject == r.subject)]
        earlier = series[series.date < r.date]
        if earlier.empty:
            continue
        start = starts[(r.indicator, r.subject)]
        age = (r.date - start).days
        high, low = r.value > earlier.value.max(), r.value < earlier.value.min()
        kind_ = words.subject_kind(r.indicator, r.subject)
        group = frame[[words.subject_kind(i, s) == kind_ and i == r.indicator
                       for i, s in zip(frame.indicator, frame.subject, strict=True)]] if kind_ else frame.iloc[:0]
        group_before = group[group.date < r.date]
        group_today = group[group.date == r.date]
        group_starts = [v for (i, s), v in starts.items() if i == r.indicator and words.subject_kind(i, s) == kind_
                        and v < r.date]
        if (kind_ and age >= min_days and len(group_starts) >= 2
                and (high and r.value > group_before.value.max() and r.value >= group_today.value.max()
                     or low and r.value < group_before.value.min() and r.value <= group_today.value.min())):
            side = "high" if high else "low"
            text = words.headline("group_record", side, r.indicator, r.subject, r.value, r.date, None,
                                  min(group_starts), kind_)
            candidates.append((r.date, 1, -(r.date - min(group_starts)).days, order.index(r.indicator), r.subject,
                               text, r.indicator, r.value))
        elif high or low:
            if age >= min_days:
                text = words.headline("record", "high" if high else "low", r.indicator, r.subject, r.value, r.date,
                                      None, start, None)
                candidates.append((r.date, 2, -age, order.index(r.indicator), r.subject, text, r.indicator,
                                   r.value))
        else:
            highest_since = earlier[earlier.value >= r.value].date.max()
            lowest_since = earlier[earlier.value <= r.value].date.max()
            since = min(highest_since, lowest_since)
            if (r.date - since).days > since_days:
                if highest_since != lowest_since:
                    side = "high" if highest_since < lowest_since else "low"
                else:  # the percentile breaks a tie
                    upto = series[series.date <= r.date].value
                    side = "high" if (upto <= r.value).mean() >= 0.5 else "low"
                text = words.headline("long_since", side, r.indicator, r.subject, r.value, r.date, since, start,
                                      None)
                candidates.append((r.date, 3, -(r.date - since).days, order.index(r.indicator), r.subject, text,
                                   r.indicator, r.value))
    out, previous, n = [], None, 0
    for c in sorted(candidates):
        n = n + 1 if c[0] == previous else 1
        previous = c[0]
        if n <= 3:
            out.append((c[0], n, c[5], c[6], c[4], c[7]))
    return out


_SUBJECTS = [("zscore_50d", "SPX"), ("zscore_50d", "RUT"), ("zscore_50d", "NDX"), ("zscore_50d", "VIX"),
             ("zscore_50d", "RVX"), ("rel_ret_5d", "RUT/SPX"), ("call_volume_5d", "IWM"), ("call_volume_5d", "SPY"),
             ("ret_1d", "RUT")]  # ret_1d: no headline indicator


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.lists(st.tuples(st.integers(0, len(_SUBJECTS) - 1), st.integers(0, 40), st.integers(-6, 6)),
                     min_size=0, max_size=120),
       min_days=st.integers(0, 6), since_days=st.integers(0, 10), as_of=st.integers(20, 40))
@pytest.mark.slow
def test_matches_the_definition_on_random_data(data, min_days, since_days, as_of):
    seen, rows = set(), []
    for subject, day, value in data:  # small integer values: many ties, within and across series
        key = (d(day), *_SUBJECTS[subject])
        if key not in seen:
            seen.add(key)
            rows.append((*key, value / 2))
    rules = {**REGIME_RULES, "record_min_days": min_days, "headline_since_days": since_days}
    con = _warehouse(rows)
    try:
        got = _headlines(con, as_of=d(as_of), **rules)
        assert got == by_definition(rows, rules, d(as_of))
    finally:
        con.close()


def test_the_fixture_matches_the_definition_too():
    assert by_definition(_fixture_rows(), {**REGIME_RULES, **RULES}, d(12)) == EXPECTED


# ------------------------------------------------------------------------ the validation suite


def _check(con, tmp_path) -> list:
    report = run_suites(con, RunContext(as_of=d(12)), tmp_path / "docs", suites=(suite,))
    return [r for r in report.results if not r.success]


@pytest.mark.slow
def test_the_suite_passes_the_fixture_and_an_empty_table_and_rejects_bad_rows(tmp_path):
    con = _warehouse(_fixture_rows())
    _headlines(con)
    assert _check(con, tmp_path) == []
    con.execute("insert into marts.headlines values ($d, 4, 'a fourth', 'zscore_50d', 'NDX', 1.0)", {"d": d(11)})
    con.execute("insert into marts.headlines values ($d, 1, 'again', 'zscore_50d', 'NDX', 1.0)", {"d": d(4)})
    con.execute("insert into marts.headlines values ($d, 1, null, 'zscore_50d', 'NDX', 1.0)", {"d": d(13)})
    failed = {r.expectation.split("(")[0]: r for r in _check(con, tmp_path)}
    assert set(failed) == {"expect_column_values_to_be_between", "expect_compound_columns_to_be_unique",
                           "expect_column_values_to_not_be_null", "expect_column_values_to_be_null"}
    assert all(r.severity == "critical" for r in failed.values())
    con.execute("delete from marts.headlines")
    assert _check(con, tmp_path) == []  # a warehouse without a headline passes (no row-count floor)
