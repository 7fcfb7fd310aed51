"""marts.forward_returns and marts.episodes (regime.analogs) on a hand-made series, checked against values worked
out by hand; the point-in-time rule (a build as of D has no forward return ending after D); and an update equal to
a full build, on the hand-made series and on the bundled sample through the real warehouse build."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import pytest

from conftest import SAMPLE_LAST
from regime import analogs, publisher, warehouse
from regime.extremes.build import build as build_extremes
from regime.extremes.update import update as update_extremes
from regime.indicators import REGIME_RULES
from regime.sql import FULL

D = [date(2024, 1, 1) + timedelta(days=i) for i in range(8)]  # d0 … d7: every day a session, for the arithmetic
# RUT closes on d0..d6; SPX has no close on d3 (its own sessions: d0, d1, d2, d4, d5, d6, d7)
RUT = dict(zip(D[:7], [100.0, 104.0, 98.0, 110.0, 120.0, 125.0, 90.0], strict=True))
SPX = dict(zip([D[0], D[1], D[2], D[4], D[5], D[6], D[7]], [200.0, 205.0, 190.0, 195.0, 210.0, 220.0, 230.0],
               strict=True))
#            d0    d1   d2   d3   d4   d5    d6   d7
RUT_Z = [None, 3.2, 3.5, 2.5, 3.0, None, 4.0, -3.1]
REL = [None, 0.01, 0.02, 0.00, 0.03, None, None, None]  # rel_ret_5d RUT/SPX


def _warehouse(as_of: date, record_min_days: int = 0) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for schema in warehouse.SCHEMAS:
        con.execute(f"create schema {schema}")
    con.execute("create table marts.prices (date date, symbol varchar, open double, high double, low double,"
                " close double)")
    _insert_prices(con, as_of, FULL)
    con.execute("create table marts.indicators (date date, indicator varchar, subject varchar, value double)")
    rows = [(d, "zscore_50d", "RUT", z) for d, z in zip(D, RUT_Z, strict=True) if d <= as_of]
    rows += [(d, "rel_ret_5d", "RUT/SPX", v) for d, v in zip(D, REL, strict=True) if v is not None and d <= as_of]
    con.executemany("insert into marts.indicators values ($1, $2, $3, $4)", rows)
    build_extremes(con, {})
    analogs.build(con, _params(as_of, record_min_days))
    return con


def _insert_prices(con, as_of: date, after: date) -> None:
    rows = [(d, s, c) for s, closes in (("RUT", RUT), ("SPX", SPX)) for d, c in closes.items() if after < d <= as_of]
    con.executemany("insert into marts.prices values ($1, $2, NULL, NULL, NULL, $3)", rows)


def _params(as_of: date, record_min_days: int = 0) -> dict:
    return {**REGIME_RULES, "as_of": as_of, "record_min_days": record_min_days}


def _returns(con) -> dict:
    return {(d, s, h): (end, v) for d, s, h, end, v in con.execute(
        "select date, subject, horizon, end_date, value from marts.forward_returns").fetchall()}


def test_forward_returns_by_hand():
    got = _returns(_warehouse(D[7]))
    assert set(got) == {(D[0], "RUT", 5), (D[1], "RUT", 5), (D[0], "SPX", 5), (D[1], "SPX", 5),
                        (D[0], "RUT/SPX", 5), (D[1], "RUT/SPX", 5)}  # no 20 or 60 sessions yet, no NDX
    assert got[(D[0], "RUT", 5)] == (D[5], pytest.approx(125 / 100 - 1))  # 0.25
    assert got[(D[1], "RUT", 5)] == (D[6], pytest.approx(90 / 104 - 1))  # -0.134615
    # SPX's own sessions: 5 after d0 is d6 (no SPX close on d3)
    assert got[(D[0], "SPX", 5)] == (D[6], pytest.approx(220 / 200 - 1))  # 0.10
    assert got[(D[1], "SPX", 5)] == (D[7], pytest.approx(230 / 205 - 1))  # 0.121951
    # small minus large, ending on the later of the two ends
    assert got[(D[0], "RUT/SPX", 5)] == (D[6], pytest.approx(0.25 - 0.10))
    assert got[(D[1], "RUT/SPX", 5)] == (D[7], pytest.approx(-0.1346154 - 0.1219512, abs=1e-7))


def test_a_build_as_of_d_has_no_forward_return_ending_after_d():
    for as_of in D[4:]:
        con = _warehouse(as_of)
        assert con.execute("select count(*) from marts.forward_returns where end_date > $d",
                           {"d": as_of}).fetchall()[0][0] == 0
    got = _returns(_warehouse(D[6]))
    assert (D[1], "RUT", 5) in got  # ends on d6: known
    assert (D[1], "SPX", 5) not in got and (D[1], "RUT/SPX", 5) not in got  # end on d7: not yet
    assert _returns(_warehouse(D[4])) == {}  # no fifth later session of anything by d4


EPISODE_COLUMNS = ("kind, threshold, side, start_date, end_date, sessions, peak_date, peak_value, index_fwd_5d, "
                   "pair_fwd_5d, index_fwd_20d")


def _episodes(con, indicator: str, where: str = "true") -> list[tuple]:
    return con.execute(f"select {EPISODE_COLUMNS} from marts.episodes where indicator = $i and {where}"
                       " order by kind, threshold, side, start_date", {"i": indicator}).fetchall()


def test_level_episodes_by_hand():
    con = _warehouse(D[7])
    rut = _returns(con)
    fwd_d1 = (pytest.approx(rut[(D[1], "RUT", 5)][1]), pytest.approx(rut[(D[1], "RUT/SPX", 5)][1]), None)
    got = _episodes(con, "zscore_50d", "kind = 'level' and subject = 'RUT'")
    assert got == [
        # ≤ -3.5: none; ≤ -3: d7; ≤ -2: d7
        ("level", -3.0, "low", D[7], D[7], 1, D[7], -3.1, None, None, None),
        ("level", -2.0, "low", D[7], D[7], 1, D[7], -3.1, None, None, None),
        # ≥ 2: d1..d4 (2.5 on d3 is still beyond 2), then d5 is NULL: d6 starts another
        ("level", 2.0, "high", D[1], D[4], 4, D[2], 3.5, *fwd_d1),
        ("level", 2.0, "high", D[6], D[6], 1, D[6], 4.0, None, None, None),
        # ≥ 3: d1-d2, d4 (3.0 is at the threshold: beyond), d6 after a NULL
        ("level", 3.0, "high", D[1], D[2], 2, D[2], 3.5, *fwd_d1),
        ("level", 3.0, "high", D[4], D[4], 1, D[4], 3.0, None, None, None),
        ("level", 3.0, "high", D[6], D[6], 1, D[6], 4.0, None, None, None),
        # ≥ 3.5: d2, d6
        ("level", 3.5, "high", D[2], D[2], 1, D[2], 3.5, None, None, None),
        ("level", 3.5, "high", D[6], D[6], 1, D[6], 4.0, None, None, None),
    ]
    assert fwd_d1[0] == pytest.approx(90 / 104 - 1)


def test_record_and_percentile_episodes_by_hand():
    con = _warehouse(D[7])
    # records (the series' first reading, d1, is none): 3.5 on d2 and 4.0 on d6 are record highs, 2.5 on d3 and
    # -3.1 on d7 record lows (3.0 on d4 is neither: the d7 low is an episode of its own)
    assert [row[:8] for row in _episodes(con, "zscore_50d", "kind = 'record'")] == [
        ("record", None, "high", D[2], D[2], 1, D[2], 3.5),
        ("record", None, "high", D[6], D[6], 1, D[6], 4.0),
        ("record", None, "low", D[3], D[3], 1, D[3], 2.5),
        ("record", None, "low", D[7], D[7], 1, D[7], -3.1),
    ]
    # rel_ret_5d pct_rank to date: d1 1.0, d2 1.0, d3 1/3, d4 1.0: at or above the 99th percentile on d1-d2 and d4
    assert [row[:8] for row in _episodes(con, "rel_ret_5d", "kind = 'percentile'")] == [
        ("percentile", 0.99, "high", D[1], D[2], 2, D[2], 0.02),
        ("percentile", 0.99, "high", D[4], D[4], 1, D[4], 0.03),
    ]
    # a series younger than record_min_days has neither
    young = _warehouse(D[7], record_min_days=365)
    assert young.execute("select count(*) from marts.episodes where kind <> 'level'").fetchall()[0][0] == 0


def _table(con, table: str) -> list[tuple]:
    return sorted(con.execute(f"select * from {table}").fetchall(), key=repr)


@pytest.mark.parametrize("since", [D[4], D[5], D[6]])
def test_an_update_fills_in_the_returns_that_became_known(since):
    full = _warehouse(D[7])
    con = _warehouse(since)
    _insert_prices(con, D[7], since)
    con.executemany("insert into marts.indicators values ($1, $2, $3, $4)",
                    [(d, "zscore_50d", "RUT", z) for d, z in zip(D, RUT_Z, strict=True) if d > since]
                    + [(d, "rel_ret_5d", "RUT/SPX", v) for d, v in zip(D, REL, strict=True) if v is not None
                       and d > since])
    update_extremes(con, since)
    analogs.update(con, _params(D[7]), since)
    for table in ("marts.forward_returns", "marts.episodes"):
        assert _table(con, table) == _table(full, table), table


@pytest.mark.slow
def test_update_equals_a_full_build_on_the_sample(ingested):
    settings = ingested
    full = warehouse.build(settings, SAMPLE_LAST)
    previous = warehouse.build(settings, SAMPLE_LAST - timedelta(days=6))
    publisher.publish(settings, previous)
    updated = warehouse.update(settings, SAMPLE_LAST, settings.warehouse_path)
    con = duckdb.connect()
    try:
        con.execute(f"attach '{full}' as a (read_only)")
        con.execute(f"attach '{updated}' as b (read_only)")
        assert con.execute("select method from b.meta.build_method").fetchall() == [("incremental",)]
        for table in ("marts.forward_returns", "marts.episodes"):
            rows = con.execute(f"select count(*) from a.{table}").fetchall()[0][0]
            only = con.execute(f"select count(*) from ((from a.{table} except all from b.{table})"
                               f" union all (from b.{table} except all from a.{table}))").fetchall()[0][0]
            assert rows > 0 and only == 0, table
        # the update filled in returns that ended in the six days: e.g. RUT's 5-session return from 2024-07-10
        assert con.execute("select end_date from b.marts.forward_returns where subject = 'RUT' and horizon = 5"
                           " and date = '2024-07-10'").fetchall() == [(SAMPLE_LAST,)]
    finally:
        con.close()


def test_an_update_recomputes_episodes_from_before_any_that_spans_its_cut():
    """analogs.episodes_from: an episode that spans the cut moves it to its start, until none does (here three
    overlapping episodes of different rules move a cut of 2024-02-15 back to 2024-01-01)."""
    con = duckdb.connect()
    try:
        con.execute("create schema marts")
        con.execute("create table marts.episodes (start_date date, end_date date)")
        con.execute("insert into marts.episodes values ('2024-01-01', '2024-01-05'), ('2024-01-03', '2024-02-10'),"
                    " ('2024-02-01', '2024-03-01'), ('2023-06-01', '2023-06-02')")
        assert analogs.episodes_from(con, date(2024, 2, 15)) == date(2024, 1, 1)
        assert analogs.episodes_from(con, date(2024, 3, 2)) == date(2024, 3, 2)  # nothing ends on or after it
        assert analogs.episodes_from(con, date(2024, 1, 2)) == date(2024, 1, 1)
    finally:
        con.close()
