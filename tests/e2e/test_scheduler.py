"""`regime_daily` under a real scheduler: PostgreSQL metadata DB, api-server, scheduler, dag-processor and triggerer
as separate processes (the `stack` fixture), runs triggered by hand through the REST API and through the CLI."""

from __future__ import annotations

import json
import os
import shlex
import sqlite3
import subprocess
import time
from datetime import datetime

import duckdb
import pytest

from .stack import PROJECT

pytestmark = pytest.mark.e2e

TASKS = ["build_validate_publish", "ingest_cftc_tff", "ingest_etf_nav", "ingest_index_prices",
         "ingest_options_volume", "send_alerts", "write_report"]
RUN_TIMEOUT = 480


def _warehouse(stack) -> dict:
    path = stack.data_dir / "warehouse.duckdb"
    assert path.exists(), f"no published warehouse at {path}"
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {
            "last_price": str(con.execute("select max(date) from marts.prices").fetchone()[0]),
            "headlines": con.execute("select count(*) from marts.headlines").fetchone()[0],
        }
    finally:
        con.close()


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 1)


def _record(stack, name: str, run: dict, tis: list[dict], trigger_s: float, **extra) -> None:
    """Times of one run into the stack's metrics: the trigger call, trigger to end as seen by the test, queued to
    end and start to end as Airflow recorded them, each task's duration, and `extra`."""
    stack.metrics["runs"][name] = {
        "run_id": run["dag_run_id"], "state": run["state"],
        "trigger_call_s": round(trigger_s, 1), "trigger_to_end_s": round(trigger_s + run["wall_s"], 1),
        "queued_to_end_s": _seconds(run.get("queued_at"), run.get("end_date")),
        "start_to_end_s": _seconds(run.get("start_date"), run.get("end_date")),
        "tasks_s": {ti["task_id"]: round(ti["duration"], 1) if ti.get("duration") else None for ti in tis},
        **extra,
    }
    print(f"\n{name}: {json.dumps(stack.metrics['runs'][name], indent=2)}\n(metrics: {stack.write_metrics()})")


def _outbox(stack) -> dict[str, str]:
    """The alert outbox (state/state.sqlite): alert key -> state."""
    path = stack.data_dir / "state" / "state.sqlite"
    if not path.exists():
        return {}
    con = sqlite3.connect(path)
    try:
        return dict(con.execute("select alert_key, state from alerts").fetchall())
    finally:
        con.close()


def doc_block(name: str) -> str:
    """The indented code block that follows `<!-- e2e: NAME ... -->` in docs/operations.md, unindented: the
    examples operators copy are the commands these tests run."""
    lines = (PROJECT / "docs" / "operations.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"<!-- e2e: {name} "))
    block = []
    for line in lines[start + 1:]:
        if not line.startswith("    "):
            break
        block.append(line[4:])
    assert block, f"no code block after the {name} marker"
    return "\n".join(block) + "\n"


def test_the_stack_is_up_with_every_dag_parsed_and_listens_on_loopback_only(stack):
    assert stack.api("GET", "importErrors")["total_entries"] == 0
    assert set(stack.DAGS) <= stack.dag_ids()
    listening = stack.listening()
    assert {name for name, _, _ in listening} >= {"api-server", "postgres"}
    assert all(address == "127.0.0.1" for _, address, _ in listening), listening
    # the scheduled DAGs stay paused until a test unpauses one: nothing runs on its timetable behind the tests'
    # backs; regime_daily, run only when asked, starts unpaused so that a trigger never waits silently in a queue
    paused = {d["dag_id"]: d["is_paused"] for d in stack.api("GET", "dags", params={"limit": 100})["dags"]}
    assert paused["regime_daily"] is False


def test_manual_run_through_the_rest_api(stack):
    before = len(stack.mail.messages)
    sent_before = set(_outbox(stack))
    t0 = time.monotonic()
    # the example of docs/operations.md, run as written (bash, curl, jq) against the stack's api-server and login
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", doc_block("rest-trigger")], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "AIRFLOW_URL": stack.base_url,
                                                       "AIRFLOW_USER": stack.user, "AIRFLOW_PASSWORD": stack.password})
    assert done.returncode == 0, done.stdout + done.stderr
    answer = json.loads(done.stdout)
    assert answer["state"] == "queued" and answer["dag_id"] == "regime_daily"
    run_id = answer["dag_run_id"]
    trigger_s = time.monotonic() - t0
    run = stack.wait_for_run("regime_daily", run_id, timeout=RUN_TIMEOUT)
    tis = stack.task_instances("regime_daily", run_id)
    _record(stack, "rest_2024-07-17", run, tis, trigger_s)

    assert run["state"] == "success", stack.describe("regime_daily", run_id)
    assert run["run_type"] == "manual" and run["logical_date"] is None
    assert run["conf"] == {"as_of": "2024-07-17"}
    assert sorted(ti["task_id"] for ti in tis) == TASKS
    assert all(ti["state"] == "success" for ti in tis), stack.describe("regime_daily", run_id)

    warehouse = _warehouse(stack)
    assert warehouse["last_price"] == "2024-07-17" and warehouse["headlines"] > 0
    # one mail for the alerts the run found new (none when earlier runs of this stack mailed their episodes), and
    # nothing left pending in the outbox
    alerts = [m for m in stack.mail.messages[before:] if m["Subject"].startswith("Regime alert: ")]
    outbox = _outbox(stack)
    assert [key for key, state in outbox.items() if state != "sent"] == []
    new = set(outbox) - sent_before
    assert len(alerts) == (1 if new else 0), ([m["Subject"] for m in stack.mail.messages], new)
    assert all(m["To"] == "analyst@example.test" for m in alerts)
    assert (stack.data_dir / "reports" / "2024-07-17.html").exists()


def test_manual_run_through_the_cli(stack):
    t0 = time.monotonic()
    # the example of docs/operations.md, run as written in the stack's environment
    done = stack.airflow(*shlex.split(doc_block("cli-trigger"))[1:])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = next(json.loads(line) for line in reversed(done.stdout.splitlines()) if line.startswith("["))
    run_id = rows[0]["dag_run_id"]
    trigger_s = time.monotonic() - t0
    run = stack.wait_for_run("regime_daily", run_id, timeout=RUN_TIMEOUT)
    tis = stack.task_instances("regime_daily", run_id)
    _record(stack, "cli_2024-07-16", run, tis, trigger_s)

    assert run["state"] == "success", stack.describe("regime_daily", run_id)
    assert run["run_type"] == "manual" and run["conf"] == {"as_of": "2024-07-16"}
    assert all(ti["state"] == "success" for ti in tis), stack.describe("regime_daily", run_id)
    assert _warehouse(stack)["last_price"] == "2024-07-16"
    assert (stack.data_dir / "reports" / "2024-07-16.html").exists()
