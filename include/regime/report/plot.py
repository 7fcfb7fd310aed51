"""The charts' drawing kit: matplotlib style, a figure serialised to an inline SVG fragment (Chart), date and
value axes, thinning, end labels, one legend per chart and regime shading. No chart of its own.

Figures are built with matplotlib's object API (no pyplot state), so rendering is safe in any worker process."""

from __future__ import annotations

import io
import math
import re
from contextlib import contextmanager
from dataclasses import dataclass

import matplotlib as mpl
import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from regime import words
from regime.report.data import ReportData

AS_OF_COLOR = "#3c4043"
MAX_POINTS = 1200  # per line: a long daily history is thinned to about this many points
STYLE = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Liberation Sans", "Arial"],
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.titlepad": 8,
    "axes.labelsize": 9.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#9aa0a6",
    "axes.labelcolor": "#3c4043",
    "axes.grid": True,
    "grid.alpha": 0.35,
    "grid.linewidth": 0.6,
    "xtick.color": "#5f6368",
    "ytick.color": "#5f6368",
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "lines.linewidth": 1.3,
    "svg.fonttype": "none",
    "figure.dpi": 100,
    "figure.facecolor": "white",
}


@dataclass(frozen=True)
class Chart:
    svg: str  # an <svg> element ready to inline into HTML
    alt: str  # what it shows, for aria-label


@contextmanager
def figure(name: str, **kwargs):
    with mpl.rc_context({**STYLE, "svg.hashsalt": name}):
        fig = Figure(layout="constrained", **kwargs)
        yield fig


_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(href="#|url\(#)([^")]+)')


def svg(fig: Figure, name: str, alt: str) -> Chart:
    """Serialise inside the rc context (fonttype, hashsalt) and make the fragment safe to inline next to others:
    no XML prolog, DOCTYPE, metadata or namespace URLs, a per-chart prefix on every id."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    svg = buffer.getvalue()
    svg = re.sub(r"<\?xml.*?\?>\s*", "", svg, flags=re.S)
    svg = re.sub(r"<!DOCTYPE.*?>\s*", "", svg, flags=re.S)
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    svg = re.sub(r'<style type="text/css">.*?</style>\s*', "", svg, flags=re.S)
    svg = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", svg)
    svg = re.sub(r'\s+version="1\.1"', "", svg)
    svg = _ID.sub(lambda m: f'id="{name}-{m[1]}"', svg)
    svg = _REF.sub(lambda m: f"{m[1]}{name}-{m[2]}", svg)
    svg = re.sub(r"\n\s*", "\n", svg)  # indentation only
    svg = svg.replace("<svg ", f'<svg class="chart" role="img" aria-label="{_attr(alt)}" ', 1)
    return Chart(svg=svg.strip(), alt=alt)


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def window(df: pd.DataFrame, as_of: pd.Timestamp, years: float | None) -> pd.DataFrame:
    if years is None or df.empty:
        return df
    return df[df["date"] > as_of - pd.DateOffset(days=round(365.25 * years))]


def thin(df: pd.DataFrame, max_points: int = MAX_POINTS) -> pd.DataFrame:
    """Every k-th row so that about max_points remain, always keeping the latest one."""
    if len(df) <= max_points:
        return df
    step = math.ceil(len(df) / max_points)
    keep = np.zeros(len(df), bool)
    keep[::-1][::step] = True
    return df[keep]


def date_axis(ax) -> None:
    locator = mdates.AutoDateLocator(minticks=4, maxticks=9)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, show_offset=False))


def y_axis(ax, kind: str) -> None:
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: words.axis_text(kind, v)))


def mark_as_of(ax, as_of: pd.Timestamp, label: bool = True) -> None:
    ax.axvline(as_of, color=AS_OF_COLOR, linestyle=(0, (4, 3)), linewidth=1,
               label=f"as of {as_of.date().isoformat()}" if label else None, zorder=4)


def time_axes(ax, as_of: pd.Timestamp, title: str, ylabel: str, pad_days: int = 20,
              xlabel: str | None = "date") -> None:
    """A dated panel's frame: the as-of line with room to its right, the date ticks, the title and the labels."""
    mark_as_of(ax, as_of)
    pad_right(ax, as_of, pad_days)
    date_axis(ax)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    if xlabel:
        ax.set_xlabel(xlabel)


def endpoint(ax, x, y, text: str, color: str, dy: int = 8) -> None:
    ax.scatter([x], [y], s=22, color=color, zorder=5, edgecolors="white", linewidths=0.8)
    ax.annotate(text, (x, y), textcoords="offset points", xytext=(-8, dy), ha="right", va="center",
                fontsize=9, fontweight="bold", color=color, zorder=6,
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85})


def offsets(values: list[float]) -> list[int]:
    """Vertical offsets (points) of end labels: the highest line's label above, the others stacked below."""
    rank = {i: r for r, i in enumerate(sorted(range(len(values)), key=lambda i: -values[i]))}
    return [10 if rank[i] == 0 else -10 - 14 * (rank[i] - 1) for i in range(len(values))]


def pad_right(ax, as_of: pd.Timestamp, days: int) -> None:
    """Room to the right of the as-of line so that its marker is not on the frame."""
    left, _right = ax.get_xlim()
    ax.set_xlim(left, mdates.date2num(as_of + pd.Timedelta(days=days)))


def legend(fig: Figure, axes, ncol: int | None = None, extra: list | None = None) -> None:
    """One legend under the chart for all its panels: it never hides data."""
    handles, labels = [], []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    for handle in extra or []:
        handles.append(handle)
        labels.append(handle.get_label())
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=ncol or min(len(handles), 5))


def _regime_spans(data: ReportData, start: pd.Timestamp) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Runs of consecutive sessions whose regime label is not 'normal'."""
    regime = data.regime
    if regime is None or "label" not in regime.columns:
        return []
    rows = regime[regime["date"] >= start]
    spans, begin, prev = [], None, None
    for d, label in zip(rows["date"], rows["label"], strict=True):
        special = isinstance(label, str) and label.strip().lower() not in ("", "normal", "insufficient history")
        if special and begin is None:
            begin = d
        if not special and begin is not None:
            spans.append((begin, prev))
            begin = None
        prev = d
    if begin is not None:
        spans.append((begin, prev))
    return spans


def shade_regimes(ax, data: ReportData, start: pd.Timestamp) -> bool:
    spans = _regime_spans(data, start)
    for i, (a, b) in enumerate(spans):
        ax.axvspan(a - pd.Timedelta(hours=12), b + pd.Timedelta(hours=12), color="#fbbc04", alpha=0.18, lw=0,
                   label="sessions labelled other than 'normal'" if i == 0 else None, zorder=0)
    return bool(spans)


def ordered(subjects: list[str], preferred: tuple[str, ...]) -> list[str]:
    return [s for s in preferred if s in subjects] + [s for s in subjects if s not in preferred]
