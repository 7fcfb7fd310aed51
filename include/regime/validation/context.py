"""What a suite needs to know about the run it checks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cached_property

import pandas as pd

VOL_INDEXES = ("VIX", "RVX", "VXN")

# Known defects in the real upstream record, kept as documented exceptions (docs/validation.md).
# Cboe's VIX file has 1990s-2006 rows whose OPEN/HIGH/LOW contradict CLOSE, and Cboe computes its
# volatility indexes on some days the NYSE is closed: both are warnings for volatility indexes only.
KNOWN_DEFECTS = {
    "vol_index_ohlc": "Cboe VIX history: OPEN/HIGH/LOW inconsistent with CLOSE in 1990s-2006 rows",
    "vol_index_sessions": "Cboe volatility indexes are published on some NYSE holidays",
}


@dataclass(frozen=True)
class RunContext:
    as_of: date
    freshness_sessions: int = 3

    @cached_property
    def calendar(self):
        import exchange_calendars as xcals

        return xcals.get_calendar("XNYS", start="1927-01-01", end=f"{self.as_of.year + 1}-12-31")

    @cached_property
    def weekday_closures_iso(self) -> list[str]:
        """Weekdays on which the NYSE was closed, up to the as-of date. A date is a session when it is a
        weekday (checked on `iso_dow`) and not one of these (a short list, unlike the list of sessions)."""
        sessions = self.calendar.sessions
        weekdays = pd.bdate_range(sessions[0], pd.Timestamp(self.as_of))
        return [d.strftime("%Y-%m-%d") for d in weekdays.difference(sessions)]

    @cached_property
    def fresh_after(self) -> str:
        """Latest date a series may end on and still be fresh: N sessions before the as-of date."""
        sessions = self.calendar.sessions
        past = sessions[sessions <= pd.Timestamp(self.as_of)]
        return past[-1 - self.freshness_sessions].strftime("%Y-%m-%d")
