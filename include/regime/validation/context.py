"""What a suite needs to know about the run it checks."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field, replace
from datetime import date
from functools import cached_property
from pathlib import Path

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
    gap_tolerance_sessions: int = 2
    previous_rows: dict = field(default_factory=dict)  # suite name -> rows in the last published warehouse
    published: Path | None = None  # the last published warehouse: the history a new build is compared with
    exceptions: tuple = ()  # plausibility.Exemption entries of the reviewed exception list
    published_since: date | None = None  # an update's gate: compare only the published rows dated after this
    checked_from: date | None = None  # the earliest date of the rows a suite's frame hands GX (checking_from)

    def checking_from(self, first: date | None) -> RunContext:
        """This context for a suite whose frame's rows begin on `first` (None: no rows), keeping what it has
        computed (the calendar, the published closes)."""
        derived = replace(self, checked_from=first or self.as_of)
        derived.__dict__.update({k: v for k, v in self.__dict__.items() if k not in derived.__dict__})
        return derived

    @property
    def closures_checked(self) -> list[str]:
        """The weekday closures a frame's dates are checked against ("NYSE sessions only"): those from the frame's
        first date (`checked_from`) on; the closures before it cannot match a row. GX rebuilds each expectation's
        configuration ~90 times while planning its metrics and renders its value set into the Data Docs: all 522
        closures since 1929 made each of these expectations cost as much as ten others (docs/performance.md)."""
        closures = self.weekday_closures_iso
        if self.checked_from is None:
            return closures
        return closures[bisect.bisect_left(closures, self.checked_from.isoformat()):]

    def sql_params(self) -> dict:
        """What suite queries may bind: $as_of and $fresh_after (dates), and $trailing_sessions (OCC volume's trailing
        window, plausibility.TRAILING_SESSIONS: the QUERY's window frame on a full build and an update alike)."""
        from regime.validation.plausibility import TRAILING_SESSIONS

        return {"as_of": self.as_of, "fresh_after": date.fromisoformat(self.fresh_after),
                "trailing_sessions": TRAILING_SESSIONS}

    def row_count_floor(self, name: str) -> list:
        """The lake is an archive: a dataset never has fewer rows than the last published build had."""
        import great_expectations.expectations as gxe

        floor = self.previous_rows.get(name)
        if floor is None:
            return []
        return [gxe.ExpectTableRowCountToBeBetween(min_value=floor, notes=f"{name} had {floor} rows in the last "
                                                   "published warehouse: rows are never dropped")]

    def missing_between(self, dates: pd.Series, previous_dates: pd.Series) -> pd.Series:
        """For each row, the NYSE sessions strictly between its previous row's date (a column the suite's QUERY
        computes: `lag(date)` of its series; NaT on a first row, then NaN) and its own: the difference of their
        positions among the sessions (a date that is no session counts from the next one)."""
        sessions = self.calendar.sessions.values.astype("datetime64[D]")
        here = sessions.searchsorted(pd.to_datetime(dates).values.astype("datetime64[D]"))
        before = pd.to_datetime(previous_dates)
        there = sessions.searchsorted(before.values.astype("datetime64[D]"))
        return pd.Series(here - there - 1, index=dates.index, dtype="float64").where(before.notna().values)

    def suspect_params(self) -> dict:
        """What the lake suites' SUSPECT predicates bind besides their constants: the weekday closures of the NYSE
        ($closures, YYYY-MM-DD) and the gap tolerance ($gap_tolerance, sessions)."""
        return {"as_of": self.as_of, "closures": self.weekday_closures_iso,
                "gap_tolerance": self.gap_tolerance_sessions}

    @cached_property
    def published_closes(self) -> pd.DataFrame:
        """symbol, date_iso, close of marts.prices in the last published warehouse (empty when there is none); only
        the rows dated after `published_since` when set (an update's gate compares the rows it wrote)."""
        empty = pd.DataFrame({"symbol": [], "date_iso": [], "close": []})
        if self.published is None or not Path(self.published).exists():
            return empty
        import duckdb

        from regime.sql import connect

        try:
            con = connect(Path(self.published), read_only=True)
        except duckdb.Error:
            return empty
        try:
            return con.execute("select symbol, strftime(date, '%Y-%m-%d') as date_iso, close from marts.prices "
                               "where close > 0 and ($since is null or date > $since)",
                               {"since": self.published_since}).df()
        except duckdb.Error:  # a warehouse without marts.prices: nothing to compare with
            return empty
        finally:
            con.close()

    @cached_property
    def calendar(self):
        from regime.calendar import nyse

        calendar = nyse()  # the process's cached XNYS calendar, shared with the timetable and the tasks
        if calendar.last_session >= pd.Timestamp(self.as_of):
            return calendar
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
