"""The daily DAG run by Airflow itself (`airflow dags test`), on the bundled sample."""

import importlib.util
import json
import subprocess
import sys

import duckdb
import pytest

from conftest import PROJECT, SAMPLE_LAST, file_digest

pytestmark = pytest.mark.airflow


def test_dagbag_has_no_import_errors(airflow_home):
    code = (
        "import json; from airflow.dag_processing.dagbag import DagBag;"
        f"b = DagBag(dag_folder={str(PROJECT / 'dags')!r});"
        "print(json.dumps({'errors': {k: str(v) for k, v in b.import_errors.items()}, 'dags': sorted(b.dag_ids),"
        " 'tags': {d: sorted(b.dags[d].tags) for d in b.dag_ids},"
        " 'docs': {d: bool(b.dags[d].doc_md) for d in b.dag_ids},"
        " 'as_of': {d: b.dags[d].params.get_param('as_of').schema for d in b.dag_ids if 'as_of' in b.dags[d].params}"
        "}))"
    )
    done = subprocess.run([sys.executable, "-c", code], env=airflow_home, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    bag = json.loads(done.stdout.strip().splitlines()[-1])
    assert bag["errors"] == {}
    assert "regime_daily" in bag["dags"]
    assert all(bag["docs"].values()) and all(bag["tags"].values())
    # the DAGs run by hand take `as_of` from a date picker (a JSON-schema date: a bad one is refused at trigger time)
    date_param = {"type": ["null", "string"], "format": "date", "title": "As-of date"}
    assert bag["as_of"] == {"regime_daily": date_param, "regime_transform": date_param}


def test_the_as_of_param_refuses_a_bad_date():
    from airflow.sdk.exceptions import ParamValidationError

    from regime.orchestration import as_of_params

    param = as_of_params()["as_of"]
    assert param.resolve(value="2024-07-16") == "2024-07-16" and param.resolve(value=None) is None
    for bad in ("2024-13-45", "16/07/2024", "yesterday"):
        with pytest.raises(ParamValidationError, match="is not a 'date'"):
            param.resolve(value=bad)


def _tables(path):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {
            "prices": con.execute("select symbol, count(*), max(date) from marts.prices group by 1 order by 1")
            .fetchall(),
            "rut_z": con.execute("select value from marts.indicators where indicator = 'zscore_50d' and "
                                 "subject = 'RUT' and date = '2024-07-17'").fetchall()[0][0],
            "indicators": con.execute("select count(*) from marts.indicators").fetchall()[0][0],
            "sources": {t: con.execute(f"select count(*) from staging.{t}").fetchall()[0][0]
                        for t in ("options_volume", "cftc_tff", "etf_nav")},
        }
    finally:
        con.close()


def _bench():
    spec = importlib.util.spec_from_file_location("bench_airflow_log", PROJECT / "benchmarks" / "airflow_log.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_daily_dag_end_to_end_then_rerun_then_bad_file(run_dag, settings, smtp, mirror):
    done = run_dag(SAMPLE_LAST)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    # the benchmark (make bench) reads each task's Airflow and task-code time from this log
    times = _bench().task_times(done.stdout + done.stderr)
    assert sorted(k for k in times if not k.startswith("_")) == [
        "build_validate_publish", "ingest_cftc_tff", "ingest_etf_nav", "ingest_index_prices",
        "ingest_options_volume", "send_alerts", "write_report"]
    assert all(0 < t["work"] < t["seconds"] for k, t in times.items() if not k.startswith("_"))
    assert list(times["build_validate_publish"]["parts"])[:2] == [
        "imports: pipeline, validation gate (Great Expectations)", "lock, sweep"]
    tables = _tables(settings.warehouse_path)
    assert [row[0] for row in tables["prices"]] == ["DJX", "NDX", "RUT", "RVX", "SPX", "VIX"]
    assert all(row[1] == 1394 and str(row[2]) == "2024-07-17" for row in tables["prices"])
    assert tables["rut_z"] == pytest.approx(4.36, abs=0.01)
    assert tables["sources"] == {"options_volume": 720, "cftc_tff": 867, "etf_nav": 6 * 1394}
    assert [m["Subject"] for m in smtp.messages] == [
        "Regime alert: Small-cap minus large-cap ETFs, 5-day flow spread at +6.30 pp: the highest on record "
        "(history since 2019-01-09) (+1 more)"]
    # write_report runs before send_alerts: the mail carries the run's report
    assert [p.get_filename() for p in smtp.messages[0].iter_attachments()] == ["regime-report-2024-07-17.html"]
    report = settings.data_dir / "reports" / "2024-07-17.html"
    assert report.exists() and "<svg" in report.read_text()

    # the same date again: same content, no second mail
    again = run_dag(SAMPLE_LAST)
    assert again.returncode == 0, again.stdout[-4000:]
    assert _tables(settings.warehouse_path) == tables
    assert len(smtp.messages) == 1

    # a malformed upstream file fails the ingest task, names file and problem, and publishes nothing
    published = file_digest(settings.warehouse_path)
    (mirror / "cboe" / "RUT_History.csv").write_bytes(b"<!DOCTYPE html><html><body>Service unavailable</body>")
    bad = run_dag(SAMPLE_LAST)
    assert bad.returncode != 0
    log = bad.stdout + bad.stderr
    assert f"cboe: {mirror / 'cboe' / 'RUT_History.csv'}: an HTML page, not a CSV file" in log
    assert file_digest(settings.warehouse_path) == published
    assert (settings.quarantine_dir / "cboe" / "as_of=2024-07-17" / "RUT_History.csv").exists()


def test_a_series_absent_from_the_mirror_is_skipped_with_a_warning(run_dag, settings, mirror):
    (mirror / "cboe" / "RVX_History.csv").unlink()
    done = run_dag(SAMPLE_LAST)
    assert done.returncode == 0, done.stdout[-4000:]
    assert "skipping RVX" in done.stdout + done.stderr
    symbols = [row[0] for row in _tables(settings.warehouse_path)["prices"]]
    assert "RVX" not in symbols and "RUT" in symbols
