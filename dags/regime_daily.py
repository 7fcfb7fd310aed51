"""Daily regime pipeline: four upstream sources -> lake -> DuckDB warehouse -> validation gate -> publish -> alerts.

Thin wiring only: every step lives in include/regime/pipeline.py.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, CronTriggerTimetable, dag, get_current_context, task

WAREHOUSE = Asset("regime_warehouse", uri="file:///regime/warehouse.duckdb")
INDEX_PRICES = Asset("regime_index_prices", uri="file:///regime/lake/index_prices")
OPTIONS_VOLUME = Asset("regime_options_volume", uri="file:///regime/lake/options_volume")
CFTC_TFF = Asset("regime_cftc_tff", uri="file:///regime/lake/cftc_tff")
ETF_NAV = Asset("regime_etf_nav", uri="file:///regime/lake/etf_nav")

DEFAULT_ARGS = {
    "owner": "regime",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
}


def _ingest(dataset: str) -> dict:
    from regime import pipeline
    from regime.ingest import IngestError
    from regime.runtime import permanent_failures

    with permanent_failures(IngestError):
        return pipeline.ingest(dataset, _as_of())


def _as_of():
    from regime.runtime import as_of_date

    return as_of_date(get_current_context())


@dag(
    dag_id="regime_daily",
    schedule=CronTriggerTimetable("30 18 * * 1-5", timezone="America/New_York"),
    start_date=pendulum.datetime(2024, 1, 1, tz="America/New_York"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["regime", "daily"],
    doc_md="""
### Daily regime pipeline
The four `ingest_*` tasks land Cboe index history, OCC options volume, CFTC positioning and ETF NAV
history (mirror or live, see `REGIME_SOURCE`) and write canonical Parquet. `build_warehouse` builds a
staging DuckDB copy from `include/sql`. `validate_warehouse` runs the Great Expectations gate: a blocking
failure discards the copy and fails here, and analysts keep the last good warehouse. `publish_warehouse`
swaps it in atomically; `send_alerts` mails new extreme readings once.
Trigger with a date: `airflow dags test regime_daily 2024-07-16` or conf `{"as_of": "2024-07-16"}`.
""",
)
def regime_daily():
    @task(outlets=[INDEX_PRICES])
    def ingest_index_prices() -> dict:
        return _ingest("index_prices")

    @task(outlets=[OPTIONS_VOLUME])
    def ingest_options_volume() -> dict:
        return _ingest("options_volume")

    @task(outlets=[CFTC_TFF])
    def ingest_cftc_tff() -> dict:
        return _ingest("cftc_tff")

    @task(outlets=[ETF_NAV])
    def ingest_etf_nav() -> dict:
        return _ingest("etf_nav")

    @task(retries=0)
    def build_warehouse(ingested: list) -> str:
        from regime import pipeline

        return pipeline.build(_as_of())

    @task(retries=0)
    def validate_warehouse(staging: str) -> str:
        from regime import pipeline
        from regime.runtime import permanent_failures
        from regime.validation.gate import ValidationFailed

        with permanent_failures(ValidationFailed):
            pipeline.validate(staging, _as_of())
        return staging

    @task(outlets=[WAREHOUSE], retries=0)
    def publish_warehouse(staging: str) -> str:
        from regime import pipeline

        return pipeline.publish(staging)

    @task
    def send_alerts(published: str) -> dict:
        from regime import pipeline

        return pipeline.alert(_as_of())

    ingested = [ingest_index_prices(), ingest_options_volume(), ingest_cftc_tff(), ingest_etf_nav()]
    send_alerts(publish_warehouse(validate_warehouse(build_warehouse(ingested))))

regime_daily()
