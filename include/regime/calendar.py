"""The NYSE trading calendar (exchange_calendars XNYS)."""

from __future__ import annotations

import functools
from datetime import date

import pandas as pd


@functools.cache
def nyse():
    import exchange_calendars as xcals

    return xcals.get_calendar("XNYS", start="1927-01-01", end=f"{date.today().year + 1}-12-31")


def is_session(day: date) -> bool:
    return nyse().is_session(pd.Timestamp(day))


def sessions_until(as_of: date, count: int) -> list[date]:
    """The last `count` NYSE sessions on or before `as_of`."""
    sessions = nyse().sessions
    sessions = sessions[sessions <= pd.Timestamp(as_of)]
    return [d.date() for d in sessions[-count:]]


def previous_session(day: date) -> date:
    return sessions_until(day, 1)[0]
