"""`make demo`: run the whole pipeline through Airflow on the mirror and print what it produced."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from regime import answers, state, warehouse, words
from regime.config import Settings, get_settings
from regime.mailcatcher import MailCatcher

DAG_ID = "regime_daily"
_TASK = re.compile(r"\[DAG TEST\] (starting|end task) task_id=(\S+)")


def last_mirror_session(settings: Settings) -> date:
    """The latest date in any of the mirror's Cboe files (the default as-of date of the demo)."""
    from regime.sources import cboe

    latest = None
    for symbol in settings.indexes:
        path = settings.mirror_dir / "cboe" / cboe.file_name(symbol)
        if not path.is_file():
            continue
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - 256))
            tail = f.read().decode("utf-8", "replace").strip().splitlines()[-1]
        month, day, year = tail.split(",")[0].strip().split("/")
        found = date(int(year), int(month), int(day))
        latest = max(latest or found, found)
    if latest is None:
        raise SystemExit(f"error: no Cboe files for {settings.indexes} in {settings.mirror_dir / 'cboe'}")
    return latest


def run_dag(as_of: date, env: dict, log_path: Path) -> int:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(Path(sys.executable).with_name("airflow")), "dags", "test", DAG_ID, as_of.isoformat()]
    print(f"$ {' '.join(cmd[1:])}   (full log: {log_path})", flush=True)
    started = time.monotonic()
    with log_path.open("w") as log, subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                                     stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            log.write(line)
            step = _TASK.search(line)
            if step:
                verb = "running " if step.group(1) == "starting" else "finished"
                print(f"  [{time.monotonic() - started:5.1f}s] {verb} {step.group(2)}", flush=True)
            elif line.lstrip().startswith(("BLOCKING", "regime.", "airflow.sdk.exceptions.AirflowFailException")):
                print("  " + line.rstrip()[:400], flush=True)
        code = proc.wait()
    print(f"airflow dags test finished in {time.monotonic() - started:.1f}s with exit code {code}")
    return code


def summary(settings: Settings, as_of: date) -> None:
    con = warehouse.connect_readonly(settings.warehouse_path)
    try:
        print(f"\nWarehouse: {settings.warehouse_path}")
        print("  query it with: .venv/bin/regime sql \"select * from marts.indicators limit 5\"  (read-only)")
        for table, count in warehouse.table_counts(con).items():
            print(f"  {table:<24} {count:>8} rows")
        rows = con.execute(
            "select date, indicator, subject, value from marts.indicators where value is not null and "
            "date = (select max(date) from marts.indicators where date <= $as_of) order by indicator, subject",
            {"as_of": as_of},
        ).fetchall()
        heads = answers.headlines(con, as_of)
        print(f"\nHeadlines of {as_of}:" if heads else f"\nNo headlines on {as_of}: nothing historic that day.")
        for headline in heads:
            print(f"  {headline}")
        print(f"\nLatest readings ({rows[0][0] if rows else as_of}):")
        for _d, indicator, subject, value in rows:
            print(f"  {words.reading_name(indicator, subject):<72} {words.value_text(indicator, value):>24}")
    finally:
        con.close()
    alerts = state.frames(settings.state_dir)["alerts"]
    print("\nAlerts:")
    if alerts.empty:
        print("  none")
    for a in alerts.itertuples():
        print(f"  [{a.state}] {a.reading_date} {a.message} (attempts: {a.attempts}, sent: {a.sent_at})")
    docs = settings.data_dir / "validation-docs" / "index.html"
    if docs.exists():
        print(f"\nValidation report (Great Expectations Data Docs): {docs}")
    report = settings.data_dir / "reports" / f"{as_of.isoformat()}.html"
    if report.exists():
        print(f"Regime report with charts: {report}")


def main() -> int:
    settings = get_settings()
    as_of = date.fromisoformat(os.environ["REGIME_AS_OF"]) if os.environ.get("REGIME_AS_OF") \
        else last_mirror_session(settings)
    print(f"Regime monitor demo: source={settings.source} mirror={settings.mirror_dir} as_of={as_of}")
    print(f"data dir: {settings.data_dir}")
    env = dict(os.environ)
    catcher = None
    if settings.smtp_conn_id == "smtp_default" and "AIRFLOW_CONN_SMTP_DEFAULT" not in env:
        mail_dir = settings.data_dir / "demo-mail"
        catcher = MailCatcher(mail_dir)
        catcher.start()
        env["AIRFLOW_CONN_SMTP_DEFAULT"] = catcher.connection_uri_json()
        print(f"mail: a local SMTP catcher on 127.0.0.1:{catcher.port} keeps messages in {mail_dir}")
    try:
        code = run_dag(as_of, env, settings.data_dir / "logs" / f"demo-{as_of.isoformat()}.log")
        if settings.warehouse_path.exists():
            summary(settings, as_of)
        if catcher is not None:
            for msg in catcher.messages:
                print(f"\nMail received by the catcher: {msg['Subject']!r} to {msg['To']}")
    finally:
        if catcher is not None:
            catcher.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
