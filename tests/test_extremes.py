"""marts.extremes: records, "highest/lowest since" dates and expanding percentile ranks, checked by hand on a small
fixture and against a brute-force (quadratic) implementation on random data with ties."""

from __future__ import annotations

import time
from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regime import extremes, warehouse

D0 = date(2024, 1, 1)
COLUMNS = ["date", "indicator", "subject", "value", "history_start", "highest_since", "lowest_since",
           "is_record_high", "is_record_low", "pct_rank"]


def _indicators(rows, con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
    """A warehouse whose marts.indicators holds rows of (date, indicator, subject, value): a new in-memory one,
    or `con` emptied (connections are slow to make, examples are many)."""
    if con is None:
        con = duckdb.connect()
        for schema in warehouse.SCHEMAS:
            con.execute(f"create schema {schema}")
        con.execute("create table marts.indicators (date date not null, indicator varchar not null,"
                    " subject varchar not null, value double, primary key (date, indicator, subject))")
    con.execute("delete from marts.indicators")
    if rows:
        frame = pd.DataFrame(rows, columns=["date", "indicator", "subject", "value"])
        con.register("fixture", frame)
        con.execute("insert into marts.indicators select date::date, indicator, subject, value::double from fixture")
        con.unregister("fixture")
    return con


_SHARED = _indicators([])


def _extremes(con) -> pd.DataFrame:
    assert extremes.build(con, {}) == con.execute("select count(*) from marts.extremes").fetchone()[0]
    frame = con.execute("select * from marts.extremes order by indicator, subject, date").df()
    for column in ("date", "history_start", "highest_since", "lowest_since"):
        frame[column] = [None if pd.isna(v) else v.date() for v in frame[column]]
    return frame


def d(i: int) -> date:
    return D0 + timedelta(days=i)


def test_records_and_since_dates_by_hand():
    values = [5.0, 3.0, 4.0, 3.0, 6.0, 2.0, 4.0, 6.0]  # on days 1..8
    rows = [(d(i + 1), "x", "A", v) for i, v in enumerate(values)]
    rows += [(d(i + 1), "x", "B", 100.0 - i) for i in range(4)]  # another series: must not mix with A
    rows += [(d(9), "x", "A", None), (d(10), "x", "A", float("nan"))]  # not readings
    rows += [(d(1), "y", "A", 1.0)]  # same subject, another indicator
    got = _extremes(_indicators(rows))
    assert list(got.columns) == COLUMNS
    a = got[(got.indicator == "x") & (got.subject == "A")].set_index("date")
    assert list(a.index) == [d(i) for i in range(1, 9)]  # NULL and NaN readings are left out
    assert (a.history_start == d(1)).all()
    #                        5     3     4     3     6     2     4     6
    assert list(a.highest_since) == [None, d(1), d(1), d(3), None, d(5), d(5), d(5)]
    assert list(a.lowest_since) == [None, None, d(2), d(2), d(4), None, d(6), d(7)]
    assert list(a.is_record_high) == [False, False, False, False, True, False, False, False]  # 6 ties 6 on day 8
    assert list(a.is_record_low) == [False, True, False, False, False, True, False, False]  # 3 ties 3 on day 4
    assert list(a.pct_rank) == pytest.approx([1, 1 / 2, 2 / 3, 2 / 4, 5 / 5, 1 / 6, 5 / 7, 8 / 8])
    b = got[got.subject == "B"]
    assert list(b.is_record_low) == [False, True, True, True]
    assert list(b.lowest_since) == [None] * 4
    assert list(b.highest_since) == [None, d(1), d(2), d(3)]  # 100, 99, 98, 97
    y = got[got.indicator == "y"].iloc[0]
    assert (y.is_record_high, y.is_record_low, y.pct_rank, y.highest_since) == (False, False, 1.0, None)


def test_empty_indicators_give_an_empty_table():
    got = _extremes(_indicators([]))
    assert got.empty and list(got.columns) == COLUMNS


def brute_force(frame: pd.DataFrame) -> pd.DataFrame:
    """The definitions, read literally: compare every reading with every earlier one (quadratic)."""
    out = []
    for (indicator, subject), group in frame.groupby(["indicator", "subject"]):
        group = group.sort_values("date")
        dates, values = list(group.date), list(group.value)
        for i, (day, v) in enumerate(zip(dates, values, strict=True)):
            earlier = list(zip(dates[:i], values[:i], strict=True))
            at_least = [e for e, w in earlier if w >= v]
            at_most = [e for e, w in earlier if w <= v]
            out.append({
                "date": day, "indicator": indicator, "subject": subject, "value": v, "history_start": dates[0],
                "highest_since": max(at_least) if at_least else None,
                "lowest_since": max(at_most) if at_most else None,
                "is_record_high": bool(earlier) and all(v > w for _, w in earlier),
                "is_record_low": bool(earlier) and all(v < w for _, w in earlier),
                "pct_rank": (sum(w <= v for _, w in earlier) + 1) / (i + 1),
            })
    return pd.DataFrame(out, columns=COLUMNS)


def _assert_same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    got = got.sort_values(["indicator", "subject", "date"]).reset_index(drop=True)
    expected = expected.sort_values(["indicator", "subject", "date"]).reset_index(drop=True)
    assert len(got) == len(expected)
    for column in COLUMNS:
        if column == "pct_rank":
            np.testing.assert_allclose(got[column].to_numpy(float), expected[column].to_numpy(float), rtol=1e-12)
        else:
            assert list(got[column]) == list(expected[column]), column


series_strategy = st.lists(  # per series: (gap in days to the previous reading, value from a small set: many ties)
    st.lists(st.tuples(st.integers(1, 4), st.integers(-3, 3)), min_size=1, max_size=40), min_size=1, max_size=4)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(series_strategy)
def test_matches_brute_force_through_the_build(series):
    rows = []
    for k, readings in enumerate(series):
        day = D0
        for gap, value in readings:
            day += timedelta(days=gap)
            rows.append((day, ["ind_a", "ind_b"][k % 2], f"S{k}", value / 2))
    got = _extremes(_indicators(rows, _SHARED))
    _assert_same(got, brute_force(pd.DataFrame(rows, columns=["date", "indicator", "subject", "value"])))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 300), min_size=1, max_size=6), st.integers(0, 2**32 - 1), st.integers(1, 50))
def test_engine_matches_brute_force_across_batches(lengths, seed, spread):
    """Long and short series, batches smaller than a series, values with ties: the numpy engine directly."""
    rng = np.random.default_rng(seed)
    series = np.repeat(np.arange(len(lengths)), lengths)
    value = rng.integers(0, spread, len(series)).astype(float)
    old = extremes._CHUNK_ROWS
    extremes._CHUNK_ROWS = 64  # exercise many batches, and series longer than a batch
    try:
        got = extremes.compute(series, value)
    finally:
        extremes._CHUNK_ROWS = old
    frame = pd.DataFrame({"date": [d(int(i)) for i in np.arange(len(series))], "indicator": "x",
                          "subject": [f"S{s:02d}" for s in series], "value": value})
    expected = brute_force(frame)
    index = {day: i for i, day in enumerate(frame.date)}

    def rows(column: str) -> list[int]:
        return [-1 if day is None else index[day] for day in expected[column]]

    assert list(got.above) == rows("highest_since")
    assert list(got.below) == rows("lowest_since")
    assert list(got.first) == rows("history_start")
    assert list(got.is_record_high) == list(expected.is_record_high)
    assert list(got.is_record_low) == list(expected.is_record_low)
    np.testing.assert_allclose(got.pct_rank, expected.pct_rank.to_numpy(float), rtol=1e-12)


def test_engine_rejects_unsorted_or_non_finite_input():
    with pytest.raises(ValueError):
        extremes.compute(np.array([1, 0]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError):
        extremes.compute(np.array([0, 0]), np.array([1.0, np.nan]))


def test_near_linear_on_a_long_history():
    """200,000 readings of one series: a quadratic method (2e10 comparisons) would take minutes."""
    rng = np.random.default_rng(1)
    value = np.round(np.cumsum(rng.normal(0, 1, 200_000)), 1)
    start = time.perf_counter()
    got = extremes.compute(np.zeros(len(value), np.int64), value)
    assert time.perf_counter() - start < 10
    i = 150_000  # spot-check one reading by brute force
    earlier = value[:i]
    at_least = np.flatnonzero(earlier >= value[i])
    assert got.above[i] == (at_least[-1] if len(at_least) else -1)
    assert got.pct_rank[i] == pytest.approx((np.sum(earlier <= value[i]) + 1) / (i + 1))
