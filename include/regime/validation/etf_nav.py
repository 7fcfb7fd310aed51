"""Suite for staging.etf_nav: daily NAV and shares outstanding per ETF."""

from __future__ import annotations

import great_expectations.expectations as gxe
import pandas as pd

from regime.validation.context import RunContext
from regime.validation.plausibility import excepted, messages, num
from regime.validation.scope import WEEKDAYS_BEFORE

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
         then ticker || ' last ' || strftime(max(date) over (partition by ticker), '%Y-%m-%d') end as stale,
    -- helpers of `prepare` (dropped there): the previous row's values and the neighbours' dates
    lag(nav) over w as previous_nav,
    lag(shares_outstanding) over w as previous_shares,
    lag(date) over w as previous_date,
    lead(date) over w as next_date
from staging.etf_nav
window w as (partition by ticker order by date)
"""
HELPERS = ["previous_nav", "previous_shares", "previous_date", "next_date"]
# A full build hands GX only the rows that may fail one of the row-level expectations below (scope.py, `SUSPECT` in
# docs/validation.md): a superset (the bounds loosened by SLACK), on which `prepare` decides exactly, and the rows
# of the newest date (`spread_lacks` is set on one of them), with the fund list of the whole table (`tickers`).
SLACK = 1e-6
SUSPECT = """
date is null or ticker is null or nav is null
or nav <= 0 or shares_outstanding < 0
or iso_dow > 5
or (previous_nav > 0 and abs(nav / previous_nav - 1) > $max_nav_change)
or (previous_shares > 0 and abs(shares_outstanding / previous_shares - 1) > $max_shares_change)
or (previous_date is not null and """ + WEEKDAYS_BEFORE.format(d="date") + " - " + \
    WEEKDAYS_BEFORE.format(d="previous_date") + """ - 1 > $gap_tolerance)
or stale is not null
or date = previous_date or date = next_date
or date = (select max(date) from staging.etf_nav)
"""


def suspect_query(attached: bool) -> str:
    """A full build's suspect rows with the list of every fund in the table (`tickers`, for `spread_lacks`)."""
    return f"""select *, (select list(distinct ticker) from staging.etf_nav) as tickers
               from ({QUERY}) where {SUSPECT}"""


def suspect_params(run: RunContext) -> dict:
    """What SUSPECT binds: the run's gap tolerance, this suite's bounds (loosened by SLACK)."""
    return {**run.suspect_params(), "max_nav_change": MAX_NAV_CHANGE * (1 - SLACK),
            "max_shares_change": MAX_SHARES_CHANGE * (1 - SLACK)}


def prepare(frame: pd.DataFrame, run: RunContext) -> pd.DataFrame:
    frame = frame.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)
    have = set(frame["tickers"].iloc[0]) if "tickers" in frame and len(frame) else set(frame["ticker"])
    previous_nav = frame["previous_nav"]
    nav_change = frame["nav"] / previous_nav.where(previous_nav > 0) - 1
    shares_before = frame["previous_shares"]
    shares_change = frame["shares_outstanding"] / shares_before.where(shares_before > 0) - 1
    before = {"nav": previous_nav, "shares_outstanding": shares_before}

    def flagged(change, bound, column, check, what, fmt):
        bad = (change.abs() > bound) & ~excepted(frame, "ticker", run.exceptions, NAME, check)
        return messages(bad, lambda i: (
            f"{frame.at[i, 'ticker']} {frame.at[i, 'date_iso']} {what} {fmt(frame.at[i, column])} after "
            f"{fmt(before[column].at[i])} on {frame.at[i, 'previous_date']:%Y-%m-%d} ({change.at[i]:+.1%})"))

    return frame.assign(
        spread_lacks=spread_lacks(frame, have),
        missing_sessions=run.missing_between(frame["date"], frame["previous_date"]),
        implausible_nav=flagged(nav_change, MAX_NAV_CHANGE, "nav", "nav_move", "NAV", num),
        implausible_shares=flagged(shares_change, MAX_SHARES_CHANGE, "shares_outstanding", "shares_move",
                                   "shares outstanding", "{:,.0f}".format),
    ).drop(columns=[*HELPERS, *(["tickers"] if "tickers" in frame else [])])


def spread_lacks(frame: pd.DataFrame, have: set) -> pd.Series:
    """On the newest row only: which ETFs of the small-large flow spread (REGIME_SMALL_CAPS, REGIME_LARGE_CAPS) are
    not among `have` (the funds with a row), e.g. 'the ETF flow spread lacks small caps VTWO; large caps QQQ (no NAV
    rows)'; else NULL."""
    from regime.config import get_settings

    settings = get_settings()
    sides = [(name, [t for t in tickers if t not in have])
             for name, tickers in (("small caps", settings.small_caps), ("large caps", settings.large_caps))]
    text = "; ".join(f"{name} {', '.join(absent)}" for name, absent in sides if absent)
    out = pd.Series([None] * len(frame), index=frame.index, dtype="object")
    if text and len(frame):
        out[frame["date"].idxmax()] = f"the ETF flow spread lacks {text} (no NAV rows)"
    return out


def expectations(run: RunContext) -> list:
    return [
        gxe.ExpectTableColumnsToMatchSet(column_set=["date", "ticker", "nav", "shares_outstanding", "flow_usd",
                                                     "date_iso", "iso_dow", "stale", "spread_lacks", "missing_sessions",
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
        gxe.ExpectColumnValuesToBeNull(column="spread_lacks", severity="warning",
                                       notes="every ETF of REGIME_SMALL_CAPS and REGIME_LARGE_CAPS has NAV rows"),
        gxe.ExpectColumnValuesToBeNull(column="stale", severity="warning",
                                       notes=f"freshness of etf: every fund on or after {run.fresh_after}"),
        *run.row_count_floor(NAME),
    ]
