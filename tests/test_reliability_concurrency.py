"""Concurrency: two build-validate-publish runs at once never both write (one waits for state/warehouse.lock, the
other proceeds; with a short lock timeout the second fails with a LockTimeout naming the holder), and readers are
never blocked: a reader process querying the published warehouse in a loop while it is rebuilt and republished
back to back (as of 2024-07-10, 2024-07-17, 2024-07-10) sees only complete, consistent versions and no error."""

from __future__ import annotations

import json
import shutil
import time
from datetime import date

import duckdb
import pytest
from test_reliability_support import Child, build_info, published_sample, regime_env, tables

from regime import warehouse
from regime.config import get_settings

OLD, NEW = date(2024, 7, 10), date(2024, 7, 17)

WRITER = """
import contextlib, json, logging, sys, time
from datetime import date
logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
from regime import locks, pipeline
from regime.validation import gate  # noqa: F401  (Great Expectations imported before the lock, not inside it)

exclusive = locks.exclusive

@contextlib.contextmanager
def traced(path, what, timeout={timeout}, poll=0.2):
    with exclusive(path, what, timeout=timeout, poll=poll):
        print(json.dumps({{"event": "locked", "what": what, "t": time.time()}}), flush=True)
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


def _writer(tmp_path, env, as_of: date, name: str, timeout: float = 600) -> Child:
    return Child(WRITER.format(timeout=timeout, as_of=as_of.isoformat()), env, tmp_path / "logs", name)


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
        warehouse.discard(staging)
    assert versions[OLD.isoformat()] != versions[NEW.isoformat()]
    return versions


def test_writers_take_turns_and_readers_see_only_whole_versions(tmp_path, data_dir, monkeypatch):
    versions = expected_rows(data_dir, monkeypatch)
    env = regime_env(data_dir)
    lock_file = data_dir / "state" / "warehouse.lock"
    stop, seen_log = tmp_path / "stop", tmp_path / "reads.jsonl"
    reader = Child(READER.format(tables=sorted(versions[NEW.isoformat()]), seconds=240, max_reads=20_000), env,
                   tmp_path / "logs", "reader", args=(str(data_dir / "warehouse.duckdb"), str(stop), str(seen_log)))
    try:
        first = _writer(tmp_path, env, OLD, "w1-old")
        _wait_until(lambda: "locked" in _events(first) or first.proc.poll() is not None, 120, "the first writer")
        assert lock_file.read_text() == f"pid {first.proc.pid}"
        impatient = _writer(tmp_path, env, NEW, "w2-new-short-timeout", timeout=1.5)
        patient = _writer(tmp_path, env, NEW, "w3-new")
        assert impatient.wait(120) != 0
        assert patient.proc.poll() is None  # still waiting for the lock
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
