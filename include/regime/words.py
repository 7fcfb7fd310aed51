"""How a reading is said, in one place: names, units, "highest since", percentile and previous extreme.

The CLI (regime/cli.py), the HTML report (regime/report/) and the alert mails (regime/alerts/) all phrase readings
with these functions, and so do the headlines of marts.headlines (the build calls `headline` from SQL).

Readings are stored as the indicator registry defines them (regime/indicators.py): returns and shares as fractions
(0.05 = 5 %), z-scores in standard deviations, volumes in contracts. A reading is shown with its unit:

| kind | indicators | shown as |
|---|---|---|
| sigma | zscore_50d | +4.36σ |
| pct | ret_1d, ret_5d, ret_20d | +1.23% |
| pp | rel_ret_5d, rel_ret_20d, etf_flow_5d_pct_spread | +9.93 pp (percentage points: a difference of two %) |
| pct_assets | etf_flow_5d_pct | +1.25% of assets |
| pct_oi | net_pct_oi | -12.3% of open interest |
| contracts | call_volume_5d, put_volume_5d, putcall_call_volume_5d | 9,917,064 contracts |
| usd | (flows in dollars) | $1.2 bn |
| ratio | call_put_ratio_5d, putcall_ratio, putcall_ratio_10d | 2.31 |
| ratio4, corr | price_ratio, vol_corr_5d | 0.0432, +0.85 |

It stays one module (over 400 lines): the point of it is that every phrase is in one place, so that the command,
the report, the mails and the headlines say a reading in the same words.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

# indicator -> (kind, name with {subject}, short name). The name reads as a noun phrase: "{subject}" is replaced by
# the subject's name ("Russell 2000 z-score vs its 50-day average").
INDICATORS: dict[str, tuple[str, str, str]] = {
    "zscore_50d": ("sigma", "{subject} z-score vs its 50-day average", "z-score vs 50-day average"),
    "ret_1d": ("pct", "{subject} 1-day return", "1-day return"),
    "ret_5d": ("pct", "{subject} 5-day return", "5-day return"),
    "ret_20d": ("pct", "{subject} 20-day return", "20-day return"),
    "rel_ret_5d": ("pp", "{subject}, 5-day relative return", "5-day relative return"),
    "rel_ret_20d": ("pp", "{subject}, 20-day relative return", "20-day relative return"),
    "price_ratio": ("ratio4", "{subject} price ratio", "price ratio"),
    "vol_corr_5d": ("corr", "{subject} 5-day vol-spot correlation", "5-day vol-spot correlation"),
    "call_volume_5d": ("contracts", "{subject} 5-day call volume", "5-day call volume"),
    "put_volume_5d": ("contracts", "{subject} 5-day put volume", "5-day put volume"),
    "call_put_ratio_5d": ("ratio", "{subject} 5-day call/put volume ratio", "5-day call/put volume ratio"),
    "net_pct_oi": ("pct_oi", "{subject} net position", "net position"),
    "etf_flow_5d_pct": ("pct_assets", "{subject} 5-day ETF flow", "5-day ETF flow"),
    "etf_flow_5d_pct_spread": ("pp", "{subject}, 5-day flow spread", "5-day ETF flow spread"),
    "putcall_ratio": ("ratio", "{subject} put/call volume ratio", "put/call volume ratio"),
    "putcall_ratio_10d": ("ratio", "{subject} 10-day average put/call ratio", "10-day average put/call ratio"),
    "putcall_call_volume_5d": ("contracts", "{subject} 5-day call volume", "5-day call volume"),
}
# kinds stored as fractions and shown in percent (or percentage points)
PERCENT_KINDS = frozenset({"pct", "pp", "pct_assets", "pct_oi"})

INDEXES = {"RUT": "Russell 2000", "SPX": "S&P 500", "NDX": "Nasdaq-100", "DJX": "Dow Jones (DJX)",
           "SP600": "S&P SmallCap 600", "SP400": "S&P MidCap 400"}
VOLATILITY_INDEXES = {"VIX": "VIX", "RVX": "RVX (Russell 2000 volatility)", "VXN": "VXN (Nasdaq-100 volatility)",
                      "VXD": "VXD (Dow volatility)"}
CFTC_MARKETS = {"13874A": "E-mini S&P 500", "239742": "Russell 2000 E-mini", "209742": "Nasdaq-100 mini"}
CFTC_CLASSES = {
    "dealer": "dealers",
    "asset_mgr": "asset managers",
    "lev_money": "leveraged funds",
    "other_rept": "other reportables",
    "nonrept": "non-reportables",
}
SUBJECTS = {"small-large": "Small-cap minus large-cap ETFs"}
# the products of Cboe's put/call volume history (regime.sources.cboe_putcall): subjects of the putcall_* indicators
PUTCALL_PRODUCTS = {"total": "Cboe total options", "equity": "Cboe equity options", "index": "Cboe index options"}

# marts.regime_daily columns, as shown next to the label: (short name, indicator whose unit the value has)
REGIME_COLUMNS = {
    "rut_zscore_50d": ("RUT z-score", "zscore_50d"),
    "spx_zscore_50d": ("SPX z-score", "zscore_50d"),
    "rut_spx_rel_ret_5d": ("RUT − SPX, 5 sessions", "rel_ret_5d"),
    "rut_spx_price_ratio": ("RUT/SPX ratio", "price_ratio"),
    "rut_rvx_vol_corr_5d": ("RUT~RVX correlation", "vol_corr_5d"),
    "iwm_call_volume_5d": ("IWM calls, 5 sessions", "call_volume_5d"),
    "lev_money_net_pct_oi_russell": ("Russell lev. funds net", "net_pct_oi"),
    "etf_flow_5d_pct_spread": ("ETF flow spread", "etf_flow_5d_pct_spread"),
}

# ---------------------------------------------------------------- names


def kind(indicator: str) -> str:
    if indicator in INDICATORS:
        return INDICATORS[indicator][0]
    if "pct" in indicator or "ret" in indicator:
        return "pct"
    return "number"


def indicator_name(indicator: str) -> str:
    """'z-score vs 50-day average' (an unknown indicator: its code with spaces)."""
    return INDICATORS[indicator][2] if indicator in INDICATORS else indicator.replace("_", " ")


def subject_name(subject: str) -> str:
    """'Russell 2000', 'Russell 2000 vs S&P 500', 'Russell 2000 E-mini · leveraged funds', 'IWM'."""
    if subject in SUBJECTS:
        return SUBJECTS[subject]
    if subject in PUTCALL_PRODUCTS:
        return PUTCALL_PRODUCTS[subject]
    if subject in INDEXES:
        return INDEXES[subject]
    if subject in VOLATILITY_INDEXES:
        return VOLATILITY_INDEXES[subject]
    for sep, word in (("/", " vs "), ("~", " vs ")):
        if sep in subject:
            a, _, b = subject.partition(sep)
            return f"{subject_name(a)}{word}{subject_name(b)}"
    if ":" in subject:
        code, _, cls = subject.partition(":")
        return f"{CFTC_MARKETS.get(code, code)} · {CFTC_CLASSES.get(cls, cls.replace('_', ' '))}"
    return subject


def reading_name(indicator: str, subject: str) -> str:
    """What a reading is, in words: 'Russell 2000 z-score vs its 50-day average'."""
    template = INDICATORS[indicator][1] if indicator in INDICATORS else "{subject} " + indicator_name(indicator)
    return template.format(subject=subject_name(subject))


def subject_kind(indicator: str, subject: str) -> str | None:
    """The kind of thing a subject is, as a noun ('index', 'volatility index', 'underlying', 'ETF'), for comparisons
    across the subjects of one indicator ("the highest of any tracked index"); None where such a comparison means
    nothing (pairs, CFTC trader classes, the flow spread)."""
    if subject in VOLATILITY_INDEXES:
        return "volatility index"
    if any(sep in subject for sep in "/~:") or subject in SUBJECTS:
        return None
    if indicator in ("zscore_50d", "ret_1d", "ret_5d", "ret_20d"):
        return "index"
    if indicator in ("call_volume_5d", "put_volume_5d", "call_put_ratio_5d"):
        return "underlying"
    if indicator == "etf_flow_5d_pct":
        return "ETF"
    return None


# ---------------------------------------------------------------- numbers and units


def _finite(value: Any) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def value_text(indicator: str, value: Any) -> str:
    """A reading with its unit: '+4.36σ', '+1.23%', '+9.93 pp', '9,917,064 contracts', '-12.3% of open interest'."""
    if not _finite(value):
        return "—"
    k = kind(indicator)
    v = float(value) * (100.0 if k in PERCENT_KINDS else 1.0)
    return number(k, v)


def number(kind_: str, v: float) -> str:
    """`v` in display units (percent for the percent kinds) with its unit."""
    if round(v, 2) == 0:
        v = 0.0  # no '-0.00'
    if kind_ == "sigma":
        return f"{v:+.2f}\u03c3"
    if kind_ in ("pct", "pct_assets", "pct_oi"):
        text = f"{v:+.2f}%" if abs(v) < 10 else f"{v:+,.1f}%"
        return text + {"pct": "", "pct_assets": " of assets", "pct_oi": " of open interest"}[kind_]
    if kind_ == "pp":
        return (f"{v:+.2f}" if abs(v) < 10 else f"{v:+,.1f}") + " pp"
    if kind_ == "contracts":
        return f"{v:,.0f} contracts"
    if kind_ == "usd":
        sign = "-" if v < 0 else ""
        for div, suffix in ((1e9, " bn"), (1e6, " m")):
            if abs(v) >= div:
                return f"{sign}${abs(v) / div:,.1f}{suffix}"
        return f"{sign}${abs(v):,.0f}"
    if kind_ == "ratio4":
        return f"{v:.4f}"
    if kind_ == "ratio":
        return f"{v:,.2f}"
    if kind_ == "corr":
        return f"{v:+.2f}"
    return f"{v:,.4g}" if abs(v) < 1e6 else f"{v:,.0f}"


def scale(indicator: str) -> float:
    """The factor from stored to shown values (100 for the percent kinds): charts plot shown values."""
    return 100.0 if kind(indicator) in PERCENT_KINDS else 1.0


def axis_text(kind_: str, v: float) -> str:
    """Tick labels (values already scaled)."""
    if kind_ == "sigma":
        return f"{v:+g}\u03c3" if v else "0"
    if kind_ in PERCENT_KINDS:
        unit = " pp" if kind_ == "pp" else "%"
        return f"{v:+g}{unit}" if v else f"0{unit}"
    if kind_ == "contracts":
        return compact(v)
    return f"{v:g}"


def compact(v: float) -> str:
    """1,234,567 -> 1.2M (axis ticks)."""
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:,.3g}{suffix}"
    return f"{v:,.0f}"


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def percentile(pct_rank: Any) -> str:
    """pct_rank in (0, 1] as a percentile: whole between the 1st and the 99th ('25th percentile'), with one decimal
    in the tails, where it matters ('99.8th percentile', '0.3rd percentile'). Only a reading at the top is the
    100th, and none is the 0th."""
    if not _finite(pct_rank):
        return "—"
    pct = float(pct_rank) * 100
    if 1 <= pct <= 99:
        return f"{ordinal(round(pct))} percentile"
    pct = round(pct, 1)
    if pct >= 100 and pct_rank < 1:
        pct = 99.9
    pct = max(pct, 0.1)
    if pct == int(pct):
        return f"{ordinal(int(pct))} percentile"
    tenths = round(pct * 10) % 10
    return f"{pct:.1f}{ordinal(tenths)[-2:]} percentile"


# ---------------------------------------------------------------- dates and spans


def as_date(value: Any) -> date | None:
    """A date from a date, datetime, pandas Timestamp or ISO string; None for None/NaT."""
    if value is None or value != value:  # None, NaT, NaN
        return None
    if isinstance(value, str):
        return date.fromisoformat(value[:10])
    if isinstance(value, datetime) or hasattr(value, "to_pydatetime"):
        return value.date()
    return value


def span(start: Any, end: Any) -> str:
    """The time from start to end in whole years, else months, else days: '24 years', '3 months', '1 day'."""
    start, end = as_date(start), as_date(end)
    months = (end.year - start.year) * 12 + end.month - start.month - (end.day < start.day)
    if months >= 12:
        return _plural(months // 12, "year")
    if months >= 1:
        return _plural(months, "month")
    return _plural((end - start).days, "day")


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" + ("" if n == 1 else "s")


# ---------------------------------------------------------------- a reading in its history


def _get(row: Any, key: str) -> Any:
    value = row.get(key) if isinstance(row, Mapping) else getattr(row, key, None)
    return None if value is not None and value != value else value  # NaN/NaT -> None


def side(row: Any) -> str:
    """'high' or 'low': the side on which a reading stands out. A record says which; otherwise the side whose
    'since' date is older (the more remarkable one), the percentile breaking a tie."""
    if _get(row, "is_record_high") or _get(row, "highest_since") is None and _get(row, "lowest_since") is not None:
        return "high"
    if _get(row, "is_record_low") or _get(row, "lowest_since") is None and _get(row, "highest_since") is not None:
        return "low"
    high, low = as_date(_get(row, "highest_since")), as_date(_get(row, "lowest_since"))
    if high is None or low is None:
        return "high"
    if high != low:
        return "high" if high < low else "low"
    pct = _get(row, "pct_rank")
    return "high" if pct is None or float(pct) >= 0.5 else "low"


def is_first(row: Any) -> bool:
    return as_date(_get(row, "date")) == as_date(_get(row, "history_start"))


def since_phrase(row: Any) -> str:
    """Where a reading (a row of marts.extremes: a dict, a Reading, a pandas row) stands in its history: 'the
    highest on record (history since 1987-11-18)', 'the lowest since 2008-10-10 (15 years)', 'the first reading
    (history starts 1987-11-18)'."""
    start = as_date(_get(row, "history_start"))
    if start is None:
        return "no history to compare with"
    if is_first(row):
        return f"the first reading (history starts {start})"
    high = side(row) == "high"
    word = "highest" if high else "lowest"
    since = as_date(_get(row, "highest_since" if high else "lowest_since"))
    if since is None:
        return f"the {word} on record (history since {start})"
    return f"the {word} since {since} ({span(since, _get(row, 'date'))})"


def is_record(row: Any) -> bool:
    return bool(_get(row, "is_record_high") or _get(row, "is_record_low"))


def previous_text(indicator: str, row: Any, previous: tuple[Any, Any] | None) -> str:
    """The previous extreme a reading is measured against, `previous` = (date, value): for a record, the record it
    broke ('previous record +3.90σ on 2021-03-15'); otherwise the last reading beyond it ('last higher +4.50σ on
    2020-05-19'). '—' when there is none (a first reading)."""
    if previous is None or previous[0] is None:
        return "—"
    when, value = as_date(previous[0]), previous[1]
    if is_record(row):
        return f"previous record {value_text(indicator, value)} on {when}"
    word = "higher" if side(row) == "high" else "lower"
    return f"last {word} {value_text(indicator, value)} on {when}"


def describe(row: Any) -> str:
    """One sentence for a reading: 'Russell 2000 z-score vs its 50-day average on 2024-07-16: +4.42σ, the highest
    on record (history since 1987-10-27); 100th percentile'."""
    indicator, subject = _get(row, "indicator"), _get(row, "subject")
    text = (f"{reading_name(indicator, subject)} on {as_date(_get(row, 'date'))}: "
            f"{value_text(indicator, _get(row, 'value'))}, {since_phrase(row)}")
    if not is_first(row):
        text += f"; {percentile(_get(row, 'pct_rank'))}"
    return text


# ---------------------------------------------------------------- headlines

HEADLINE_KINDS = ("group_record", "record", "long_since")


def headline(kind_: str, side_: str, indicator: str, subject: str, value: float, day: Any, since: Any,
             history_start: Any, group: str | None = None) -> str:
    """A sentence of marts.headlines, in the article's language; `side_` is 'high' or 'low'. `kind_`:
    group_record: the reading is beyond every reading of every tracked `group` (e.g. 'index') of its indicator,
        whose shared history starts at `history_start` ('Russell 2000 closed 4.36σ above its 50-day average: the most
        stretched close of any tracked index since records began in 1927');
    record: beyond every earlier reading of its series, which starts at `history_start`;
    long_since: the highest (lowest) since `since`."""
    word = "highest" if side_ == "high" else "lowest"
    shown = value_text(indicator, value)
    what = reading_name(indicator, subject)
    if kind_ == "group_record":
        began = f"since records began in {as_date(history_start).year}"
        if indicator == "zscore_50d":
            where = "above" if side_ == "high" else "below"
            return (f"{subject_name(subject)} closed {abs(value):.2f}\u03c3 {where} its 50-day average: the most "
                    f"stretched close of any tracked {group} {began}")
        return f"{what} at {shown}: the {word} {indicator_name(indicator)} of any tracked {group} {began}"
    if kind_ == "record":
        return f"{what} at {shown}: the {word} on record (history since {as_date(history_start)})"
    if kind_ == "long_since":
        return f"{what} at {shown}: the {word} since {as_date(since)} ({span(since, day)})"
    raise ValueError(f"unknown headline kind {kind_!r}")


def records_text(records: str) -> str:
    """marts.regime_daily.records ('zscore_50d RUT high; rel_ret_5d RUT/SPX high') in words: 'Russell 2000 z-score
    vs its 50-day average (record high); …'."""
    out = []
    for item in (part.strip() for part in records.split(";")):
        parts = item.split()
        if len(parts) == 3 and parts[2] in ("high", "low"):
            out.append(f"{reading_name(parts[0], parts[1])} (record {parts[2]})")
        elif item:
            out.append(item)
    return "; ".join(out)


# ---------------------------------------------------------------- what happened next (regime.analogs)


def threshold_text(indicator: str, kind_: str, threshold: float | None, side_: str) -> str:
    """An episode's threshold (marts.episodes): 'at or above +3.00σ', 'at or below its 1st percentile',
    'at a record high'."""
    where = "above" if side_ == "high" else "below"
    if kind_ == "record":
        return f"at a record {side_}"
    if kind_ == "percentile":
        return f"at or {where} its {percentile(threshold)} (in its history to date)"
    return f"at or {where} {value_text(indicator, threshold)}"


def episode_text(indicator: str, subject: str, kind_: str, threshold: float | None, side_: str) -> str:
    """'Russell 2000 z-score vs its 50-day average at or above +3.00σ'."""
    return f"{reading_name(indicator, subject)} {threshold_text(indicator, kind_, threshold, side_)}"


def forward_name(subject: str) -> str:
    """Whose forward returns: 'Russell 2000', 'Russell 2000 minus S&P 500'."""
    if "/" in subject:
        small, _, large = subject.partition("/")
        return f"{subject_name(small)} minus {subject_name(large)}"
    return subject_name(subject)


def forward_text(subject: str, value: Any) -> str:
    """A forward return in its unit: '+1.23%' for an index, '+1.23 pp' for small minus large."""
    return value_text("rel_ret_5d" if "/" in subject else "ret_5d", value)


def analog_summary(subject: str, horizon: int, count: int, median: float | None, negative: int,
                   best: tuple[Any, float] | None, worst: tuple[Any, float] | None) -> str:
    """What followed the earlier episodes, in one line: 'Russell 2000 over the 20 sessions after the start of 7
    earlier episodes: median -0.71%, negative 5 times of 7 (71%), best +12.65% (1991-01-30), worst -9.59%
    (2021-11-05)'. `best` and `worst` are (episode start, return)."""
    what = f"{forward_name(subject)} over the {horizon} sessions after the start"
    if not count:
        return f"{what} of an earlier episode: not known for any"
    share = f"{negative / count:.0%}"
    return (f"{what} of {_plural(count, 'earlier episode')}: median {forward_text(subject, median)}, "
            f"negative {negative} time{'' if negative == 1 else 's'} of {count} ({share}), "
            f"best {forward_text(subject, best[1])} ({as_date(best[0])}), "
            f"worst {forward_text(subject, worst[1])} ({as_date(worst[0])})")


def analog_caveat(count: int, minimum: int) -> str | None:
    """The caveat printed with fewer than `minimum` earlier episodes (None otherwise)."""
    if count >= minimum:
        return None
    if count == 0:
        return "No earlier episode: nothing to compare with."
    return (f"Caveat: only {_plural(count, 'earlier episode')} (fewer than {minimum}): too few to say what usually "
            "follows.")
