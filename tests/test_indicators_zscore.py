"""zscore_50d checked by hand on a tiny fixture and against an independent pandas calculation."""

import math
from datetime import date, timedelta

import duckdb
import pandas as pd
import pytest

from regime import lake, warehouse


def _lake_with(settings, closes_by_symbol):
    for symbol, closes in closes_by_symbol.items():
        days = [date(2020, 1, 1) + timedelta(days=i) for i in range(len(closes))]
        frame = pd.DataFrame({"date": days, "open": closes, "high": closes, "low": closes, "close": closes})
        lake.upsert_partition(lake.partition_path(settings.lake_dir, "index_prices", "symbol", symbol), frame,
                              on=["date"])


def _readings(path, subject):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("select date, value from marts.indicators where indicator = 'zscore_50d' and "
                           "subject = $s order by date", {"s": subject}).df()
    finally:
        con.close()


def test_zscore_by_hand(settings):
    # closes 1..50: mean 25.5, sample variance 50*51/12 = 212.5, so z(50) = 24.5 / sqrt(212.5) = 1.680686
    # closes 2..51 for the next day: same spread, z(51) = 1.680686 again
    _lake_with(settings, {"AAA": [float(i) for i in range(1, 52)]})
    staging = warehouse.build(settings, date(2020, 12, 31))
    values = _readings(staging, "AAA")["value"].tolist()
    assert all(v is None or math.isnan(v) for v in values[:49])  # NULL until 50 closes exist
    assert values[49] == pytest.approx(24.5 / math.sqrt(212.5), abs=1e-9)
    assert values[49] == pytest.approx(1.680686, abs=1e-6)
    assert values[50] == pytest.approx(1.680686, abs=1e-6)


@pytest.mark.slow
def test_zscore_matches_pandas_on_the_sample(settings):
    from regime.ingest import ingest_cboe

    ingest_cboe(settings, date(2024, 7, 17))
    staging = warehouse.build(settings, date(2024, 7, 17))
    prices = pd.read_parquet(settings.lake_dir / "index_prices" / "symbol=RUT" / "data.parquet")
    rolling = prices["close"].rolling(50)
    expected = ((prices["close"] - rolling.mean()) / rolling.std(ddof=1)).to_numpy()
    got = _readings(staging, "RUT")["value"].to_numpy(dtype=float)
    assert len(got) == len(expected)
    assert pd.Series(got).iloc[49:].sub(pd.Series(expected).iloc[49:]).abs().max() < 1e-9
    assert got[-1] > 3  # the sample's scripted small-cap squeeze


@pytest.mark.slow
def test_build_sees_nothing_after_the_as_of_date(settings):
    from regime.ingest import ingest_cboe

    ingest_cboe(settings, date(2024, 7, 17))
    staging = warehouse.build(settings, date(2024, 7, 10))
    con = duckdb.connect(str(staging), read_only=True)
    try:
        assert con.execute("select max(date) from marts.prices").fetchone()[0] == date(2024, 7, 10)
        assert con.execute("select max(date) from marts.indicators").fetchone()[0] == date(2024, 7, 10)
    finally:
        con.close()
