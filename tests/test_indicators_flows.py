"""Flow indicators on small staging fixtures: OCC options volume (call/put 5-session sums and their ratio), CFTC
positioning (net_pct_oi, point in time by release date) and ETF creation/redemption flows (per ETF and the
small-large spread). Values checked by hand and against independent pandas calculations."""

from __future__ import annotations

import contextlib
import logging
import math
from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest
from indicator_frames import readings, series_of

from regime import warehouse
from regime.indicators import get
from regime.readings import indicator_queries, insert_readings
from regime.sql import FULL, bind

AS_OF = date(2030, 1, 1)
PARAMS = {"as_of": AS_OF, "small_caps": ["IWM", "IJR", "VTWO"], "large_caps": ["SPY", "IVV", "QQQ"]}
CLASSES = {"dealer": ("dealer_positions_long_all", "dealer_positions_short_all"),
           "asset_mgr": ("asset_mgr_positions_long", "asset_mgr_positions_short"),
           "lev_money": ("lev_money_positions_long", "lev_money_positions_short")}
POSITIONS = [
    "dealer_positions_long_all", "dealer_positions_short_all", "dealer_positions_spread_all",
    "asset_mgr_positions_long", "asset_mgr_positions_short", "asset_mgr_positions_spread",
    "lev_money_positions_long", "lev_money_positions_short", "lev_money_positions_spread",
    "other_rept_positions_long", "other_rept_positions_short", "other_rept_positions_spread",
    "nonrept_positions_long_all", "nonrept_positions_short_all",
]


def _warehouse(path: str = ":memory:") -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    for schema in warehouse.SCHEMAS:
        con.execute(f"create schema {schema}")
    con.execute("create table staging.options_volume (date date, underlying varchar, call_volume bigint,"
                " put_volume bigint)")
    con.execute("create table staging.cftc_tff (report_date date, release_date date, market_code varchar,"
                " market_name varchar, open_interest bigint, " + ", ".join(f"{c} bigint" for c in POSITIONS) + ")")
    con.execute("create table staging.etf_nav (date date, ticker varchar, nav double, shares_outstanding double,"
                " flow_usd double)")
    return con


def _days(n: int, start: date = date(2024, 3, 4)) -> list[date]:
    days, day = [], start
    while len(days) < n:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


# --------------------------------------------------------------------------- options volume


def test_options_volume_sums_and_ratio_by_hand():
    con = _warehouse()
    days = _days(7)
    calls = [10, 20, 30, 40, 50, 60, 70]
    puts = [5, 5, 5, 5, 5, 0, 5]
    con.executemany("insert into staging.options_volume values ($1, 'IWM', $2, $3)",
                    [(d, c, p) for d, c, p in zip(days, calls, puts, strict=True)])
    got = readings(con, ["call_volume_5d", "put_volume_5d", "call_put_ratio_5d"], PARAMS)
    call = series_of(got, "call_volume_5d", "IWM")
    put = series_of(got, "put_volume_5d", "IWM")
    ratio = series_of(got, "call_put_ratio_5d", "IWM")
    assert list(call.index) == days[4:]  # no row before 5 sessions exist
    assert list(call) == [150.0, 200.0, 250.0]  # 10+20+30+40+50, 20+...+60, 30+...+70
    assert list(put) == [25.0, 20.0, 20.0]
    assert list(ratio) == pytest.approx([6.0, 10.0, 12.5])  # 150/25, 200/20, 250/20


def test_options_windows_are_the_underlyings_own_sessions():
    con = _warehouse()
    days = _days(8)
    rows = [(d, "SPY", 100 * (i + 1), 50) for i, d in enumerate(days)]
    rows += [(d, "IWM", 1, 1) for i, d in enumerate(days) if i != 3]  # IWM has no row on day 3
    rows += [(days[7], "NVDA", 5, 0)]
    con.executemany("insert into staging.options_volume values ($1, $2, $3, $4)", rows)
    got = readings(con, ["call_volume_5d", "call_put_ratio_5d"], PARAMS)
    frame = pd.DataFrame(rows, columns=["date", "underlying", "call", "put"])
    for underlying, group in frame.groupby("underlying"):
        expected = group.sort_values("date").set_index("date")["call"].rolling(5).sum().dropna()
        series = series_of(got, "call_volume_5d", underlying)
        assert list(series.index) == list(expected.index)
        assert list(series) == list(expected.astype(float))
    assert series_of(got, "call_volume_5d", "IWM").index[0] == days[5]  # 5 rows present: days 0,1,2,4,5
    assert "NVDA" not in set(got.subject)  # one session only


def test_call_put_ratio_is_null_without_puts():
    con = _warehouse()
    con.executemany("insert into staging.options_volume values ($1, 'QQQ', 10, 0)", [(d,) for d in _days(5)])
    value = series_of(readings(con, ["call_put_ratio_5d"], PARAMS), "call_put_ratio_5d", "QQQ").iloc[0]
    assert value is None or math.isnan(value)


def test_an_intermediate_model_is_built_once_for_its_readers_and_not_kept(tmp_path, caplog):
    """The three OCC indicators read intermediate.options_volume_5d: built once for the three, in an in-memory
    database that is gone afterwards (no table of it in the warehouse file), and on a read-only connection too."""
    path = tmp_path / "warehouse.duckdb"
    con = _warehouse(path)
    con.executemany("insert into staging.options_volume values ($1, $2, 10, 5)",
                    [(d, u) for d in _days(6) for u in ("IWM", "SPY")])
    con.execute("create table marts.indicators (date date, indicator varchar, subject varchar, value double)")
    caplog.set_level(logging.DEBUG, logger="regime.readings")
    names = ["call_volume_5d", "put_volume_5d", "call_put_ratio_5d"]
    assert insert_readings(con, PARAMS, FULL, names) == 3 * 2 * 2  # 2 underlyings, days 5-6
    built = [r.getMessage() for r in caplog.records if r.getMessage().startswith("intermediate.")]
    assert len(built) == 1 and built[0].startswith("intermediate.options_volume_5d built for call_volume_5d")
    assert con.execute("select list(value order by subject, date) from marts.indicators"
                       " where indicator = 'call_volume_5d'").fetchall() == [([50.0] * 4,)]
    assert "intermediate" not in {row[0] for row in con.execute("select database_name from duckdb_databases()")
                                  .fetchall()}
    con.close()
    reader = duckdb.connect(str(path), read_only=True)
    assert reader.execute("select count(*) from duckdb_tables() where table_name like '%_5d'").fetchall() == [(0,)]
    with contextlib.closing(indicator_queries(reader, PARAMS, FULL, ["call_put_ratio_5d"])) as q:
        values = [reader.execute(f"select value from ({sql}) order by subject, date", bound).fetchall()
                  for _indicator, sql, bound in q]
    assert values == [[(2.0,)] * 4]  # 5 * 10 calls over 5 * 5 puts


def test_parameters_named_only_in_comments_are_not_bound():
    sql = "-- readings after $since\nselect $as_of as d -- not $history_from"
    assert bind(sql, {"as_of": AS_OF, "since": AS_OF, "history_from": AS_OF}) == {"as_of": AS_OF}


# --------------------------------------------------------------------------- CFTC positioning


def _report(con, report_date: date, release_date: date | None, market: str = "239742", oi: int = 1000,
            **positions: int) -> None:
    values = {c: 0 for c in POSITIONS} | positions
    con.execute(
        "insert into staging.cftc_tff values ($report_date, $release_date, $market, 'RUSSELL E-MINI', $oi, "
        + ", ".join(f"${c}" for c in POSITIONS) + ")",
        {"report_date": report_date, "release_date": release_date, "market": market, "oi": oi, **values})


def test_net_pct_oi_by_hand_dated_by_release():
    con = _warehouse()
    # Tuesday 2024-07-09 report, public Friday 2024-07-12
    _report(con, date(2024, 7, 9), date(2024, 7, 12), oi=400_000,
            lev_money_positions_long=50_000, lev_money_positions_short=150_000, lev_money_positions_spread=9_999,
            asset_mgr_positions_long=200_000, asset_mgr_positions_short=40_000,
            dealer_positions_long_all=30_000, dealer_positions_short_all=30_000)
    got = readings(con, ["net_pct_oi"], PARAMS)
    assert set(got.date) == {date(2024, 7, 12)}  # the release date, never the report date
    assert series_of(got, "net_pct_oi", "239742:lev_money").iloc[0] == pytest.approx(-0.25)  # (50k - 150k) / 400k
    assert series_of(got, "net_pct_oi", "239742:asset_mgr").iloc[0] == pytest.approx(0.40)  # (200k - 40k) / 400k
    assert series_of(got, "net_pct_oi", "239742:dealer").iloc[0] == pytest.approx(0.0)
    assert get("net_pct_oi").bounds == (-1.0, 1.0)


def test_net_pct_oi_is_dated_by_a_release_on_a_holiday():
    con = _warehouse()
    _report(con, date(2024, 3, 26), date(2024, 3, 29), lev_money_positions_long=100)  # Good Friday: no session
    got = readings(con, ["net_pct_oi"], PARAMS)
    assert set(got.date) == {date(2024, 3, 29)}


@pytest.mark.slow
def test_a_cftc_reading_never_appears_before_its_release_date():
    con = _warehouse()
    rng = np.random.default_rng(11)
    tuesday = date(2024, 1, 2)
    releases = {}
    for week in range(12):
        report = tuesday + timedelta(weeks=week)
        release = report + timedelta(days=int(rng.choice([3, 3, 3, 6, 10])))  # Friday, sometimes later
        releases[report] = release
        for market in ("13874A", "239742", "209742"):
            _report(con, report, release, market=market, oi=10_000,
                    lev_money_positions_long=int(rng.integers(0, 5000)),
                    lev_money_positions_short=int(rng.integers(0, 5000)))
    _report(con, tuesday + timedelta(weeks=12), None, lev_money_positions_long=1)  # release unknown: never shown
    for as_of in (tuesday + timedelta(days=d) for d in range(0, 100, 2)):
        got = readings(con, ["net_pct_oi"], {**PARAMS, "as_of": as_of})
        visible = {release for release in releases.values() if release <= as_of}
        assert set(got.date) <= visible, as_of  # dated by release, only releases on or before the as-of date
        assert (got.date <= as_of).all()
    full = readings(con, ["net_pct_oi"], PARAMS)
    assert not (set(full.date) & set(releases)), "a reading was dated by its report date"
    assert full.value.between(-1, 1).all()


def test_of_two_reports_released_together_the_newer_is_the_reading():
    con = _warehouse()
    # a backlog: the reports of 2024-01-02 and 2024-01-09 both published on 2024-01-19, then a late re-release of
    # the 2024-01-09 report after the 2024-01-16 report was out
    _report(con, date(2024, 1, 2), date(2024, 1, 19), lev_money_positions_long=100)
    _report(con, date(2024, 1, 9), date(2024, 1, 19), lev_money_positions_long=200)
    _report(con, date(2024, 1, 16), date(2024, 1, 22), lev_money_positions_long=300)
    _report(con, date(2023, 12, 26), date(2024, 1, 26), lev_money_positions_long=999)
    got = series_of(readings(con, ["net_pct_oi"], PARAMS), "net_pct_oi", "239742:lev_money")
    assert got.to_dict() == {date(2024, 1, 19): pytest.approx(0.2), date(2024, 1, 22): pytest.approx(0.3)}


# --------------------------------------------------------------------------- ETF flows


def _etf(con, ticker: str, navs: list[float], shares: list[float], days: list[date]) -> pd.DataFrame:
    """Insert like staging.etf_nav: flow_usd = (shares - previous shares) * previous NAV."""
    frame = pd.DataFrame({"date": days[:len(navs)], "ticker": ticker, "nav": navs, "shares": shares})
    frame["flow_usd"] = frame["shares"].diff() * frame["nav"].shift()
    con.executemany("insert into staging.etf_nav values ($1, $2, $3, $4, $5)",
                    [(r.date, r.ticker, r.nav, r.shares, None if pd.isna(r.flow_usd) else r.flow_usd)
                     for r in frame.itertuples()])
    return frame


def test_etf_flow_5d_pct_by_hand():
    con = _warehouse()
    days = _days(7)
    # shares 100, 110, 110, 105, 105, 115 at NAV 10 each day: flows +100, 0, -50, 0, +100 (USD)
    _etf(con, "IWM", [10.0] * 6 + [20.0], [100, 110, 110, 105, 105, 115, 115], days)
    got = series_of(readings(con, ["etf_flow_5d_pct"], PARAMS), "etf_flow_5d_pct", "IWM")
    assert list(got.index) == days[5:]  # the first row has no flow, so 5 flows exist from day 5
    assert got.iloc[0] == pytest.approx(150 / 1150)  # (100 + 0 - 50 + 0 + 100) / (10 * 115)
    assert got.iloc[1] == pytest.approx(50 / 2300)  # (0 - 50 + 0 + 100 + 0) / (20 * 115)


def test_etf_flow_spread_by_hand_and_against_pandas():
    con = _warehouse()
    days = _days(12)
    rng = np.random.default_rng(5)
    frames = {}
    for ticker in ("IWM", "IJR", "SPY", "QQQ", "XLF"):
        navs = list(100 + np.cumsum(rng.normal(0, 1, 12)))
        shares = list(1e6 + np.cumsum(rng.integers(-5000, 5000, 12)))
        frames[ticker] = _etf(con, ticker, navs, shares, days)
    got = readings(con, ["etf_flow_5d_pct", "etf_flow_5d_pct_spread"], PARAMS)

    def side(tickers):
        flow = sum(frames[t].set_index("date")["flow_usd"].rolling(5).sum() for t in tickers)
        assets = sum(frames[t].set_index("date").eval("nav * shares") for t in tickers)
        return flow / assets

    expected = (side(["IWM", "IJR"]) - side(["SPY", "QQQ"])).dropna()  # VTWO, IVV absent; XLF on no side
    spread = series_of(got, "etf_flow_5d_pct_spread", "small-large")
    assert list(spread.index) == list(expected.index) == days[5:]
    np.testing.assert_allclose(spread.to_numpy(), expected.to_numpy(), rtol=1e-12)
    iwm = frames["IWM"].set_index("date")
    by_hand = iwm["flow_usd"].iloc[1:6].sum() / (iwm["nav"].iloc[5] * iwm["shares"].iloc[5])
    assert series_of(got, "etf_flow_5d_pct", "IWM")[days[5]] == pytest.approx(by_hand, rel=1e-12)
    assert set(got[got.indicator == "etf_flow_5d_pct"].subject) == {"IWM", "IJR", "SPY", "QQQ", "XLF"}


def test_etf_flow_spread_follows_the_bound_groups():
    con = _warehouse()
    days = _days(6)
    _etf(con, "AAA", [10.0] * 6, [100, 110, 110, 110, 110, 110], days)  # +100 over assets 1100
    _etf(con, "BBB", [10.0] * 6, [100, 100, 100, 100, 100, 90], days)  # -100 over assets 900
    params = {**PARAMS, "small_caps": ["AAA"], "large_caps": ["BBB"]}
    got = series_of(readings(con, ["etf_flow_5d_pct_spread"], params), "etf_flow_5d_pct_spread", "small-large")
    assert got.to_dict() == {days[5]: pytest.approx(100 / 1100 + 100 / 900)}
    assert readings(_warehouse(), ["etf_flow_5d_pct_spread"], PARAMS).empty
