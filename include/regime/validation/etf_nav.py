"""Suite for staging.etf_nav: daily NAV and shares outstanding per ETF."""

from __future__ import annotations

import great_expectations.expectations as gxe
import pandas as pd

from regime.validation.context import RunContext
from regime.validation.plausibility import excepted, messages, num, previous

NAME = "etf_nav"
TABLE = "staging.etf_nav"
# Blocking unless the row is in the exception list (a real split): |NAV / previous NAV - 1| beyond MAX_NAV_CHANGE
# (the broad funds' worst day, March 2020, was about -12 %), |shares / previous shares - 1| beyond MAX_SHARES_CHANGE
# (creations and redemptions move a fund's shares by a few percent a day).
MAX_NAV_CHANGE = 0.25
MAX_SHARES_CHANGE = 0.5
QUERY = """
select
    *,
    strftime(date, '%Y-%m-%d') as date_iso,
    isodow(date) as iso_dow,
    case when max(date) over (partition by ticker) < $fresh_after
         then ticker || ' last ' || strftime(max(date) over (partition by ticker), '%Y-%m-%d') end as stale
from staging.etf_nav
"""


def prepare(frame: pd.DataFrame, run: RunContext) -> pd.DataFrame:
    before = previous(frame, "ticker", ["nav", "shares_outstanding"])
    nav_change = frame["nav"] / before["nav"].where(before["nav"] > 0) - 1
    shares_before = before["shares_outstanding"]
    shares_change = frame["shares_outstanding"] / shares_before.where(shares_before > 0) - 1

    def flagged(change, bound, column, check, what, fmt):
        bad = (change.abs() > bound) & ~excepted(frame, "ticker", run.exceptions, NAME, check)
        return messages(bad, lambda i: (
            f"{frame.at[i, 'ticker']} {frame.at[i, 'date_iso']} {what} {fmt(frame.at[i, column])} after "
            f"{fmt(before.at[i, column])} on {before.at[i, 'date_iso']} ({change.at[i]:+.1%})"))

    return frame.assign(
        missing_sessions=run.missing_sessions(frame["date"], frame["ticker"]),
        implausible_nav=flagged(nav_change, MAX_NAV_CHANGE, "nav", "nav_move", "NAV", num),
        implausible_shares=flagged(shares_change, MAX_SHARES_CHANGE, "shares_outstanding", "shares_move",
                                   "shares outstanding", "{:,.0f}".format))


def expectations(run: RunContext) -> list:
    return [
        gxe.ExpectTableColumnsToMatchSet(column_set=["date", "ticker", "nav", "shares_outstanding", "flow_usd",
                                                     "date_iso", "iso_dow", "stale", "missing_sessions",
                                                     "implausible_nav", "implausible_shares"], exact_match=True),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("date", "ticker", "nav")],
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["date", "ticker"]),
        gxe.ExpectColumnValuesToBeBetween(column="nav", min_value=0, strict_min=True),
        gxe.ExpectColumnValuesToBeBetween(column="shares_outstanding", min_value=0),
        gxe.ExpectColumnValuesToBeInSet(column="iso_dow", value_set=[1, 2, 3, 4, 5], notes="business days only"),
        gxe.ExpectColumnValuesToBeNull(column="implausible_nav",
                                       notes=f"NAV moves at most {MAX_NAV_CHANGE:.0%} in a day (a split: an "
                                             "exception entry)"),
        gxe.ExpectColumnValuesToBeNull(column="implausible_shares",
                                       notes=f"shares outstanding move at most {MAX_SHARES_CHANGE:.0%} in a day "
                                             "(a split: an exception entry)"),
        gxe.ExpectColumnValuesToBeBetween(column="missing_sessions", max_value=run.gap_tolerance_sessions,
                                          severity="warning",
                                          notes=f"gap of more than {run.gap_tolerance_sessions} NYSE sessions"),
        gxe.ExpectColumnValuesToBeNull(column="stale", severity="warning",
                                       notes=f"freshness of etf: every fund on or after {run.fresh_after}"),
        *run.row_count_floor(NAME),
    ]
