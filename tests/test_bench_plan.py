"""`make bench`'s plan (benchmarks/plan.py SECTIONS) against the harness and the docs: every section is run by
run.py, described in its help and in docs/performance.md; every worker step a section calls exists; the bucket
section's listings see what a write to the bucket or the lake folders changes. No timing: that is the benchmark's."""

from __future__ import annotations

import re
import sys
import time

from conftest import PROJECT

sys.path.insert(0, str(PROJECT / "benchmarks"))

import bucket  # noqa: E402
import plan  # noqa: E402
import run  # noqa: E402
import workers  # noqa: E402
from sections import Bench  # noqa: E402

BENCH = PROJECT / "benchmarks"
PERFORMANCE = (PROJECT / "docs" / "performance.md").read_text()


def test_every_section_is_run_and_described():
    assert plan.SECTIONS == ("reference", "sample", "history", "panel", "airflow", "bucket")
    source = (BENCH / "run.py").read_text()
    for section in plan.SECTIONS:
        # run.py: reference and sample are mirrors (Bench.mirror), the others Bench's method of that name
        if section in ("reference", "sample"):
            assert f'section == "{section}"' in source
        else:
            assert callable(getattr(Bench, section, None)), section
        assert re.search(rf"^  {section} +\S", run.__doc__, re.M), f"run.py's help does not describe {section}"
        assert re.search(rf"^\| {section} \|", PERFORMANCE, re.M), f"docs/performance.md has no row for {section}"
    only = re.search(r"`--only ([a-z ]+)`", PERFORMANCE).group(1).split()
    assert only == list(plan.SECTIONS)


def test_every_worker_step_a_section_calls_exists():
    called = set()
    for module in ("sections.py", "bucket.py"):
        called |= set(re.findall(r"\b(?:self|bench)\.run\(\"(\w+)\"", (BENCH / module).read_text()))
    assert {"ingest", "build", "gate", "daily", "compare", "dags_test"} <= called
    assert called <= workers.WORKERS.keys(), called - workers.WORKERS.keys()


def test_the_bucket_runs_go_forward_by_one_session():
    (first, first_day), (rerun, rerun_day), (next_run, next_day) = plan.BUCKET_RUNS
    assert first_day == rerun_day == plan.SAMPLE_BEFORE and next_day == plan.SAMPLE_LAST > first_day


def test_the_bucket_section_uses_the_tests_moto_server(moto):
    server = bucket.moto_server()  # not started: the class of tests/s3.py, the same program
    assert type(server).__name__ == "MotoServer" and server.program == moto.program
    assert server.endpoint.startswith("http://127.0.0.1:")


def test_the_bucket_listing_sees_each_object_written(moto):
    from regime import objectstore

    name = moto.make_bucket(f"bench-plan-{time.time_ns()}")
    fs = moto.filesystem()
    assert bucket.bucket_objects(fs, name) == {}
    objectstore.put_atomic(fs, f"{name}/regime/lake/a/data.parquet", b"x" * 100)
    objectstore.put_atomic(fs, f"{name}/regime/raw/b.csv", b"y" * 10)
    seen = bucket.bucket_objects(fs, name)
    assert {k: v[0] for k, v in seen.items()} == {f"{name}/regime/lake/a/data.parquet": 100,
                                                  f"{name}/regime/raw/b.csv": 10}  # no temporary key left
    time.sleep(1.1)  # S3's times are to the second or the millisecond: a rewrite is a new time
    objectstore.put_atomic(fs, f"{name}/regime/raw/b.csv", b"z" * 10)
    now = bucket.bucket_objects(fs, name)
    assert [k for k, v in now.items() if seen.get(k) != v] == [f"{name}/regime/raw/b.csv"]


def test_the_local_listing_covers_the_lake_folders_only(tmp_path):
    for rel in ("raw/cboe/x.csv", "lake/index_prices/symbol=SPX/data.parquet", "quarantine/occ/y.txt",
                "state/alerts.lock", "warehouse.duckdb"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"1234")
    assert sorted(bucket.local_files(tmp_path)) == sorted(str(tmp_path / rel) for rel in (
        "raw/cboe/x.csv", "lake/index_prices/symbol=SPX/data.parquet", "quarantine/occ/y.txt"))
