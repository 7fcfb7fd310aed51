"""The report's charts, one function per chart. Each takes the loaded ReportData and returns a plot.Chart (an
inline SVG fragment, fonts left to the browser, ids made unique per chart) or None when it has nothing to draw;
how they are drawn (style, SVG, axes, legends) is regime/report/plot.py."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from regime import words
from regime.report import plot
from regime.report.data import ReportData

INDEXES = ("RUT", "SPX", "NDX", "DJX", "VIX", "RVX")
INDEX_COLORS = {"RUT": "#d93025", "SPX": "#1a73e8", "NDX": "#9334e6", "DJX": "#188038", "VIX": "#e37400",
                "RVX": "#b31412"}
SMALL_CAP_ETFS = ("IWM", "IJR", "VTWO")
ETF_ORDER = (*SMALL_CAP_ETFS, "SPY", "IVV", "QQQ")
WARM = ("#d93025", "#e8710a", "#f9ab00", "#b31412")
COOL = ("#1a73e8", "#12b5cb", "#5f6368", "#9334e6", "#188038")
LARGE_CAP_NAMES = ("SPY", "QQQ", "AAPL", "NVDA", "TSLA")


# --- the charts --------------------------------------------------------------------------------------------------

def relative_performance(data: ReportData, years: float = 2) -> plot.Chart | None:
    """(1) rel_ret_5d and rel_ret_20d of RUT/SPX, last `years`, non-normal regime days shaded."""
    as_of = data.as_of_ts
    lines = [(ind, plot.thin(plot.window(data.series(ind, "RUT/SPX"), as_of, years)), color, width, label)
             for ind, color, width, label in (("rel_ret_20d", "#d93025", 1.7, "20-session"),
                                              ("rel_ret_5d", "#f29900", 1.0, "5-session"))]
    lines = [line for line in lines if not line[1].empty]
    if not lines:
        return None
    with plot.figure("relperf", figsize=(11, 4.2)) as fig:
        ax = fig.subplots()
        start = min(df["date"].min() for _, df, *_ in lines)
        plot.shade_regimes(ax, data, start)
        ax.axhline(0, color="#5f6368", linewidth=0.8)
        offsets = plot.offsets([float(df["value"].iloc[-1]) for _, df, *_ in lines])
        for (ind, df, color, width, label), dy in zip(lines, offsets, strict=True):
            y = data.units.plotted(ind, df["value"])
            ax.plot(df["date"], y, color=color, linewidth=width, label=f"{label} relative return")
            plot.endpoint(ax, df["date"].iloc[-1], y.iloc[-1], data.units.text(ind, df["value"].iloc[-1]), color, dy=dy)
        plot.y_axis(ax, "pct")
        plot.time_axes(ax, as_of, "Russell 2000 return minus S&P 500 return, rolling 5 and 20 sessions",
                       "RUT return − SPX return (%)")
        plot.legend(fig, [ax])
        return plot.svg(fig, "relperf", "RUT minus SPX return over 5 and 20 sessions, last two years")


def zscores(data: ReportData, years: float = 2) -> plot.Chart | None:
    """(2) zscore_50d per index with ±1/±2/±3σ bands, small multiples."""
    as_of = data.as_of_ts
    subjects = plot.ordered(data.subjects("zscore_50d"), INDEXES)
    series = {s: plot.thin(plot.window(data.series("zscore_50d", s), as_of, years)) for s in subjects}
    series = {s: df for s, df in series.items() if not df.empty}
    if not series:
        return None
    n = len(series)
    ncols = 1 if n == 1 else 2 if n in (2, 4) else 3
    nrows = math.ceil(n / ncols)
    peak = max(float(df["value"].abs().max()) for df in series.values())
    limit = max(3.6, peak + 0.5)
    with plot.figure("zscores", figsize=(11, 0.7 + 2.6 * nrows)) as fig:
        axes = np.atleast_1d(fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)).ravel()
        for ax, (subject, df) in zip(axes, series.items(), strict=False):
            for k in (3, 2, 1):
                ax.axhspan(-k, k, color="#1a73e8", alpha=0.09, lw=0, zorder=0)
            ax.axhline(0, color="#9aa0a6", linewidth=0.7)
            color = INDEX_COLORS.get(subject, "#202124")
            ax.plot(df["date"], df["value"], color=color, linewidth=1.1)
            last = df.iloc[-1]
            ax.scatter([last["date"]], [last["value"]], s=22, color=color, zorder=5, edgecolors="white")
            plot.mark_as_of(ax, as_of, label=False)
            ax.set_title(f"{subject}   {last['value']:+.2f}\u03c3 on {last['date'].date().isoformat()}",
                         color=color, fontsize=10.5)
            ax.set_ylim(-limit, limit)
            ax.set_yticks([-3, -2, -1, 0, 1, 2, 3])
            plot.y_axis(ax, "sigma")
            plot.date_axis(ax)
        for ax in axes[n:]:
            ax.set_visible(False)
        for ax in axes[::ncols]:
            ax.set_ylabel("σ from 50-day mean")
        for k in range(n):
            if k + ncols >= n:  # nothing drawn below it: show its dates
                axes[k].tick_params(labelbottom=True)
        plot.pad_right(axes[0], as_of, 20)
        handles = [Patch(color="#1a73e8", alpha=0.09 * (4 - k), label=f"within ±{k}\u03c3") for k in (1, 2, 3)]
        handles.append(Line2D([], [], color=plot.AS_OF_COLOR, linestyle=(0, (4, 3)),
                              label=f"as of {as_of.date().isoformat()}"))
        fig.suptitle("Close vs its 50-day average, in standard deviations (last two years)", x=0.01,
                     ha="left", fontweight="bold", fontsize=11)
        plot.legend(fig, [], extra=handles)
        return plot.svg(fig, "zscores", "z-score of each index against its 50-day average, with sigma bands")


def price_ratio(data: ReportData) -> plot.Chart | None:
    """(3) price_ratio RUT/SPX over the full history."""
    as_of = data.as_of_ts
    full = data.series("price_ratio", "RUT/SPX")
    if full.empty:
        return None
    df = plot.thin(full)
    with plot.figure("ratio", figsize=(11, 4)) as fig:
        ax = fig.subplots()
        ax.plot(df["date"], df["value"], color="#d93025", linewidth=1.2, label="RUT ÷ SPX")
        top = full.loc[full["value"].idxmax()]
        ax.scatter([top["date"]], [top["value"]], marker="^", s=36, color="#188038", zorder=5,
                   label=f"highest: {top['value']:.4f} ({top['date'].date().isoformat()})")
        bottom = full.loc[full["value"].idxmin()]
        ax.scatter([bottom["date"]], [bottom["value"]], marker="v", s=36, color="#1a73e8", zorder=5,
                   label=f"lowest: {bottom['value']:.4f} ({bottom['date'].date().isoformat()})")
        last = full.iloc[-1]
        ax.axhline(last["value"], color="#d93025", linewidth=0.7, linestyle=":", zorder=1)
        plot.endpoint(ax, last["date"], last["value"], f"{last['value']:.4f}", "#d93025", dy=12)
        span_days = (as_of - full["date"].iloc[0]).days
        plot.time_axes(ax, as_of, f"Russell 2000 ÷ S&P 500 price ratio, full history since {full['date'].iloc[0].year}",
                       "RUT close ÷ SPX close", pad_days=max(10, span_days // 60))
        plot.legend(fig, [ax])
        return plot.svg(fig, "ratio", "RUT to SPX price ratio over the full history")


def vol_correlation(data: ReportData, years: float = 2) -> plot.Chart | None:
    """(4) vol_corr_5d: each index against its volatility index."""
    as_of = data.as_of_ts
    subjects = plot.ordered(data.subjects("vol_corr_5d"), ("RUT~RVX", "SPX~VIX", "NDX~VXN"))
    series = {s: plot.thin(plot.window(data.series("vol_corr_5d", s), as_of, years)) for s in subjects}
    series = {s: df for s, df in series.items() if not df.empty}
    if not series:
        return None
    with plot.figure("volcorr", figsize=(11, 3.8)) as fig:
        ax = fig.subplots()
        ax.axhline(0, color="#5f6368", linewidth=0.8)
        offsets = plot.offsets([float(df["value"].iloc[-1]) for df in series.values()])
        for i, ((subject, df), dy) in enumerate(zip(series.items(), offsets, strict=True)):
            color = INDEX_COLORS.get(subject.split("~")[0], COOL[i % len(COOL)])
            ax.plot(df["date"], df["value"], color=color, linewidth=1.2 if i == 0 else 1.0,
                    alpha=1 if i == 0 else 0.8, label=f"{subject.replace('~', ' vs ')}")
            plot.endpoint(ax, df["date"].iloc[-1], df["value"].iloc[-1], f"{df['value'].iloc[-1]:+.2f}", color, dy=dy)
        ax.set_ylim(-1.3, 1.12)
        ax.set_yticks([-1, -0.5, 0, 0.5, 1])
        plot.time_axes(ax, as_of, "Correlation of daily changes, index vs its volatility index, over 5 sessions",
                       "correlation")
        plot.legend(fig, [ax])
        return plot.svg(fig, "volcorr", "five-session correlation between each index and its volatility index")


def call_volume(data: ReportData, years: float = 2) -> plot.Chart | None:
    """(5) call_volume_5d of IWM against a large-cap name (SPY by preference), and their ratio."""
    as_of = data.as_of_ts
    present = data.subjects("call_volume_5d")
    large = next((s for s in LARGE_CAP_NAMES if s in present), None)
    names = [s for s in ("IWM", large) if s and s in present]
    series = {s: plot.thin(plot.window(data.series("call_volume_5d", s), as_of, years)) for s in names}
    series = {s: df for s, df in series.items() if not df.empty}
    if not series:
        return None
    both = len(series) == 2
    with plot.figure("calls", figsize=(11, 5.2 if both else 3.8)) as fig:
        axes = fig.subplots(2 if both else 1, 1, sharex=True, squeeze=False,
                            gridspec_kw={"height_ratios": [2, 1]} if both else None).ravel()
        ax = axes[0]
        offsets = plot.offsets([float(df["value"].iloc[-1]) for df in series.values()])
        for (subject, df), dy in zip(series.items(), offsets, strict=True):
            color = "#d93025" if subject == "IWM" else "#1a73e8"
            ax.plot(df["date"], df["value"], color=color, linewidth=1.2, label=f"{subject} calls, 5 sessions")
            plot.endpoint(ax, df["date"].iloc[-1], df["value"].iloc[-1], words.compact(df["value"].iloc[-1]), color,
                      dy=dy)
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: words.compact(v)))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylabel("contracts (log scale)")
        title = " vs ".join(series)
        ax.set_title(f"OCC call volume, 5-session total: {title}")
        plot.mark_as_of(ax, as_of)
        if both:
            small, big = (series[s].set_index("date")["value"] for s in names)
            ratio = (small / big).dropna()
            ax2 = axes[1]
            ax2.plot(ratio.index, ratio.values * 100, color="#5f6368", linewidth=1.1,
                     label=f"IWM calls as % of {large} calls")
            plot.endpoint(ax2, ratio.index[-1], ratio.values[-1] * 100, f"{ratio.values[-1] * 100:.1f}%", "#3c4043")
            ax2.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}%"))
            ax2.set_ylabel(f"IWM ÷ {large}")
            plot.mark_as_of(ax2, as_of, label=False)
        axes[-1].set_xlabel("date")
        plot.pad_right(axes[0], as_of, 20)
        for a in axes:
            plot.date_axis(a)
        plot.legend(fig, axes)
        return plot.svg(fig, "calls", f"five-session call volume of {title}")


def positioning(data: ReportData) -> plot.Chart | None:
    """(6) the latest percentile of net_pct_oi of every CFTC market:class within its own history, as bars."""
    subjects = data.subjects("net_pct_oi")
    rows = []
    for subject in subjects:
        latest = data.latest("net_pct_oi", subject)
        if latest is None:
            continue
        pct = latest.get("pct_rank")
        if pct is None or pd.isna(pct):
            s = data.series("net_pct_oi", subject)
            pct = float((s["value"] <= latest["value"]).mean())
        code, _, cls = subject.partition(":")
        rows.append({"subject": subject, "code": code, "cls": cls, "pct": float(pct), "value": latest["value"],
                     "date": pd.Timestamp(latest["date"])})
    if not rows:
        return None
    market_order = list(words.CFTC_MARKETS)
    class_order = ["lev_money", "asset_mgr", "dealer", "other_rept", "nonrept"]
    rows.sort(key=lambda r: (market_order.index(r["code"]) if r["code"] in market_order else 99, r["code"],
                             class_order.index(r["cls"]) if r["cls"] in class_order else 99, r["cls"]))
    rows.reverse()  # barh draws bottom-up
    reading = max(r["date"] for r in rows)
    with plot.figure("positioning", figsize=(11, 1.3 + 0.34 * len(rows))) as fig:
        ax = fig.subplots()
        y = np.arange(len(rows))
        pcts = np.array([r["pct"] * 100 for r in rows])
        colors = ["#d93025" if p >= 90 else "#1a73e8" if p <= 10 else "#9aa0a6" for p in pcts]
        ax.barh(y, pcts, color=colors, height=0.62, zorder=2)
        ax.set_yticks(y, [words.subject_name(r["subject"]) for r in rows])
        for yi, p, r in zip(y, pcts, rows, strict=True):
            text = f"{words.ordinal(min(100, max(1, round(p))))} pct · net {data.units.text('net_pct_oi', r['value'])}"
            ax.text(min(p, 100) + 1, yi, text, va="center", fontsize=8.5, color="#3c4043")
        for x in (10, 90):
            ax.axvline(x, color="#5f6368", linestyle=":", linewidth=0.9, zorder=1)
        ax.set_xlim(0, 125)
        ax.set_xticks([0, 10, 25, 50, 75, 90, 100])
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}%"))
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("percentile of today's net position (% of open interest) within its own history")
        ax.set_title(f"CFTC futures positioning as of {data.as_of.isoformat()} "
                     f"(latest report read: {reading.date().isoformat()})")
        plot.legend(fig, [], extra=[Patch(color="#d93025", label="≥ 90th percentile: unusually long"),
                                Patch(color="#1a73e8", label="≤ 10th percentile: unusually short"),
                                Patch(color="#9aa0a6", label="in between")])
        return plot.svg(fig, "positioning", "percentile of each trader group's net futures position")


def etf_flows(data: ReportData, years: float = 1) -> plot.Chart | None:
    """(7) etf_flow_5d_pct per ETF (small caps warm, large caps cool) and the small-minus-large spread."""
    as_of = data.as_of_ts
    tickers = plot.ordered(data.subjects("etf_flow_5d_pct"), ETF_ORDER)
    funds = {t: plot.thin(plot.window(data.series("etf_flow_5d_pct", t), as_of, years)) for t in tickers}
    funds = {t: df for t, df in funds.items() if not df.empty}
    spread = plot.thin(plot.window(data.series("etf_flow_5d_pct_spread", "small-large"), as_of, years))
    if not funds and spread.empty:
        return None
    panels = (1 if funds else 0) + (0 if spread.empty else 1)
    units = data.units
    with plot.figure("flows", figsize=(11, 2.4 + 2.6 * panels)) as fig:
        axes = list(fig.subplots(panels, 1, sharex=True, squeeze=False).ravel())
        if funds:
            ax = axes.pop(0)
            warm, cool = iter(WARM * 3), iter(COOL * 3)
            ax.axhline(0, color="#5f6368", linewidth=0.8)
            for ticker, df in funds.items():
                small = ticker in SMALL_CAP_ETFS
                ax.plot(df["date"], units.plotted("etf_flow_5d_pct", df["value"]),
                        color=next(warm) if small else next(cool), linewidth=1.2 if small else 0.9,
                        linestyle="-" if small else (0, (3, 1.5)), label=ticker + (" (small)" if small else ""))
            plot.y_axis(ax, "pct")
            plot.time_axes(ax, as_of, "ETF creations minus redemptions over 5 sessions, % of assets, per fund",
                           "5-session flow (% of assets)", pad_days=12, xlabel=None)
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5)
        if not spread.empty:
            ax = axes.pop(0)
            y = units.plotted("etf_flow_5d_pct_spread", spread["value"]).to_numpy()
            ax.axhline(0, color="#5f6368", linewidth=0.8)
            ax.fill_between(spread["date"], y, 0, where=y >= 0, color="#188038", alpha=0.35, lw=0,
                            interpolate=True, label="small caps\ngaining faster")
            ax.fill_between(spread["date"], y, 0, where=y < 0, color="#d93025", alpha=0.3, lw=0,
                            interpolate=True, label="large caps\ngaining faster")
            ax.plot(spread["date"], y, color="#3c4043", linewidth=0.9)
            plot.endpoint(ax, spread["date"].iloc[-1], y[-1],
                      units.text("etf_flow_5d_pct_spread", spread["value"].iloc[-1]), "#202124")
            plot.y_axis(ax, "pct")
            plot.time_axes(ax, as_of, "Flow spread: small-cap ETFs minus large-cap ETFs", "small − large (% pts)",
                           pad_days=12)
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5)
        return plot.svg(fig, "flows", "five-session ETF flows per fund and the small-minus-large spread")


def analog_paths(data: ReportData, panels: int = 12) -> plot.Chart | None:
    """(8) What happened next: one small panel per earlier episode like today's (the latest `panels`), the index's
    path over the sessions after the episode's first close, in % of that close, with today's episode's path so far
    over it."""
    found = data.analogs
    if found is None:
        return None
    paths = data.analog_paths
    today = paths.get(found.current.start_date, [])
    earlier = [e for e in found.earlier if paths.get(e.start_date)][-panels:]
    if not earlier and not today:
        return None
    shown = earlier or [None]
    n = len(shown)
    ncols = min(n, 4)
    nrows = math.ceil(n / ncols)
    longest = max(len(p) for p in [today, *(paths[e.start_date] for e in earlier)]) - 1
    index = found.index
    with plot.figure("analogs", figsize=(11, 0.9 + 2.2 * nrows)) as fig:
        axes = np.atleast_1d(fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)).ravel()
        for ax, episode in zip(axes, shown, strict=False):
            ax.axhline(0, color="#9aa0a6", linewidth=0.7)
            if episode is not None:
                path = np.asarray(paths[episode.start_date]) * 100
                ax.plot(range(len(path)), path, color="#5f6368", linewidth=1.2)
                ax.set_title(f"from {episode.start_date.isoformat()}", fontsize=10, color="#3c4043")
            if today:
                ax.plot(range(len(today)), np.asarray(today) * 100, color=INDEX_COLORS.get(index, "#d93025"),
                        linewidth=1.6)
            ax.set_xlim(0, max(longest, 1))
            plot.y_axis(ax, "pct")
        for ax in axes[n:]:
            ax.set_visible(False)
        for ax in axes[::ncols]:
            ax.set_ylabel(f"{index} vs start")
        for k in range(n):
            if k + ncols >= n:
                axes[k].tick_params(labelbottom=True)
                axes[k].set_xlabel("sessions after the first close")
        what = words.episode_text(found.indicator, found.subject, found.kind, found.threshold, found.side)
        fig.suptitle(f"{words.subject_name(index)} after each earlier episode of {what}", x=0.01, ha="left",
                     fontweight="bold", fontsize=11)
        plot.legend(fig, [], extra=[
            Line2D([], [], color="#5f6368", label="an earlier episode"),
            Line2D([], [], color=INDEX_COLORS.get(index, "#d93025"), linewidth=1.6,
                   label=f"this episode, from {found.current.start_date.isoformat()} to {found.day.isoformat()}")])
        return plot.svg(fig, "analogs", f"{words.subject_name(index)} after earlier episodes of {what}, "
                                    "with this episode so far")


ALL = {
    "relative": relative_performance,
    "zscores": zscores,
    "ratio": price_ratio,
    "volcorr": vol_correlation,
    "calls": call_volume,
    "positioning": positioning,
    "flows": etf_flows,
    "analogs": analog_paths,
}
