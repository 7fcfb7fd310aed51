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
             published, a one-day update and its gate; the full build's gate too (its own rows)
  airflow    `airflow dags test regime_daily` on the sample (temporary AIRFLOW_HOME, local SMTP catcher), the daily
             path: a warehouse as of the previous session is published first, so the run updates it incrementally;
             before it, Airflow's fixed floor: `airflow version`, and `dags test` of a one-task no-op DAG; after it
             the other daily DAGs (the four ingest DAGs, then regime_transform) on a data folder of their own
  bucket     a daily run on the sample (every dataset's ingest, then build_validate_publish, as pipeline calls them)
             with the lake in a local folder, then in a bucket on moto_server (REGIME_LAKE_URI; `make s3server`):
             first run as of the day before the sample's last, a rerun (nothing new), the next day; wall, CPU s of
             the run's process and of moto_server's, peak RSS, objects written and bytes uploaded (bucket listings)

    .venv/bin/python benchmarks/run.py                      # everything (make bench)
    .venv/bin/python benchmarks/run.py --only sample history
    .venv/bin/python benchmarks/run.py --only bucket        # needs moto_server (make s3server)
    .venv/bin/python benchmarks/run.py --work /tmp/bench    # keep the data there (default: a temp dir, removed)

The harness, by job: plan.py (sizes, dates, step names), sections.py (the sections, run in this process),
workers.py and airflow_workers.py (each step in a process of its own), bucket.py (the bucket section and its
worker), measure.py (/proc samplers, machine facts), airflow_log.py (reading a `dags test` log),
results_tables.py (the output); synth.py and reference.py (the synthetic lakes and the pandas reference).

Prints the table (step, rows, seconds, rows/s, CPU seconds, peak RSS, ratio to the pandas reference) and writes it,
with every figure, to <work>/results.md and results.json. Timings are wall-clock on a shared machine: see the
load averages printed with the machine facts. docs/performance.md has a run and what it means.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import busy_processes, load, machine  # noqa: E402
from plan import REFERENCE, REFERENCE_BEFORE, REFERENCE_LAST, SAMPLE, SAMPLE_BEFORE, SAMPLE_LAST, SECTIONS  # noqa: E402
from results_tables import bucket_table, flatness, table  # noqa: E402
from sections import Bench  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--work", type=Path, help="keep the benchmark's data here (default: a temporary dir)")
    options = parser.parse_args(argv)
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
        bucket_table(bench.results.get("bucket", [])), "",
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
