"""What the DAG files share: Assets, the start date, default task arguments (retries, failure mail), the tasks
regime_daily and regime_transform both end with (publish_report_alert) and the bodies of their tasks. Light at
import (DAG parse time): airflow.sdk, pendulum and regime.dataset_names only; everything heavy is imported inside
the tasks."""

from __future__ import annotations

import logging
import time
from datetime import date, timedelta
from pathlib import Path

import pendulum
from airflow.sdk import Asset, get_current_context, task

from regime.dataset_names import NAMES as DATASET_NAMES

START_DATE = pendulum.datetime(2024, 1, 1, tz="America/New_York")  # every DAG's start_date
WAREHOUSE = Asset("regime_warehouse", uri="file:///regime/warehouse.duckdb")
LAKE = {name: Asset(f"regime_{name}", uri=f"file:///regime/lake/{name}") for name in DATASET_NAMES}
# the datasets with a file per NYSE session: regime_transform runs for a session once all three have it. CFTC is weekly:
# each build reads the latest report released by its session (and a stale one fails the build, regime.freshness)
SESSION_DATASETS = ("index_prices", "options_volume", "etf_nav")

# The Airflow pools of one slot that keep one writer of the warehouse and one ingest per dataset across workers and
# machines, where flock (regime.locks) does not reach. POOLS_FILE is their one definition: `airflow pools import` reads
# it wherever a scheduler runs (Makefile airflow-init, docker-compose.yml's airflow-init, tests/e2e/stack.py,
# regime.ui's screenshots); the DAG files only name the pools (no file is read at parse time) and tests/test_pools.py
# checks that every name a task uses is in the file, since a task in a pool that does not exist is never scheduled
# (the scheduler only logs a warning). docs/operations.md, "One writer".
POOLS_FILE = Path(__file__).with_name("pools.json")
WAREHOUSE_POOL = "regime_warehouse"  # build_validate_publish of regime_daily and regime_transform


def ingest_pool(dataset: str) -> str:
    """The pool of one slot of `dataset`'s ingest tasks (the ingest DAG's and regime_daily's)."""
    return f"regime_ingest_{dataset}"



def transform_schedule():
    """regime_transform's schedule: one run per session (partition key YYYY-MM-DD) once the Assets of all
    SESSION_DATASETS have an event for it; a second event for a session already built starts a new wait for all
    three, so a rerun of one ingest alone does not rebuild."""
    from airflow.sdk import PartitionedAssetTimetable

    condition = LAKE[SESSION_DATASETS[0]]
    for name in SESSION_DATASETS[1:]:
        condition = condition & LAKE[name]
    return PartitionedAssetTimetable(assets=condition)


log = logging.getLogger(__name__)


def default_args(retries: int = 2) -> dict:
    """Retries with exponential backoff, and a mail to the operators (Airflow Variable `regime_operator_to`,
    e.g. AIRFLOW_VAR_REGIME_OPERATOR_TO) through the SMTP connection when a task fails for good (regime.notify)."""
    from regime.notify import FailureNotifier

    return {
        "owner": "regime",
        "retries": retries,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=30),
        "on_failure_callback": FailureNotifier(),
    }


def run_failure_callback():
    """Each DAG's own `on_failure_callback`: the operators' mail for a task whose process was killed (no task
    callback ran for it), unless that try was mailed already (regime.notify.RunFailureNotifier)."""
    from regime.notify import RunFailureNotifier

    return RunFailureNotifier()


def as_of_params() -> dict:
    """The `as_of` Param of the DAGs run by hand: a date picker in the UI's trigger form, checked when the run is
    triggered (a bad date is refused then, not when a task reads it). Empty: the run's logical date, or for a run
    without one the New York date it was due (regime.runtime.as_of_date)."""
    from airflow.sdk import Param

    return {"as_of": Param(None, type=["null", "string"], format="date", title="As-of date",
                           description="The session to run as of, YYYY-MM-DD. Empty: the latest session, whose data "
                           "must then be fresh.")}


def as_of() -> date:
    """The as-of date of the running task (see regime.runtime.as_of_date)."""
    from regime.runtime import as_of_date

    return as_of_date(get_current_context())


def ingest(dataset: str) -> dict:
    """Ingest one dataset as part of a `regime_daily` run (which builds in the same run: no Asset event)."""
    from regime import pipeline
    from regime.ingest import IngestError
    from regime.runtime import permanent_failures

    with permanent_failures(IngestError):
        return pipeline.ingest(dataset, as_of())


class SessionNotIn(RuntimeError):
    """An ingest DAG's session is not in the publisher's files yet (retried: publishers are sometimes late)."""


def ingest_session(dataset: str) -> dict:
    """The task of the ingest DAG of `dataset`: ingest as of the run's session, check that the data is fresh (see
    regime.freshness: a stale source fails at once, with the operators' mail) and, for the daily datasets, that the
    session itself is in the lake (else retried), then update the dataset's Asset with the session as its partition
    key. `regime_transform` runs once per partition key, when index prices, options volume and ETF NAV all have it
    (docs/operations.md, "One build per session")."""
    from regime import freshness, pipeline
    from regime.config import get_settings
    from regime.datasets import ALL
    from regime.ingest import IngestError
    from regime.runtime import means_latest, permanent_failures

    day = as_of()
    settings = get_settings()
    target = next(d for d in ALL if d.name == dataset)
    with permanent_failures(IngestError, freshness.StaleData):
        result = pipeline.ingest(dataset, day)
        if means_latest(get_current_context()):
            freshness.require_fresh(settings, day, (target,))
    if dataset in SESSION_DATASETS and not freshness.covers(settings, target, day):
        newest = max((s.last for s in freshness.latest(settings, target, day)), default=None)
        raise SessionNotIn(f"{dataset}: the upstream files hold no row for the session {day} yet (newest: {newest}); "
                           "retried with backoff, then the run fails with the operators' mail")
    event = get_current_context()["outlet_events"][LAKE[dataset]]
    event.extra = {"as_of": day.isoformat()}
    event.add_partitions(day.isoformat())
    return result


def publish_report_alert(ingested: list | None = None):
    """Declare, in the DAG being defined, the tasks that regime_daily and regime_transform share (same ids in both):
    build_validate_publish (updates the WAREHOUSE Asset; not retried; in the one-slot pool WAREHOUSE_POOL), then
    write_report, then send_alerts.
    `ingested`: the tasks the build waits for (regime_daily's ingests), passed to it as its argument. Returns the
    build task's result (an XComArg)."""

    @task(task_id="build_validate_publish", outlets=[WAREHOUSE], retries=0, pool=WAREHOUSE_POOL)
    def build(ingested: list | None = None) -> dict:
        return build_validate_publish()

    # after the report (attached to the mail), and also when the report failed: a report must never hold alerts back
    @task(task_id="send_alerts", trigger_rule="all_done_min_one_success")
    def alerts(published: dict) -> dict:
        return send_alerts()

    @task(task_id="write_report")
    def report(published: dict) -> str:
        return write_report()

    published = build() if ingested is None else build(ingested)
    report(published) >> alerts(published)
    return published


def build_validate_publish() -> dict:
    started = time.perf_counter()
    from regime import freshness, pipeline
    from regime.config import get_settings
    from regime.runtime import means_latest, permanent_failures
    from regime.validation.gate import ValidationFailed

    # the largest fixed cost of the task's code (Great Expectations imports scipy, altair, ...): named in the log
    log.info("imported the pipeline and the validation gate (Great Expectations) in %.2f s",
             time.perf_counter() - started)
    day = as_of()
    with permanent_failures(ValidationFailed, freshness.StaleData):
        if means_latest(get_current_context()):
            freshness.require_fresh(get_settings(), day)
        summary = pipeline.build_validate_publish(day)
    get_current_context()["outlet_events"][WAREHOUSE].extra = {"as_of": day.isoformat()}
    return summary


def send_alerts() -> dict:
    from regime import pipeline
    from regime.runtime import permanent_failures

    # an alert that cannot be put into words is no network blip: fail at once (the others are mailed), naming it
    with permanent_failures(pipeline.AlertsNotComposed):
        return pipeline.alert(as_of())


def write_report() -> str:
    from regime import pipeline

    return pipeline.report(as_of())
