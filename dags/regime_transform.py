"""Build, validate, publish and alert once per session, when the ingest DAGs have landed it (partitioned Assets)."""

from __future__ import annotations

from airflow.sdk import dag

from regime.orchestration import (
    START_DATE,
    as_of_params,
    default_args,
    publish_report_alert,
    run_failure_callback,
    transform_schedule,
)


@dag(
    dag_id="regime_transform",
    schedule=transform_schedule(),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    # unpaused from the start: it runs only when the ingest DAGs (paused until an operator unpauses them) land a
    # session, and a manual trigger never waits silently in the queue of a paused DAG
    is_paused_upon_creation=False,
    default_args=default_args(),
    on_failure_callback=run_failure_callback(),
    params=as_of_params(),
    tags=["regime", "transform"],
    doc_md="""
### Transform, validate, publish, alert
One run per NYSE session: the ingest DAGs update their lake Assets with the session as partition key, and
this DAG runs for a session once index prices, options volume and ETF NAV all have it (the weekly CFTC report
is read as released by then). The run's partition key is its as-of date. A rerun of one ingest for a session
already built does not rebuild it. Stale data (docs/operations.md) fails the build with a mail.
`build_validate_publish` builds a staging DuckDB copy of the warehouse from `include/sql`, validates it
with Great Expectations and swaps it in atomically (one writer at a time: a second run waits for the
lock). A blocking validation failure fails the task with the failing checks in its log, records them in
`meta.validation_runs` and leaves analysts on the last good warehouse. `send_alerts` mails new extreme
readings once per episode; `write_report` writes `reports/<as_of>.html`.
""",
)
def regime_transform():
    publish_report_alert()  # build_validate_publish, write_report, send_alerts (shared with regime_daily)


regime_transform()
