"""The benchmark's Airflow steps, each run in a worker process: `airflow db migrate`, `airflow version` (the CLI's
start-up) and `airflow dags test` with a local SMTP catcher, timed and CPU-sampled per task from its log."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from airflow_log import task_times
from measure import cpu_between, sample_cpu
from plan import ROOT


def w_dags_test(as_of: str, home: str, dag_id: str = "regime_daily", dags_folder: str | None = None) -> dict:
    """`airflow dags test <dag_id> <as_of>` with a local SMTP catcher; per-task times from its log, and CPU time
    (user + system of the `airflow` process, sampled every 20 ms and read over each phase's time window): on a
    shared machine CPU seconds are steadier than wall seconds."""
    import resource

    from regime.mailcatcher import MailCatcher

    airflow = str(Path(sys.executable).with_name("airflow"))
    env = {**os.environ, **airflow_env(home, dags_folder)}
    with MailCatcher() as catcher:
        env["AIRFLOW_CONN_SMTP_DEFAULT"] = catcher.connection_uri_json()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start, wall = time.time(), time.perf_counter()
        proc = subprocess.Popen([airflow, "dags", "test", dag_id, as_of], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        samples, stop = [(start, 0.0)], threading.Event()
        sampler = threading.Thread(target=sample_cpu, args=(proc.pid, samples, stop), daemon=True)
        sampler.start()
        try:
            log, _ = proc.communicate(timeout=900)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        finally:
            stop.set()
            sampler.join()
        seconds = time.perf_counter() - wall
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        mails = len(catcher.messages)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    samples.append((start + seconds, cpu))
    Path(home, "dags-test.log" if dag_id == "regime_daily" else f"dags-test-{dag_id}.log").write_text(log)
    if proc.returncode != 0:
        raise RuntimeError(f"airflow dags test {dag_id} failed:\n{log[-3000:]}")
    tasks = task_times(log)
    for name, t in tasks.items():
        if not name.startswith("_"):
            t["cpu"] = cpu_between(samples, t["start"], t["start"] + t["seconds"])
            t["work_cpu"] = cpu_between(samples, t["work_start"], t["work_start"] + t["work"]) \
                if "work_start" in t else 0.0
            for part in t.get("parts", {}).values():
                part["cpu"] = cpu_between(samples, part["start"], part["start"] + part["seconds"])
    span = tasks["_span"]
    span["before"], span["after"] = span["first_start"] - start, start + seconds - span["last_end"]
    span["before_cpu"] = cpu_between(samples, start, span["first_start"])
    span["after_cpu"] = cpu_between(samples, span["last_end"], start + seconds)
    return {"seconds": seconds, "tasks": tasks, "mails": mails, "airflow_cpu_seconds": cpu,
            "peak_rss_mb": after.ru_maxrss / 1024}


# `dags test` of this DAG is what Airflow costs whatever the DAG does: the fixed floor of a `dags test` run
FLOOR_DAG_ID = "airflow_floor"


FLOOR_DAG = f'''"""One task that does nothing: `airflow dags test` of it is Airflow's own cost (benchmarks/run.py)."""

import pendulum
from airflow.sdk import dag, task


@dag(dag_id="{FLOOR_DAG_ID}", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False)
def {FLOOR_DAG_ID}():
    @task(retries=0)
    def noop() -> None:
        return None

    noop()


{FLOOR_DAG_ID}()
'''


def w_cli_startup(home: str, repeat: int = 3) -> dict:
    """`airflow version` `repeat` times: the interpreter, `import airflow` and the CLI, which every `airflow ...`
    command pays; the median wall and CPU time."""
    import resource

    airflow = str(Path(sys.executable).with_name("airflow"))
    runs = []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run([airflow, "version"], env={**os.environ, **airflow_env(home)}, capture_output=True,
                              text=True, timeout=300)
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise RuntimeError(done.stdout[-2000:] + done.stderr[-2000:])
        runs.append((seconds, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime))
    walls, cpus = sorted(r[0] for r in runs), sorted(r[1] for r in runs)
    return {"seconds": walls[len(walls) // 2], "airflow_cpu_seconds": cpus[len(cpus) // 2], "runs": runs,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def w_migrate(home: str) -> dict:
    import resource

    airflow = str(Path(sys.executable).with_name("airflow"))
    done = subprocess.run([airflow, "db", "migrate"], env={**os.environ, **airflow_env(home)}, capture_output=True,
                          text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(done.stdout[-2000:] + done.stderr[-2000:])
    return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def airflow_env(home: str, dags_folder: str | None = None) -> dict:
    return {"AIRFLOW_HOME": home, "AIRFLOW__CORE__DAGS_FOLDER": dags_folder or str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__EMAIL__FROM_EMAIL": "Regime monitor <regime-monitor@localhost>"}
