"""How readings are named and written in the report: units per indicator, %, σ, thousands separators, dates."""

from __future__ import annotations

import math
from datetime import date

import pandas as pd

# indicator -> (kind, human name). Kinds: sigma, pct (a return or share), count, ratio, ratio4, corr, number.
INDICATORS: dict[str, tuple[str, str]] = {
    "zscore_50d": ("sigma", "z-score vs 50-day average"),
    "ret_1d": ("pct", "1-day return"),
    "ret_5d": ("pct", "5-day return"),
    "ret_20d": ("pct", "20-day return"),
    "rel_ret_5d": ("pct", "5-day relative return"),
    "rel_ret_20d": ("pct", "20-day relative return"),
    "price_ratio": ("ratio4", "price ratio"),
    "vol_corr_5d": ("corr", "5-day vol-spot correlation"),
    "call_volume_5d": ("count", "5-day call volume"),
    "put_volume_5d": ("count", "5-day put volume"),
    "call_put_ratio_5d": ("ratio", "5-day call/put volume ratio"),
    "net_pct_oi": ("pct", "net position, % of open interest"),
    "etf_flow_5d_pct": ("pct", "5-day ETF flow, % of assets"),
    "etf_flow_5d_pct_spread": ("pct", "5-day ETF flow spread"),
}

CFTC_MARKETS = {"13874A": "E-mini S&P 500", "239742": "Russell 2000 E-mini", "209742": "Nasdaq-100 mini"}
CFTC_CLASSES = {
    "dealer": "dealers",
    "asset_mgr": "asset managers",
    "lev_money": "leveraged funds",
    "other_rept": "other reportables",
    "nonrept": "non-reportables",
}
SUBJECTS = {"RUT/SPX": "Russell 2000 vs S&P 500", "RUT/NDX": "Russell 2000 vs Nasdaq-100",
            "RUT~RVX": "RUT ~ RVX", "SPX~VIX": "SPX ~ VIX", "NDX~VXN": "NDX ~ VXN",
            "small-large": "small caps − large caps"}
# marts.regime_daily columns, as shown next to the label
REGIME_COLUMNS = {
    "rut_zscore_50d": "RUT z-score",
    "spx_zscore_50d": "SPX z-score",
    "rut_spx_rel_ret_5d": "RUT − SPX, 5 sessions",
    "rut_spx_price_ratio": "RUT/SPX ratio",
    "rut_rvx_vol_corr_5d": "RUT~RVX correlation",
    "iwm_call_volume_5d": "IWM calls, 5 sessions",
    "lev_money_net_pct_oi_russell": "Russell lev. funds net",
    "etf_flow_5d_pct_spread": "ETF flow spread",
}


def kind(indicator: str) -> str:
    if indicator in INDICATORS:
        return INDICATORS[indicator][0]
    if "pct" in indicator or "ret" in indicator:
        return "pct"
    return "number"


def indicator_name(indicator: str) -> str:
    return INDICATORS.get(indicator, (None, indicator.replace("_", " ")))[1]


def subject_name(subject: str) -> str:
    if subject in SUBJECTS:
        return SUBJECTS[subject]
    if ":" in subject:
        code, _, cls = subject.partition(":")
        return f"{CFTC_MARKETS.get(code, code)} · {CFTC_CLASSES.get(cls, cls.replace('_', ' '))}"
    return subject


class Units:
    """Scales readings for display: percent-kind indicators are fractions in the warehouse (0.05 = 5%, see
    regime.indicators.REGISTRY) and are shown and plotted in percent."""

    def scale(self, indicator: str) -> float:
        return 100.0 if kind(indicator) == "pct" else 1.0

    def plotted(self, indicator: str, values):
        """Values as plotted (percent-kind readings in percent)."""
        return values * self.scale(indicator)

    def text(self, indicator: str, value) -> str:
        """A reading as written in tables and captions."""
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "—"
        return number(kind(indicator), float(value) * self.scale(indicator))


def number(kind_: str, v: float) -> str:
    """`v` already scaled (percent points for pct)."""
    if kind_ == "sigma":
        return f"{v:+.2f}\u03c3"
    if kind_ == "pct":
        return f"{v:+.2f}%" if abs(v) < 10 else f"{v:+,.1f}%"
    if kind_ == "count":
        return f"{v:,.0f}"
    if kind_ == "ratio4":
        return f"{v:.4f}"
    if kind_ == "ratio":
        return f"{v:,.2f}"
    if kind_ == "corr":
        return f"{v:+.2f}"
    return f"{v:,.4g}" if abs(v) < 1e6 else f"{v:,.0f}"


def axis_text(kind_: str, v: float) -> str:
    """Tick labels (values already scaled)."""
    if kind_ == "sigma":
        return f"{v:+g}\u03c3" if v else "0"
    if kind_ == "pct":
        return f"{v:+g}%" if v else "0%"
    if kind_ == "count":
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


def percentile(p) -> str:
    if p is None or pd.isna(p):
        return "—"
    return f"{ordinal(min(100, max(1, round(float(p) * 100))))} percentile"


def day(d) -> str:
    if d is None or pd.isna(d):
        return "—"
    return pd.Timestamp(d).date().isoformat()


def span(start, end) -> str:
    """How long ago `start` was, seen from `end`: '12 days', '8 months', '2.7 years'."""
    days = (pd.Timestamp(end) - pd.Timestamp(start)).days
    if days < 60:
        return f"{days} day{'s' if days != 1 else ''}"
    if days < 730:
        return f"{days / 30.44:.0f} months"
    return f"{days / 365.25:.1f} years"


def since_wording(row: dict, as_of: date) -> str:
    """'highest since 2021-11-08 (2.7 years)' from a marts.extremes row."""
    start = row.get("history_start")
    if row.get("is_record_high"):
        return f"record high: highest since the history starts ({day(start)})"
    if row.get("is_record_low"):
        return f"record low: lowest since the history starts ({day(start)})"
    pct = row.get("pct_rank")
    high = pct is None or pd.isna(pct) or float(pct) >= 0.5
    since = row.get("highest_since") if high else row.get("lowest_since")
    word = "highest" if high else "lowest"
    if since is None or pd.isna(since):
        return "first reading" if day(row.get("date")) == day(start) else "—"
    return f"{word} since {day(since)} ({span(since, row.get('date') or as_of)})"
