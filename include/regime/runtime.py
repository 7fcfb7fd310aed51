"""Helpers for code that runs inside an Airflow task."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo


def as_of_date(context) -> date:
    """The run's as-of date. In order: `as_of` in the trigger's conf; the run's partition key (regime_transform's
    runs are keyed by the session their ingests covered); for a run triggered by Asset events, the latest `as_of`
    those events carry; the logical date (its UTC date: the NYSE timetable's logical date is the session at
    00:00 UTC, `airflow dags test DAG 2024-07-16` gives 2024-07-16); else the New York date the run was due.
    Partitions are keyed by this, never by now()."""
    dag_run = context.get("dag_run")
    conf = getattr(dag_run, "conf", None) or {}
    if conf.get("as_of"):
        return date.fromisoformat(str(conf["as_of"]))
    partition_key = getattr(dag_run, "partition_key", None)
    if partition_key:
        return date.fromisoformat(str(partition_key)[:10])
    from_events = _from_asset_events(context)
    if from_events is not None:
        return from_events
    logical = context.get("logical_date")
    if logical is None and dag_run is not None:
        logical = getattr(dag_run, "run_after", None)
        if logical is not None:
            return logical.astimezone(ZoneInfo("America/New_York")).date()
    if logical is None:
        raise ValueError("cannot tell the run's as-of date: no conf['as_of'], logical date or run_after")
    return logical.astimezone(UTC).date() if logical.tzinfo else logical.date()


def means_latest(context) -> bool:
    """Whether the run stands for "the latest session" (scheduled, asset-triggered, or manual without a date) rather
    than a date someone chose (`as_of` in the conf, a backfill, or a manual run with a past logical date such as
    `airflow dags test DAG 2024-07-16`): such runs refuse stale data (regime.freshness). A manual logical date within
    a day of now is the UI's default, not a choice."""
    dag_run = context.get("dag_run")
    if (getattr(dag_run, "conf", None) or {}).get("as_of"):
        return False
    run_type = str(getattr(getattr(dag_run, "run_type", None), "value", getattr(dag_run, "run_type", "")) or "")
    logical = context.get("logical_date")
    if logical is None or run_type not in ("manual", "backfill"):
        return True
    return run_type == "manual" and datetime.now(UTC) - logical < timedelta(days=1)


def _from_asset_events(context) -> date | None:
    events = context.get("triggering_asset_events") or {}
    days = []
    for asset_events in events.values():
        for event in asset_events:
            value = (getattr(event, "extra", None) or {}).get("as_of")
            if value:
                days.append(date.fromisoformat(str(value)))
    return max(days) if days else None


class permanent_failures:  # noqa: N801 (used as a context manager, reads like a statement)
    """Turn errors that a retry cannot fix (bad upstream files, failed validation) into
    AirflowFailException so Airflow fails the task at once instead of retrying it."""

    def __init__(self, *errors: type[BaseException]):
        self.errors = errors

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is not None and self.errors and isinstance(exc, self.errors):
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(str(exc)) from exc
        return False
