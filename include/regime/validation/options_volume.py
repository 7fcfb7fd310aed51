"""Suite for staging.options_volume: daily call and put volume per underlying (OCC)."""

from __future__ import annotations

import great_expectations.expectations as gxe
import pandas as pd

from regime.validation.context import RunContext
from regime.validation.plausibility import excepted, messages

NAME = "options_volume"
TABLE = "staging.options_volume"
MAX_DAY_RATIO = 20.0  # a day's total volume over the previous day's, beyond which it is flagged
# Blocking (docs/validation.md): a day's call or put volume beyond SPIKE_RATIO x its trailing TRAILING_SESSIONS max
# (once the series has TRAILING_MIN_ROWS rows before it), or beyond VOLUME_CAP contracts: the whole US listed options
# market clears on the order of 10^8 contracts on its busiest days, one underlying's side a fraction of that.
SPIKE_RATIO = 20.0
TRAILING_SESSIONS = 252
TRAILING_MIN_ROWS = 20
VOLUME_CAP = 1_000_000_000
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
    return frame.assign(missing_sessions=run.missing_sessions(frame["date"], frame["underlying"]),
                        implausible_volume=_implausible_volume(frame, run))


def _trailing_max(frame: pd.DataFrame, column: str) -> pd.Series:
    """The largest value of the series' previous TRAILING_SESSIONS rows (NaN before TRAILING_MIN_ROWS rows)."""
    order = frame.sort_values(["underlying", "date"], kind="stable")
    trailing = order.groupby("underlying", sort=False)[column].transform(
        lambda s: s.shift(1).rolling(TRAILING_SESSIONS, min_periods=TRAILING_MIN_ROWS).max())
    return trailing.reindex(frame.index)


def _implausible_volume(frame: pd.DataFrame, run: RunContext) -> pd.Series:
    allowed = ~excepted(frame, "underlying", run.exceptions, NAME, "volume_spike")
    found = {}
    for side in ("call", "put"):
        value, trailing = frame[f"{side}_volume"], _trailing_max(frame, f"{side}_volume")
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
        gxe.ExpectColumnValuesToNotBeInSet(column="date_iso", value_set=run.weekday_closures_iso,
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
