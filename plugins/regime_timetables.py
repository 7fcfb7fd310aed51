"""Airflow timetable for NYSE sessions: one run per trading day of the New York Stock Exchange (exchange
calendar XNYS from exchange_calendars: no weekends, no exchange holidays, early closes respected), due a set
time after that day's close.

A run's data interval is the session's calendar day in UTC ([D 00:00, D+1 00:00)), so its logical date is the
session D and the pipeline's as-of date is D. exchange_calendars (and pandas) are imported only when a schedule is
computed, never when a DAG file is parsed, and the calendar is the one `regime.calendar.nyse()` builds once per
process (~0.4 s of CPU per build): the ingest tasks that `airflow dags test` runs in the same process reuse it.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pendulum
from airflow.plugins_manager import AirflowPlugin
from airflow.timetables.base import DagRunInfo, DataInterval, Timetable


def _calendar():
    from regime.calendar import nyse

    return nyse()


class NYSESessionTimetable(Timetable):
    """Run once per NYSE session, `delay_minutes` after that session's close (16:00 New York, 13:00 on early
    closes)."""

    def __init__(self, delay_minutes: int = 30):
        self.delay_minutes = delay_minutes
        self.description = f"NYSE sessions (XNYS), {delay_minutes} min after the close"

    @property
    def summary(self) -> str:
        return f"XNYS close + {self.delay_minutes}m"

    def serialize(self) -> dict[str, Any]:
        return {"delay_minutes": self.delay_minutes}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> NYSESessionTimetable:
        return cls(delay_minutes=data["delay_minutes"])

    def run_info(self, session: date) -> DagRunInfo:
        import pandas as pd

        close = _calendar().session_close(pd.Timestamp(session))  # UTC
        run_after = pendulum.instance(close.to_pydatetime()) + timedelta(minutes=self.delay_minutes)
        start = pendulum.datetime(session.year, session.month, session.day, tz="UTC")
        return DagRunInfo(run_after=run_after, data_interval=DataInterval(start, start + timedelta(days=1)))

    def session_on_or_after(self, day: date) -> date:
        import pandas as pd

        return _calendar().date_to_session(pd.Timestamp(day), direction="next").date()

    def infer_manual_data_interval(self, run_after) -> DataInterval:
        """A manual run covers the latest session that has closed by `run_after`."""
        import pandas as pd

        calendar = _calendar()
        minute = pd.Timestamp(run_after).tz_convert("UTC") if pd.Timestamp(run_after).tzinfo \
            else pd.Timestamp(run_after, tz="UTC")
        session = calendar.minute_to_past_session(minute) if not calendar.is_open_on_minute(minute) \
            else calendar.previous_session(calendar.minute_to_session(minute))
        return self.run_info(session.date()).data_interval

    def next_dagrun_info(self, *, last_automated_data_interval: DataInterval | None, restriction) -> DagRunInfo | None:
        if last_automated_data_interval is not None:
            candidate = last_automated_data_interval.start.date() + timedelta(days=1)
        elif restriction.earliest is None:
            return None
        else:
            candidate = restriction.earliest.in_timezone("UTC").date()
            if not restriction.catchup:
                candidate = max(candidate, pendulum.now("UTC").date() - timedelta(days=1))
        info = self.run_info(self.session_on_or_after(candidate))
        if not restriction.catchup and last_automated_data_interval is None:
            # without catch-up start from the latest session whose run is due, not from one long past
            while info.run_after < pendulum.now("UTC") - timedelta(days=1):
                info = self.run_info(self.session_on_or_after(info.data_interval.start.date() + timedelta(days=1)))
        if restriction.latest is not None and info.data_interval.start > restriction.latest:
            return None
        return info


class RegimeTimetablesPlugin(AirflowPlugin):
    name = "regime_timetables"
    timetables = [NYSESessionTimetable]
