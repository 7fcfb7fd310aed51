"""The PNG chart embedded in alert mails: the leading reading's recent history with its threshold band."""

from __future__ import annotations

import io
from datetime import date

import pandas as pd

from regime import words

UNITS = {"sigma": "\u03c3", "pct": "%", "pp": " pp", "pct_assets": "% of assets", "pct_oi": "% of OI",
         "contracts": " contracts"}
READINGS = 250  # sessions shown


def lead_chart(con, indicator: str, subject: str, as_of: date, zscore_alert: float) -> bytes | None:
    """The chart of one reading's last READINGS values up to `as_of` (None: no readings). A regime label change
    is shown through RUT's z-score, the label's main input."""
    if indicator == "regime_label":
        indicator, subject = "zscore_50d", "RUT"
    history = con.execute(
        "select date, value from marts.indicators where indicator = $indicator and subject = $subject"
        " and value is not null and isfinite(value) and date <= $as_of order by date desc limit $n",
        {"indicator": indicator, "subject": subject, "as_of": as_of, "n": READINGS},
    ).df().sort_values("date")
    if history.empty:
        return None
    history["value"] = history["value"] * words.scale(indicator)
    band = zscore_alert if indicator == "zscore_50d" else None
    return reading_chart(history, f"{words.reading_name(indicator, subject)}, last {len(history)} readings",
                         words.reading_name(indicator, subject), UNITS.get(words.kind(indicator), ""), band=band)


def reading_chart(history: pd.DataFrame, title: str, label: str, unit: str, band: float | None = None) -> bytes:
    """A reading's recent history (columns date, value, in display units), its latest value marked, and the +/- band
    of its alert threshold when it has one. Returns PNG bytes."""
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
        ax.annotate(f"{last['value']:+,.2f}{unit}", (pd.to_datetime(last["date"]), last["value"]),
                    textcoords="offset points", xytext=(-8, 0), ha="right", va="center", color="#d93025",
                    fontweight="bold")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit.strip())
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
        fig.autofmt_xdate()
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(fig)
