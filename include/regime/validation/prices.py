"""Suite for marts.prices (the canonical Cboe index history): daily index and volatility-index levels."""

from __future__ import annotations

import math

import great_expectations.expectations as gxe
import numpy as np
import pandas as pd

from regime.validation.context import VOL_INDEXES, RunContext
from regime.validation.plausibility import excepted, messages, num
from regime.validation.scope import PUBLISHED, WEEKDAYS_BEFORE

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
    abs(close / lag(close) over w - 1) as day_change,
    case when max(date) over (partition by symbol) < $fresh_after
         then symbol || ' last ' || strftime(max(date) over (partition by symbol), '%Y-%m-%d') end as stale,
    -- helpers of `prepare` (dropped there): the previous close and the neighbours' dates
    lag(close) over w as previous_close,
    lag(date) over w as previous_date,
    lead(date) over w as next_date
from marts.prices
window w as (partition by symbol order by date)
"""
DERIVED = ["date_iso", "iso_dow", "high_shortfall", "low_excess", "day_change", "stale", "missing_sessions",
           "implausible_move", "close_outside_range", "identity"]
HELPERS = ["previous_close", "previous_date", "next_date"]
# identity on a full build, computed by DuckDB against the last published warehouse (attached read-only as
# scope.PUBLISHED): per series the days whose closes differ, and the overlapping days; only the differing rows of a
# series that fails. The columns `prepare` turns into the `identity` message (and drops).
IDENTITY = ["close_published", "identity_differing", "identity_overlapping"]
_IDENTITY_SQL = """
with both_ as (
    select new.symbol, new.date, new.close, old.close as close_published,
           abs(new.close / old.close - 1) > $identity_tolerance as differs
    from marts.prices as new join {published}.marts.prices as old on new.symbol = old.symbol and new.date = old.date
    where new.close > 0 and old.close > 0
      and not list_contains($identity_excepted, new.symbol || ' ' || strftime(new.date, '%Y-%m-%d'))
),
counts as (select symbol, count(*) filter (where differs) as differing, count(*) as overlapping from both_ group by all)
select symbol, date, close_published, differing as identity_differing, overlapping as identity_overlapping
from both_ join counts using (symbol)
where differs and differing >= $identity_min_days and differing > $identity_share * overlapping
"""
# A full build hands GX only the rows that may fail one of the row-level expectations below (scope.py, `SUSPECT` in
# docs/validation.md): a superset (the bounds loosened by SLACK), on which `prepare` decides exactly, plus the rows
# the identity check names. The whole-table checks (row count, keys unique) are on the invariants frame, and a
# duplicate key's rows are here too (keys unique is then also GX's on this frame).
SLACK = 1e-6
SUSPECT = """
date is null or symbol is null or close is null
or close <= 0 or open <= 0 or high <= 0 or low <= 0
or high_shortfall > $ohlc_tolerance or low_excess > $ohlc_tolerance
or iso_dow > 5 or date in (select unnest($closures)::date)
or (close > 0 and previous_close > 0
    and (close / previous_close > case when list_contains($vol_indexes, symbol) then $vol_up else $price_up end
         or close / previous_close < case when list_contains($vol_indexes, symbol) then $vol_down else $price_down end))
or close - high > $close_range_tolerance * close or low - close > $close_range_tolerance * close
or day_change > case when list_contains($vol_indexes, symbol) then $vol_day_change else $price_day_change end
or (previous_date is not null and """ + WEEKDAYS_BEFORE.format(d="date") + " - " + \
    WEEKDAYS_BEFORE.format(d="previous_date") + """ - 1 > $gap_tolerance)
or stale is not null
or date = previous_date or date = next_date
"""


def suspect_query(attached: bool) -> str:
    """A full build's suspect rows, with the identity columns (NULL without a published warehouse to compare with)."""
    if not attached:
        return ("select *, null::double as close_published, null::bigint as identity_differing, "
                f"null::bigint as identity_overlapping from ({QUERY}) where {SUSPECT}")
    identity = _IDENTITY_SQL.format(published=PUBLISHED)
    return f"""select * from (
                   select q.*, i.close_published, i.identity_differing, i.identity_overlapping
                   from ({QUERY}) as q left join ({identity}) as i on q.symbol = i.symbol and q.date = i.date)
               where identity_differing is not null or {SUSPECT}"""


def suspect_params(run: RunContext) -> dict:
    """What the full build's query binds: the run's closures and gap tolerance, this suite's bounds (loosened by
    SLACK) and the identity check's, with the dates the exception list leaves out of it."""
    return {**run.suspect_params(), "vol_indexes": list(VOL_INDEXES),
            "ohlc_tolerance": OHLC_TOLERANCE * (1 - SLACK),
            "price_up": math.exp(MAX_LOG_MOVE["price"] * (1 - SLACK)),
            "price_down": math.exp(-MAX_LOG_MOVE["price"] * (1 - SLACK)),
            "vol_up": math.exp(MAX_LOG_MOVE["vol"] * (1 - SLACK)),
            "vol_down": math.exp(-MAX_LOG_MOVE["vol"] * (1 - SLACK)),
            "close_range_tolerance": CLOSE_RANGE_TOLERANCE * (1 - SLACK),
            "price_day_change": MAX_DAY_CHANGE["price"] * (1 - SLACK),
            "vol_day_change": MAX_DAY_CHANGE["vol"] * (1 - SLACK),
            "identity_tolerance": IDENTITY_TOLERANCE, "identity_min_days": IDENTITY_MIN_DAYS,
            "identity_share": IDENTITY_SHARE,
            "identity_excepted": [f"{e.series} {e.date}" for e in run.exceptions
                                  if e.dataset == NAME and e.check == "identity"]}


_PRICE = f"~symbol.isin({list(VOL_INDEXES)!r})"
_VOL = f"symbol.isin({list(VOL_INDEXES)!r})"


def prepare(frame: pd.DataFrame, run: RunContext) -> pd.DataFrame:
    """The message columns, from the QUERY's helper columns: on a full build's suspect rows (with the identity
    columns DuckDB computed) and on an update's rows (identity against the published rows of its dates, here)."""
    frame = frame.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)
    identity = _identity_of(frame) if "identity_differing" in frame else _identity(frame, run)
    return frame.assign(missing_sessions=run.missing_between(frame["date"], frame["previous_date"]),
                        implausible_move=_implausible_move(frame, run),
                        close_outside_range=_close_outside_range(frame, run),
                        identity=identity).drop(columns=[c for c in [*HELPERS, *IDENTITY] if c in frame])


def _implausible_move(frame: pd.DataFrame, run: RunContext) -> pd.Series:
    before = frame["previous_close"]
    positive = (frame["close"] > 0) & (before > 0)  # a close <= 0 fails its own check
    move = pd.Series(np.log(frame["close"].where(positive) / before.where(positive)), index=frame.index)
    vol = frame["symbol"].isin(VOL_INDEXES)
    bound = pd.Series(np.where(vol, MAX_LOG_MOVE["vol"], MAX_LOG_MOVE["price"]), index=frame.index)
    bad = (move.abs() > bound) & ~excepted(frame, "symbol", run.exceptions, NAME, "day_move")
    return messages(bad, lambda i: (
        f"{frame.at[i, 'symbol']} {frame.at[i, 'date_iso']} close {num(frame.at[i, 'close'])} after "
        f"{num(before.at[i])} on {frame.at[i, 'previous_date']:%Y-%m-%d}: log move {move.at[i]:+.2f}, "
        f"bound {bound.at[i]:.2f}"))


def _close_outside_range(frame: pd.DataFrame, run: RunContext) -> pd.Series:
    tolerance = CLOSE_RANGE_TOLERANCE * frame["close"]
    bad = (((frame["close"] - frame["high"]) > tolerance) | ((frame["low"] - frame["close"]) > tolerance)) \
        & ~excepted(frame, "symbol", run.exceptions, NAME, "close_range")
    return messages(bad, lambda i: (
        f"{frame.at[i, 'symbol']} {frame.at[i, 'date_iso']} close {num(frame.at[i, 'close'])} outside "
        f"low {num(frame.at[i, 'low'])} - high {num(frame.at[i, 'high'])}"))


def _identity_message(symbol, date_iso, close, published, differing, overlapping) -> str:
    return (f"{symbol} {date_iso} close {num(close)}, published {num(published)}: {symbol}'s history differs from "
            f"the published one on {differing} of {overlapping} overlapping days: another series' file?")


def _identity_of(frame: pd.DataFrame) -> pd.Series:
    """A full build's identity messages from the columns DuckDB computed (suspect_query)."""
    return messages(frame["identity_differing"].notna(), lambda i: _identity_message(
        frame.at[i, "symbol"], frame.at[i, "date_iso"], frame.at[i, "close"], frame.at[i, "close_published"],
        int(frame.at[i, "identity_differing"]), int(frame.at[i, "identity_overlapping"])))


def _identity(frame: pd.DataFrame, run: RunContext) -> pd.Series:
    """An update's rows against the history in the last published warehouse, on the dates both hold (the published
    rows dated after the update's `since`: run.published_closes)."""
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
            out.at[row["index"]] = _identity_message(symbol, row["date_iso"], row["close"], row["close_published"],
                                                     differing, overlapping)
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
        gxe.ExpectColumnValuesToNotBeInSet(column="date_iso", value_set=run.closures_checked, **kw),
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
