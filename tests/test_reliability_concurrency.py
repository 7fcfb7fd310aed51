"""Concurrency: two build-validate-publish runs at once never both write (one waits for state/warehouse.lock, the
other proceeds; with a short lock timeout the second fails with a LockTimeout naming the holder), and readers are
never blocked: a reader process querying the published warehouse in a loop while it is rebuilt and republished
back to back (as of 2024-07-10, 2024-07-17, 2024-07-10) sees only complete, consistent versions and no error.
Two alert runs at once mail the pending alerts once (state/alerts.lock), and an alert run does not wait for a
build holding the warehouse's lock."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from datetime import date

import duckdb
import pytest
from test_reliability_support import Child, build_info, published_sample, regime_env, tables

from regime import locks, pipeline, publisher, state, warehouse
from regime.config import get_settings
from regime.mailcatcher import MailCatcher

OLD, NEW = date(2024, 7, 10), date(2024, 7, 17)

WRITER = """
import contextlib, json, logging, os, sys, time
from datetime import date
logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
from regime import locks, pipeline
from regime.validation import gate  # noqa: F401  (Great Expectations imported before the lock, not inside it)

exclusive = locks.exclusive

@contextlib.contextmanager
def traced(path, what, timeout={timeout}, poll=0.2):
    with exclusive(path, what, timeout=timeout, poll=poll):
        print(json.dumps({{"event": "locked", "what": what, "t": time.time()}}), flush=True)
        hold = {hold!r}  # keep the lock until the test says so (a file appears): no race with slower writers
        while hold and what == "the warehouse" and not os.path.exists(hold):
            time.sleep(0.05)
        try:
            yield
        finally:
            print(json.dumps({{"event": "unlocked", "what": what, "t": time.time()}}), flush=True)

locks.exclusive = traced
summary = pipeline.build_validate_publish(date.fromisoformat("{as_of}"))
print(json.dumps({{"event": "done", "published": summary["published"], "t": time.time()}}), flush=True)
"""

READER = """
import json, os, sys, time
import duckdb
path, stop, out = sys.argv[1:4]
tables = {tables!r}
deadline = time.monotonic() + {seconds}
n = 0
with open(out, "w") as log:
    while n < {max_reads} and time.monotonic() < deadline:
        n += 1
        seen = {{"t": time.time()}}
        try:
            con = duckdb.connect(path, read_only=True)
            try:
                seen["as_of"] = str(con.execute("select as_of from meta.build_info").fetchall()[0][0])
                seen["max_price_date"] = str(con.execute("select max(date) from marts.prices").fetchall()[0][0])
                seen["rows"] = {{t: con.execute(f"select count(*) from {{t}}").fetchall()[0][0] for t in tables}}
            finally:
                con.close()
        except Exception as exc:
            seen["error"] = f"{{type(exc).__name__}}: {{exc}}"
        log.write(json.dumps(seen) + "\\n")
        log.flush()
        if os.path.exists(stop):
            break
        time.sleep(0.15)
"""


def _writer(tmp_path, env, as_of: date, name: str, timeout: float = 600, hold=None) -> Child:
    return Child(WRITER.format(timeout=timeout, as_of=as_of.isoformat(), hold=hold and str(hold)), env,
                 tmp_path / "logs", name)


def _events(child: Child) -> dict[str, float]:
    return {e["event"]: e["t"] for e in map(json.loads, filter(None, child.stdout().splitlines()))
            if e.get("what", "the warehouse") == "the warehouse"}


def _reads(log) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.endswith("}")] if log.exists() else []


def _wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def data_dir(tmp_path, tmp_path_factory):
    target = tmp_path / "data"
    shutil.copytree(published_sample(tmp_path_factory, NEW), target)
    return target


def expected_rows(data_dir, monkeypatch) -> dict[str, dict[str, int]]:
    """Rows per staging/marts table of each version, from full builds of the same lake (no validation needed)."""
    monkeypatch.setenv("REGIME_DATA_DIR", str(data_dir))
    settings = get_settings()
    versions = {}
    for as_of in (OLD, NEW):
        staging = warehouse.build(settings, as_of)
        con = duckdb.connect(str(staging), read_only=True)
        try:
            versions[as_of.isoformat()] = {t: con.execute(f"select count(*) from {t}").fetchall()[0][0]
                                           for t in tables(con) if t.startswith(("staging.", "marts."))}
        finally:
            con.close()
        publisher.discard(staging)
    assert versions[OLD.isoformat()] != versions[NEW.isoformat()]
    return versions


@pytest.mark.slow
def test_writers_take_turns_and_readers_see_only_whole_versions(tmp_path, data_dir, monkeypatch):
    versions = expected_rows(data_dir, monkeypatch)
    env = regime_env(data_dir)
    lock_file = data_dir / "state" / "warehouse.lock"
    stop, seen_log = tmp_path / "stop", tmp_path / "reads.jsonl"
    reader = Child(READER.format(tables=sorted(versions[NEW.isoformat()]), seconds=240, max_reads=20_000), env,
                   tmp_path / "logs", "reader", args=(str(data_dir / "warehouse.duckdb"), str(stop), str(seen_log)))
    try:
        release = tmp_path / "release-first"
        first = _writer(tmp_path, env, OLD, "w1-old", hold=release)
        _wait_until(lambda: "locked" in _events(first) or first.proc.poll() is not None, 120, "the first writer")
        assert lock_file.read_text() == f"pid {first.proc.pid}"
        impatient = _writer(tmp_path, env, NEW, "w2-new-short-timeout", timeout=1.5)
        patient = _writer(tmp_path, env, NEW, "w3-new")
        assert impatient.wait(120) != 0
        _wait_until(lambda: "waiting" in patient.stderr() or patient.proc.poll() is not None, 120, "the patient one")
        assert patient.proc.poll() is None  # still waiting for the lock
        release.write_text("go")
        assert first.wait(300) == 0, first.stderr()[-3000:]
        _wait_until(lambda: "locked" in _events(patient) or patient.proc.poll() is not None, 60, "the second writer")
        last = _writer(tmp_path, env, OLD, "w4-old")
        assert patient.wait(300) == 0, patient.stderr()[-3000:]
        assert last.wait(300) == 0, last.stderr()[-3000:]
        published_at = _events(last)["done"]
        _wait_until(lambda: any(r["t"] > published_at for r in _reads(seen_log)), 30, "a read of the last version")
    finally:
        stop.write_text("stop")
        reader.wait(60)
        for child in [c for c in locals().values() if isinstance(c, Child)]:
            child.kill()  # only if still running (a failed assertion above)

    # the impatient writer failed clearly, naming the holder, and wrote nothing
    assert (f"regime.locks.LockTimeout: the warehouse: still locked by pid {first.proc.pid} after 2s"
            in impatient.stderr()), impatient.stderr()[-2000:]
    assert "locked" not in _events(impatient)
    # the patient one said who it waited for, then went
    assert f"the warehouse is locked by pid {first.proc.pid}; waiting" in patient.stderr()
    # never two writers at once: the lock intervals follow each other
    spans = sorted((_events(c)["locked"], _events(c)["unlocked"]) for c in (first, patient, last))
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert build_info(data_dir / "warehouse.duckdb")["as_of"] == OLD  # the last publish
    assert not list((data_dir / "build").glob("warehouse-*"))

    reads = _reads(seen_log)
    errors = [r["error"] for r in reads if "error" in r]
    assert errors == [], errors[:5]
    assert len(reads) >= 50
    for r in reads:  # complete and consistent: the row counts of the version its build_info names
        assert r["as_of"] == r["max_price_date"]
        assert r["rows"] == versions[r["as_of"]], r
    order = [r["as_of"] for r in reads]
    changes = [b for a, b in zip(order, order[1:], strict=False) if a != b]
    assert changes == [OLD.isoformat(), NEW.isoformat(), OLD.isoformat()]  # each publish seen, in order
    held = ", ".join(f"{b - a:.1f}s" for a, b in spans)
    print(f"\nreliability: lock held {held}; reader made {len(reads)} reads, {len(errors)} errors, versions seen in "
          f"order {changes}")


# ------------------------------------------------------------------------------------------------ alerts

ALERTER = """
import json, logging, sys
from datetime import date
from airflow.providers.smtp.hooks.smtp import SmtpHook  # noqa: F401  (imported before the race, not inside it)
# after Airflow's import, which sends logging to stdout
logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s", force=True)
from regime import pipeline
print(json.dumps(pipeline.alert(date.fromisoformat("{as_of}"))), flush=True)
"""


class HoldingSMTP:
    """aiosmtpd on 127.0.0.1 that holds the first mail at DATA until `release` is set (at most 120 s), so that a
    second alert run starts while the first one is mailing; it counts transactions and keeps what it accepted."""

    def __init__(self):
        self.holding, self.release = threading.Event(), threading.Event()
        self.transactions, self.messages = 0, []

    async def handle_MAIL(self, server, session, envelope, address, options):  # noqa: N802 (aiosmtpd's hook)
        self.transactions += 1
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if not self.holding.is_set():
            self.holding.set()
            deadline = time.monotonic() + 120
            while not self.release.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)  # the event loop keeps serving other connections meanwhile
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"

    def __enter__(self):
        self.server = MailCatcher(handler=self, timeout=180)
        self.server.start()
        self.uri = self.server.connection_uri_json()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.server.stop()


def _alerts(data_dir) -> list[tuple]:
    frame = state.frames(data_dir / "state")["alerts"].sort_values("alert_key")
    return list(frame[["alert_key", "state", "attempts"]].itertuples(index=False, name=None))


@pytest.mark.slow
def test_two_alert_runs_at_once_mail_the_pending_alerts_once(tmp_path, data_dir):
    pending = _alerts(data_dir)
    assert pending and {s for _, s, _ in pending} == {"pending"}
    with HoldingSMTP() as smtp:
        env = regime_env(data_dir, REGIME_ALERT_TO="analyst@example.test", AIRFLOW_CONN_SMTP_DEFAULT=smtp.uri)
        first = Child(ALERTER.format(as_of=NEW.isoformat()), env, tmp_path / "logs", "alert-1")
        try:
            _wait_until(lambda: smtp.holding.is_set() or first.proc.poll() is not None, 120, "the first run's mail")
            second = Child(ALERTER.format(as_of=NEW.isoformat()), env, tmp_path / "logs", "alert-2")
            # the second run either waits for the lock (fixed) or opens its own mail transaction (the double mail)
            _wait_until(lambda: "is locked by" in second.stderr() or smtp.transactions > 1
                        or second.proc.poll() is not None, 120, "the second run to wait or to mail")
            smtp.release.set()
            assert first.wait(120) == 0, first.stderr()[-3000:]
            assert second.wait(120) == 0, second.stderr()[-3000:]
        finally:
            smtp.release.set()
            for child in [c for c in locals().values() if isinstance(c, Child)]:
                child.kill()  # only if still running (a failed assertion above)
    assert smtp.transactions == 1 and len(smtp.messages) == 1  # one mail, not two
    assert smtp.messages[0][0] == ["analyst@example.test"]
    assert first.result()["sent"] == len(pending) and second.result()["sent"] == 0
    assert f"the alert outbox is locked by pid {first.proc.pid}; waiting" in second.stderr()
    assert {(s, n) for _, s, n in _alerts(data_dir)} == {("sent", 1)}  # each alert mailed once


def test_an_alert_run_does_not_wait_for_a_build_holding_the_warehouse_lock(data_dir, monkeypatch, smtp):
    monkeypatch.setenv("REGIME_DATA_DIR", str(data_dir))
    monkeypatch.setenv("REGIME_ALERT_TO", "analyst@example.test")
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp.connection_uri_json())
    settings = get_settings()
    done: dict = {}
    with locks.exclusive(settings.state_dir / "warehouse.lock", "the warehouse"):  # a build in progress
        run = threading.Thread(target=lambda: done.update(pipeline.alert(NEW, settings)), daemon=True)
        run.start()
        run.join(60)
        finished = not run.is_alive()
    run.join(60)
    assert finished, "the alert run waited for the warehouse lock"
    assert done["sent"] > 0 and len(smtp.messages) == 1
