"""The benchmark's steps, each run in a process of its own (`python benchmarks/workers.py <step> <json args>`, so
that its peak RSS is its own): ingest, build, update, the validation gate, synthetic lakes, the pandas reference;
each prints its measurements as the last line of stdout (JSON)."""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import date
from pathlib import Path

from airflow_workers import w_cli_startup, w_dags_test, w_migrate
from bucket import w_daily
from measure import Sampler, StepLog, rss_kb
from plan import DATASETS, HISTORY_DAYS, PANEL

GX_IMPORT: dict = {}  # the gate worker's import of great_expectations: start, end (time.time()), cpu


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

    from regime import pipeline, warehouse  # noqa: F401
    from regime.extremes import build, update  # noqa: F401

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
    from regime import publisher, warehouse

    settings = _settings()
    path = warehouse.build(settings, date.fromisoformat(as_of))
    result = {"path": str(path), "size_mb": path.stat().st_size / 1e6, "rows": _readings(path)}
    if publish:
        result["path"] = str(publisher.publish(settings, path))
    return result


def w_update(as_of: str, publish: bool = True) -> dict:
    from regime import publisher, warehouse

    settings = _settings()
    day = date.fromisoformat(as_of)
    spare = publisher.spare_path(settings)
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
        publisher.publish(settings, path)
    return {"rows": rows, "since": str(since), "size_mb": size, "path": str(path),
            "history": _readings(settings.warehouse_path if publish else path), "base": base}


def w_gate(path: str, as_of: str, publish: bool = False) -> dict:
    """The validation gate on a staging file, called as pipeline.validate calls it (then published with `publish`,
    as pipeline.build_validate_publish does): GX's import, the gate (read and prepare, validate) and its Data Docs
    timed apart. Fails when a blocking expectation fails."""
    import resource

    from regime import publisher
    from regime.validation.gate import validate_build

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    c1, t1 = cpu(), time.time()
    settings = _settings()
    report = validate_build(Path(path), date.fromisoformat(as_of), settings.data_dir / "validation-docs",
                            settings.state_dir, settings.freshness_sessions, settings.warehouse_path,
                            settings.gap_tolerance_sessions, memory_limit=settings.duckdb_memory_limit)
    c2, t2 = cpu(), time.time()
    if publish:
        publisher.publish(settings, Path(path))
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

    from regime.readings import indicator_queries
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
        with contextlib.closing(indicator_queries(con, params, FULL, NAMES)) as queries:
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
           "cli_startup": w_cli_startup, "gate": w_gate, "daily": w_daily}


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


if __name__ == "__main__":
    worker(sys.argv[1], json.loads(sys.argv[2] if len(sys.argv) > 2 else "{}"))
