"""Operations: schedules (NYSE timetable), DAG wiring, failure mail to operators, backfill, the compose file."""

import json
import subprocess
import sys
from datetime import UTC, date, datetime
from types import SimpleNamespace

import pendulum
import pytest

from conftest import AIRFLOW, PROJECT, SAMPLE_LAST, file_digest
from regime import pipeline
from regime.runtime import as_of_date

sys.path.insert(0, str(PROJECT / "plugins"))
from regime_timetables import NYSESessionTimetable  # noqa: E402


def _runs(timetable, start, count):
    from airflow.timetables.base import TimeRestriction

    restriction = TimeRestriction(earliest=start, latest=None, catchup=True)
    info, out = timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction), []
    for _ in range(count):
        out.append((info.logical_date.date().isoformat(),
                    info.run_after.in_timezone("America/New_York").strftime("%a %H:%M")))
        info = timetable.next_dagrun_info(last_automated_data_interval=info.data_interval, restriction=restriction)
    return out


def test_nyse_timetable_runs_on_sessions_only_after_the_close():
    runs = _runs(NYSESessionTimetable(delay_minutes=120), pendulum.datetime(2024, 7, 1, tz="UTC"), 6)
    assert runs == [
        ("2024-07-01", "Mon 18:00"),
        ("2024-07-02", "Tue 18:00"),
        ("2024-07-03", "Wed 15:00"),  # early close at 13:00 before Independence Day
        ("2024-07-05", "Fri 18:00"),  # no run for the July 4th holiday
        ("2024-07-08", "Mon 18:00"),  # none on the weekend
        ("2024-07-09", "Tue 18:00"),
    ]


def test_nyse_timetable_skips_exchange_only_closures():
    # 2025-01-09: NYSE closed for President Carter's national day of mourning (a weekday, not a federal holiday)
    runs = _runs(NYSESessionTimetable(), pendulum.datetime(2025, 1, 8, tz="UTC"), 2)
    assert [d for d, _ in runs] == ["2025-01-08", "2025-01-10"]


def test_nyse_timetable_shares_the_pipelines_calendar():
    # one XNYS calendar per process (~0.4 s of CPU to build): `airflow dags test` computes the schedules of the
    # ingest DAGs and runs the ingest tasks in the same process
    import regime_timetables

    from regime.calendar import nyse

    assert regime_timetables._calendar() is nyse()


def test_nyse_timetable_round_trips_through_serialization():
    timetable = NYSESessionTimetable(delay_minutes=240)
    again = NYSESessionTimetable.deserialize(json.loads(json.dumps(timetable.serialize())))
    assert again.delay_minutes == 240 and again.summary == "XNYS close + 240m"


@pytest.mark.parametrize(("context", "expected"), [
    ({"dag_run": SimpleNamespace(conf={"as_of": "2024-07-16"}), "logical_date": datetime(2024, 7, 20, tzinfo=UTC)},
     date(2024, 7, 16)),
    ({"dag_run": SimpleNamespace(conf={}), "logical_date": datetime(2024, 7, 17, tzinfo=UTC)}, date(2024, 7, 17)),
    ({"dag_run": SimpleNamespace(conf={}, run_after=datetime(2024, 7, 18, 1, 0, tzinfo=UTC)), "logical_date": None,
      "triggering_asset_events": {"a": [SimpleNamespace(extra={"as_of": "2024-07-16"}),
                                        SimpleNamespace(extra={"as_of": "2024-07-17"})]}}, date(2024, 7, 17)),
    # an asset-triggered run with no as-of in its events: the New York date it was due (01:00 UTC = 21:00 NY)
    ({"dag_run": SimpleNamespace(conf={}, run_after=datetime(2024, 7, 18, 1, 0, tzinfo=UTC)), "logical_date": None},
     date(2024, 7, 17)),
])
def test_as_of_date_rules(context, expected):
    assert as_of_date(context) == expected


@pytest.mark.slow
def test_dags_are_thin_wired_and_parse_without_heavy_imports(airflow_home):
    code = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
out = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "heavy": [m for m in
       ("duckdb", "great_expectations", "exchange_calendars", "matplotlib", "regime.pipeline") if m in sys.modules]}
for dag_id, dag in bag.dags.items():
    out[dag_id] = {"doc": bool(dag.doc_md), "tags": sorted(dag.tags), "tasks": sorted(dag.task_ids),
                   "summary": getattr(dag.timetable, "summary", ""), "schedule": repr(dag.timetable),
                   "retries": {t.task_id: t.retries for t in dag.tasks},
                   "outlets": {t.task_id: [o.name for o in t.outlets] for t in dag.tasks if t.outlets},
                   "paused_at_creation": dag.is_paused_upon_creation,
                   "notifier": all(type(cb).__name__ == "FailureNotifier"
                                   and type(cb).__mro__[1].__name__ == "SmtpNotifier" for t in dag.tasks
                                   for cb in (t.on_failure_callback or [None])),
                   "run_notifier": [type(cb).__name__ for cb in (dag.on_failure_callback
                                                                  if isinstance(dag.on_failure_callback, list)
                                                                  else [dag.on_failure_callback])]}
print(json.dumps(out))
"""
    done = subprocess.run([sys.executable, "-c", code, str(PROJECT / "dags")], env=airflow_home,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    bag = json.loads(done.stdout.strip().splitlines()[-1])
    assert bag.pop("errors") == {}
    assert bag.pop("heavy") == []  # no heavy imports or I/O at parse time
    assert sorted(bag) == ["ingest_cftc_tff", "ingest_etf_nav", "ingest_index_prices", "ingest_options_putcall",
                           "ingest_options_volume", "regime_daily", "regime_transform"]
    assert all(d["doc"] and "regime" in d["tags"] and d["notifier"] for d in bag.values())
    # and each DAG mails for a task whose process was killed (no task callback runs then: regime.notify)
    assert all(d["run_notifier"] == ["RunFailureNotifier"] for d in bag.values()), bag
    assert bag["ingest_index_prices"]["summary"] == "XNYS close + 120m"
    assert bag["ingest_options_volume"]["summary"] == "XNYS close + 1020m"
    assert bag["ingest_etf_nav"]["retries"] == {"ingest_etf_nav": 3}
    assert bag["regime_transform"]["tasks"] == ["build_validate_publish", "send_alerts", "write_report"]
    schedule = bag["regime_transform"]["schedule"]
    # one build per session: partitioned Assets, all three daily sources for the session (weekly CFTC not awaited)
    assert schedule.startswith("PartitionedAssetTimetable(asset_condition=AssetAll(")
    assert all(f"name='regime_{name}'" in schedule for name in ("index_prices", "options_volume", "etf_nav"))
    assert "regime_cftc_tff" not in schedule
    assert "regime_options_putcall" not in schedule  # Cboe's put/call archive (ended 2019) gates no session
    assert bag["ingest_options_putcall"]["outlets"] == {"ingest_options_putcall": ["regime_options_putcall"]}
    # only the ingest DAGs update the lake's Assets: regime_daily builds in its own run, never starting a second build
    assert bag["regime_daily"]["outlets"] == {"build_validate_publish": ["regime_warehouse"]}
    assert bag["ingest_etf_nav"]["outlets"] == {"ingest_etf_nav": ["regime_etf_nav"]}
    # the DAGs that run only when asked or when the ingests land a session start unpaused (a trigger runs at once);
    # the ingest DAGs, on timetables, follow dags_are_paused_at_creation
    assert {d: v["paused_at_creation"] for d, v in bag.items() if v["paused_at_creation"] is not None} == \
        {"regime_daily": False, "regime_transform": False}


def test_the_build_task_imports_no_chart_library():
    # the alert rules (build task) format numbers with regime.report.fmt; matplotlib is for write_report only
    code = ("import sys; from regime.alerts import rules; from regime.report import fmt;"
            " print('matplotlib' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "False"


@pytest.mark.airflow
def test_a_failed_task_mails_the_operators(run_dag, mirror, smtp):
    (mirror / "cboe" / "SPX_History.csv").write_bytes(b"DATE,OPEN,HIGH,LOW,CLOSE\n07/16/2024,1,2,0.5,n/a\n")
    done = run_dag(SAMPLE_LAST, extra_env={"AIRFLOW_VAR_REGIME_OPERATOR_TO": "ops@example.test"})
    assert done.returncode != 0
    [mail] = [m for m in smtp.messages if m["To"] == "ops@example.test"]
    assert mail["Subject"].startswith("[regime] regime_daily.ingest_index_prices failed (run ")
    body = mail.get_body().get_content()
    assert "SPX_History.csv: line 2: CLOSE value 'n/a' is not a finite number" in body
    assert "try_number=1" in body and "/dags/regime_daily/runs/" in body  # the link to the task log


def test_a_failure_mail_to_a_server_that_never_answers_times_out_and_says_so(monkeypatch, regime_env):
    """The operators' mail goes through the alert mails' client: REGIME_SMTP_CONNECT_TIMEOUT bounds the wait (the
    provider's hook waited 6 x 30 s) and the error says what happened. (test_a_failed_task_mails_the_operators
    sends it from a failed DAG run.)"""
    from test_reliability_faults import SilentSMTP

    from regime.alerts.mail import SmtpTimeout
    from regime.mailcatcher import MailCatcher
    from regime.notify import FailureNotifier

    monkeypatch.setenv("REGIME_SMTP_CONNECT_TIMEOUT", "1")
    notifier = FailureNotifier()
    notifier.to, notifier.subject = "ops@example.test; lead@example.test", "[regime] regime_daily.x failed"
    notifier.html_content = "<p>Task <b>x</b> failed.</p>"
    with SilentSMTP("greeting") as server:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", server.uri)
        with pytest.raises(SmtpTimeout, match=rf"SMTP server 127\.0\.0\.1:{server.port} timed out waiting for its "
                                              r"greeting: no answer within 1 s \(REGIME_SMTP_CONNECT_TIMEOUT\)"):
            notifier._send()
        assert len(server.connections) == 1  # one try, not the provider's six
    with MailCatcher() as up:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", up.connection_uri_json())
        notifier._send()
        [mail] = up.messages
    assert mail["To"] == "ops@example.test, lead@example.test"
    assert mail["Subject"] == "[regime] regime_daily.x failed"
    assert mail.get_body(("html",)).get_content().strip() == "<p>Task <b>x</b> failed.</p>"


@pytest.mark.airflow
def test_transform_dag_publishes_and_alerts_from_the_lake(run_dag, settings, smtp):
    for name in ("index_prices", "options_volume", "cftc_tff", "etf_nav"):
        pipeline.ingest(name, SAMPLE_LAST, settings)
    done = run_dag(SAMPLE_LAST, dag_id="regime_transform")
    assert done.returncode == 0, done.stdout[-3000:]
    assert settings.warehouse_path.exists()
    [mail] = smtp.messages
    assert mail["Subject"].startswith("Regime alert: Small-cap minus large-cap ETFs, 5-day flow spread at +6.30 pp")
    # write_report runs before send_alerts here too: the mail carries the run's report
    assert [p.get_filename() for p in mail.iter_attachments()] == ["regime-report-2024-07-17.html"]


@pytest.mark.airflow
def test_ingest_dag_runs_its_source_only(run_dag, settings):
    done = run_dag(SAMPLE_LAST, dag_id="ingest_cftc_tff")
    assert done.returncode == 0, done.stdout[-3000:]
    assert [p.name for p in settings.lake_dir.iterdir()] == ["cftc_tff"]
    assert not settings.warehouse_path.exists()


@pytest.mark.slow
def test_backfill_shows_progress_and_resumes_after_a_failure(settings, mirror):
    bad = mirror / "occ" / "volume-query" / "2024-06-14" / "IWM.csv"
    good = bad.read_bytes()
    bad.write_bytes(b"quantity,underlying\n1,IWM\n")
    cmd = [str(PROJECT / ".venv" / "bin" / "regime-backfill"), "--start", "2024-05-01", "--end", "2024-07-17"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert first.returncode != 0
    assert "2024-06-14/IWM.csv" in first.stderr
    checkpoint = settings.state_dir / "backfill" / "2024-05-01_2024-07-17.json"
    done_before = json.loads(checkpoint.read_text())["done"]
    assert "ingest options_volume 2024-05" in done_before and "ingest options_volume 2024-06" not in done_before

    bad.write_bytes(good)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    summary = json.loads(second.stdout[second.stdout.index("{"):])
    assert summary["skipped"] == len(done_before)  # finished steps are not redone
    assert "build, validate, publish" in second.stdout + second.stderr  # the progress bar names its steps
    published = file_digest(settings.warehouse_path)

    third = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert json.loads(third.stdout[third.stdout.index("{"):])["skipped"] == 8
    assert file_digest(settings.warehouse_path) == published  # safe to rerun


@pytest.mark.slow
def test_dags_serialize_for_the_scheduler_and_are_listed(airflow_home):
    # what the dag-processor does: serialize every DAG (the custom timetable included) into the metadata DB
    done = subprocess.run([AIRFLOW, "dags", "reserialize"], env=airflow_home, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    done = subprocess.run([AIRFLOW, "dags", "list", "--output", "json"], env=airflow_home, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    [listing] = [line for line in done.stdout.splitlines() if line.startswith("[{")]
    listed = {d["dag_id"] for d in json.loads(listing)}
    assert {"regime_daily", "regime_transform", "ingest_index_prices"} <= listed
    nxt = subprocess.run([AIRFLOW, "dags", "next-execution", "ingest_index_prices"], env=airflow_home,
                         capture_output=True, text=True, timeout=300)
    assert nxt.returncode == 0, nxt.stderr[-2000:]
