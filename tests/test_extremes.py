"""marts.extremes: records, "highest/lowest since" dates and expanding percentile ranks, checked by hand on a small
fixture and against a brute-force (quadratic) implementation on random data with ties."""

from __future__ import annotations

import time
from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from regime import warehouse
from regime.extremes import kernels, state
from regime.extremes.build import build as build_extremes
from regime.extremes.update import update as update_extremes
from regime.incremental import NotIncremental

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
    assert build_extremes(con, {}) == con.execute("select count(*) from marts.extremes").fetchone()[0]
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
@pytest.mark.slow
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
@pytest.mark.slow
def test_engine_matches_brute_force_across_batches(lengths, seed, spread):
    """Long and short series, batches smaller than a series, values with ties: the numpy engine directly."""
    rng = np.random.default_rng(seed)
    series = np.repeat(np.arange(len(lengths)), lengths)
    value = rng.integers(0, spread, len(series)).astype(float)
    old = kernels._CHUNK_ROWS
    kernels._CHUNK_ROWS = 64  # exercise many batches, and series longer than a batch
    try:
        got = kernels.compute(series, value)
    finally:
        kernels._CHUNK_ROWS = old
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
        kernels.compute(np.array([1, 0]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError):
        kernels.compute(np.array([0, 0]), np.array([1.0, np.nan]))


def test_near_linear_on_a_long_history():
    """200,000 readings of one series: a quadratic method (2e10 comparisons) would take minutes."""
    rng = np.random.default_rng(1)
    value = np.round(np.cumsum(rng.normal(0, 1, 200_000)), 1)
    start = time.perf_counter()
    got = kernels.compute(np.zeros(len(value), np.int64), value)
    assert time.perf_counter() - start < 10
    i = 150_000  # spot-check one reading by brute force
    earlier = value[:i]
    at_least = np.flatnonzero(earlier >= value[i])
    assert got.above[i] == (at_least[-1] if len(at_least) else -1)
    assert got.pct_rank[i] == pytest.approx((np.sum(earlier <= value[i]) + 1) / (i + 1))


# ----------------------------------------------------------------- the incremental path (regime.extremes.update)

STATE = ("marts.extremes", "internal.extremes_series", "internal.extremes_frontier", "internal.extremes_ranks")
SPECIAL = {4: -0.0, 5: float("nan"), 6: float("inf"), 7: None}  # value codes beyond the small integers


def _tables(con) -> dict[str, list]:
    """Every row of marts.extremes and of the update's state tables, sorted (the ranks' BLOBs as number lists)."""
    out = {}
    for table in STATE:
        rows = con.execute(f"select * from {table}").fetchall()
        if table == "internal.extremes_ranks":
            rows = [(*r[:-2], np.frombuffer(r[-2], "<f8").tolist(), r[-1] and np.frombuffer(r[-1], "<i4").tolist())
                    for r in rows]
        out[table] = sorted(rows, key=repr)
    return out


_FULL = _indicators([])
_INCREMENTAL = _indicators([])


def _reading(code: int) -> float | None:
    return SPECIAL[code] if code in SPECIAL else code / 2


updates_strategy = st.lists(  # (days back from the as-of date to `since`, days forward to the new as-of date, revise?)
    st.tuples(st.integers(0, 12), st.integers(0, 9), st.booleans()), min_size=1, max_size=6)
history_strategy = st.lists(  # per series: (gap in days, value code: -3..3 halves, -0.0, NaN, inf, NULL)
    st.lists(st.tuples(st.integers(1, 3), st.integers(-3, 7)), min_size=1, max_size=60), min_size=1, max_size=4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history_strategy, updates_strategy, st.integers(0, 80), st.integers(1, 3), st.integers(0, 2**32 - 1),
       st.sampled_from([D0, date(1969, 11, 20)]))
@pytest.mark.slow
def test_chained_updates_equal_a_full_build(series, updates, first_as_of, bits, seed, start):
    """A build as of some date, then updates (several days at once, none, from an earlier `since`, lake revisions
    of the recomputed days that change values or drop readings) give marts.extremes and every state table exactly
    as a full build of the same readings does. Blocks of 2-8 distinct values and a 6-day horizon, so that blocks
    split and merge and the frontier is pruned within a few updates; dates on both sides of 1970-01-01."""
    rng = np.random.default_rng(seed)
    truth: dict[tuple[str, str, date], float | None] = {}
    for k, readings in enumerate(series):
        day = start
        for gap, code in readings:
            day += timedelta(days=gap)
            truth[(["ind_a", "ind_b"][k % 2], f"S{k % 3}", day)] = _reading(code)

    def rows(since: date, until: date) -> list:
        return [(day, i, s, v) for (i, s, day), v in truth.items() if since < day <= until]

    old = (state._BLOCK_BITS, state.MAX_INCREMENTAL_DAYS)
    state._BLOCK_BITS, state.MAX_INCREMENTAL_DAYS = bits, 6
    try:
        as_of = start + timedelta(days=first_as_of)
        con = _indicators(rows(date.min, as_of), _INCREMENTAL)
        build_extremes(con, {})
        for back, forward, revise in updates:
            latest = con.execute("select max(date) from marts.extremes").fetchall()[0][0]
            since = as_of - timedelta(days=back)
            if latest is not None:
                since = max(since, state.horizon(latest))
            as_of = max(as_of, since) + timedelta(days=forward)
            if revise:  # the lake changed after `since`: other values, readings gone or new, NaN
                for key in [k for k in truth if since < k[2] <= as_of]:
                    truth[key] = _reading(int(rng.integers(-3, 8)))
            con.execute("delete from marts.indicators where date > $since", {"since": since})
            if rows(since, as_of):
                con.register("fixture", pd.DataFrame(rows(since, as_of), columns=["date", "i", "s", "v"]))
                con.execute("insert into marts.indicators select date::date, i, s, v::double from fixture")
                con.unregister("fixture")
            try:
                update_extremes(con, since)
            except NotIncremental:  # the latest reading moved back: warehouse.update rebuilds in full
                now = con.execute("select max(date) from marts.indicators where isfinite(value)").fetchall()[0][0]
                assert latest is not None and (now is None or now < latest)
                event("the latest reading moved back: not incremental")
                build_extremes(con, {})
            blocks, stopped = con.execute("select (select count(*) - count(distinct (indicator, subject)) from"
                                          " internal.extremes_ranks), (select count(until) from"
                                          " internal.extremes_frontier)").fetchall()[0]
            event(f"blocks beyond a series' first: {min(blocks, 3)}+, frontier entries kept with until:"
                  f" {min(stopped, 3)}+")
            full = _indicators(rows(date.min, as_of), _FULL)
            build_extremes(full, {})
            assert _tables(con) == _tables(full)
    finally:
        state._BLOCK_BITS, state.MAX_INCREMENTAL_DAYS = old


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(series_strategy, st.integers(0, 60))
@pytest.mark.slow
def test_the_frontier_table_by_its_definition(series, back):
    """internal.extremes_frontier after a build, read literally: per series and side, every reading with `until` =
    the date of the first later reading at or beyond it (>= for 'high', <= for 'low'), kept if that is NULL or
    after the horizon (the latest reading - MAX_INCREMENTAL_DAYS, here `back` days)."""
    rows = []
    for k, readings in enumerate(series):
        day = date(1969, 12, 1)
        for gap, value in readings:
            day += timedelta(days=gap)
            rows.append((day, ["ind_a", "ind_b"][k % 2], f"S{k}", value / 2))
    old = state.MAX_INCREMENTAL_DAYS
    state.MAX_INCREMENTAL_DAYS = back
    try:
        con = _indicators(rows, _SHARED)
        build_extremes(con, {})
        got = sorted(con.execute("select * from internal.extremes_frontier").fetchall(), key=repr)
    finally:
        state.MAX_INCREMENTAL_DAYS = old
    cutoff = max(r[0] for r in rows) - timedelta(days=back)
    expected = []
    for (indicator, subject), group in pd.DataFrame(rows, columns=["date", "i", "s", "v"]).groupby(["i", "s"]):
        group = list(group.sort_values("date").itertuples(index=False))
        for side, beyond in (("high", lambda a, b: a >= b), ("low", lambda a, b: a <= b)):
            for n, r in enumerate(group):
                until = next((later.date for later in group[n + 1:] if beyond(later.v, r.v)), None)
                if until is None or until > cutoff:
                    expected.append((indicator, subject, side, r.date, r.v, until))
    assert got == sorted(expected, key=repr)


def test_an_update_from_before_the_horizon_is_refused_and_changes_nothing():
    """The frontier keeps what stopped being current after the horizon (the latest reading - MAX_INCREMENTAL_DAYS):
    an update from an earlier `since` cannot be shown equal to a full build; it raises (warehouse.update then
    rebuilds in full) and, one transaction, leaves every table as it was."""
    con = _indicators([(d(i), "x", "A", float((i * 7) % 5)) for i in range(60)])
    build_extremes(con, {})
    before = _tables(con)
    since = state.horizon(d(59)) - timedelta(days=1)
    with pytest.raises(NotIncremental, match="goes back to"):
        update_extremes(con, since)
    assert _tables(con) == before
    assert update_extremes(con, state.horizon(d(59))) == state.MAX_INCREMENTAL_DAYS
    assert _tables(con) == before
