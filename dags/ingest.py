"""One ingest DAG per source, each on its publisher's real schedule; each updates its lake Asset with the session
as partition key, and `regime_transform` runs once per session when the daily sources all have it."""

from __future__ import annotations

from airflow.sdk import CronTriggerTimetable, dag, task
from regime_timetables import NYSESessionTimetable

from regime import orchestration as run
from regime.orchestration import LAKE, SESSION_DATASETS, START_DATE, default_args, ingest_pool, run_failure_callback

# dataset -> (schedule, what the schedule means)
SCHEDULES = {
    "index_prices": (NYSESessionTimetable(delay_minutes=120),
                     "NYSE sessions only, 2 h after the close (Cboe updates its history files after the close; "
                     "the optional Yahoo chart series of REGIME_YAHOO_INDEXES come in the same task)"),
    "options_volume": (NYSESessionTimetable(delay_minutes=17 * 60),
                       "NYSE sessions only, the next morning (OCC publishes a session's volume the next day)"),
    "cftc_tff": (CronTriggerTimetable("0 17 * * 1,5", timezone="America/New_York"),
                 "Fridays and Mondays 17:00 New York (released Fridays 15:30; holiday weeks on Monday)"),
    "etf_nav": (NYSESessionTimetable(delay_minutes=240),
                "NYSE sessions only, 4 h after the close (issuers post the day's NAV in the evening)"),
    "options_putcall": (CronTriggerTimetable("0 6 * * 1", timezone="America/New_York"),
                        "Mondays 06:00 New York (Cboe's put/call volume history ended on 2019-10-04: a weekly check "
                        "that the archive is still there and unchanged; a revision is recorded like any other)"),
}


def ingest_dag(dataset: str):
    schedule, when = SCHEDULES[dataset]

    @dag(
        dag_id=f"ingest_{dataset}",
        schedule=schedule,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(retries=3),
        on_failure_callback=run_failure_callback(),
        tags=["regime", "ingest", dataset],
        doc_md=f"""
### Ingest `{dataset}`
Schedule: {when}. Obtains the upstream files (mirror or live, `REGIME_SOURCE`), lands the raw bytes in
`raw/`, and upserts canonical Parquet into `lake/{dataset}/`. A malformed file fails the task at once
(no retry) with the file and the problem in the log and the bytes in `quarantine/`; network errors are
retried, and so is a session the publisher has not posted yet. Data that ends too long before the session
(`REGIME_FRESHNESS_SESSIONS`) fails at once, with the operators' mail. Success updates the Asset
`{LAKE[dataset].name}` with the session as partition key: {"`regime_transform` runs for the session once index "
"prices, options volume and ETF NAV all have it" if dataset in SESSION_DATASETS else "the archive is read by the "
"next session's build" if dataset == "options_putcall" else "the weekly report is read by the next session's "
"build"} (docs/operations.md, "One build per session").
""",
    )
    def ingest_source():
        # one ingest of the dataset at a time on any worker (with regime_daily's): its pool of one slot
        @task(task_id=f"ingest_{dataset}", outlets=[LAKE[dataset]], pool=ingest_pool(dataset))
        def ingest() -> dict:
            return run.ingest_session(dataset)

        ingest()

    return ingest_source()


for _dataset in SCHEDULES:
    ingest_dag(_dataset)
