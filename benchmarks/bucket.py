"""The `bucket` section: a daily run on the bundled sample (every dataset's ingest, then build_validate_publish, as
pipeline calls them) with the lake in a local folder and in a bucket on moto_server (REGIME_LAKE_URI): first run,
rerun, next day; wall and CPU seconds (the run's process and moto_server's), peak RSS, objects written, bytes uploaded.

The section (`section`) runs in the parent process; each daily run (`w_daily`) in a worker process of its own."""

from __future__ import annotations

import importlib.util
import threading
import time
import uuid
from datetime import date
from pathlib import Path

from measure import cpu_between, sample_cpu
from plan import BUCKET_RUNS, ROOT, SAMPLE

LAKE_FOLDERS = ("raw", "lake", "quarantine")  # what REGIME_LAKE_URI moves to the bucket
PREFIX = "regime"  # the lake's prefix in the bench's bucket


def w_daily(as_of: str) -> dict:
    """A daily run in this (worker) process: every dataset's ingest, then build_validate_publish, as the DAGs call
    them; the two timed apart (wall: time.time(), comparable with the parent's samples of moto_server)."""
    from regime import datasets, pipeline
    from regime.config import get_settings

    settings = get_settings()
    day = date.fromisoformat(as_of)
    t0, c0 = time.time(), time.process_time()
    rows = 0
    for dataset in datasets.ALL:
        rows += sum(pipeline.ingest(dataset.name, day, settings)["rows"].values())
    t1, c1 = time.time(), time.process_time()
    summary = pipeline.build_validate_publish(day, settings)
    t2, c2 = time.time(), time.process_time()
    return {"rows": rows, "published": summary["published"], "datasets": len(datasets.ALL), "times": [t0, t1, t2],
            "ingest_cpu": c1 - c0, "bvp_cpu": c2 - c1, "seconds": t2 - t0,
            "phases": [("ingest", t0, t1), ("build_validate_publish", t1, t2)]}


def moto_server():
    """tests/s3.py's MotoServer (the standard library only: no pytest), loaded from its file: moto_server on a free
    port on 127.0.0.1, the one `make s3server` installs into .venv-s3."""
    spec = importlib.util.spec_from_file_location("regime_tests_s3", ROOT / "tests" / "s3.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MotoServer()


def bucket_objects(fs, bucket: str) -> dict[str, tuple[int, int]]:
    """key -> (size, last modified ns) of every object in the bucket."""
    import pyarrow.fs as pafs

    infos = fs.get_file_info(pafs.FileSelector(bucket, recursive=True, allow_not_found=True))
    return {i.path: (i.size, i.mtime_ns) for i in infos if i.type == pafs.FileType.File}


def local_files(data: Path) -> dict[str, tuple[int, int]]:
    """path -> (size, mtime ns) of every file of the local lake folders."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for folder in LAKE_FOLDERS
            for p in (data / folder).rglob("*") if p.is_file()}


def measured_run(bench, moto, data: Path, env: dict, day: date) -> dict:
    """One daily run in a worker process; moto_server's CPU seconds over it (psutil) and split by phase (sampled)."""
    import psutil

    server = psutil.Process(moto.process.pid)
    samples: list = []
    stop = threading.Event()
    sampler = threading.Thread(target=sample_cpu, args=(moto.process.pid, samples, stop), daemon=True)
    before = server.cpu_times()
    sampler.start()
    try:
        result = bench.run("daily", data, env, as_of=day)
    finally:
        stop.set()
        sampler.join()
    after = server.cpu_times()
    t0, t1, t2 = result["times"]
    result["seconds"] = t2 - t0  # the run's (the worker reports a build's own clock as `seconds`)
    result["moto_cpu"] = after.user + after.system - before.user - before.system
    result["moto_ingest_cpu"] = cpu_between(samples, t0, t1)
    result["moto_bvp_cpu"] = cpu_between(samples, t1, t2)
    return result


def section(bench) -> None:
    """Both lakes, each on a data dir of its own (the bucket's: a new bucket), the runs of plan.BUCKET_RUNS in order;
    checks that a rerun writes nothing and that both lakes publish the same warehouse."""
    rows, published = [], {}
    with moto_server() as moto:
        fs = moto.filesystem()
        for lake in ("local folder", "bucket (moto)"):
            data = bench.work / ("bucket-local" if lake == "local folder" else "bucket-s3")
            # REGIME_LAKE_URI / REGIME_PUBLISH_URI empty: unset, whatever the caller's environment says
            env = {"REGIME_MIRROR_DIR": str(SAMPLE), "REGIME_LAKE_URI": "", "REGIME_PUBLISH_URI": ""}
            if lake == "local folder":
                def listing(d=data):
                    return local_files(d)
            else:
                name = moto.make_bucket(f"regime-bench-{uuid.uuid4().hex[:10]}")
                env.update(moto.env, REGIME_LAKE_URI=f"s3://{name}/{PREFIX}")

                def listing(n=name):
                    return bucket_objects(fs, n)
            for run, day in BUCKET_RUNS:
                seen = listing()
                result = measured_run(bench, moto, data, env, day)
                now = listing()
                written = [k for k, v in now.items() if seen.get(k) != v]
                result.update(lake=lake, run=run, as_of=str(day), written=len(written), objects=len(now),
                              uploaded_mb=sum(now[k][0] for k in written) / 1e6)
                if lake == "local folder":
                    result["moto_cpu"] = result["moto_ingest_cpu"] = result["moto_bvp_cpu"] = None
                if run.startswith("rerun") and written:
                    raise AssertionError(f"bucket: the {lake} rerun wrote {len(written)} file(s): {written[:5]}")
                rows.append(result)
                add_rows(bench, result)
            published[lake] = result["published"]
    a, b = published["local folder"], published["bucket (moto)"]
    found = bench.run("compare", data, a=a, b=b)["differences"]
    if any(d.startswith("meta.alerts:") for d in found):  # queued by each run at its own time: created_at aside
        found = [d for d in found if not d.startswith("meta.alerts:")] + alerts_differences(a, b)
    bench.notes.append(f"bucket: the warehouse published after the next day, lake in the bucket == lake in the "
                       f"folder: {found or 'yes, every table (meta.alerts: its created_at aside)'}; a rerun wrote no "
                       "object and no file")
    bench.results["bucket"] = rows


def alerts_differences(a: str, b: str) -> list[str]:
    """meta.alerts of two warehouses compared without created_at (when the run queued the alert)."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("attach $a as a (read_only)", {"a": a})
        con.execute("attach $b as b (read_only)", {"b": b})
        columns = [c for (c,) in con.execute("select column_name from duckdb_columns() where database_name = 'a' "
                                             "and schema_name = 'meta' and table_name = 'alerts' and column_name "
                                             "<> 'created_at' order by column_index").fetchall()]
        cols = ", ".join(f'"{c}"' for c in columns)
        only = con.execute(f"select count(*) from ((select {cols} from a.meta.alerts except all select {cols} from "
                           f"b.meta.alerts) union all (select {cols} from b.meta.alerts except all select {cols} "
                           "from a.meta.alerts))").fetchall()[0][0]
    finally:
        con.close()
    return [f"meta.alerts: {only} rows in only one of them (created_at aside)"] if only else []


def add_rows(bench, r: dict) -> None:
    both = r["cpu_seconds"] + (r["moto_cpu"] or 0)
    # rows: in the partitions the ingests wrote or found unchanged; CPU s: the run's process and moto_server's
    bench.add("bucket", f"{r['lake']}, {r['run']}, as of {r['as_of']}: ingest + build_validate_publish (lake rows; "
              "CPU s with moto_server's)", r["rows"], r["seconds"], r["peak_rss_mb"], both)
    ingest, bvp = r["steps"]["ingest"], r["steps"]["build_validate_publish"]
    bench.add("bucket", f"ingest, {r['datasets']} datasets (the run's process)", None, ingest["seconds"],
              ingest["peak_rss_mb"], r["ingest_cpu"], indent=True)
    bench.add("bucket", "build_validate_publish (the run's process)", None, bvp["seconds"], bvp["peak_rss_mb"],
              r["bvp_cpu"], indent=True)
    if r["moto_cpu"] is not None:
        bench.add("bucket", f"moto_server over the run (ingest {r['moto_ingest_cpu']:.1f}, build "
                  f"{r['moto_bvp_cpu']:.1f} CPU s): {r['written']:,} objects written, {r['uploaded_mb']:.1f} MB",
                  None, r["seconds"], cpu=r["moto_cpu"], indent=True)
