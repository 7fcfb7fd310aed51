"""Failures of `regime_daily` under a real scheduler (the `stack` fixture): a malformed upstream file, the build's
task process killed with SIGKILL mid-build, and the same with its supervisor (a lost worker). Each ends in exactly
one failure mail to the operators, the published warehouse stays the last good one, byte for byte, and the next
run publishes. The times from each failure to its failed state and to its mail go into the stack's metrics."""

from __future__ import annotations

import hashlib
import html
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from urllib.parse import unquote

import duckdb
import pytest

from .stack import wait_until
from .test_scheduler import _record

pytestmark = pytest.mark.e2e

OPERATORS = "operators@example.test"
RUN_TIMEOUT = 480
MAIL_TIMEOUT = 120   # a failure callback runs after its task: in the task's process, or in the dag-processor
QUIET_S = 20         # how long after the run ended no second mail may arrive (a DAG callback takes ~1-3 s)


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _last_price(stack) -> str:
    con = duckdb.connect(str(stack.data_dir / "warehouse.duckdb"), read_only=True)
    try:
        return str(con.execute("select max(date) from marts.prices").fetchone()[0])
    finally:
        con.close()


def _staging_files(stack) -> list[str]:
    build = stack.data_dir / "build"
    return sorted(p.name for p in build.glob("warehouse-*")) if build.is_dir() else []


def _epoch(iso: str) -> float:
    """A timestamp Airflow recorded, in epoch seconds."""
    return datetime.fromisoformat(iso).timestamp()


def _run(stack, as_of: str) -> tuple[str, dict, float]:
    """Trigger regime_daily for `as_of` through the REST API and wait for it: (run id, run, trigger call s)."""
    stack.unpause("regime_daily")
    t0 = time.monotonic()
    run_id = stack.trigger("regime_daily", {"as_of": as_of})
    trigger_s = time.monotonic() - t0
    return run_id, stack.wait_for_run("regime_daily", run_id, timeout=RUN_TIMEOUT), trigger_s


def _published(stack) -> str:
    """The sha256 of the published warehouse; a good run publishes one first when there is none yet."""
    path = stack.data_dir / "warehouse.duckdb"
    if not path.exists():
        run_id, run, _ = _run(stack, "2024-07-17")
        assert run["state"] == "success", stack.describe("regime_daily", run_id)
    return _sha256(path)


class _MailClock(threading.Thread):
    """Notes when (epoch seconds) each mail to the operators arrives after the `since`-th message: polls every 0.1 s
    from its start, while the test waits for the run. `wait()`, called once the run ended, waits (bounded) for the
    first one, then QUIET_S seconds more (time for a second one to arrive), and returns them all."""

    def __init__(self, stack, since: int):
        super().__init__(name="e2e-mail-clock", daemon=True)
        self.stack, self.since = stack, since
        self.arrived: list[float] = []
        self.halt = threading.Event()
        self.start()

    def run(self) -> None:
        while not self.halt.wait(0.1):
            seen = len(self.stack.mails_to(OPERATORS, self.since))
            self.arrived += [time.time()] * (seen - len(self.arrived))

    def wait(self, hint: str = "") -> list:
        try:
            wait_until(f"a failure mail to the operators{hint}", lambda: self.arrived, MAIL_TIMEOUT,
                       alive=self.stack.check_alive)
            time.sleep(QUIET_S)
        finally:
            self.halt.set()
            self.join(timeout=5)
        return self.stack.mails_to(OPERATORS, self.since)


def _read(mail) -> tuple[str, list[str]]:
    """A mail's text (tags removed, entities resolved) and the addresses it links to (unquoted)."""
    body = mail.get_body(("html", "plain")).get_content()
    links = [unquote(html.unescape(href)) for href in re.findall(r'href="([^"]*)"', body)]
    return html.unescape(re.sub(r"<[^>]+>", "", body)), links


def _ti(stack, run_id: str, task_id: str) -> dict:
    return next(ti for ti in stack.task_instances("regime_daily", run_id) if ti["task_id"] == task_id)


def test_a_malformed_file_fails_its_ingest_once_and_mails_the_operators_once(stack):
    before = _published(stack)
    rut = stack.mirror / "cboe" / "RUT_History.csv"
    good = rut.read_bytes()
    lines = good.decode().splitlines(keepends=True)
    broken_line = next(n for n, line in enumerate(lines, start=1) if line.startswith("07/12/2024,"))
    lines[broken_line - 1] = lines[broken_line - 1].rsplit(",", 1)[0] + ",n/a\n"
    mails_before = len(stack.mail.messages)
    clock = _MailClock(stack, mails_before)
    try:
        rut.write_bytes("".join(lines).encode())
        run_id, run, trigger_s = _run(stack, "2024-07-12")
        mails = clock.wait()
    finally:
        clock.halt.set()
        rut.write_bytes(good)
    tis = {ti["task_id"]: ti for ti in stack.task_instances("regime_daily", run_id)}
    # the task's own process mails before its supervisor reports the failure: negative
    _record(stack, "malformed_2024-07-12", run, list(tis.values()), trigger_s,
            failed_to_mail_s=round(clock.arrived[0] - _epoch(tis["ingest_index_prices"]["end_date"]), 1))

    assert run["state"] == "failed", stack.describe("regime_daily", run_id)
    # a bad file is not retried: the ingest failed on its first try, its bytes quarantined
    failed = tis["ingest_index_prices"]
    assert (failed["state"], failed["try_number"]) == ("failed", 1), stack.describe("regime_daily", run_id)
    kept = stack.data_dir / "quarantine" / "cboe" / "as_of=2024-07-12" / "RUT_History.csv"
    assert kept.read_bytes() == "".join(lines).encode()
    assert all(tis[t]["state"] == "success" for t in ("ingest_options_volume", "ingest_cftc_tff", "ingest_etf_nav"))
    # the build never ran, and the analysts keep the last good warehouse
    assert tis["build_validate_publish"]["state"] == "upstream_failed"
    assert tis["build_validate_publish"]["try_number"] == 0
    assert _sha256(stack.data_dir / "warehouse.duckdb") == before

    # one mail to the operators, naming the DAG, the task, the run and the error
    assert len(mails) == 1, [(m["To"], m["Subject"]) for m in mails]
    [mail] = mails
    assert mail["Subject"] == f"[regime] regime_daily.ingest_index_prices failed (run {run_id})"
    text, links = _read(mail)
    assert "Task ingest_index_prices of DAG regime_daily failed on try 1." in text
    assert f"Run: {run_id} (manual)" in text and "as of 2024-07-12 (conf)" in text
    assert f"{rut}: line {broken_line}: CLOSE value 'n/a' is not a finite number" in text
    assert links == [f"{stack.base_url}/dags/regime_daily/runs/{run_id}/tasks/ingest_index_prices?try_number=1"]
    # no alert mail from a failed run
    assert not [m for m in stack.mail.messages[mails_before:] if OPERATORS not in str(m["To"])]


def _task_process(stack, ti_id: str, supervisor: bool = False):
    """The process running the task instance `ti_id`: Airflow's task runner titles itself `airflow worker --
    <ti id>`; with `supervisor`, the process that forked it and reports its state (with the LocalExecutor, the
    executor's worker process: `airflow worker -- LocalExecutor: <ti id>`)."""
    import psutil

    title = f"airflow worker -- {ti_id}"
    for service in stack.services:
        for proc in service.tree():
            try:
                if " ".join(proc.cmdline()).strip() == title:
                    return proc.parent() if supervisor else proc
            except psutil.Error:
                continue
    return None


def _running(proc) -> Callable[[], None]:
    """For wait_until's `alive`: raises once `proc` has ended."""
    def check() -> None:
        if not proc.is_running():
            raise RuntimeError(f"process {proc.pid} ended before its build was seen under way")
    return check


def _open_staging_file(proc, build_dir) -> str | None:
    """The staging warehouse `proc` has open under `build_dir` (a build or its validation is under way)."""
    import psutil

    try:
        return next((f.path for f in proc.open_files()
                     if os.path.dirname(f.path) == str(build_dir)
                     and os.path.basename(f.path).startswith("warehouse-")), None)
    except psutil.Error:
        return None


def test_a_build_killed_mid_way_fails_mails_once_and_leaves_the_warehouse_as_it_was(stack):
    """SIGKILL of the build's task process while it holds its staging copy of the warehouse open (the out-of-memory
    killer's way): Airflow fails the try at once (its supervisor sees the signal) and runs no task callback; the run
    fails and its DAG callback mails the operators (regime.notify.RunFailureNotifier)."""
    before = _published(stack)
    published_as_of = _last_price(stack)
    stack.unpause("regime_daily")
    clock = _MailClock(stack, len(stack.mail.messages))
    t0 = time.monotonic()
    run_id = stack.trigger("regime_daily", {"as_of": "2024-07-15"})
    trigger_s = time.monotonic() - t0

    def task_process():
        ti = _ti(stack, run_id, "build_validate_publish")
        assert ti["state"] in (None, "scheduled", "queued", "running"), stack.describe("regime_daily", run_id)
        return ti["state"] == "running" and _task_process(stack, ti["id"])

    proc = wait_until("build_validate_publish runs", task_process, RUN_TIMEOUT, interval=0.2, alive=stack.check_alive)
    # mid-build: the process has its staging warehouse (build/warehouse-<as of>-<id>.duckdb) open
    staging = wait_until("the build opens its staging warehouse", lambda: _open_staging_file(
        proc, stack.data_dir / "build"), 180, interval=0.02, alive=_running(proc))
    os.kill(proc.pid, signal.SIGKILL)
    killed = time.time()
    assert os.path.basename(staging).startswith("warehouse-2024-07-15-")

    wait_until("the killed try is failed", lambda: _ti(stack, run_id, "build_validate_publish")["state"] == "failed",
               300, interval=0.2, alive=stack.check_alive)
    run = stack.wait_for_run("regime_daily", run_id, timeout=RUN_TIMEOUT)
    run["wall_s"] = round(time.monotonic() - t0 - trigger_s, 1)  # from the trigger, not from the kill
    tis = {ti["task_id"]: ti for ti in stack.task_instances("regime_daily", run_id)}
    _record(stack, "killed_build_2024-07-15", run, list(tis.values()), trigger_s,
            kill_to_failed_s=round(_epoch(tis["build_validate_publish"]["end_date"]) - killed, 1),
            kill_to_run_failed_s=round(_epoch(run["end_date"]) - killed, 1))
    mails = clock.wait(" (Airflow runs no task callback for a task process killed alone, apache/airflow#60858: "
                       "regime_daily's on_failure_callback, regime.notify.RunFailureNotifier, sends it)")
    stack.metrics["runs"]["killed_build_2024-07-15"]["kill_to_mail_s"] = round(clock.arrived[0] - killed, 1)
    print(f"killed_build_2024-07-15: kill to mail {clock.arrived[0] - killed:.1f} s (metrics: {stack.write_metrics()})")

    assert run["state"] == "failed", stack.describe("regime_daily", run_id)
    build = tis["build_validate_publish"]
    assert (build["state"], build["try_number"]) == ("failed", 1), stack.describe("regime_daily", run_id)
    assert tis["write_report"]["state"] == "upstream_failed"
    # the analysts keep the warehouse published before, byte for byte; the killed build's copy was never published
    assert _sha256(stack.data_dir / "warehouse.duckdb") == before
    assert _last_price(stack) == published_as_of
    assert os.path.basename(staging) in _staging_files(stack)

    # one mail to the operators, naming the DAG, the task and the run, and saying the task reported no error
    assert len(mails) == 1, [(m["To"], m["Subject"]) for m in mails]
    [mail] = mails
    assert mail["Subject"] == f"[regime] regime_daily.build_validate_publish failed (run {run_id})"
    text, links = _read(mail)
    assert "Task build_validate_publish of DAG regime_daily failed on try 1." in text
    assert f"Run: {run_id} (manual)" in text and "as of 2024-07-15 (conf)" in text
    assert "The task reported no error: its process ended without one (killed" in text
    assert links == [f"{stack.base_url}/dags/regime_daily/runs/{run_id}/tasks/build_validate_publish?try_number=1"]

    # the next run for the same date sweeps the abandoned staging file and publishes that date
    again_id, again, again_trigger_s = _run(stack, "2024-07-15")
    _record(stack, "after_kill_2024-07-15", again, stack.task_instances("regime_daily", again_id), again_trigger_s)
    assert again["state"] == "success", stack.describe("regime_daily", again_id)
    assert _last_price(stack) == "2024-07-15"
    assert _sha256(stack.data_dir / "warehouse.duckdb") != before
    assert os.path.basename(staging) not in _staging_files(stack)
    assert not [name for name in _staging_files(stack) if name.endswith((".duckdb", ".wal"))]


def test_a_build_whose_worker_dies_with_it_is_failed_by_the_scheduler_and_mailed_once(stack):
    """SIGKILL of the build's task process and of its supervisor (the LocalExecutor's worker), as when the worker's
    machine goes: nothing reports the try, its heartbeats stop, and after `[scheduler] task_instance_heartbeat_timeout`
    the scheduler fails it and has the dag-processor run the task's failure callback, with no error in the context
    (regime.notify.FailureNotifier). The stack's timeout, if shortened, bounds the wait; else Airflow's 300 s."""
    heartbeat_timeout = int(stack.env.get("AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT", "300"))
    before = _published(stack)
    stack.unpause("regime_daily")
    clock = _MailClock(stack, len(stack.mail.messages))
    t0 = time.monotonic()
    run_id = stack.trigger("regime_daily", {"as_of": "2024-07-16"})
    trigger_s = time.monotonic() - t0

    def running() -> dict | None:
        ti = _ti(stack, run_id, "build_validate_publish")
        assert ti["state"] in (None, "scheduled", "queued", "running"), stack.describe("regime_daily", run_id)
        found = {"task": _task_process(stack, ti["id"]), "supervisor": _task_process(stack, ti["id"], supervisor=True)}
        return ti["state"] == "running" and all(found.values()) and found

    procs = wait_until("build_validate_publish runs", running, RUN_TIMEOUT, interval=0.2, alive=stack.check_alive)
    wait_until("the build opens its staging warehouse", lambda: _open_staging_file(
        procs["task"], stack.data_dir / "build"), 180, interval=0.02, alive=_running(procs["task"]))
    for proc in (procs["supervisor"], procs["task"]):
        os.kill(proc.pid, signal.SIGKILL)
    killed = time.time()

    run = stack.wait_for_run("regime_daily", run_id, timeout=heartbeat_timeout + RUN_TIMEOUT)
    run["wall_s"] = round(time.monotonic() - t0 - trigger_s, 1)
    tis = {ti["task_id"]: ti for ti in stack.task_instances("regime_daily", run_id)}
    _record(stack, "worker_lost_2024-07-16", run, list(tis.values()), trigger_s, heartbeat_timeout_s=heartbeat_timeout,
            kill_to_failed_s=round(_epoch(tis["build_validate_publish"]["end_date"]) - killed, 1),
            kill_to_run_failed_s=round(_epoch(run["end_date"]) - killed, 1))
    mails = clock.wait()
    stack.metrics["runs"]["worker_lost_2024-07-16"]["kill_to_mail_s"] = round(clock.arrived[0] - killed, 1)
    print(f"worker_lost_2024-07-16: kill to mail {clock.arrived[0] - killed:.1f} s (metrics: {stack.write_metrics()})")

    assert run["state"] == "failed", stack.describe("regime_daily", run_id)
    assert tis["build_validate_publish"]["state"] == "failed", stack.describe("regime_daily", run_id)
    assert _sha256(stack.data_dir / "warehouse.duckdb") == before
    assert len(mails) == 1, [(m["To"], m["Subject"]) for m in mails]
    assert mails[0]["Subject"] == f"[regime] regime_daily.build_validate_publish failed (run {run_id})"
    text, _ = _read(mails[0])
    assert "as of 2024-07-16 (conf)" in text and "The task reported no error" in text

    # the executor replaces its lost worker, and the next run for the date publishes it
    again_id, again, again_trigger_s = _run(stack, "2024-07-16")
    _record(stack, "after_worker_lost_2024-07-16", again, stack.task_instances("regime_daily", again_id),
            again_trigger_s)
    assert again["state"] == "success", stack.describe("regime_daily", again_id)
    assert _last_price(stack) == "2024-07-16"
