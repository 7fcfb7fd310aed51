"""Suite for staging.options_volume: daily call and put volume per underlying (OCC)."""

from __future__ import annotations

import great_expectations.expectations as gxe
import pandas as pd

from regime.validation.context import RunContext

NAME = "options_volume"
TABLE = "staging.options_volume"
MAX_DAY_RATIO = 20.0  # a day's total volume over the previous day's, beyond which it is flagged
QUERY = """
select
    *,
    strftime(date, '%Y-%m-%d') as date_iso,
    isodow(date) as iso_dow,
    (call_volume + put_volume) / nullif(lag(call_volume + put_volume) over (partition by underlying order by date), 0)
        as day_ratio,
    case when max(date) over (partition by underlying) < $fresh_after
         then underlying || ' last ' || strftime(max(date) over (partition by underlying), '%Y-%m-%d') end as stale
from staging.options_volume
"""


def prepare(frame: pd.DataFrame, run: RunContext) -> pd.DataFrame:
    return frame.assign(missing_sessions=run.missing_sessions(frame["date"], frame["underlying"]))


def expectations(run: RunContext) -> list:
    return [
        gxe.ExpectTableColumnsToMatchSet(column_set=["date", "underlying", "call_volume", "put_volume", "date_iso",
                                                     "iso_dow", "day_ratio", "stale", "missing_sessions"],
                                         exact_match=True),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("date", "underlying", "call_volume", "put_volume")],
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["date", "underlying"]),
        gxe.ExpectColumnValuesToBeBetween(column="call_volume", min_value=0, notes="volumes are never negative"),
        gxe.ExpectColumnValuesToBeBetween(column="put_volume", min_value=0, notes="volumes are never negative"),
        gxe.ExpectColumnValuesToBeInSet(column="iso_dow", value_set=[1, 2, 3, 4, 5], notes="NYSE sessions only"),
        gxe.ExpectColumnValuesToNotBeInSet(column="date_iso", value_set=run.weekday_closures_iso,
                                           notes="NYSE sessions only"),
        gxe.ExpectColumnValuesToBeBetween(column="day_ratio", min_value=1 / MAX_DAY_RATIO, max_value=MAX_DAY_RATIO,
                                          severity="warning", notes=f"a day's volume {MAX_DAY_RATIO:g}x off the "
                                                                    "previous day's"),
        gxe.ExpectColumnValuesToBeBetween(column="missing_sessions", max_value=run.gap_tolerance_sessions,
                                          severity="warning",
                                          notes=f"gap of more than {run.gap_tolerance_sessions} NYSE sessions"),
        gxe.ExpectColumnValuesToBeNull(column="stale", severity="warning",
                                       notes=f"freshness of occ: every underlying on or after {run.fresh_after}"),
        *run.row_count_floor(NAME),
    ]
