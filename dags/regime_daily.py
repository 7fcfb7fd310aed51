"""End-to-end regime pipeline in one DAG run: used by `make demo`, manual runs with a date and backfills."""

from __future__ import annotations

from airflow.sdk import dag, task

from regime import orchestration as run
from regime.orchestration import (
    START_DATE,
    as_of_params,
    default_args,
    ingest_pool,
    publish_report_alert,
    run_failure_callback,
)


@dag(
    dag_id="regime_daily",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    # run only when asked: unpaused from the start, so that a trigger never waits silently in the queue of a paused DAG
    is_paused_upon_creation=False,
    default_args=default_args(),
    on_failure_callback=run_failure_callback(),
    params=as_of_params(),
    tags=["regime", "manual", "backfill"],
    doc_md="""
### Regime pipeline, end to end
The four `ingest_*` tasks land Cboe index history, OCC options volume, CFTC positioning and ETF NAV
history (mirror or live, see `REGIME_SOURCE`) and write canonical Parquet. `build_validate_publish`
builds a staging DuckDB copy from `include/sql`, runs the Great Expectations gate and swaps it in
atomically; a blocking failure fails here and analysts keep the last good warehouse. `write_report`
writes the run's HTML report with charts to `reports/<as_of>.html`; then `send_alerts` mails new extreme
readings once per episode, headed by the day's headline, with the report attached (it runs even if the
report failed; docs/alerts.md).

The scheduled path is the per-source `ingest_*` DAGs plus `regime_transform`; this DAG runs the same task
code for one date on demand: `airflow dags test regime_daily 2024-07-16`, or trigger it with the `as_of` date
(the trigger form's date picker, or conf `{"as_of": "2024-07-16"}`). Its ingests update no lake Asset: the run
builds itself and never starts a `regime_transform` build. Without an `as_of` it runs for the latest session and
refuses stale data. Backfills: `regime-backfill --start … --end …` (docs/operations.md).
""",
)
def regime_daily():
    @task(pool=ingest_pool("index_prices"))
    def ingest_index_prices() -> dict:
        return run.ingest("index_prices")

    @task(pool=ingest_pool("options_volume"))
    def ingest_options_volume() -> dict:
        return run.ingest("options_volume")

    @task(pool=ingest_pool("cftc_tff"))
    def ingest_cftc_tff() -> dict:
        return run.ingest("cftc_tff")

    @task(pool=ingest_pool("etf_nav"))
    def ingest_etf_nav() -> dict:
        return run.ingest("etf_nav")

    # then the tasks regime_transform runs too: build_validate_publish, write_report, send_alerts
    publish_report_alert([ingest_index_prices(), ingest_options_volume(), ingest_cftc_tff(), ingest_etf_nav()])


regime_daily()
