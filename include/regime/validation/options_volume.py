"""Suite for staging.options_volume: daily call and put volume per underlying (OCC)."""

from __future__ import annotations

import great_expectations.expectations as gxe
import pandas as pd

from regime.validation.context import RunContext
from regime.validation.plausibility import TRAILING_SESSIONS, excepted, messages
from regime.validation.scope import WEEKDAYS_BEFORE

NAME = "options_volume"
TABLE = "staging.options_volume"
MAX_DAY_RATIO = 20.0  # a day's total volume over the previous day's, beyond which it is flagged
# Blocking (docs/validation.md): a day's call or put volume beyond SPIKE_RATIO x its trailing TRAILING_SESSIONS max
# (once the series has TRAILING_MIN_ROWS rows before it), or beyond VOLUME_CAP contracts: the whole US listed options
# market clears on the order of 10^8 contracts on its busiest days, one underlying's side a fraction of that.
SPIKE_RATIO = 20.0
TRAILING_MIN_ROWS = 20
VOLUME_CAP = 1_000_000_000
QUERY = """
select
    *,
    strftime(date, '%Y-%m-%d') as date_iso,
    isodow(date) as iso_dow,
    (call_volume + put_volume) / nullif(lag(call_volume + put_volume) over w, 0) as day_ratio,
    case when max(date) over (partition by underlying) < $fresh_after
         then underlying || ' last ' || strftime(max(date) over (partition by underlying), '%Y-%m-%d') end as stale,
    -- helpers of `prepare` (dropped there): the neighbours' dates (gaps, duplicate keys) and the trailing maxima
    lag(date) over w as previous_date,
    lead(date) over w as next_date,
    cast(max(call_volume) over past as double) as call_trailing_max,
    count(call_volume) over past as call_trailing_rows,
    cast(max(put_volume) over past as double) as put_trailing_max,
    count(put_volume) over past as put_trailing_rows
from staging.options_volume
window w as (partition by underlying order by date),
    past as (w rows between $trailing_sessions preceding and 1 preceding)
"""
HELPERS = ["previous_date", "next_date", "call_trailing_max", "call_trailing_rows", "put_trailing_max",
           "put_trailing_rows"]
# A full build hands GX only the rows that may fail one of the row-level expectations below (scope.py, `SUSPECT` in
# docs/validation.md): a superset (the bounds are loosened by SLACK), on which `prepare` decides exactly. The
# whole-table checks (row count, keys unique) are on the invariants frame, and a duplicate key's rows are here too.
SLACK = 1e-6
SUSPECT = """
date is null or underlying is null or call_volume is null or put_volume is null
or call_volume < 0 or put_volume < 0
or iso_dow > 5 or date in (select unnest($closures)::date)
or call_volume > $volume_cap or put_volume > $volume_cap
or (call_trailing_rows >= $trailing_min_rows and call_trailing_max > 0
    and call_volume > $spike_ratio * call_trailing_max)
or (put_trailing_rows >= $trailing_min_rows and put_trailing_max > 0 and put_volume > $spike_ratio * put_trailing_max)
or day_ratio < $ratio_low or day_ratio > $ratio_high
or (previous_date is not null and """ + WEEKDAYS_BEFORE.format(d="date") + " - " + \
    WEEKDAYS_BEFORE.format(d="previous_date") + """ - 1 > $gap_tolerance)
or stale is not null
or date = previous_date or date = next_date
"""


def suspect_params(run: RunContext) -> dict:
    """What SUSPECT binds: the run's closures and gap tolerance, this suite's bounds (loosened by SLACK)."""
    return {**run.suspect_params(), "volume_cap": VOLUME_CAP * (1 - SLACK), "spike_ratio": SPIKE_RATIO * (1 - SLACK),
            "trailing_min_rows": TRAILING_MIN_ROWS, "ratio_low": 1 / MAX_DAY_RATIO * (1 + SLACK),
            "ratio_high": MAX_DAY_RATIO * (1 - SLACK)}


def prepare(frame: pd.DataFrame, run: RunContext) -> pd.DataFrame:
    frame = frame.sort_values(["underlying", "date"], kind="stable").reset_index(drop=True)
    return frame.assign(missing_sessions=run.missing_between(frame["date"], frame["previous_date"]),
                        implausible_volume=_implausible_volume(frame, run)).drop(columns=HELPERS)


def _trailing_max(frame: pd.DataFrame, side: str) -> pd.Series:
    """The largest value of the series' previous TRAILING_SESSIONS rows (NaN before TRAILING_MIN_ROWS rows): the
    QUERY's window."""
    return frame[f"{side}_trailing_max"].where(frame[f"{side}_trailing_rows"] >= TRAILING_MIN_ROWS)


def _implausible_volume(frame: pd.DataFrame, run: RunContext) -> pd.Series:
    allowed = ~excepted(frame, "underlying", run.exceptions, NAME, "volume_spike")
    found = {}
    for side in ("call", "put"):
        value, trailing = frame[f"{side}_volume"], _trailing_max(frame, side)
        spike = (value > SPIKE_RATIO * trailing) & (trailing > 0)
        found[side] = ((value > VOLUME_CAP) | spike) & allowed
        found[f"{side}_max"] = trailing

    def describe(i) -> str:
        parts = [f"{side} volume {frame.at[i, f'{side}_volume']:,.0f} (trailing {TRAILING_SESSIONS}-session max "
                 f"{found[f'{side}_max'].at[i]:,.0f}, cap {VOLUME_CAP:,})"
                 for side in ("call", "put") if found[side].at[i]]
        return f"{frame.at[i, 'underlying']} {frame.at[i, 'date_iso']} " + "; ".join(parts)

    return messages(found["call"] | found["put"], describe)


def expectations(run: RunContext) -> list:
    return [
        gxe.ExpectTableColumnsToMatchSet(column_set=["date", "underlying", "call_volume", "put_volume", "date_iso",
                                                     "iso_dow", "day_ratio", "stale", "missing_sessions",
                                                     "implausible_volume"],
                                         exact_match=True),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("date", "underlying", "call_volume", "put_volume")],
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["date", "underlying"]),
        gxe.ExpectColumnValuesToBeBetween(column="call_volume", min_value=0, notes="volumes are never negative"),
        gxe.ExpectColumnValuesToBeBetween(column="put_volume", min_value=0, notes="volumes are never negative"),
        gxe.ExpectColumnValuesToBeInSet(column="iso_dow", value_set=[1, 2, 3, 4, 5], notes="NYSE sessions only"),
        gxe.ExpectColumnValuesToNotBeInSet(column="date_iso", value_set=run.closures_checked,
                                           notes="NYSE sessions only"),
        gxe.ExpectColumnValuesToBeNull(column="implausible_volume",
                                       notes=f"a day's call or put volume within {SPIKE_RATIO:g}x its trailing "
                                             f"{TRAILING_SESSIONS}-session max and {VOLUME_CAP:,} contracts"),
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
