"""`make bench`: where the time goes, at today's size and at 100x it, measured in one run on this machine.

Sections (each step runs in its own subprocess, so that its peak RSS is its own):

  reference  the real 40-year reference mirror (../shared/reference-data/mirror; skipped where absent): ingest, full
             rebuild split into staging / indicators / extremes / regime_daily, then a one-day incremental update
             (warehouse.update) after a rebuild as of the previous session, checked identical to the full rebuild;
             the full rebuild and the update each followed by the validation gate (its own rows)
  sample     the same on the bundled sample (include/sample/mirror)
  history    the incremental update at 1x, 4x and 16x history (40, 160, 640 years of synthetic data for all four
             sources): a full build as of D-4, its gate, published; then four one-day updates (D-3 .. D), each
             followed by its gate and published: the first copies the published file, the other three update the
             spare (the file published before it); their median, and the daily update including its gate
  panel      options volume for 4,000 underlyings x 10 years (~10 M rows) and NAV history for 500 ETFs: bulk write
             to the lake, the full build (the same SQL and engine), and the pandas reference on the same lake,
             checked equal to the SQL readings, with the ratio pandas / DuckDB; then a build as of the day before,
             published, a one-day update and its gate (the full build's gate is not run: see docs/performance.md)
  airflow    `airflow dags test regime_daily` on the sample (temporary AIRFLOW_HOME, local SMTP catcher), the daily
             path: a warehouse as of the previous session is published first, so the run updates it incrementally;
             before it, Airflow's fixed floor: `airflow version`, and `dags test` of a one-task no-op DAG; after it
             the other daily DAGs (the four ingest DAGs, then regime_transform) on a data folder of their own

    .venv/bin/python benchmarks/run.py                      # everything (make bench)
    .venv/bin/python benchmarks/run.py --only sample history
    .venv/bin/python benchmarks/run.py --work /tmp/bench    # keep the data there (default: a temp dir, removed)

Prints the table (step, rows, seconds, rows/s, CPU seconds, peak RSS, ratio to the pandas reference) and writes it,
with every figure, to <work>/results.md and results.json. Timings are wall-clock on a shared machine: see the
load averages printed with the machine facts. docs/performance.md has a run and what it means.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
SAMPLE = ROOT / "include" / "sample" / "mirror"
REFERENCE = ROOT.parent / "shared" / "reference-data" / "mirror"
SAMPLE_LAST, SAMPLE_BEFORE = date(2024, 7, 17), date(2024, 7, 16)
REFERENCE_LAST, REFERENCE_BEFORE = date(2025, 12, 31), date(2025, 12, 30)
HISTORY_YEARS = 40  # 1x: the span of the reference mirror
HISTORY_SCALES = (1, 4, 16)
# a full build as of the first day, then one-day updates: the first copies the published file, the others take the
# spare (the file published before: warehouse.update)
HISTORY_DAYS = (date(2025, 12, 24), date(2025, 12, 26), date(2025, 12, 29), date(2025, 12, 30), date(2025, 12, 31))
PANEL = {"underlyings": 4000, "etfs": 500, "days": 2520}
SECTIONS = ("reference", "sample", "history", "panel", "airflow")
DATASETS = ("index_prices", "options_volume", "cftc_tff", "etf_nav")
BUILD_STEPS = ("meta", "staging", "indicators", "extremes", "regime_daily", "headlines", "checkpoint")
UPDATE_STEPS = ("check", "copy", "meta", "staging", "indicators", "extremes", "regime_daily", "headlines",
                "checkpoint")
GX_IMPORT: dict = {}  # the gate worker's import of great_expectations: start, end (time.time()), cpu
STEP_NAMES = {  # what each logged step is, for the table
    "check": "check: previous build's record and fingerprint",
    "copy": "copy the published file (or take the spare)",
    "meta": "meta: state tables copied in",
    "staging": "staging models + marts.prices",
    "indicators": "indicators",
    "extremes": "extremes",
    "regime_daily": "regime_daily",
    "headlines": "headlines",
    "checkpoint": "meta.build_info + checkpoint",
}


# --------------------------------------------------------------------------- measuring, inside a worker process


class Sampler:
    """Samples this process's RSS every few milliseconds, so that a step's peak can be read off its time window."""

    def __init__(self, every: float = 0.005):
        self.samples: list[tuple[float, int]] = []
        self.every = every
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((time.time(), rss_kb("VmRSS")))
            self.stop.wait(self.every)

    def peak_mb(self, start: float, end: float) -> float:
        inside = [kb for t, kb in self.samples if start <= t <= end]
        if not inside:  # shorter than the sampling interval: the sample nearest its end
            inside = [min(self.samples, key=lambda s: abs(s[0] - end))[1]]
        return max(inside) / 1024


def rss_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class StepLog(logging.Handler):
    """Collects the step timings warehouse.build / update log (extra step/table/rows/seconds)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.records: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, "step"):
            self.records.append({"step": record.step, "table": record.table, "rows": record.rows,
                                 "seconds": record.seconds, "end": record.created})

    def steps(self, sampler: Sampler) -> dict:
        """step -> seconds, rows, peak RSS over the step's tables (e.g. staging = 4 staging models + marts.prices)."""
        out: dict[str, dict] = {}
        for r in self.records:
            step = out.setdefault(r["step"], {"seconds": 0.0, "rows": 0, "peak_rss_mb": 0.0})
            step["seconds"] += r["seconds"]
            step["rows"] += r["rows"] or 0
            step["peak_rss_mb"] = max(step["peak_rss_mb"], sampler.peak_mb(r["end"] - r["seconds"], r["end"]))
        return out


def worker(step: str, args: dict) -> None:
    """Run one step in this process and print its measurements as the last line of stdout (JSON)."""
    import resource

    if step == "gate":  # GX's import, timed on its own before anything else imports it
        c0, t0 = time.process_time(), time.time()
        import great_expectations  # noqa: F401
        import great_expectations.expectations  # noqa: F401

        GX_IMPORT.update(start=t0, end=time.time(), cpu=time.process_time() - c0)
    import duckdb  # noqa: F401 - imported before the clock starts: a step's time is its own work
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow  # noqa: F401

    from regime import extremes, pipeline, warehouse  # noqa: F401

    logging.basicConfig(level=logging.WARNING)
    steps = StepLog()
    for name in ("regime.warehouse", "regime.extremes"):
        logging.getLogger(name).setLevel(logging.INFO)
        logging.getLogger(name).addHandler(steps)
    sampler = Sampler()
    sampler.thread.start()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started, wall = time.time(), time.perf_counter()
    result = WORKERS[step](**args)
    seconds = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_SELF)
    sampler.stop.set()
    result.setdefault("seconds", seconds)
    result["cpu_seconds"] = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
    result["peak_rss_mb"] = result.get("peak_rss_mb") or sampler.peak_mb(started, time.time())
    result["hwm_mb"] = rss_kb("VmHWM") / 1024
    result["steps"] = {**steps.steps(sampler), **result.get("steps", {})}
    if "total" in result["steps"]:  # warehouse.build / update: their own clock, not the worker's bookkeeping
        result["seconds"] = result["steps"]["total"]["seconds"]
    if "phases" in result:  # [(name, start, end)] measured by the worker itself
        result["steps"].update({name: {"seconds": end - start, "peak_rss_mb": sampler.peak_mb(start, end)}
                                for name, start, end in result.pop("phases")})
    print(json.dumps(result, default=str))


def _settings():
    from regime.config import get_settings

    return get_settings()


def w_ingest(as_of: str) -> dict:
    from regime import pipeline

    rows = 0
    for dataset in DATASETS:
        rows += sum(pipeline.ingest(dataset, date.fromisoformat(as_of), _settings())["rows"].values())
    return {"rows": rows}


def w_build(as_of: str, publish: bool = False) -> dict:
    from regime import warehouse

    settings = _settings()
    path = warehouse.build(settings, date.fromisoformat(as_of))
    result = {"path": str(path), "size_mb": path.stat().st_size / 1e6, "rows": _readings(path)}
    if publish:
        result["path"] = str(warehouse.publish(settings, path))
    return result


def w_update(as_of: str, publish: bool = True) -> dict:
    from regime import warehouse

    settings = _settings()
    day = date.fromisoformat(as_of)
    spare = warehouse.spare_path(settings)
    had_spare = spare.exists()
    path = warehouse.update(settings, day, settings.warehouse_path, spare)  # as pipeline.build
    base = "spare" if had_spare and not spare.exists() else "copy"
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        since = con.execute("select recomputed_after from meta.build_method").fetchall()[0][0]
        rows = con.execute("select count(*) from marts.indicators where date > $s", {"s": since}).fetchall()[0][0]
    finally:
        con.close()
    size = path.stat().st_size / 1e6
    if publish:
        warehouse.publish(settings, path)
    return {"rows": rows, "since": str(since), "size_mb": size, "path": str(path),
            "history": _readings(settings.warehouse_path if publish else path), "base": base}


def w_gate(path: str, as_of: str, publish: bool = False) -> dict:
    """The validation gate on a staging file, called as pipeline.validate calls it (then published with `publish`,
    as pipeline.build_validate_publish does): GX's import, the gate (read and prepare, validate) and its Data Docs
    timed apart. Fails when a blocking expectation fails."""
    import resource

    from regime import warehouse
    from regime.validation.gate import validate_build

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    c1, t1 = cpu(), time.time()
    settings = _settings()
    report = validate_build(Path(path), date.fromisoformat(as_of), settings.data_dir / "validation-docs",
                            settings.state_dir, settings.freshness_sessions, settings.warehouse_path,
                            settings.gap_tolerance_sessions)
    c2, t2 = cpu(), time.time()
    if publish:
        warehouse.publish(settings, Path(path))
    docs = next((end - start for name, start, end in report.phases if name == "Data Docs"), 0.0)
    return {"rows": report.rows, "checks": len(report.results), "scope": report.scope,
            "warnings": [w.line() for w in report.warnings][:5], "seconds": t2 - t1, "gate_cpu": c2 - c1,
            "import_seconds": GX_IMPORT["end"] - GX_IMPORT["start"], "import_cpu": GX_IMPORT["cpu"],
            "docs_seconds": docs, "phases": [("GX import", GX_IMPORT["start"], GX_IMPORT["end"]), *report.phases]}


def w_compare(a: str, b: str) -> dict:
    return {"differences": differences(a, b)}


def w_history(years: float) -> dict:
    import synth

    return {"rows": synth.history(_settings().lake_dir, years)}


def w_panel_lake() -> dict:
    import synth

    written = synth.panel(_settings().lake_dir, PANEL["underlyings"], PANEL["etfs"], PANEL["days"])
    return {"rows": sum(written.values()), "by_dataset": written}


def w_panel_queries(path: str, hold: bool = False) -> dict:
    """The 5 panel indicators' SQL alone (with the intermediate models they read, as a build runs them), not stored
    in the warehouse: what writing the readings costs. Results counted, or with `hold` inserted into one in-memory
    table (date, indicator, subject, value): held as the pandas reference holds its long frame."""
    import contextlib

    from reference import NAMES

    from regime import warehouse
    from regime.sql import FULL, connect

    settings = _settings()
    params = {"as_of": date.fromisoformat(str(HISTORY_DAYS[-1])), "small_caps": list(settings.small_caps),
              "large_caps": list(settings.large_caps)}
    con = connect(path, read_only=True, memory_limit=None if hold else settings.duckdb_memory_limit)
    rows = 0
    try:
        if hold:
            con.execute("attach ':memory:' as held (read_write)")
            con.execute("create table held.readings (date date, indicator varchar, subject varchar, value double)")
        with contextlib.closing(warehouse.indicator_queries(con, params, FULL, NAMES)) as queries:
            for indicator, sql, bound in queries:
                if hold:
                    query = f"insert into held.readings select date, $indicator, subject, value from ({sql})"
                    rows += con.execute(query, {**bound, "indicator": indicator.name}).fetchall()[0][0]
                else:
                    rows += con.execute(f"select count(*), sum(value) from ({sql})", bound).fetchall()[0][0]
    finally:
        con.close()
    return {"rows": rows}


def w_pandas(path: str) -> dict:
    """The pandas reference on the panel's lake, timed read and compute; then checked against marts.indicators."""
    import duckdb
    import pandas as pd
    import reference

    settings = _settings()
    t0 = time.time()
    volume, nav = reference.read_lake(settings.lake_dir)
    t1 = time.time()
    numbers = reference.values(volume, nav, settings.small_caps, settings.large_caps)
    t2 = time.time()
    got = reference.long_frame(numbers)
    t3 = time.time()
    del volume, nav, numbers
    got["date"] = pd.to_datetime(got["date"]).astype("datetime64[s]")
    con = duckdb.connect(path, read_only=True)
    try:  # a full outer join of the two, in DuckDB (a pandas merge of 31 M rows takes longer than the reference)
        con.register("pandas_readings", got)
        only, differ, checked = con.execute("""
            select count(*) filter (where s.date is null or p.date is null),
                   count(*) filter (where not (s.value is null and p.value is null)
                                    and (s.value is null or p.value is null
                                         or abs(s.value - p.value) > 1e-12 + 1e-9 * abs(p.value))),
                   count(*)
            from (select * from marts.indicators where list_contains($names, indicator)) as s
            full join (select date, indicator, subject, if(isnan(value), null, value) as value from pandas_readings)
                as p on p.date::date = s.date and p.indicator = s.indicator and p.subject = s.subject
        """, {"names": list(reference.NAMES)}).fetchall()[0]
    finally:
        con.close()
    if only or differ:
        raise AssertionError(f"pandas reference differs from the SQL: {only} rows in one only, {differ} values differ")
    return {"rows": len(got), "checked": checked, "seconds": t3 - t0,
            "phases": [("read", t0, t1), ("compute", t1, t3), ("values", t1, t2), ("long_frame", t2, t3)]}


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
        sampler = threading.Thread(target=_sample_cpu, args=(proc.pid, samples, stop), daemon=True)
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
            t["cpu"] = _cpu_between(samples, t["start"], t["start"] + t["seconds"])
            t["work_cpu"] = _cpu_between(samples, t["work_start"], t["work_start"] + t["work"]) \
                if "work_start" in t else 0.0
            for part in t.get("parts", {}).values():
                part["cpu"] = _cpu_between(samples, part["start"], part["start"] + part["seconds"])
    span = tasks["_span"]
    span["before"], span["after"] = span["first_start"] - start, start + seconds - span["last_end"]
    span["before_cpu"] = _cpu_between(samples, start, span["first_start"])
    span["after_cpu"] = _cpu_between(samples, span["last_end"], start + seconds)
    return {"seconds": seconds, "tasks": tasks, "mails": mails, "airflow_cpu_seconds": cpu,
            "peak_rss_mb": after.ru_maxrss / 1024}


def _sample_cpu(pid: int, samples: list, stop: threading.Event, every: float = 0.02) -> None:
    """Append (time, CPU seconds so far) of process `pid`, from /proc/<pid>/stat, until `stop` is set."""
    tick = os.sysconf("SC_CLK_TCK")
    while not stop.is_set():
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            samples.append((time.time(), (int(fields[11]) + int(fields[12])) / tick))  # utime + stime
        except (OSError, IndexError, ValueError):  # exited, or not yet readable
            pass
        stop.wait(every)


def _cpu_between(samples: list, t0: float, t1: float) -> float:
    """CPU seconds used between t0 and t1, interpolated between the samples around each."""

    def at(t: float) -> float:
        previous = samples[0]
        for sample in samples:
            if sample[0] >= t:
                if sample[0] == previous[0]:
                    return sample[1]
                return previous[1] + (sample[1] - previous[1]) * (t - previous[0]) / (sample[0] - previous[0])
            previous = sample
        return samples[-1][1]

    return max(0.0, at(t1) - at(t0))


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


def w_publish_day(as_of: str) -> dict:
    """Ingest and publish (build, validate, publish) as of a day: the warehouse a daily run finds in place."""
    from regime import pipeline

    settings = _settings()
    for dataset in DATASETS:
        pipeline.ingest(dataset, date.fromisoformat(as_of), settings)
    pipeline.build_validate_publish(date.fromisoformat(as_of), settings, incremental=False)
    return {}


WORKERS = {"ingest": w_ingest, "build": w_build, "update": w_update, "compare": w_compare, "history": w_history,
           "panel_lake": w_panel_lake, "panel_queries": w_panel_queries, "pandas": w_pandas,
           "dags_test": w_dags_test, "migrate": w_migrate, "publish_day": w_publish_day,
           "cli_startup": w_cli_startup, "gate": w_gate}


def _readings(path) -> int:
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("select count(*) from marts.indicators").fetchall()[0][0]
    finally:
        con.close()


def differences(a, b) -> list[str]:
    """Tables whose content differs between two warehouses (meta.build_method, meta.validation_runs — the state
    table of the gates run before each was built — and build_info.built_at aside)."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute(f"attach '{a}' as a (read_only)")
        con.execute(f"attach '{b}' as b (read_only)")
        listing = ("select schema_name || '.' || table_name, list(column_name order by column_index) from "
                   "duckdb_columns() where database_name = $db group by 1")
        tables = [dict(con.execute(listing, {"db": db}).fetchall()) for db in ("a", "b")]
        if tables[0].keys() != tables[1].keys():
            return [f"tables differ: {sorted(tables[0].keys() ^ tables[1].keys())}"]
        found = []
        for table, columns in sorted(tables[0].items()):
            if table in ("meta.build_method", "meta.validation_runs"):  # how it was made; the gates run so far
                continue
            if columns != tables[1][table]:
                found.append(f"{table}: columns differ")
                continue
            cols = ", ".join(f'"{c}"' for c in columns if (table, c) != ("meta.build_info", "built_at"))
            only = con.execute(f"select count(*) from ((select {cols} from a.{table} except all select {cols} from"
                               f" b.{table}) union all (select {cols} from b.{table} except all select {cols} from "
                               f"a.{table}))").fetchall()[0][0]
            if only:
                found.append(f"{table}: {only} rows in only one of them")
        return found
    finally:
        con.close()


def task_times(log: str) -> dict:
    """task -> seconds from '[DAG TEST] starting task_id=' to 'end task', and the seconds its callable ran (from
    the end of the task runner's pre-execute log group to 'Done. Returned value')."""
    stamp = r"^(\S+Z) "
    tasks: dict[str, dict] = {}
    current = None
    for line in log.splitlines():
        m = re.match(stamp + r".*\[DAG TEST\] starting task_id=(\S+)", line)
        if m:
            current = m.group(2)
            tasks[current] = {"start": _ts(m.group(1))}
            continue
        if current is None or not (m := re.match(stamp, line)):
            continue
        t = _ts(m.group(1))
        if "::endgroup::" in line and "work_start" not in tasks[current]:
            tasks[current]["work_start"] = t
        elif "Done. Returned value" in line:
            tasks[current]["work_end"] = t
        elif f"[DAG TEST] end task task_id={current}" in line:
            tasks[current]["end"] = t
        elif (built := re.search(r"\] (full build as of \S+|update from \S+ to \S+),.*? in ([0-9.]+) s \(total\)|"
                                 r"\] (full build as of \S+) in ([0-9.]+) s \(total\)", line)):
            what, seconds = (built.group(1), built.group(2)) if built.group(1) else (built.group(3), built.group(4))
            tasks[current]["warehouse"] = (t, float(seconds), what)
        elif re.search(r"\] published \S+warehouse.duckdb", line):
            tasks[current]["published"] = t
        elif (imported := re.search(r"\] imported the pipeline and the validation gate .*? in ([0-9.]+) s", line)):
            tasks[current]["imports"] = float(imported.group(1))
    out = {}
    for name, t in tasks.items():
        total = t.get("end", t["start"]) - t["start"]
        work = t.get("work_end", 0) - t.get("work_start", 0) if "work_end" in t and "work_start" in t else 0.0
        out[name] = {"start": t["start"], "seconds": total, "work": work, "overhead": total - work}
        if "work_start" in t:
            out[name]["work_start"] = t["work_start"]
        if "warehouse" in t and "published" in t:  # build_validate_publish: imports, the build, the gate
            at, seconds, how = t["warehouse"]
            edges = [("before the build (imports, lock, sweep)", t["work_start"])]
            if "imports" in t:
                edges = [("imports: pipeline, validation gate (Great Expectations)", t["work_start"]),
                         ("lock, sweep", t["work_start"] + t["imports"])]
            edges += [(f"warehouse: {how}", at - seconds), ("validation gate (Great Expectations)", at),
                      ("", t["published"])]
            out[name]["parts"] = {part: {"start": t0, "seconds": t1 - t0}
                                  for (part, t0), (_, t1) in zip(edges, edges[1:], strict=False)}
    first = min((t["start"] for t in tasks.values()), default=0.0)
    last = max((t.get("end", 0.0) for t in tasks.values()), default=0.0)
    out["_span"] = {"first_start": first, "last_end": last}
    return out


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def airflow_env(home: str, dags_folder: str | None = None) -> dict:
    return {"AIRFLOW_HOME": home, "AIRFLOW__CORE__DAGS_FOLDER": dags_folder or str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__EMAIL__FROM_EMAIL": "Regime monitor <regime-monitor@localhost>"}


# --------------------------------------------------------------------------- orchestrating, in the parent process


class Bench:
    def __init__(self, work: Path):
        self.work = work
        self.rows: list[dict] = []  # the printed table
        self.notes: list[str] = []
        self.results: dict = {}

    def run(self, step: str, data: Path, env: dict | None = None, **args) -> dict:
        settings_env = {"REGIME_DATA_DIR": str(data), "REGIME_SOURCE": "mirror", "PYTHONUNBUFFERED": "1",
                        **(env or {})}
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", step, json.dumps(args, default=str)]
        done = subprocess.run(cmd, env={**os.environ, **settings_env}, capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 0:
            raise RuntimeError(f"step {step} {args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def add(self, section: str, step: str, rows, seconds, rss=None, cpu=None, ratio=None, indent: bool = False):
        self.rows.append({"section": section, "step": ("  " if indent else "") + step, "rows": rows,
                          "seconds": seconds, "cpu": cpu, "rss": rss, "ratio": ratio})

    def add_result(self, section: str, step: str, result: dict, parts=(), rows_key: str = "rows"):
        self.add(section, step, result.get(rows_key), result["seconds"], result.get("peak_rss_mb"),
                 result.get("cpu_seconds"))
        for part in parts:
            s = result["steps"].get(part)
            if s:
                name = STEP_NAMES.get(part, part)
                if part == "staging" and "check" in result["steps"]:
                    name = "staging: lake journals read (or lake compared), new rows applied"
                self.add(section, name, s.get("rows") or None, s["seconds"], s.get("peak_rss_mb"), indent=True)

    def add_gate(self, section: str, step: str, gate: dict) -> None:
        """A gate's own rows: the gate (rows handed to GX; read and prepare + validate + Data Docs), GX's import and
        the Data Docs apart."""
        self.add(section, f"{step} (rows validated)", gate["rows"], gate["seconds"], gate["peak_rss_mb"],
                 gate["gate_cpu"])
        for name in ("read and prepare", "validate (GX)", "Data Docs"):
            part = gate["steps"].get(name)
            if part:
                self.add(section, f"gate: {name}", None, part["seconds"], part["peak_rss_mb"], indent=True)
        self.add(section, "GX import (once per process, not in the gate's figure)", None, gate["import_seconds"],
                 gate["steps"].get("GX import", {}).get("peak_rss_mb"), gate["import_cpu"], indent=True)

    # ---------------------------------------------------------------- sections

    def mirror(self, section: str, mirror: Path, last: date, before: date) -> None:
        data = self.work / section
        env = {"REGIME_MIRROR_DIR": str(mirror)}
        ingest = self.run("ingest", data, env, as_of=last)
        self.add_result(section, "ingest, 4 sources (lake rows)", ingest)
        full = self.run("build", data, env, as_of=last)
        self.add_result(section, f"full rebuild as of {last} (readings)", full, BUILD_STEPS)
        full_gate = self.run("gate", data, env, path=full["path"], as_of=last)
        self.add_gate(section, "gate of the full rebuild", full_gate)
        self.run("build", data, env, as_of=before, publish=True)
        update = self.run("update", data, env, as_of=last, publish=False)
        self.add_result(section, f"incremental update {before} -> {last} (readings recomputed)", update,
                        UPDATE_STEPS)
        gate = self.run("gate", data, env, path=update["path"], as_of=last, publish=True)
        self.add_gate(section, "gate of the update", gate)
        self.add(section, "daily update including its gate (update + gate + Data Docs)", None,
                 update["seconds"] + gate["seconds"], cpu=update["cpu_seconds"] + gate["gate_cpu"])
        same = self.run("compare", data, env, a=full["path"], b=str(data / "warehouse.duckdb"))["differences"]
        self.notes.append(f"{section}: update == full rebuild: {same or 'yes, every table'}")
        self.results[section] = {"ingest": ingest, "full": full, "update": update, "differences": same,
                                 "full_gate": full_gate, "gate": gate}

    def history(self) -> None:
        rows = []
        for scale in HISTORY_SCALES:
            data = self.work / f"history-{scale}x"
            env = {"REGIME_MIRROR_DIR": str(data / "no-mirror")}
            lake = self.run("history", data, env, years=HISTORY_YEARS * scale)
            full = self.run("build", data, env, as_of=HISTORY_DAYS[0])
            full_gate = self.run("gate", data, env, path=full["path"], as_of=HISTORY_DAYS[0], publish=True)
            runs = []
            for day in HISTORY_DAYS[1:]:  # update, gate, publish: as pipeline.build_validate_publish
                update = self.run("update", data, env, as_of=day, publish=False)
                update["gate"] = self.run("gate", data, env, path=update["path"], as_of=day, publish=True)
                update["daily"] = update["seconds"] + update["gate"]["seconds"]
                runs.append(update)
            first, *updates = runs
            if first["base"] != "copy" or any(u["base"] != "spare" for u in updates):
                raise AssertionError(f"updates started from {[u['base'] for u in (first, *updates)]}")
            median = sorted(updates, key=lambda u: u["seconds"])[len(updates) // 2]
            daily = sorted(updates, key=lambda u: u["daily"])[len(updates) // 2]
            label = f"{scale}x ({HISTORY_YEARS * scale} y)"
            self.add("history", f"{label}: lake write (rows)", lake["rows"], lake["seconds"], lake["peak_rss_mb"],
                     lake["cpu_seconds"])
            self.add_result("history", f"{label}: full rebuild (readings)", full, BUILD_STEPS)
            self.add_gate("history", f"{label}: gate of the full rebuild", full_gate)
            for run, name in ((median, f"one-day update from the spare, median of {len(updates)}"),
                              (first, "one-day update from a copy (the first after a full build)")):
                self.add("history", f"{label}: {name} (readings recomputed)", run["rows"], run["seconds"],
                         run["peak_rss_mb"], run["cpu_seconds"])
                for part in UPDATE_STEPS:
                    s = run["steps"].get(part)
                    if s and (run is median or part in ("copy", "checkpoint")):
                        self.add("history", STEP_NAMES[part], s.get("rows") or None, s["seconds"],
                                 s.get("peak_rss_mb"), indent=True)
            self.add_gate("history", f"{label}: gate of that update (the median's)", median["gate"])
            self.add("history", f"{label}: daily update including its gate, median of {len(updates)}", None,
                     daily["daily"], max(daily["peak_rss_mb"], daily["gate"]["peak_rss_mb"]),
                     daily["cpu_seconds"] + daily["gate"]["gate_cpu"])
            if scale == HISTORY_SCALES[0]:
                check = self.run("build", data, env, as_of=HISTORY_DAYS[-1])
                same = self.run("compare", data, env, a=check["path"], b=str(data / "warehouse.duckdb"))
                self.notes.append(f"history 1x: {len(HISTORY_DAYS) - 1} chained updates == full rebuild as of "
                                  f"{HISTORY_DAYS[-1]}: "
                                  f"{'yes, every table' if not same['differences'] else same['differences']}")
            rows.append({"scale": scale, "history_readings": median["history"], "full": full["seconds"],
                         "full_gate": full_gate["seconds"], "full_gate_rss": full_gate["peak_rss_mb"],
                         "gate": median["gate"]["seconds"], "gate_rss": median["gate"]["peak_rss_mb"],
                         "daily": daily["daily"], "dailies": [u["daily"] for u in updates],
                         "update": median["seconds"], "updates": [u["seconds"] for u in updates],
                         "steps": median["steps"], "size_mb": median["size_mb"], "full_steps": full["steps"],
                         "first": first["seconds"], "first_steps": first["steps"]})
            shutil.rmtree(data, ignore_errors=True)
        self.results["history"] = rows

    def panel(self) -> None:
        import synth

        data = self.work / "panel"
        names, funds = synth.panel_names(PANEL["underlyings"], PANEL["etfs"])
        env = {"REGIME_MIRROR_DIR": str(data / "no-mirror"), "REGIME_SMALL_CAPS": ",".join(funds[:len(funds) // 2]),
               "REGIME_LARGE_CAPS": ",".join(funds[len(funds) // 2:])}
        lake = self.run("panel_lake", data, env)
        self.add("panel", "bulk write to the lake (rows)", lake["rows"], lake["seconds"], lake["peak_rss_mb"],
                 lake["cpu_seconds"])
        full = self.run("build", data, env, as_of=HISTORY_DAYS[-1])
        queries = self.run("panel_queries", data, env, path=full["path"])
        held = self.run("panel_queries", data, env, path=full["path"], hold=True)
        pandas = self.run("pandas", data, env, path=full["path"])
        st, ind = full["steps"]["staging"], full["steps"]["indicators"]
        read, compute = pandas["steps"]["read"], pandas["steps"]["compute"]
        numbers, frame = pandas["steps"]["values"], pandas["steps"]["long_frame"]
        self.add_result("panel", "full build (readings)", full)
        self.add("panel", "staging (lake rows read and stored)", st["rows"], st["seconds"], st["peak_rss_mb"],
                 ratio=read["seconds"] / st["seconds"], indent=True)
        self.add("panel", "indicators (readings computed and stored)", ind["rows"], ind["seconds"],
                 ind["peak_rss_mb"], ratio=compute["seconds"] / ind["seconds"], indent=True)
        for part in ("extremes", "regime_daily"):
            s = full["steps"][part]
            self.add("panel", part, s["rows"], s["seconds"], s["peak_rss_mb"], indent=True)
        both = st["seconds"] + ind["seconds"]
        self.add("panel", "lake -> readings, DuckDB (staging + indicators)", ind["rows"], both,
                 max(st["peak_rss_mb"], ind["peak_rss_mb"]), ratio=pandas["seconds"] / both)
        self.add("panel", "the 5 indicator queries (+ 2 intermediate models), readings counted", queries["rows"],
                 queries["seconds"], queries["peak_rss_mb"], queries["cpu_seconds"],
                 ratio=numbers["seconds"] / queries["seconds"])
        self.add("panel", "the same, readings held in one in-memory table", held["rows"], held["seconds"],
                 held["peak_rss_mb"], held["cpu_seconds"], ratio=compute["seconds"] / held["seconds"])
        self.add("panel", "pandas reference: read the lake + compute", pandas["rows"], pandas["seconds"],
                 max(read["peak_rss_mb"], compute["peak_rss_mb"]), ratio=1.0)
        self.add("panel", "read (pd.read_parquet)", lake["by_dataset"]["options_volume"]
                 + lake["by_dataset"]["etf_nav"], read["seconds"], read["peak_rss_mb"], indent=True)
        self.add("panel", "compute (groupby + rolling, then the long frame)", pandas["rows"], compute["seconds"],
                 compute["peak_rss_mb"], indent=True)
        self.add("panel", "  values (sort, groupby + rolling)", pandas["rows"], numbers["seconds"],
                 numbers["peak_rss_mb"], indent=True)
        self.add("panel", "  long frame (date, indicator, subject, value)", pandas["rows"], frame["seconds"],
                 frame["peak_rss_mb"], indent=True)
        self.notes.append("panel: ratios compare like with like: the counted queries with pandas' values, the readings "
                          "held in memory with pandas' compute (values + long frame), the build's indicators step "
                          "(stored) with pandas' compute")
        self.notes.append(f"panel: pandas reference == SQL readings (rtol 1e-9): yes, {pandas['checked']:,} readings")
        # the daily path on the panel: a full build as of the day before, published (its gate not run: see
        # docs/performance.md), then a one-day update and its gate
        discard = Path(full["path"])
        discard.unlink(missing_ok=True)
        self.run("build", data, env, as_of=HISTORY_DAYS[-2], publish=True)
        update = self.run("update", data, env, as_of=HISTORY_DAYS[-1], publish=False)
        gate = self.run("gate", data, env, path=update["path"], as_of=HISTORY_DAYS[-1], publish=True)
        self.add_result("panel", f"one-day update {HISTORY_DAYS[-2]} -> {HISTORY_DAYS[-1]} from a copy (readings "
                        "recomputed)", update, UPDATE_STEPS)
        self.add_gate("panel", "gate of that update", gate)
        self.add("panel", "daily update including its gate (update + gate + Data Docs)", None,
                 update["seconds"] + gate["seconds"], max(update["peak_rss_mb"], gate["peak_rss_mb"]),
                 update["cpu_seconds"] + gate["gate_cpu"])
        self.notes.append("panel: the full build's gate is not run (it validates all 31.5 M readings in pandas: "
                          "97 s, 13.7 GB measured for issue #18)")
        self.results["panel"] = {"lake": lake, "full": full, "queries": queries, "held": held, "pandas": pandas,
                                 "update": update, "gate": gate}
        shutil.rmtree(data, ignore_errors=True)

    def airflow(self) -> None:
        data = self.work / "airflow"
        home = self.work / "airflow-home"
        home.mkdir(parents=True, exist_ok=True)
        env = {"REGIME_MIRROR_DIR": str(SAMPLE)}
        migrate = self.run("migrate", data, env, home=str(home))
        self.add("airflow", "airflow db migrate (set-up, not in the run)", None, migrate["seconds"],
                 migrate["peak_rss_mb"])
        self.run("publish_day", data, env, as_of=SAMPLE_BEFORE)  # yesterday's run, outside Airflow

        # Airflow's fixed cost, whatever the DAG does: the CLI start-up, and `dags test` of a one-task no-op DAG
        # (its own DAG folder, same home and metadata DB)
        cli = self.run("cli_startup", data, env, home=str(home))
        self.add("airflow", "airflow version: interpreter + import airflow + CLI (median of 3)", None,
                 cli["seconds"], cli["peak_rss_mb"], cli["airflow_cpu_seconds"])
        floor_dags = self.work / "airflow-floor-dags"
        floor_dags.mkdir(parents=True, exist_ok=True)
        (floor_dags / f"{FLOOR_DAG_ID}.py").write_text(FLOOR_DAG)
        floor = self.run("dags_test", data, env, as_of=SAMPLE_LAST, home=str(home), dag_id=FLOOR_DAG_ID,
                         dags_folder=str(floor_dags))
        noop, floor_span = floor["tasks"]["noop"], floor["tasks"]["_span"]
        self.add("airflow", "dags test of a one-task no-op DAG: Airflow's fixed floor", None, floor["seconds"],
                 floor["peak_rss_mb"], floor["airflow_cpu_seconds"])
        self.add("airflow", "before the task (CLI start, DAG parse + sync x2, run created)", None,
                 floor_span["before"], cpu=floor_span["before_cpu"], indent=True)
        self.add("airflow", f"noop: Airflow {noop['overhead']:.1f} s (in-process Execution API start)", None,
                 noop["seconds"], cpu=noop["cpu"], indent=True)
        self.add("airflow", "after the task (run finished -> exit: interpreter teardown)", None,
                 floor_span["after"], cpu=floor_span["after_cpu"], indent=True)

        run = self.run("dags_test", data, env, as_of=SAMPLE_LAST, home=str(home))
        tasks = {k: v for k, v in run["tasks"].items() if not k.startswith("_")}
        span = run["tasks"]["_span"]
        work, work_cpu = sum(t["work"] for t in tasks.values()), sum(t["work_cpu"] for t in tasks.values())
        run_cpu, floor_cpu = run["airflow_cpu_seconds"], floor["airflow_cpu_seconds"]
        self.add("airflow", f"dags test regime_daily {SAMPLE_LAST}: {len(tasks)} tasks, end to end", None,
                 run["seconds"], run["peak_rss_mb"], run_cpu)
        self.add("airflow", "before the first task (CLI start, DAG parse + sync x2, run created)", None,
                 span["before"], cpu=span["before_cpu"], indent=True)
        for i, (name, t) in enumerate(tasks.items()):
            self.add("airflow", f"{name}: task code {t['work']:.1f} s ({t['work_cpu']:.1f} CPU s) + Airflow "
                     f"{t['overhead']:.1f} s" + (" (Execution API start)" if i == 0 else ""), None, t["seconds"],
                     cpu=t["cpu"], indent=True)
            for part, p in t.get("parts", {}).items():
                self.add("airflow", f"  {part}", None, p["seconds"], cpu=p["cpu"], indent=True)
        self.add("airflow", "after the last task (run finished -> exit: interpreter teardown)", None, span["after"],
                 cpu=span["after_cpu"], indent=True)
        beyond, beyond_cpu = run["seconds"] - floor["seconds"], run_cpu - floor_cpu
        self.add("airflow", f"the run less the floor: task code {work:.1f} s ({work_cpu:.1f} CPU s) + the rest",
                 None, beyond, cpu=beyond_cpu)

        def rest(span_, tasks_):  # CPU s: before the first task, Airflow's share of the tasks, after the last
            return span_["before_cpu"], sum(t["cpu"] - t["work_cpu"] for t in tasks_.values()), span_["after_cpu"]

        ours, theirs = rest(span, tasks), rest(floor_span, {"noop": noop})
        self.notes.append(f"airflow: task code {work:.1f} s of {run['seconds']:.1f} s end to end "
                          f"({100 * work / run['seconds']:.0f} %), {work_cpu:.1f} of {run_cpu:.1f} CPU s "
                          f"({100 * work_cpu / run_cpu:.0f} %); {run['mails']} alert mail(s) caught")
        self.notes.append(
            f"airflow: fixed floor (`dags test` of a no-op DAG, same home) {floor['seconds']:.1f} s, {floor_cpu:.1f} "
            f"CPU s: {theirs[0]:.1f} before its task, {theirs[1]:.1f} starting it (the in-process Execution API), "
            f"{theirs[2]:.1f} after it (interpreter teardown); `airflow version` alone {cli['seconds']:.1f} s, "
            f"{cli['airflow_cpu_seconds']:.1f} CPU s")
        self.notes.append(
            f"airflow: the run less the floor {beyond:.1f} s, {beyond_cpu:.1f} CPU s, of which task code "
            f"{work:.1f} s ({100 * work / beyond:.0f} %), {work_cpu:.1f} CPU s ({100 * work_cpu / beyond_cpu:.0f} %)."
            f" The rest, CPU s over the floor's: before the first task {ours[0] - theirs[0]:+.1f}, Airflow's share of"
            f" the tasks {ours[1] - theirs[1]:+.1f} ({len(tasks)} tasks, not 1), after the last "
            f"{ours[2] - theirs[2]:+.1f} (teardown of the task libraries' modules)")
        self.results["airflow"] = {"migrate": migrate, "cli_startup": cli, "floor": floor, "run": run,
                                   "split": self.airflow_split(home, env, floor)}

    def airflow_split(self, home: Path, env: dict, floor: dict) -> dict:
        """The other daily DAGs, the production path: the four ingest DAGs (one source each, on its own NYSE
        timetable) and then regime_transform (triggered by their lake Assets), on a data folder of their own where
        yesterday's warehouse was published."""
        data = self.work / "airflow-split"
        self.run("publish_day", data, env, as_of=SAMPLE_BEFORE)
        runs, total, work_total = {}, 0.0, 0.0
        for dag_id in (*(f"ingest_{name}" for name in DATASETS), "regime_transform"):
            run = self.run("dags_test", data, env, as_of=SAMPLE_LAST, home=str(home), dag_id=dag_id)
            tasks = {k: v for k, v in run["tasks"].items() if not k.startswith("_")}
            work = sum(t["work"] for t in tasks.values())
            names = ", ".join(f"{name} {t['work']:.1f} s" for name, t in tasks.items())
            self.add("airflow", f"dags test {dag_id} {SAMPLE_LAST}: {len(tasks)} task(s), end to end", None,
                     run["seconds"], run["peak_rss_mb"], run["airflow_cpu_seconds"])
            self.add("airflow", f"task code: {names}; beyond the floor "
                     f"{run['seconds'] - floor['seconds']:.1f} s", None, work, indent=True)
            runs[dag_id], total, work_total = run, total + run["seconds"], work_total + work
        self.notes.append(f"airflow: the split daily path (4 ingest DAGs, then regime_transform) {total:.1f} s in 5"
                          f" `dags test` runs, of which task code {work_total:.1f} s and 5 x the floor"
                          f" {5 * floor['seconds']:.1f} s; under a running scheduler the floor is paid once per"
                          " server start, not per run")
        return runs


# --------------------------------------------------------------------------- output


def machine() -> list[str]:
    import duckdb
    import numpy
    import pandas

    cpu = platform.processor()
    with open("/proc/cpuinfo") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    mem = rss_meminfo("MemTotal") / 1024 / 1024
    return [f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GB RAM, {platform.system()} {platform.release()}",
            f"Python {platform.python_version()}, DuckDB {duckdb.__version__} (threads: all cores), "
            f"numpy {numpy.__version__}, pandas {pandas.__version__}"]


def rss_meminfo(field: str) -> int:
    with open("/proc/meminfo") as info:
        for line in info:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def busy_processes() -> str:
    """Other processes using CPU right now (this benchmark's own excluded), from ps."""
    done = subprocess.run(["ps", "-eo", "pid,ppid,pcpu,comm", "--sort=-pcpu"], capture_output=True, text=True)
    mine = {os.getpid()}
    rows = []
    for line in done.stdout.splitlines()[1:]:
        pid, ppid, pcpu, comm = line.split(None, 3)
        if int(pid) in mine or int(ppid) in mine or float(pcpu) < 5:
            continue
        rows.append(f"{comm} {pcpu}%")
    return ", ".join(rows[:6]) or "none above 5 % CPU"


def table(rows: list[dict]) -> str:
    head = ["section", "step", "rows", "seconds", "rows/s", "CPU s", "peak RSS MB", "pandas / DuckDB"]
    body = []
    for r in rows:
        rate = r["rows"] / r["seconds"] if r["rows"] and r["seconds"] else None
        body.append([r["section"], r["step"], f"{r['rows']:,}" if r["rows"] is not None else "",
                     f"{r['seconds']:.2f}", f"{rate:,.0f}" if rate else "",
                     f"{r['cpu']:.1f}" if r.get("cpu") is not None else "",
                     f"{r['rss']:,.0f}" if r["rss"] else "", f"{r['ratio']:.1f}x" if r["ratio"] else ""])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]
    right = {2, 3, 4, 5, 6, 7}

    def line(cells):
        return "| " + " | ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths, strict=True))) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if i in right else "-" * (w + 2) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(head), sep, *(line(b) for b in body)])


def flatness(rows: list[dict]) -> str:
    """The update against history size, and the full rebuild's extremes step per reading (its growth)."""
    if not rows:
        return ""
    out = ["| history | readings | full rebuild s | its extremes step s (us per reading) | one-day update s from the"
           " spare, median (runs) | of which lake check s | take the spare s | indicators + extremes + regime_daily s"
           " | checkpoint s | update from a copy s (copy s, checkpoint s) | file MB |",
           "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        steps, full, first = r["steps"], r["full_steps"], r["first_steps"]
        check, copy = steps.get("staging", {}).get("seconds", 0), steps.get("copy", {}).get("seconds", 0)
        rest = sum(steps.get(s, {}).get("seconds", 0) for s in ("indicators", "extremes", "regime_daily"))
        runs = ", ".join(f"{u:.2f}" for u in r["updates"])
        ext = full["extremes"]
        out.append(f"| {r['scale']}x ({HISTORY_YEARS * r['scale']} y) | {r['history_readings']:,} | {r['full']:.1f} |"
                   f" {ext['seconds']:.2f} ({1e6 * ext['seconds'] / ext['rows']:.2f}) | {r['update']:.2f} ({runs}) |"
                   f" {check:.2f} | {copy:.2f} | {rest:.2f} | {steps.get('checkpoint', {}).get('seconds', 0):.2f} |"
                   f" {r['first']:.2f} ({first.get('copy', {}).get('seconds', 0):.2f},"
                   f" {first.get('checkpoint', {}).get('seconds', 0):.2f}) | {r['size_mb']:.0f} |")
    out += ["", "| history | one-day update s (median) | its gate s (peak RSS MB) | daily update including its gate s, "
            "median (runs) | full rebuild s | its gate s (peak RSS MB) |", "|---|--:|--:|--:|--:|--:|"]
    for r in rows:
        dailies = ", ".join(f"{d:.2f}" for d in r["dailies"])
        out.append(f"| {r['scale']}x | {r['update']:.2f} | {r['gate']:.2f} ({r['gate_rss']:,.0f}) | {r['daily']:.2f}"
                   f" ({dailies}) | {r['full']:.1f} | {r['full_gate']:.1f} ({r['full_gate_rss']:,.0f}) |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--work", type=Path, help="keep the benchmark's data here (default: a temporary dir)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="?", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.worker:
        worker(options.worker, json.loads(options.args or "{}"))
        return 0
    sections = options.only or list(SECTIONS)
    work = options.work or Path(tempfile.mkdtemp(prefix="regime-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    bench = Bench(work)
    started = time.perf_counter()
    facts = machine()
    facts.append(f"load average at start: {load()}; other busy processes: {busy_processes()}")
    print("\n".join(facts), flush=True)
    for section in sections:
        t = time.perf_counter()
        print(f"... {section}", flush=True)
        if section == "reference":
            if REFERENCE.exists():
                bench.mirror("reference", REFERENCE, REFERENCE_LAST, REFERENCE_BEFORE)
            else:
                bench.notes.append(f"reference: skipped, {REFERENCE} is absent")
        elif section == "sample":
            bench.mirror("sample", SAMPLE, SAMPLE_LAST, SAMPLE_BEFORE)
        else:
            getattr(bench, section)()
        print(f"    {section} done in {time.perf_counter() - t:.0f} s (load {load()})", flush=True)
    facts.append(f"load average at end: {load()}; other busy processes: {busy_processes()}")
    total = time.perf_counter() - started
    text = "\n".join([
        "Machine: " + "; ".join(facts), "",
        table(bench.rows), "",
        flatness(bench.results.get("history", [])), "",
        *[f"- {n}" for n in bench.notes],
        f"- whole benchmark: {total:.0f} s",
    ])
    print("\n" + text)
    (work / "results.md").write_text(text + "\n")
    (work / "results.json").write_text(json.dumps({"facts": facts, "rows": bench.rows, "notes": bench.notes,
                                                    "results": bench.results, "seconds": total}, default=str,
                                                   indent=1))
    if not options.work:  # keep the results, not the data
        for path in work.iterdir():
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
    print(f"\nresults: {work / 'results.md'} and results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
