"""The frame every ETF layout's parser ends with (regime.sources.etf, regime.sources.ishares): its columns, and the
checks and typing they share."""

from __future__ import annotations

from datetime import date

import pandas as pd

from regime.sources.fetch import in_date_order

COLUMNS = ["date", "ticker", "nav", "shares_outstanding"]


def finish(records: list[tuple[date, float, float]], ticker: str, fail, today: date | None) -> pd.DataFrame:
    """The checks and typing every layout shares: finite positive NAV, shares NaN or >= 0, exact repeats merged,
    no conflicting dates, sorted, no future date."""
    frame = pd.DataFrame(records, columns=["date", "nav", "shares_outstanding"])
    frame["nav"] = frame["nav"].astype("float64")
    frame["shares_outstanding"] = frame["shares_outstanding"].astype("float64")

    def first(mask: pd.Series) -> str:
        return frame.loc[mask, "date"].iloc[0].isoformat()

    bad = ~frame["nav"].abs().lt(float("inf"))
    if bad.any():
        raise fail(f"NAV {frame.loc[bad, 'nav'].iloc[0]} on {first(bad)} is not a finite number")
    bad = frame["nav"] <= 0
    if bad.any():
        raise fail(f"NAV {frame.loc[bad, 'nav'].iloc[0]} on {first(bad)} is not positive")
    shares = frame["shares_outstanding"]
    bad = shares.notna() & ~shares.abs().lt(float("inf"))
    if bad.any():
        raise fail(f"shares outstanding {shares[bad].iloc[0]} on {first(bad)} is not a finite number")
    bad = shares < 0
    if bad.any():
        raise fail(f"shares outstanding {shares[bad].iloc[0]:.0f} on {first(bad)} is negative")

    frame = frame.drop_duplicates()  # a day listed twice with the same figures is harmless
    dup = frame["date"].duplicated(keep=False)
    if dup.any():
        days = sorted({d.isoformat() for d in frame.loc[dup, "date"]})
        raise fail(f"conflicting rows for the same date(s) {days[:5]}" + (" ..." if len(days) > 5 else ""))
    frame = in_date_order(frame, fail, today)
    frame.insert(1, "ticker", pd.Series([ticker.upper()] * len(frame), dtype="str"))
    return frame[COLUMNS]
