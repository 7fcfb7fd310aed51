"""Helpers for code that runs inside an Airflow task."""

from __future__ import annotations

from datetime import date


def as_of_date(context) -> date:
    """The run's as-of date: `as_of` from the trigger's conf if given, else the logical date (UTC date),
    else the date the run was due. Partitions are keyed by this, never by now()."""
    dag_run = context.get("dag_run")
    conf = getattr(dag_run, "conf", None) or {}
    if conf.get("as_of"):
        return date.fromisoformat(str(conf["as_of"]))
    logical = context.get("logical_date")
    if logical is None and dag_run is not None:
        logical = getattr(dag_run, "run_after", None)
    if logical is None:
        raise ValueError("cannot tell the run's as-of date: no conf['as_of'], logical date or run_after")
    return logical.astimezone(_utc()).date() if logical.tzinfo else logical.date()


def _utc():
    from datetime import UTC

    return UTC


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
