"""Suite for staging.cftc_tff: CFTC Traders in Financial Futures, one row per report and market."""

from __future__ import annotations

import great_expectations.expectations as gxe

from regime.freshness import CFTC_FRESH_DAYS as FRESH_DAYS  # one limit with the runs that refuse stale data
from regime.validation.context import RunContext

NAME = "cftc_tff"
# Weekly reports: a market's consecutive report dates more than two weeks apart (one missing report, as in a
# government shutdown, is not flagged; the reference mirror's missing 2023 file is a 53-week hole) is a warning.
MAX_GAP_DAYS = 14
TABLE = "staging.cftc_tff"
POSITIONS = [
    "dealer_positions_long_all", "dealer_positions_short_all", "dealer_positions_spread_all",
    "asset_mgr_positions_long", "asset_mgr_positions_short", "asset_mgr_positions_spread",
    "lev_money_positions_long", "lev_money_positions_short", "lev_money_positions_spread",
    "other_rept_positions_long", "other_rept_positions_short", "other_rept_positions_spread",
    "nonrept_positions_long_all", "nonrept_positions_short_all",
]
QUERY = """
select
    *,
    isodow(report_date) as report_dow,
    release_date - report_date as release_lag_days,
    greatest(dealer_positions_long_all, asset_mgr_positions_long, lev_money_positions_long,
             other_rept_positions_long, nonrept_positions_long_all) / nullif(open_interest, 0) as max_long_share,
    case when report_date - lag(report_date) over (partition by market_code order by report_date) > 14  -- MAX_GAP_DAYS
         then market_code || ' no report between ' || strftime(lag(report_date) over (partition by market_code
                                                                                   order by report_date), '%Y-%m-%d')
              || ' and ' || strftime(report_date, '%Y-%m-%d') end as gap,
    case when max(release_date) over (partition by market_code) < $as_of - interval 10 day
         then market_code || ' last released ' || strftime(max(release_date) over (partition by market_code),
                                                           '%Y-%m-%d') end as stale
from staging.cftc_tff
"""


def expectations(run: RunContext) -> list:
    return [
        gxe.ExpectTableColumnsToMatchSet(column_set=["report_date", "release_date", "market_code", "market_name",
                                                     "open_interest", *POSITIONS, "report_dow", "release_lag_days",
                                                     "max_long_share", "gap", "stale"], exact_match=True),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("report_date", "release_date", "market_code",
                                                                 "open_interest")],
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["report_date", "market_code"]),
        gxe.ExpectColumnValuesToBeBetween(column="open_interest", min_value=0),
        *[gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, notes="positions are never negative")
          for c in POSITIONS],
        gxe.ExpectColumnValuesToBeBetween(column="max_long_share", max_value=1.0,
                                          notes="no trader class holds more than the open interest"),
        # as-of dates are Tuesdays; when the Tuesday is a federal holiday the CFTC uses Monday (or Wednesday) data
        gxe.ExpectColumnValuesToBeInSet(column="report_dow", value_set=[1, 2, 3],
                                        notes="report dates are Tuesdays, Monday/Wednesday in holiday weeks"),
        gxe.ExpectColumnValuesToBeInSet(column="report_dow", value_set=[2], severity="warning",
                                        notes="a report date that is not a Tuesday (holiday week)"),
        gxe.ExpectColumnValuesToBeBetween(column="release_lag_days", min_value=1, max_value=14,
                                          notes="a report is released after its as-of date, within two weeks"),
        gxe.ExpectColumnValuesToBeNull(column="gap", severity="warning",
                                       notes=f"weekly reports: no gap of more than {MAX_GAP_DAYS} days between "
                                             "a market's report dates"),
        gxe.ExpectColumnValuesToBeNull(column="stale", severity="warning",
                                       notes=f"freshness of cftc: a release within {FRESH_DAYS} days of {run.as_of}"),
        *run.row_count_floor(NAME),
    ]
