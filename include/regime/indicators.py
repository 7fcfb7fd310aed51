"""The indicator registry: name -> SQL file, with the sentence that documents it; the regime label's thresholds.

Adding an indicator = one SQL file in include/sql/indicators/ that selects (date, subject, value),
one entry here, one paragraph in docs/indicators.md and one test with a hand-checked value; another window of an
existing one (a 60-session return) = one entry here naming that indicator's file with its `window`, and the doc
paragraph and test.
Indicator SQL reads marts.prices, staging.{options_volume,cftc_tff,etf_nav,options_putcall} and the intermediate models
that several indicators share (include/sql/intermediate/, `intermediate.<name>`: regime.readings.indicator_queries
builds one with the parameters of the indicator that reads it), with the bound parameters
$as_of, $small_caps and $large_caps (always given by the build), and $since and $history_from: it selects only
readings dated after $since and reads only input rows dated on or after $history_from. A full build binds both to
0001-01-01; an incremental build (regime.warehouse.update, docs/performance.md) binds $since to the last date whose
readings it keeps and $history_from to a date early enough for every window (see `lookback_sessions`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Indicator:
    name: str
    sql: str  # path under include/sql/
    summary: str
    headline: bool = False  # shown in the regime summary and watched for records
    bounds: tuple[float, float] | None = None  # values outside are impossible: validation blocks them
    # Incremental builds: how many of a series' sessions up to $since a reading after $since may look back on
    # (49 for a 50-session window, 20 for a 20-session return, 0 for a same-day ratio); None = the whole history
    # (e.g. a running maximum). `sessions` names how those sessions are counted (a key of SESSIONS).
    lookback_sessions: int | None = None
    sessions: str = "index"
    # bound as $window: the one parameter by which indicators sharing an SQL file differ (ret_nd.sql: ret_1d, ret_5d,
    # ret_20d; rel_ret_nd.sql); None for an SQL file of one indicator
    window: int | None = None


# (series, date) of the rows an indicator's windows count as sessions, per kind of input. An incremental build reads
# each indicator's input from a date that leaves every series with at least `lookback_sessions` of these up to $since.
# "index" counts an index's rows with a close: at least as many as zscore_50d's window counts (all its rows), exactly
# those of ret_Nd and rel_ret_Nd. "index_pair" counts the dates on which two indexes both closed, for every pair
# (vol_corr_5d's sessions are those of its pairs, whichever pairs its SQL lists).
SESSIONS: dict[str, str] = {
    "index": "select symbol as series, date from marts.prices where close is not null",
    "index_pair": (
        "select a.symbol || '~' || b.symbol as series, a.date from marts.prices as a"
        " inner join marts.prices as b on b.date = a.date and b.symbol > a.symbol"
        " where a.close is not null and b.close is not null"
    ),
    "underlying": "select underlying as series, date from staging.options_volume",
    "etf": "select ticker as series, date from staging.etf_nav",
    "putcall": "select product as series, date from staging.options_putcall",
}


REGISTRY: tuple[Indicator, ...] = (
    Indicator(
        "zscore_50d",
        "indicators/zscore_50d.sql",
        "Close minus the mean of the 50 closes ending that day, over their sample standard deviation.",
        headline=True,
        bounds=(-7.0, 7.0),  # a 50-sample z-score cannot exceed (n - 1) / sqrt(n) = 6.93
        lookback_sessions=49,
    ),
    Indicator(
        "ret_1d",
        "indicators/ret_nd.sql",
        "Close over the previous session's close, minus 1 (a fraction), per price index.",
        lookback_sessions=1,
        window=1,
    ),
    Indicator(
        "ret_5d",
        "indicators/ret_nd.sql",
        "Close over the close 5 sessions earlier, minus 1 (a fraction), per price index.",
        lookback_sessions=5,
        window=5,
    ),
    Indicator(
        "ret_20d",
        "indicators/ret_nd.sql",
        "Close over the close 20 sessions earlier, minus 1 (a fraction), per price index.",
        lookback_sessions=20,
        window=20,
    ),
    Indicator(
        "rel_ret_5d",
        "indicators/rel_ret_nd.sql",
        "RUT's 5-session return minus SPX's (RUT/SPX) or NDX's (RUT/NDX).",
        headline=True,
        lookback_sessions=5,
        window=5,
    ),
    Indicator(
        "rel_ret_20d",
        "indicators/rel_ret_nd.sql",
        "RUT's 20-session return minus SPX's (RUT/SPX) or NDX's (RUT/NDX).",
        lookback_sessions=20,
        window=20,
    ),
    Indicator(
        "price_ratio",
        "indicators/price_ratio.sql",
        "RUT close over SPX close (RUT/SPX).",
        lookback_sessions=0,
    ),
    Indicator(
        "vol_corr_5d",
        "indicators/vol_corr_5d.sql",
        "5-session correlation of an index's daily % change with its volatility index's point change.",
        headline=True,
        bounds=(-1.0, 1.0),
        lookback_sessions=5,
        sessions="index_pair",
    ),
    Indicator(
        "call_volume_5d",
        "indicators/call_volume_5d.sql",
        "Call volume over the underlying's last 5 sessions (OCC), per underlying.",
        headline=True,
        lookback_sessions=4,
        sessions="underlying",
    ),
    Indicator(
        "put_volume_5d",
        "indicators/put_volume_5d.sql",
        "Put volume over the underlying's last 5 sessions (OCC), per underlying.",
        lookback_sessions=4,
        sessions="underlying",
    ),
    Indicator(
        "call_put_ratio_5d",
        "indicators/call_put_ratio_5d.sql",
        "call_volume_5d over put_volume_5d, per underlying.",
        lookback_sessions=4,
        sessions="underlying",
    ),
    Indicator(
        "net_pct_oi",
        "indicators/net_pct_oi.sql",
        "CFTC net (long - short) position over open interest per market and trader class, dated by release.",
        headline=True,
        bounds=(-1.0, 1.0),
        lookback_sessions=None,  # newest_public is a running maximum over every earlier release
    ),
    Indicator(
        "etf_flow_5d_pct",
        "indicators/etf_flow_5d_pct.sql",
        "An ETF's creation/redemption flows over its last 5 sessions as a fraction of its assets.",
        lookback_sessions=4,
        sessions="etf",
    ),
    Indicator(
        "etf_flow_5d_pct_spread",
        "indicators/etf_flow_5d_pct_spread.sql",
        "Small-cap minus large-cap ETFs' 5-session flows as a fraction of their assets (small-large).",
        headline=True,
        lookback_sessions=4,
        sessions="etf",
    ),
    # Cboe's put/call volume history (total, equity, index products, 2006 to 2019-10-04): not headline, as the
    # archive has no current readings; its records and extremes are in marts.extremes like every indicator's
    Indicator(
        "putcall_ratio",
        "indicators/putcall_ratio.sql",
        "Cboe put volume over call volume that day, per product (total, equity, index).",
        bounds=(0.0, 10.0),  # puts 10x calls in a day: never in 2006-2019 (highest: index 3.50, total 1.82)
        lookback_sessions=0,
        sessions="putcall",
    ),
    Indicator(
        "putcall_ratio_10d",
        "indicators/putcall_ratio_10d.sql",
        "Mean of the product's last 10 daily Cboe put/call ratios, per product.",
        bounds=(0.0, 10.0),
        lookback_sessions=9,
        sessions="putcall",
    ),
    Indicator(
        "putcall_call_volume_5d",
        "indicators/putcall_call_volume_5d.sql",
        "Cboe call volume over the product's last 5 sessions, per product.",
        bounds=(0.0, 5e9),  # 1e9 contracts a day: ten times the busiest day of all US listed options
        lookback_sessions=4,
        sessions="putcall",
    ),
)


def get(name: str) -> Indicator:
    for indicator in REGISTRY:
        if indicator.name == name:
            return indicator
    raise KeyError(name)


# The regime label of marts.regime_daily (include/sql/marts/regime_daily.sql), first matching rule wins:
#   'small-cap squeeze'      RUT zscore_50d >= squeeze_z and rel_ret_5d RUT/SPX >= squeeze_rel
#   'small-cap capitulation' RUT zscore_50d <= capitulation_z and rel_ret_5d RUT/SPX <= capitulation_rel
#   'stretched'              abs(RUT or SPX zscore_50d) >= stretched_z
#   'normal'                 otherwise ('insufficient history' while neither z-score exists yet)
# A headline indicator's record counts in regime_daily.records once its series is record_min_days old.
# marts.headlines (include/sql/marts/headlines.sql) says a reading of a headline indicator that is not a record is
# historic when it is the highest (lowest) in more than headline_since_days days; its records, like regime_daily's,
# once the series is record_min_days old.
# The build merges these into the SQL parameters (a run's own parameters win).
REGIME_RULES: dict = {
    "squeeze_z": 3.0,
    "squeeze_rel": 0.05,
    "capitulation_z": -3.0,
    "capitulation_rel": -0.05,
    "stretched_z": 2.0,
    "record_min_days": 365,
    "headline_since_days": 730,  # marts.headlines: a non-record reading is historic beyond this many days (2 years)
    "headline_indicators": [indicator.name for indicator in REGISTRY if indicator.headline],
}
