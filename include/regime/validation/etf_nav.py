"""Suite for staging.etf_nav: daily NAV and shares outstanding per ETF."""

from __future__ import annotations

import great_expectations.expectations as gxe
import pandas as pd

from regime.validation.context import RunContext

NAME = "etf_nav"
TABLE = "staging.etf_nav"
MAX_NAV_CHANGE = 0.25  # |NAV / previous NAV - 1| beyond this is flagged (a split, or a bad row)
MAX_SHARES_CHANGE = 0.5  # |shares / previous shares - 1|
QUERY = """
select
    *,
    strftime(date, '%Y-%m-%d') as date_iso,
    isodow(date) as iso_dow,
    abs(nav / lag(nav) over (partition by ticker order by date) - 1) as nav_change,
    abs(shares_outstanding / nullif(lag(shares_outstanding) over (partition by ticker order by date), 0) - 1)
        as shares_change,
    case when max(date) over (partition by ticker) < $fresh_after
         then ticker || ' last ' || strftime(max(date) over (partition by ticker), '%Y-%m-%d') end as stale
from staging.etf_nav
"""


def prepare(frame: pd.DataFrame, run: RunContext) -> pd.DataFrame:
    return frame.assign(missing_sessions=run.missing_sessions(frame["date"], frame["ticker"]))


def expectations(run: RunContext) -> list:
    return [
        gxe.ExpectTableColumnsToMatchSet(column_set=["date", "ticker", "nav", "shares_outstanding", "flow_usd",
                                                     "date_iso", "iso_dow", "nav_change", "shares_change", "stale",
                                                     "missing_sessions"], exact_match=True),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("date", "ticker", "nav")],
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["date", "ticker"]),
        gxe.ExpectColumnValuesToBeBetween(column="nav", min_value=0, strict_min=True),
        gxe.ExpectColumnValuesToBeBetween(column="shares_outstanding", min_value=0),
        gxe.ExpectColumnValuesToBeInSet(column="iso_dow", value_set=[1, 2, 3, 4, 5], notes="business days only"),
        gxe.ExpectColumnValuesToBeBetween(column="nav_change", max_value=MAX_NAV_CHANGE, severity="warning",
                                          notes=f"NAV moved more than {MAX_NAV_CHANGE:.0%} in a day"),
        gxe.ExpectColumnValuesToBeBetween(column="shares_change", max_value=MAX_SHARES_CHANGE, severity="warning",
                                          notes=f"shares outstanding moved more than {MAX_SHARES_CHANGE:.0%} in a day"),
        gxe.ExpectColumnValuesToBeBetween(column="missing_sessions", max_value=run.gap_tolerance_sessions,
                                          severity="warning",
                                          notes=f"gap of more than {run.gap_tolerance_sessions} NYSE sessions"),
        gxe.ExpectColumnValuesToBeNull(column="stale", severity="warning",
                                       notes=f"freshness of etf: every fund on or after {run.fresh_after}"),
        *run.row_count_floor(NAME),
    ]
