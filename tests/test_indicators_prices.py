"""Price indicators (ret_Nd, rel_ret_Nd, price_ratio, vol_corr_5d) on small marts.prices fixtures: values checked
by hand and against independent pandas calculations; the acceptance values on the real reference mirror."""

from __future__ import annotations

import math
from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest
from indicator_frames import readings, series_of

from conftest import REFERENCE_MIRROR, requires_reference
from regime import warehouse

AS_OF = date(2030, 1, 1)
PARAMS = {"as_of": AS_OF, "small_caps": ["IWM", "IJR", "VTWO"], "large_caps": ["SPY", "IVV", "QQQ"]}


def _sessions(n: int, start: date = date(2024, 1, 1)) -> list[date]:
    days, day = [], start
    while len(days) < n:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def _prices(closes: dict[str, list[float]], days: list[date] | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory warehouse whose marts.prices holds `closes` (one list per symbol, on consecutive sessions)."""
    con = duckdb.connect()
    for schema in warehouse.SCHEMAS:
        con.execute(f"create schema {schema}")
    con.execute("create table marts.prices (date date, symbol varchar, open double, high double, low double,"
                " close double)")
    rows = [(day, symbol, close) for symbol, values in closes.items()
            for day, close in zip(days or _sessions(len(values)), values, strict=False)]
    if rows:
        con.executemany("insert into marts.prices values ($1, $2, $3, $3, $3, $3)", rows)
    return con


def test_returns_by_hand():
    rut = [100.0, 110.0, 99.0, 99.0, 108.9, 120.0, 90.0]
    con = _prices({"RUT": rut})
    got = readings(con, ["ret_1d", "ret_5d"], PARAMS)
    days = _sessions(len(rut))
    ret_1d = series_of(got, "ret_1d", "RUT")
    assert list(ret_1d.index) == days[1:]  # no row for the first session: there is no earlier close
    assert ret_1d.iloc[0] == pytest.approx(0.10)  # 110 / 100 - 1
    assert ret_1d.iloc[1] == pytest.approx(-0.10)  # 99 / 110 - 1
    assert ret_1d.iloc[2] == pytest.approx(0.0)
    ret_5d = series_of(got, "ret_5d", "RUT")
    assert list(ret_5d.index) == days[5:]  # first row once 5 earlier closes exist
    assert ret_5d.iloc[0] == pytest.approx(0.20)  # 120 / 100 - 1
    assert ret_5d.iloc[1] == pytest.approx(90.0 / 110.0 - 1)


def test_returns_match_pandas_and_cover_price_indexes_only():
    rng = np.random.default_rng(7)
    closes = {s: list(1000 * np.exp(np.cumsum(rng.normal(0, 0.01, 60)))) for s in ("RUT", "SPX", "NDX", "DJX")}
    closes["VIX"] = list(15 + rng.random(60))
    con = _prices(closes)
    got = readings(con, ["ret_1d", "ret_5d", "ret_20d"], PARAMS)
    assert set(got.subject) == {"RUT", "SPX", "NDX", "DJX"}  # not the volatility indexes
    for n in (1, 5, 20):
        for symbol in ("RUT", "SPX", "NDX", "DJX"):
            expected = pd.Series(closes[symbol]).pct_change(n).dropna().to_numpy()
            series = series_of(got, f"ret_{n}d", symbol)
            assert len(series) == 60 - n
            np.testing.assert_allclose(series.to_numpy(), expected, rtol=0, atol=1e-12)


def test_relative_returns_and_price_ratio_by_hand():
    #            d0     d1     d2     d3     d4     d5     d6
    rut = [200.0, 201.0, 202.0, 203.0, 204.0, 220.0, 210.0]
    spx = [5000.0, 5000.0, 5000.0, 5000.0, 5000.0, 5100.0, 4900.0]
    ndx = [18000.0] * 6 + [18900.0]
    con = _prices({"RUT": rut, "SPX": spx, "NDX": ndx})
    got = readings(con, ["rel_ret_5d", "price_ratio"], PARAMS)
    days = _sessions(7)
    rel_spx = series_of(got, "rel_ret_5d", "RUT/SPX")
    rel_ndx = series_of(got, "rel_ret_5d", "RUT/NDX")
    assert list(rel_spx.index) == days[5:]
    assert rel_spx.iloc[0] == pytest.approx((220 / 200 - 1) - (5100 / 5000 - 1))  # 0.10 - 0.02 = 0.08
    assert rel_spx.iloc[0] == pytest.approx(0.08)
    assert rel_spx.iloc[1] == pytest.approx((210 / 201 - 1) - (4900 / 5000 - 1))
    assert rel_ndx.iloc[1] == pytest.approx((210 / 201 - 1) - 0.05)
    ratio = series_of(got, "price_ratio", "RUT/SPX")
    assert list(ratio.index) == days
    assert ratio.iloc[0] == pytest.approx(0.04)  # 200 / 5000
    assert set(got[got.indicator == "price_ratio"].subject) == {"RUT/SPX"}


def test_relative_return_needs_both_indexes_on_the_day():
    days = _sessions(8)
    con = _prices({"RUT": [100.0 + i for i in range(8)]}, days)
    con.execute("insert into marts.prices select date, 'SPX', 1, 1, 1, 1000 + 10 * row_number() over (order by date)"
                " from marts.prices where symbol = 'RUT' and date <> $d", {"d": days[6]})
    got = readings(con, ["rel_ret_20d", "rel_ret_5d"], PARAMS)
    rel = series_of(got, "rel_ret_5d", "RUT/SPX")
    assert days[6] not in rel.index  # SPX has no close that day
    assert days[7] in rel.index  # SPX's 5-session return there spans its own last 5 closes
    assert rel[days[7]] == pytest.approx((107 / 102 - 1) - (1070 / 1020 - 1))  # SPX: d7 over d1
    assert got[got.indicator == "rel_ret_20d"].empty  # not 20 earlier closes yet
    assert "RUT/NDX" not in set(got.subject)  # no NDX at all


def test_vol_corr_5d_by_hand():
    # SPX % changes 1, -1, 2, -2, 1 % while VIX moves -1, +1, -2, +2, -1 points: perfectly opposed
    spx = [100.0]
    for pct in (0.01, -0.01, 0.02, -0.02, 0.01):
        spx.append(spx[-1] * (1 + pct))
    vix = [20.0, 19.0, 20.0, 18.0, 20.0, 19.0]
    con = _prices({"SPX": spx, "VIX": vix, "RUT": [1.0] * 6})
    got = readings(con, ["vol_corr_5d"], PARAMS)
    corr = series_of(got, "vol_corr_5d", "SPX~VIX")
    assert list(corr.index) == [_sessions(6)[5]]  # 5 changes need 6 common sessions
    assert corr.iloc[0] == pytest.approx(-1.0, abs=1e-12)
    assert set(got.subject) == {"SPX~VIX"}  # RUT has no RVX here, NDX no VXN


def test_vol_corr_5d_matches_pandas_on_common_sessions():
    rng = np.random.default_rng(3)
    days = _sessions(40)
    rut = 2000 * np.exp(np.cumsum(rng.normal(0, 0.01, 40)))
    rvx = 20 + np.cumsum(rng.normal(0, 0.5, 40))
    con = _prices({"RUT": list(rut), "RVX": list(rvx)}, days)
    con.execute("delete from marts.prices where symbol = 'RUT' and date = $d", {"d": days[20]})  # RVX-only day
    got = readings(con, ["vol_corr_5d"], PARAMS)
    common = [i for i in range(40) if i != 20]
    frame = pd.DataFrame({"rut": rut[common], "rvx": rvx[common]}, index=[days[i] for i in common])
    expected = frame["rut"].pct_change().rolling(5).corr(frame["rvx"].diff()).dropna()
    corr = series_of(got, "vol_corr_5d", "RUT~RVX")
    assert list(corr.index) == list(expected.index)
    np.testing.assert_allclose(corr.to_numpy(), expected.to_numpy(), atol=1e-9)
    assert corr.between(-1, 1).all()
    assert days[20] not in corr.index  # an RVX-only day is not a session of the pair


def test_vol_corr_5d_is_null_when_a_series_does_not_move():
    con = _prices({"NDX": [100.0, 101.0, 100.0, 102.0, 101.0, 103.0], "VXN": [20.0] * 6})
    got = readings(con, ["vol_corr_5d"], PARAMS)
    value = series_of(got, "vol_corr_5d", "NDX~VXN").iloc[0]
    assert value is None or math.isnan(value)


def test_nothing_after_the_as_of_date_is_used():
    days = _sessions(10)
    con = _prices({"RUT": [100.0 + i for i in range(10)], "SPX": [1000.0] * 10}, days)
    got = readings(con, ["ret_1d", "ret_5d", "rel_ret_5d", "price_ratio"], {**PARAMS, "as_of": days[6]})
    assert got.date.max() == days[6]


@requires_reference("mirror", "cboe", "RUT_History.csv")
def test_acceptance_on_the_reference_mirror():
    from regime.sources import cboe

    day = date(2024, 7, 16)
    closes = {}
    for symbol in ("RUT", "SPX"):
        path = REFERENCE_MIRROR / "cboe" / f"{symbol}_History.csv"
        frame = cboe.parse(path.read_bytes(), symbol, str(path))
        frame = frame[pd.to_datetime(frame["date"]).dt.date >= date(2024, 1, 1)]
        closes[symbol] = frame
    con = _prices({})
    for symbol, frame in closes.items():
        con.register("f", frame.assign(symbol=symbol)[["date", "symbol", "close"]])
        con.execute("insert into marts.prices select date::date, symbol, close, close, close, close from f")
        con.unregister("f")
    got = readings(con, ["ret_5d", "rel_ret_5d"], {**PARAMS, "as_of": day})
    assert series_of(got, "ret_5d", "RUT")[day] == pytest.approx(0.1154, abs=0.0001)
    assert series_of(got, "rel_ret_5d", "RUT/SPX")[day] == pytest.approx(0.0992, abs=0.0002)
