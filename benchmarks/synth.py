"""Synthetic data for the benchmark, written straight into a lake with the canonical layout
(`lake/<dataset>/<key>=<value>/data.parquet`, the columns and types of regime.datasets).

- `history(lake_dir, years)`: all four sources like the reference mirror, but `years` long and complete — six Cboe
  indexes, six OCC underlyings, six ETFs and three CFTC markets — for the incremental update at 1x, 4x, 16x history.
- `panel(lake_dir, underlyings, etfs, sessions)`: the scale panel, OCC volume for thousands of underlyings and NAV
  history for hundreds of ETFs.

Sessions are NYSE sessions ending on END (weekdays before 1927, where the XNYS calendar starts), so the
validation gate passes on them; values are seeded random walks, so every run writes
the same lake.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from regime import datasets, lake

END = date(2025, 12, 31)
INDEXES = {"RUT": 2400.0, "SPX": 6800.0, "NDX": 25000.0, "DJX": 480.0}
VOLATILITY = {"VIX": 15.0, "RVX": 20.0}
UNDERLYINGS = ("IWM", "SPY", "QQQ", "NVDA", "TSLA", "AAPL")
ETFS = ("IWM", "IJR", "VTWO", "SPY", "IVV", "QQQ")
CFTC_MARKETS = {"13874A": "E-MINI S&P 500", "239742": "RUSSELL E-MINI", "209742": "NASDAQ MINI"}


def sessions(count: int, end: date = END) -> np.ndarray:
    """The last `count` NYSE sessions up to `end` (exchange_calendars XNYS, regime.calendar.nyse: from 1927), as
    datetime64[D]; before the calendar's first session, weekdays (the gate checks those dates as weekdays only)."""
    import pandas as pd

    from regime.calendar import nyse

    xnys = nyse().sessions
    known = xnys[xnys <= pd.Timestamp(end)].values.astype("datetime64[D]")
    if count <= len(known):
        return known[len(known) - count:]
    before = np.busday_offset(known[0], -1, roll="backward")
    older = np.busday_offset(before, np.arange(-(count - len(known)) + 1, 1), roll="forward")
    return np.concatenate([older, known])


def write_partitions(dataset: datasets.Dataset, lake_dir: Path, table: pa.Table) -> int:
    """Write `table` (sorted by partition, then date) as one Parquet file per partition value: the bulk path, the
    same files as dataset.write would leave in an empty lake. Returns the rows written."""
    keys = table.column(dataset.partition).to_numpy(zero_copy_only=False)
    cuts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True])
    columns = [f.name for f in dataset.schema if f.name != dataset.partition]
    body = table.select(columns).cast(pa.schema([dataset.schema.field(c) for c in columns]))
    times = table.column(dataset.time_column).to_numpy(zero_copy_only=False)
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        path = dataset.partition_path(lake_dir, str(keys[lo]))
        path.parent.mkdir(parents=True, exist_ok=True)
        part = body.slice(lo, hi - lo)
        # the journal entry and row groups of a first lake.upsert_partition (the digest names the rows written)
        entry = lake.journal_entry(None, f"bulk {path.parent.name} {hi - lo} {times[lo]} {times[hi - 1]}",
                                   times[lo:hi].min().astype("datetime64[D]").item())
        metadata = {**(part.schema.metadata or {}), lake.JOURNAL_KEY: json.dumps([entry]).encode()}
        pq.write_table(part.replace_schema_metadata(metadata), path, row_group_size=lake.ROW_GROUP_ROWS)
    return table.num_rows


def _frame(**columns) -> pa.Table:
    return pa.table(columns)


def index_prices(days: np.ndarray, rng) -> pa.Table:
    parts = []
    for symbol, level in INDEXES.items():
        walk = np.cumsum(rng.normal(0.0003, 0.011, len(days)))
        close = level * np.exp(walk - walk[-1])  # ends at today's level
        parts.append(_frame(date=days, symbol=np.full(len(days), symbol), open=close * 0.999, high=close * 1.004,
                            low=close * 0.995, close=close))
    for symbol, level in VOLATILITY.items():
        x = np.empty(len(days))
        x[0] = level
        shocks = rng.normal(0, 1.2, len(days))
        for i in range(1, len(days)):  # mean-reverting, positive
            x[i] = max(5.0, x[i - 1] + 0.05 * (level - x[i - 1]) + shocks[i])
        close = np.round(x, 2)
        parts.append(_frame(date=days, symbol=np.full(len(days), symbol), open=close, high=close + 0.5,
                            low=np.maximum(close - 0.5, 1.0), close=close))
    return pa.concat_tables(parts)


def options_volume(days: np.ndarray, names, rng) -> pa.Table:
    n, k = len(days), len(names)
    scale = rng.lognormal(10, 1.5, k)
    calls = (rng.lognormal(0, 0.4, (k, n)) * scale[:, None]).astype(np.int64)
    puts = (rng.lognormal(0, 0.4, (k, n)) * scale[:, None] * 0.8).astype(np.int64)
    return _frame(date=np.tile(days, k), underlying=np.repeat(np.asarray(names, dtype=object), n),
                  call_volume=calls.ravel(), put_volume=puts.ravel())


def etf_nav(days: np.ndarray, names, rng) -> pa.Table:
    n, k = len(days), len(names)
    nav = 100 * np.exp(np.cumsum(rng.normal(0.0002, 0.01, (k, n)), axis=1))
    shares = 1e8 * np.exp(np.cumsum(rng.normal(0, 0.002, (k, n)), axis=1))
    shares = np.round(shares, -3)
    return _frame(date=np.tile(days, k), ticker=np.repeat(np.asarray(names, dtype=object), n), nav=nav.ravel(),
                  shares_outstanding=shares.ravel())


def cftc_tff(days: np.ndarray, rng) -> pa.Table:
    tuesdays = days[np.is_busday(days, weekmask="0100000")]
    tuesdays = tuesdays[tuesdays + 3 <= days[-1]]  # released the Friday after
    n = len(tuesdays)
    parts = []
    for code, name in CFTC_MARKETS.items():
        oi = rng.integers(200_000, 3_000_000, n)
        cols = {c: (oi * rng.uniform(0.01, 0.4, n)).astype(np.int64) for c in datasets._POSITIONS}
        parts.append(_frame(report_date=tuesdays, release_date=tuesdays + 3, market_code=np.full(n, code),
                            market_name=np.full(n, name), open_interest=oi.astype(np.int64), **cols))
    return pa.concat_tables(parts)


def history(lake_dir: Path, years: float, seed: int = 20251231) -> int:
    """A complete lake of `years` of history for all four datasets; returns its rows."""
    rng = np.random.default_rng(seed)
    days = sessions(int(round(years * 261)))
    rows = write_partitions(datasets.INDEX_PRICES, lake_dir, index_prices(days, rng))
    rows += write_partitions(datasets.OPTIONS_VOLUME, lake_dir, options_volume(days, UNDERLYINGS, rng))
    rows += write_partitions(datasets.ETF_NAV, lake_dir, etf_nav(days, ETFS, rng))
    rows += write_partitions(datasets.CFTC_TFF, lake_dir, cftc_tff(days, rng))
    return rows


def panel_names(underlyings: int, etfs: int) -> tuple[list[str], list[str]]:
    return [f"U{i:04d}" for i in range(underlyings)], [f"F{i:03d}" for i in range(etfs)]


def panel(lake_dir: Path, underlyings: int, etfs: int, days: int, seed: int = 100) -> dict[str, int]:
    """The scale panel: OCC volume for `underlyings` and NAV history for `etfs`, `days` sessions each."""
    rng = np.random.default_rng(seed)
    names, funds = panel_names(underlyings, etfs)
    span = sessions(days)
    return {"options_volume": write_partitions(datasets.OPTIONS_VOLUME, lake_dir, options_volume(span, names, rng)),
            "etf_nav": write_partitions(datasets.ETF_NAV, lake_dir, etf_nav(span, funds, rng))}
