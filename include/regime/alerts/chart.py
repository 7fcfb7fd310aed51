"""The PNG chart embedded in alert mails: the leading indicator's recent history with its threshold band."""

from __future__ import annotations

import io

import pandas as pd


def zscore_chart(history: pd.DataFrame, subject: str, threshold: float) -> bytes:
    """`history` has columns date, value (the subject's zscore_50d). Returns PNG bytes."""
    return reading_chart(history, f"{subject}: close vs its 50-day average, in standard deviations",
                         f"{subject} z-score vs 50-day average", "\u03c3", band=threshold)


def reading_chart(history: pd.DataFrame, title: str, label: str, unit: str, band: float | None = None) -> bytes:
    """A reading's recent history (columns date, value), its latest value marked, and the +/- band of its alert
    threshold when it has one. Returns PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=100)
    try:
        if band is not None:
            ax.axhspan(-band, band, color="#e8f0fe", label=f"\u00b1{band:g}{unit} alert threshold")
            ax.axhline(0, color="#999999", linewidth=0.8)
        ax.plot(pd.to_datetime(history["date"]), history["value"], color="#1a73e8", linewidth=1.4, label=label)
        last = history.iloc[-1]
        ax.scatter([pd.to_datetime(last["date"])], [last["value"]], color="#d93025", zorder=3)
        ax.annotate(f"{last['value']:.4g}{unit}", (pd.to_datetime(last["date"]), last["value"]),
                    textcoords="offset points", xytext=(-40, 6), color="#d93025")
        ax.set_title(title)
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
        fig.autofmt_xdate()
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(fig)
