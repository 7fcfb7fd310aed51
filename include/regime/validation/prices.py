"""Suite for marts.prices: daily index and volatility-index levels."""

from __future__ import annotations

import great_expectations.expectations as gxe

from regime.validation.context import VOL_INDEXES, RunContext

NAME = "prices"
OHLC_TOLERANCE = 1e-5  # relative to the close
QUERY = """
select
    *,
    strftime(date, '%Y-%m-%d') as date_iso,
    isodow(date) as iso_dow,
    (greatest(open, close) - high) / close as high_shortfall,
    (low - least(open, close)) / close as low_excess
from marts.prices
"""
COLUMNS = ["date", "symbol", "open", "high", "low", "close"]

_PRICE = f"~symbol.isin({list(VOL_INDEXES)!r})"
_VOL = f"symbol.isin({list(VOL_INDEXES)!r})"


def _ohlc(row_condition: str, severity: str, note: str) -> list:
    """high >= max(open, close) and low <= min(open, close), within OHLC_TOLERANCE of the close (the real
    files carry float noise such as open 440.505 against low 440.505313)."""
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
        gxe.ExpectTableColumnsToMatchSet(column_set=[*COLUMNS, "date_iso", "iso_dow", "high_shortfall",
                                                               "low_excess"], exact_match=True),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("date", "symbol", "close")],
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["date", "symbol"]),
        gxe.ExpectColumnValuesToBeBetween(column="close", min_value=0, strict_min=True),
        *[gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, strict_min=True) for c in ("open", "high",
                                                                                               "low")],
        *_ohlc(_PRICE, "critical", "OHLC must be consistent for price indexes"),
        *_ohlc(_VOL, "warning", "documented exception: Cboe VIX 1990s-2006 rows (docs/validation.md)"),
        *_sessions(run, _PRICE, "critical", "dates must be NYSE sessions"),
        *_sessions(run, _VOL, "warning", "documented exception: Cboe publishes vol indexes on some NYSE holidays"),
        gxe.ExpectColumnMaxToBeBetween(column="date_iso", min_value=run.fresh_after, severity="warning",
                                       notes=f"freshness: latest price on or after {run.fresh_after}"),
    ]
