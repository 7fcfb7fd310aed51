"""Suite for marts.prices (the canonical Cboe index history): daily index and volatility-index levels."""

from __future__ import annotations

import great_expectations.expectations as gxe
import pandas as pd

from regime.validation.context import VOL_INDEXES, RunContext

NAME = "prices"
TABLE = "marts.prices"
COLUMNS = ["date", "symbol", "open", "high", "low", "close"]
OHLC_TOLERANCE = 1e-5  # relative to the close: the real files carry float noise (open 440.505, low 440.505313)
MAX_DAY_CHANGE = {"price": 0.25, "vol": 1.5}  # |close / previous close - 1| beyond this is flagged
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
DERIVED = ["date_iso", "iso_dow", "high_shortfall", "low_excess", "day_change", "stale", "missing_sessions"]

_PRICE = f"~symbol.isin({list(VOL_INDEXES)!r})"
_VOL = f"symbol.isin({list(VOL_INDEXES)!r})"


def prepare(frame: pd.DataFrame, run: RunContext) -> pd.DataFrame:
    return frame.assign(missing_sessions=run.missing_sessions(frame["date"], frame["symbol"]))


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
