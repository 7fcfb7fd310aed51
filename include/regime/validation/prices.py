"""Suite for marts.prices (the canonical Cboe index history): daily index and volatility-index levels."""

from __future__ import annotations

import math

import great_expectations.expectations as gxe
import numpy as np
import pandas as pd

from regime.validation.context import VOL_INDEXES, RunContext
from regime.validation.plausibility import excepted, messages, num, previous

NAME = "prices"
TABLE = "marts.prices"
COLUMNS = ["date", "symbol", "open", "high", "low", "close"]
OHLC_TOLERANCE = 1e-5  # relative to the close: the real files carry float noise (open 440.505, low 440.505313)
MAX_DAY_CHANGE = {"price": 0.25, "vol": 1.5}  # |close / previous close - 1| beyond this is flagged
# Blocking bounds (docs/validation.md): |ln(close / previous close)| a real index cannot exceed. Equity indexes: the
# largest real move in the reference record is SPX on 1987-10-19 (-20.5 %, ln 0.229); 0.30 is -26 % / +35 %.
# Volatility indexes: the largest is VIX on 2018-02-05 (+116 %, ln 0.768); ln 4 is x4 or /4 in a day.
MAX_LOG_MOVE = {"price": 0.30, "vol": math.log(4)}
# Close outside that day's [low, high] beyond OHLC_TOLERANCE of the close blocks, volatility indexes included: the
# documented VIX defect is in its OPEN (above HIGH or below LOW), which stays a warning; every close of the
# reference record (SPX, NDX, RUT, DJX, VIX) and of the sample (RVX too) lies within its range.
CLOSE_RANGE_TOLERANCE = OHLC_TOLERANCE
# Identity: a series whose closes differ by more than IDENTITY_TOLERANCE from the published ones on more than
# IDENTITY_SHARE of the overlapping days (and on IDENTITY_MIN_DAYS at least) is another series' history.
IDENTITY_TOLERANCE = 0.02
IDENTITY_SHARE = 0.10
IDENTITY_MIN_DAYS = 2
QUERY = """
select
    *,
    strftime(date, '%Y-%m-%d') as date_iso,
    isodow(date) as iso_dow,
    (greatest(open, close) - high) / close as high_shortfall,
    (low - least(open, close)) / close as low_excess,
    abs(close / lag(close) over (partition by symbol order by date) - 1) as day_change,
    case when max(date) over (partition by symbol) < $fresh_after
         then symbol || ' last ' || strftime(max(date) over (partition by symbol), '%Y-%m-%d') end as stale
from marts.prices
"""
DERIVED = ["date_iso", "iso_dow", "high_shortfall", "low_excess", "day_change", "stale", "missing_sessions",
           "implausible_move", "close_outside_range", "identity"]

_PRICE = f"~symbol.isin({list(VOL_INDEXES)!r})"
_VOL = f"symbol.isin({list(VOL_INDEXES)!r})"


def prepare(frame: pd.DataFrame, run: RunContext) -> pd.DataFrame:
    return frame.assign(missing_sessions=run.missing_sessions(frame["date"], frame["symbol"]),
                        implausible_move=_implausible_move(frame, run),
                        close_outside_range=_close_outside_range(frame, run),
                        identity=_identity(frame, run))


def _implausible_move(frame: pd.DataFrame, run: RunContext) -> pd.Series:
    before = previous(frame, "symbol", ["close"])
    positive = (frame["close"] > 0) & (before["close"] > 0)  # a close <= 0 fails its own check
    move = pd.Series(np.log(frame["close"].where(positive) / before["close"].where(positive)), index=frame.index)
    vol = frame["symbol"].isin(VOL_INDEXES)
    bound = pd.Series(np.where(vol, MAX_LOG_MOVE["vol"], MAX_LOG_MOVE["price"]), index=frame.index)
    bad = (move.abs() > bound) & ~excepted(frame, "symbol", run.exceptions, NAME, "day_move")
    return messages(bad, lambda i: (
        f"{frame.at[i, 'symbol']} {frame.at[i, 'date_iso']} close {num(frame.at[i, 'close'])} after "
        f"{num(before.at[i, 'close'])} on {before.at[i, 'date_iso']}: log move {move.at[i]:+.2f}, "
        f"bound {bound.at[i]:.2f}"))


def _close_outside_range(frame: pd.DataFrame, run: RunContext) -> pd.Series:
    tolerance = CLOSE_RANGE_TOLERANCE * frame["close"]
    bad = (((frame["close"] - frame["high"]) > tolerance) | ((frame["low"] - frame["close"]) > tolerance)) \
        & ~excepted(frame, "symbol", run.exceptions, NAME, "close_range")
    return messages(bad, lambda i: (
        f"{frame.at[i, 'symbol']} {frame.at[i, 'date_iso']} close {num(frame.at[i, 'close'])} outside "
        f"low {num(frame.at[i, 'low'])} - high {num(frame.at[i, 'high'])}"))


def _identity(frame: pd.DataFrame, run: RunContext) -> pd.Series:
    """Each series against its own history in the last published warehouse, on the dates both hold."""
    published = run.published_closes
    out = pd.Series(None, index=frame.index, dtype=object)
    if published.empty:
        return out
    keep = ~excepted(frame, "symbol", run.exceptions, NAME, "identity") & (frame["close"] > 0)
    both = frame.loc[keep, ["symbol", "date_iso", "close"]].reset_index().merge(
        published, on=["symbol", "date_iso"], suffixes=("", "_published"))
    both["differs"] = (both["close"] / both["close_published"] - 1).abs() > IDENTITY_TOLERANCE
    for symbol, rows in both.groupby("symbol"):
        differing, overlapping = int(rows["differs"].sum()), len(rows)
        if differing < IDENTITY_MIN_DAYS or differing <= IDENTITY_SHARE * overlapping:
            continue
        for _, row in rows[rows["differs"]].iterrows():
            out.at[row["index"]] = (
                f"{symbol} {row['date_iso']} close {num(row['close'])}, published {num(row['close_published'])}: "
                f"{symbol}'s history differs from the published one on {differing} of {overlapping} overlapping "
                f"days: another series' file?")
    return out


def _ohlc(row_condition: str, severity: str, note: str) -> list:
    """high >= max(open, close) and low <= min(open, close), within OHLC_TOLERANCE of the close."""
    kw = {"row_condition": row_condition, "condition_parser": "pandas", "severity": severity, "notes": note}
    return [
        gxe.ExpectColumnValuesToBeBetween(column="high_shortfall", max_value=OHLC_TOLERANCE, **kw),
        gxe.ExpectColumnValuesToBeBetween(column="low_excess", max_value=OHLC_TOLERANCE, **kw),
    ]


def _sessions(run: RunContext, row_condition: str, severity: str, note: str) -> list:
    kw = {"row_condition": row_condition, "condition_parser": "pandas", "severity": severity, "notes": note}
    return [
        gxe.ExpectColumnValuesToBeInSet(column="iso_dow", value_set=[1, 2, 3, 4, 5], **kw),
        gxe.ExpectColumnValuesToNotBeInSet(column="date_iso", value_set=run.weekday_closures_iso, **kw),
    ]


def expectations(run: RunContext) -> list:
    return [
        gxe.ExpectTableColumnsToMatchSet(column_set=[*COLUMNS, *DERIVED], exact_match=True),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("date", "symbol", "close")],
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["date", "symbol"]),
        gxe.ExpectColumnValuesToBeBetween(column="close", min_value=0, strict_min=True),
        *[gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, strict_min=True) for c in ("open", "high", "low")],
        *_ohlc(_PRICE, "critical", "OHLC must be consistent for price indexes"),
        *_ohlc(_VOL, "warning", "documented exception: Cboe VIX 1990s-2006 rows (docs/validation.md)"),
        *_sessions(run, _PRICE, "critical", "dates must be NYSE sessions"),
        gxe.ExpectColumnValuesToBeNull(column="implausible_move",
                                       notes=f"a daily move no real index makes: |ln(close / previous close)| beyond "
                                             f"{MAX_LOG_MOVE['price']:.2f} (price indexes) or "
                                             f"{MAX_LOG_MOVE['vol']:.2f} (vol indexes)"),
        gxe.ExpectColumnValuesToBeNull(column="close_outside_range",
                                       notes=f"the close lies within that day's low and high (within "
                                             f"{CLOSE_RANGE_TOLERANCE:g} of the close)"),
        gxe.ExpectColumnValuesToBeNull(column="identity",
                                       notes="each series matches its own history in the last published warehouse"),
        *_sessions(run, _VOL, "warning", "documented exception: Cboe publishes vol indexes on some NYSE holidays"),
        gxe.ExpectColumnValuesToBeBetween(column="day_change", max_value=MAX_DAY_CHANGE["price"], row_condition=_PRICE,
                                          condition_parser="pandas", severity="warning",
                                          notes=f"day-over-day move beyond {MAX_DAY_CHANGE['price']:.0%}"),
        gxe.ExpectColumnValuesToBeBetween(column="day_change", max_value=MAX_DAY_CHANGE["vol"], row_condition=_VOL,
                                          condition_parser="pandas", severity="warning",
                                          notes=f"day-over-day move beyond {MAX_DAY_CHANGE['vol']:.0%}"),
        gxe.ExpectColumnValuesToBeBetween(column="missing_sessions", max_value=run.gap_tolerance_sessions,
                                          row_condition=_PRICE, condition_parser="pandas", severity="warning",
                                          notes=f"gap of more than {run.gap_tolerance_sessions} NYSE sessions"),
        gxe.ExpectColumnValuesToBeNull(column="stale", severity="warning",
                                       notes=f"freshness of cboe (and yahoo): every series has a close on or after "
                                             f"{run.fresh_after}"),
        *run.row_count_floor(NAME),
    ]
