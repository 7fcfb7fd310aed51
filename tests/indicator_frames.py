"""The indicator tests' view of their readings: the chosen indicators built on a test's small warehouse, as one frame
and as one series of it."""

from __future__ import annotations

import pandas as pd

from regime.readings import build_indicators


def readings(con, names: list[str], params: dict) -> pd.DataFrame:
    """marts.indicators after building `names` with `params` (date as datetime.date), ordered."""
    build_indicators(con, params, names=names)
    frame = con.execute("select date, indicator, subject, value from marts.indicators order by all").df()
    return frame.assign(date=frame["date"].dt.date)


def series_of(frame: pd.DataFrame, indicator: str, subject: str) -> pd.Series:
    """One indicator's readings of one subject, indexed by date."""
    rows = frame[(frame.indicator == indicator) & (frame.subject == subject)]
    return pd.Series(rows["value"].to_numpy(), index=list(rows["date"]))
