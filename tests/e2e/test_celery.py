"""The scale-out path: `regime_daily` with the CeleryExecutor (the `celery_stack` fixture): Redis as the broker,
PostgreSQL as the result backend, two Celery workers of 2 slots each as separate processes. The four ingest tasks
spread over both workers and run at the same time; the warehouse build runs once, on one worker, as the one writer.
Two builds triggered at once (regime_daily and regime_transform) take turns in the Airflow pool `regime_warehouse` of
one slot, whichever worker runs them (the one writer without flock).

Which worker ran a task: the REST API's `hostname` of a task instance is the machine's name, the same for two
workers on one machine; each worker's log names every task it ran (its task instance id and Celery task id), and the
scheduler recorded that Celery task id as the task instance's `external_executor_id`.

The lake and the publish location are in a bucket (the `lake_bucket` moto_server, tests/e2e/conftest.py), the
credentials an Airflow connection: the run leaves the lake in the bucket, the workers' data dir only a working copy
of what was pushed, and the manifest naming the build it published, which `regime --warehouse s3://…` reads.

Why the spread is deterministic: the scheduler queues the four ingest tasks at once (parallelism 4), and a worker
takes at most `concurrency x worker_prefetch_multiplier` = 2 x 1 messages it has not acknowledged, acknowledging
each when its task ends (`task_acks_late`, Airflow's default): each worker gets two."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest

from regime.objectstore import file_sha256
from regime.remote_warehouse import MANIFEST

from .stack import VENV_BIN
from .test_scheduler import TASKS, _record, _warehouse

pytestmark = pytest.mark.e2e

RUN_TIMEOUT = 480
INGEST = sorted(t for t in TASKS if t.startswith("ingest_"))


def _celery_results(stack, celery_ids: list[str], timeout: float = 60) -> dict[str, str]:
    """Celery task id -> its state in the result backend, once all are SUCCESS or after `timeout` s: a task's
    state in Airflow is final when its task process reported it, its Celery task a moment later."""
    deadline = time.monotonic() + timeout
    while True:
        states = dict(stack.sql("select task_id, status from celery_taskmeta where task_id = any(%s)", celery_ids))
        if (len(states) == len(celery_ids) and set(states.values()) == {"SUCCESS"}) or time.monotonic() > deadline:
            return states
        time.sleep(1)


def test_the_celery_stack_is_up_with_two_workers_and_listens_on_loopback_only(celery_stack):
    assert celery_stack.api("GET", "importErrors")["total_entries"] == 0
    assert set(celery_stack.DAGS) <= celery_stack.dag_ids()
    assert len(celery_stack.worker_names) == 2
    assert celery_stack.celery_ping() == set(celery_stack.worker_names)   # both answer through the broker
    listening = celery_stack.listening()
    assert {name for name, _, _ in listening} >= {"api-server", "postgres", "redis"}
    assert all(address == "127.0.0.1" for _, address, _ in listening), listening
    # two worker processes, each with its prefork pool of 2 (no log server: --skip-serve-logs)
    for i in (1, 2):
        worker = celery_stack.service(f"celery-worker-{i}")
        assert worker.running()
        pool = [p for p in worker.tree() if "celery" in " ".join(p.cmdline())]
        assert len(pool) >= 3, [" ".join(p.cmdline()) for p in worker.tree()]


def _lake_files(stack) -> dict[str, int]:
    """Path (relative to the data dir) -> size of every file of the working copy's raw/, lake/ and quarantine/."""
    return {p.relative_to(stack.data_dir).as_posix(): p.stat().st_size
            for top in ("raw", "lake", "quarantine") for p in (stack.data_dir / top).rglob("*") if p.is_file()}


def _analyst(bucket, uri: str, cache, *args: str) -> subprocess.CompletedProcess:
    """`regime --warehouse <uri> <args>` as an analyst runs it: a process with the S3 settings in its environment
    (AWS_*; no Airflow, no REGIME_* pipeline settings) and a cache of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "REGIME_", "AWS_"))}
    env.update(bucket.server.env, REGIME_CACHE_DIR=str(cache))
    return subprocess.run([str(VENV_BIN / "regime"), "--warehouse", uri, *args], env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_run_spreads_its_ingest_over_both_workers_and_builds_once(celery_stack, lake_bucket, tmp_path):
    stack = celery_stack
    stack.unpause("regime_daily")
    before = len(stack.mail.messages)
    moto_cpu = lake_bucket.cpu_s()
    t0 = time.monotonic()
    run_id = stack.trigger("regime_daily", {"as_of": "2024-07-17"})
    trigger_s = time.monotonic() - t0
    run = stack.wait_for_run("regime_daily", run_id, timeout=RUN_TIMEOUT)
    tis = stack.task_instances("regime_daily", run_id)
    ran = stack.celery_executions(run_id)
    lake = lake_bucket.objects(lake_bucket.lake_prefix)
    _record(stack, "celery_rest_2024-07-17", run, tis, trigger_s,
            bucket={"objects_written": len(lake), "moto_server_cpu_s": round(lake_bucket.cpu_s() - moto_cpu, 1)})
    stack.metrics["runs"]["celery_rest_2024-07-17"]["workers"] = {
        node: sorted(e["task_id"] for e in ran if e["worker"] == node) for node in stack.worker_names}
    stack.write_metrics()

    assert run["state"] == "success", stack.describe("regime_daily", run_id)
    assert sorted(ti["task_id"] for ti in tis) == TASKS
    assert all(ti["state"] == "success" and ti["try_number"] == 1 for ti in tis), stack.describe("regime_daily",
                                                                                                  run_id)

    # every task instance ran exactly once, on one of the Celery workers, under the Celery task id the scheduler
    # recorded for it; Celery's result backend (the metadata DB's PostgreSQL) has each as SUCCESS
    assert sorted(e["ti_id"] for e in ran) == sorted(ti["id"] for ti in tis), ran
    assert {e["worker"] for e in ran} <= set(stack.worker_names)
    recorded = dict(stack.sql("select id::text, external_executor_id from task_instance where run_id = %s", run_id))
    assert recorded == {e["ti_id"]: e["celery_id"] for e in ran}
    assert _celery_results(stack, [e["celery_id"] for e in ran]) == {e["celery_id"]: "SUCCESS" for e in ran}

    # the ingest tasks: two on each worker, running at the same time on both
    ingest = {e["task_id"]: e["worker"] for e in ran if e["task_id"] in INGEST}
    assert sorted(ingest) == INGEST
    assert Counter(ingest.values()) == dict.fromkeys(stack.worker_names, 2), ingest
    span = {ti["task_id"]: (datetime.fromisoformat(ti["start_date"]), datetime.fromisoformat(ti["end_date"]))
            for ti in tis}
    first, second = stack.worker_names
    assert any(span[a][0] < span[b][1] and span[b][0] < span[a][1]
               for a in ingest if ingest[a] == first for b in ingest if ingest[b] == second), span

    # the build: one try, run once by one worker, after every ingest ended; published, its lock released and no
    # staging build left behind
    builds = [e for e in ran if e["task_id"] == "build_validate_publish"]
    assert len(builds) == 1, builds
    tries = stack.api("GET", f"dags/regime_daily/dagRuns/{run_id}/taskInstances/build_validate_publish/tries")
    assert tries["total_entries"] == 1, tries
    assert span["build_validate_publish"][0] >= max(span[t][1] for t in INGEST)
    warehouse = _warehouse(stack)
    assert warehouse["last_price"] == "2024-07-17" and warehouse["headlines"] > 0
    assert (stack.data_dir / "state" / "warehouse.lock").read_text() == ""
    assert sorted(p.name for p in (stack.data_dir / "build").glob("warehouse-*")) == []

    # the report and the alert mail, as with the LocalExecutor
    assert (stack.data_dir / "reports" / "2024-07-17.html").exists()
    alerts = [m for m in stack.mail.messages[before:] if m["Subject"].startswith("Regime alert: ")]
    assert len(alerts) == 1, [m["Subject"] for m in stack.mail.messages[before:]]
    assert alerts[0]["To"] == "analyst@example.test"

    # the lake is in the bucket: each dataset's partitions under <prefix>/lake/, its sources' raw files under raw/,
    # no temporary key left; the workers' data dir holds no lake file that was not pushed (same key, same size)
    datasets = sorted(t.removeprefix("ingest_") for t in INGEST)
    assert not [k for k in lake if k.rsplit("/", 1)[-1].endswith(".tmp")], lake
    for dataset in datasets:
        assert any(k.startswith(f"lake/{dataset}/") and k.endswith("/data.parquet") for k in lake), dataset
    for source in ("cboe", "occ", "cftc", "etf"):
        assert any(k.startswith(f"raw/{source}/as_of=") for k in lake), source
    local = _lake_files(stack)
    assert local, "the working copy is empty"
    assert {k: lake.get(k) for k in local} == local, sorted(k for k in local if lake.get(k) != local[k])[:20]
    partitions = {k for k in lake if k.startswith("lake/") and k.endswith("/data.parquet")}
    assert partitions == {k for k in local if k.startswith("lake/") and k.endswith("/data.parquet")}

    # the manifest names the build published locally, and an analyst's `regime --warehouse s3://…` reads it
    manifest = json.loads(lake_bucket.read(f"{lake_bucket.publish_prefix}/{MANIFEST}"))
    assert manifest["as_of"] == "2024-07-17"
    assert manifest["sha256"] == file_sha256(stack.data_dir / "warehouse.duckdb")
    assert lake_bucket.objects(lake_bucket.publish_prefix)[manifest["key"]] == manifest["size"]
    done = _analyst(lake_bucket, lake_bucket.publish_uri, tmp_path / "cache", "latest")
    assert done.returncode == 0, done.stderr
    assert f"reading build 2024-07-17 ({manifest['sha256'][:12]}) from {lake_bucket.publish_uri}/{manifest['key']}" \
        in done.stderr, done.stderr
    assert "Warehouse as of 2024-07-17" in done.stdout, done.stdout
    assert [file_sha256(p) for p in (tmp_path / "cache").rglob("*.duckdb")] == [manifest["sha256"]]

    # the credentials, given to the services as an Airflow connection only (no AWS_* variable), are in no log of
    # the stack (its services' and its tasks')
    assert [k for k in stack.env if k.startswith("AWS_")] == []
    assert stack.env["REGIME_S3_CONN_ID"] == lake_bucket.conn_id
    logs = stack.log_files()
    assert stack.task_log_files("regime_daily", run_id), logs
    for secret in (lake_bucket.server.env["AWS_SECRET_ACCESS_KEY"], lake_bucket.server.env["AWS_ACCESS_KEY_ID"]):
        assert [p for p in logs if secret in p.read_text(errors="replace")] == []


def test_two_builds_racing_on_two_workers_take_turns_in_the_warehouse_pool(celery_stack, lake_bucket):
    """One writer without flock (docs/operations.md, "One writer"): regime_transform (as of 2024-07-17, on the lake the
    run above landed) and regime_daily (as of 2024-07-16) triggered at the same moment, their tasks spread over both
    workers. Each build_validate_publish runs in the pool `regime_warehouse` of one slot, so the second build, ready
    while the first one runs, is not even queued until the first has ended: their [start, end] intervals do not
    overlap. (flock alone, regime.locks, works on one machine only, and would let the second build start and wait
    inside its task: overlapping intervals.)"""
    stack = celery_stack
    assert stack.api("GET", "pools/regime_warehouse")["slots"] == 1
    stack.unpause("regime_daily")
    wanted = {"regime_transform": "2024-07-17", "regime_daily": "2024-07-16"}
    t0 = time.monotonic()
    with ThreadPoolExecutor(2) as pool:  # both triggers at once
        runs = dict(zip(wanted, pool.map(lambda d: stack.trigger(d, {"as_of": wanted[d]}), wanted), strict=True))
    trigger_s = time.monotonic() - t0
    with ThreadPoolExecutor(2) as pool:  # each run's own wall time
        ended = dict(zip(runs, pool.map(lambda d: stack.wait_for_run(d, runs[d], timeout=RUN_TIMEOUT), runs),
                         strict=True))
    tis = {dag_id: stack.task_instances(dag_id, run_id) for dag_id, run_id in runs.items()}
    builds = {dag_id: next((ti for ti in tis[dag_id] if ti["task_id"] == "build_validate_publish"), {})
              for dag_id in runs}
    for dag_id, run in ended.items():
        _record(stack, f"celery_race_{dag_id}_{wanted[dag_id]}", run, tis[dag_id], trigger_s, build={
            k: builds[dag_id].get(k) for k in ("scheduled_when", "queued_when", "start_date", "end_date")})
    for dag_id, run in ended.items():
        assert run["state"] == "success", stack.describe(dag_id, runs[dag_id])

    # every writer task in its pool of one slot: the builds in the warehouse's, regime_daily's ingests in their
    # dataset's
    assert {dag_id: (b["pool"], b["pool_slots"]) for dag_id, b in builds.items()} == \
        dict.fromkeys(runs, ("regime_warehouse", 1))
    assert {ti["task_id"]: ti["pool"] for ti in tis["regime_daily"] if ti["task_id"] in INGEST} == \
        {t: f"regime_{t}" for t in INGEST}
    ran = {e["ti_id"]: e["worker"] for run_id in runs.values() for e in stack.celery_executions(run_id)}
    assert {ran[ti["id"]] for dag_id in runs for ti in tis[dag_id]} == set(stack.worker_names)  # both workers worked

    def at(ti: dict, key: str) -> datetime:
        return datetime.fromisoformat(ti[key])

    first, second = sorted(builds.values(), key=lambda b: at(b, "start_date"))
    # the race happened: the second build was ready (scheduled: upstream done) while the first one ran ...
    assert at(second, "scheduled_when") < at(first, "end_date"), (first, second)
    # ... and the pool held it back: queued to a worker only once the first had ended, so no overlap
    assert at(first, "end_date") <= at(second, "queued_when") <= at(second, "start_date"), (first, second)
    # the pool, not a lack of worker slots: a second before the first build ended, slots were free
    moment = at(first, "end_date") - timedelta(seconds=1)
    assert at(second, "scheduled_when") < moment
    running = [ti["task_id"] for d in runs for ti in tis[d] if at(ti, "start_date") <= moment < at(ti, "end_date")]
    assert len(running) < stack.workers * stack.worker_concurrency, running
    # the build that published last is the warehouse analysts read; nothing left locked or half-built
    assert _warehouse(stack)["last_price"] == wanted[second["dag_id"]]
    manifest = json.loads(lake_bucket.read(f"{lake_bucket.publish_prefix}/{MANIFEST}"))
    assert manifest["sha256"] == file_sha256(stack.data_dir / "warehouse.duckdb")  # and so did it to the bucket
    assert (stack.data_dir / "state" / "warehouse.lock").read_text() == ""
    assert sorted(p.name for p in (stack.data_dir / "build").glob("warehouse-*")) == []
