"""Crash safety: the ingest and the build-validate-publish are killed with SIGKILL at random points of their run
(delays drawn from a seeded RNG across the duration measured first) and at named points (a raw file landed
without its metadata, a partition's temporary file written but not renamed, a staging build open with its
write-ahead log, just before the publishing rename), and rerun after every kill.

After every kill: the published warehouse opens read-only and is the old or the new complete version (its tables'
content hashes and meta.build_info); every lake partition is readable with unique keys and still holds the old
history. After the final reruns: they succeeded, nothing is left in build/ (staging files, .wal) nor any
`.<name>.<pid>.<random>.tmp` in the lake, raw or quarantine, and the lake and the warehouse equal those of runs
that were never interrupted.

Each step runs in a forked child of a long-lived `python -c` process that imported the pipeline, Great
Expectations and DuckDB once (a "zygote"): the child's run time is its step's, not the imports'. The zygote sends
the SIGKILL itself (before it reaps the child, so the pid cannot have been reused)."""

from __future__ import annotations

import json
import os
import random
import select
import shutil
import subprocess
import time
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from test_reliability_support import PYTHON, Child, build_info, regime_env, sha256, table_digest, tables

from conftest import SAMPLE_MIRROR
from regime import datasets, lake, publisher, warehouse
from regime.config import get_settings

OLD, NEW = date(2024, 7, 10), date(2024, 7, 17)
SEED = 20240717
INGEST_KILLS = 11  # real SIGKILLs at random points of the ingest of the four datasets (plus the named points)
TRANSFORM_KILLS = 4  # ... of build-validate-publish (plus the named points)
OCC_FROM = "2024-06-14"  # the crash mirror keeps OCC from here: a shorter ingest, the same code paths

ZYGOTE = r"""
import json, os, signal, sys, threading, time, traceback
from datetime import date
import duckdb, great_expectations, pandas, pyarrow.parquet  # imported once, before any fork
from regime import lake, pipeline, publisher, warehouse
from regime.validation import gate

DATASETS = ("index_prices", "options_volume", "cftc_tff", "etf_nav")


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def arm(point):
    # Named kill points: the child SIGKILLs itself there.
    if point == "raw-landed-meta-missing":  # a raw file written, its .meta.json not yet
        write = lake.write_bytes_atomic
        lake.write_bytes_atomic = lambda target, data: die() if target.name.endswith(".meta.json") else write(
            target, data)
    elif point == "partition-temp-written":  # a partition's temporary file complete, not yet renamed
        replace = os.replace
        os.replace = lambda src, dst: die() if str(dst).endswith("data.parquet") else replace(src, dst)
    elif point == "some-partitions-written":  # 3 options_volume partitions renamed in place, the others not
        replace, renamed = os.replace, []

        def patched(src, dst):
            replace(src, dst)
            if "/options_volume/" in str(dst) and str(dst).endswith("data.parquet"):
                renamed.append(dst)
                if len(renamed) == 3:
                    die()
        os.replace = patched
    elif point in ("staging-open", "validated-not-checkpointed"):  # a staging build open, its WAL pending
        copy_state, calls = warehouse.copy_state, []

        def patched(con, state_dir):
            copy_state(con, state_dir)
            calls.append(1)
            if len(calls) == (1 if point == "staging-open" else 2):
                die()
        warehouse.copy_state = patched
    elif point == "before-publish-rename":
        publisher.publish = lambda settings, staging: die()
    elif point == "after-publish-rename":
        publish = publisher.publish

        def patched(settings, staging):
            publish(settings, staging)
            die()  # the new file is in place; the lock is still held until the kernel drops it
        publisher.publish = patched


def step(name, as_of):
    if name == "ingest":
        for dataset in DATASETS:
            pipeline.ingest(dataset, as_of)
    elif name == "build-publish":  # a complete version, quickly (no validation): the old one
        pipeline.publish(pipeline.build(as_of))
    else:
        pipeline.build_validate_publish(as_of)


print(json.dumps({"ready": True, "threads": threading.active_count()}), flush=True)
for line in sys.stdin:
    cmd = json.loads(line)
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.environ["REGIME_DATA_DIR"] = cmd["data_dir"]
            arm(cmd.get("point"))
            step(cmd["step"], date.fromisoformat(cmd["as_of"]))
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    killed = False
    deadline = None if cmd.get("kill_after") is None else started + cmd["kill_after"]
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if deadline is not None and time.monotonic() >= deadline and not killed:
            os.kill(pid, signal.SIGKILL)
            killed = True
        time.sleep(0.005)
    print(json.dumps({"seconds": time.monotonic() - started, "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status)
                      else None, "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None}), flush=True)
"""


REFERENCE_INGEST = """
from datetime import date
from regime import pipeline
for dataset in ("index_prices", "options_volume", "cftc_tff", "etf_nav"):
    pipeline.ingest(dataset, date.fromisoformat("{as_of}"))
"""


class Zygote:
    def __init__(self, env: dict, log: Path):
        self.err = log.open("w")
        self.proc = subprocess.Popen([PYTHON, "-c", ZYGOTE], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, text=True, bufsize=1)
        self.log = log
        ready = self._read(120)
        assert ready.get("ready"), ready

    def _read(self, timeout: float) -> dict:
        readable, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert readable, f"no answer from the zygote in {timeout}s: {self.log.read_text()[-3000:]}"
        line = self.proc.stdout.readline()
        assert line, f"the zygote died: {self.log.read_text()[-3000:]}"
        return json.loads(line)

    def run(self, step: str, as_of: date, data_dir: Path, kill_after: float | None = None,
            point: str | None = None) -> dict:
        cmd = {"step": step, "as_of": as_of.isoformat(), "data_dir": str(data_dir), "kill_after": kill_after,
               "point": point}
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read(300)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.err.close()


# ------------------------------------------------------------------------------------------------ checks


def data_digest(path: Path) -> dict:
    """as_of and the content hash of every staging.* and marts.* table of a warehouse, opened read-only."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        digest = {t: table_digest(con, t) for t in tables(con) if t.startswith(("staging.", "marts."))}
        digest["as_of"] = con.execute("select as_of from meta.build_info").fetchall()[0][0]
        return digest
    finally:
        con.close()


def lake_frames(data_dir: Path) -> dict[str, pd.DataFrame]:
    """Every partition, read; each must be readable and have unique keys (no partial or doubled write)."""
    frames = {}
    for dataset in datasets.ALL:
        for path in sorted((data_dir / "lake" / dataset.name).glob("*/data.parquet")):
            frame = pd.read_parquet(path)
            assert not frame.duplicated(list(dataset.key)).any(), path
            assert list(frame.columns) == [f.name for f in dataset.schema if f.name != dataset.partition], path
            frames[f"{dataset.name}/{path.parent.name}"] = frame.sort_values(list(dataset.key)).reset_index(drop=True)
    return frames


def temp_files(data_dir: Path) -> list[Path]:
    return [p for folder in ("lake", "raw", "quarantine") for p in (data_dir / folder).rglob(".*.tmp")]


def staging_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "build").glob("warehouse-*"))


def assert_history_kept(frames: dict, old: dict) -> None:
    """Every partition of the old lake is still there and still holds exactly its old rows (plus newer ones)."""
    assert set(old) <= set(frames)
    for name, before in old.items():
        key = "report_date" if name.startswith("cftc_tff") else "date"
        now = frames[name]
        pd.testing.assert_frame_equal(now[now[key].isin(before[key])].reset_index(drop=True), before)


def raw_is_consistent(data_dir: Path) -> None:
    """Every landed file has its metadata, and the metadata's sha256 is the file's."""
    import hashlib

    for path in (data_dir / "raw").rglob("*"):
        if path.is_file() and not path.name.endswith(".meta.json") and not path.name.startswith("."):
            meta = json.loads(path.with_name(path.name + ".meta.json").read_text())
            assert meta["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest(), path


# ------------------------------------------------------------------------------------------------ the test


@pytest.fixture
def crash_mirror(tmp_path) -> Path:
    mirror = tmp_path / "mirror"
    shutil.copytree(SAMPLE_MIRROR, mirror)
    for day in (mirror / "occ" / "volume-query").iterdir():
        if day.name < OCC_FROM:
            shutil.rmtree(day)
    return mirror


@pytest.mark.slow
def test_kill_anywhere_then_rerun(tmp_path, crash_mirror, monkeypatch):
    data, reference = tmp_path / "data", tmp_path / "reference"
    env = regime_env(data, crash_mirror)
    rng = random.Random(SEED)
    # the reference: the same ingest, never interrupted, in another data dir (in parallel with what follows)
    clean_ingest = Child(REFERENCE_INGEST.format(as_of=NEW.isoformat()), regime_env(reference, crash_mirror),
                         tmp_path / "logs", "reference")
    zygote = Zygote(env, tmp_path / "zygote.err")
    checking = 0.0
    kills: list[tuple[str, str, float]] = []  # (step, point or "random", seconds into the run)
    try:
        # the old version, and how long an uninterrupted ingest takes
        ingest = zygote.run("ingest", OLD, data)
        assert ingest["code"] == 0, zygote.log.read_text()[-3000:]
        assert zygote.run("build-publish", OLD, data)["code"] == 0, zygote.log.read_text()[-3000:]
        old_lake, old_warehouse = lake_frames(data), data_digest(data / "warehouse.duckdb")
        old_file = sha256(data / "warehouse.duckdb")
        assert old_warehouse["as_of"] == OLD

        def after_kill(step: str, point: str, answer: dict) -> None:
            nonlocal checking
            started = time.monotonic()
            try:
                check(step, point, answer)
            finally:
                checking += time.monotonic() - started

        def check(step: str, point: str, answer: dict) -> None:
            if answer["signal"] is None:  # finished before the kill came
                assert answer["code"] == 0, zygote.log.read_text()[-3000:]
                return
            assert answer["signal"] == 9
            kills.append((step, point, answer["seconds"]))
            assert_history_kept(lake_frames(data), old_lake)
            if step == "ingest":  # an ingest never touches the warehouse: the very same file
                assert sha256(data / "warehouse.duckdb") == old_file
                return
            published = data_digest(data / "warehouse.duckdb")
            assert published["as_of"] in (OLD, NEW)
            if published["as_of"] == OLD:
                assert published == old_warehouse
            else:
                seen_new.append(published)
            assert len([p for p in staging_files(data) if p.suffix == ".duckdb"]) <= 1  # swept at each start

        # kill the ingest as of the new date: at random points, then at named ones; rerun each time
        seen_new: list[dict] = []
        for point in ["raw-landed-meta-missing", "partition-temp-written", "some-partitions-written"]:
            after_kill("ingest", point, zygote.run("ingest", NEW, data, point=point))
        attempts = 0
        while len([k for k in kills if k[0] == "ingest" and k[1] == "random"]) < INGEST_KILLS:
            attempts += 1
            assert attempts <= INGEST_KILLS + 8, "the kills keep coming too late"
            delay = rng.uniform(0.02, 0.95) * ingest["seconds"]
            after_kill("ingest", "random", zygote.run("ingest", NEW, data, kill_after=delay))
        leftovers = temp_files(data)
        rerun = zygote.run("ingest", NEW, data)
        assert rerun["code"] == 0, zygote.log.read_text()[-3000:]
        assert temp_files(data) == [], f"not swept: {temp_files(data)} (before the rerun: {leftovers})"
        raw_is_consistent(data)
        assert clean_ingest.wait(300) == 0, clean_ingest.stderr()[-3000:]
        crashed, clean = lake_frames(data), lake_frames(reference)
        assert crashed.keys() == clean.keys()
        for name in clean:
            pd.testing.assert_frame_equal(crashed[name], clean[name], check_like=False, obj=name)

        # kill build-validate-publish as of the new date; the run killed just before the rename also measures how
        # long the step takes (it did all the work)
        after_kill("transform", "staging-open", zygote.run("transform", NEW, data, point="staging-open"))
        transform = zygote.run("transform", NEW, data, point="before-publish-rename")
        after_kill("transform", "before-publish-rename", transform)
        assert build_info(data / "warehouse.duckdb")["as_of"] == OLD  # killed before the rename: still old
        attempts = 0
        while len([k for k in kills if k[0] == "transform" and k[1] == "random"]) < TRANSFORM_KILLS:
            attempts += 1
            assert attempts <= TRANSFORM_KILLS + 4, "the kills keep coming too late"
            delay = rng.uniform(0.02, 0.98) * transform["seconds"]
            after_kill("transform", "random", zygote.run("transform", NEW, data, kill_after=delay))
        leftovers = staging_files(data)
        rerun = zygote.run("transform", NEW, data)
        assert rerun["code"] == 0, zygote.log.read_text()[-3000:]
    finally:
        zygote.close()

    assert staging_files(data) == [], f"not swept: {staging_files(data)} (before the rerun: {leftovers})"
    assert not list((data / "build").glob(".*.tmp"))
    final = data_digest(data / "warehouse.duckdb")
    assert final["as_of"] == NEW
    assert all(seen == final for seen in seen_new)  # every new version seen after a kill was the complete one
    monkeypatch.setenv("REGIME_DATA_DIR", str(data))
    monkeypatch.setenv("REGIME_MIRROR_DIR", str(crash_mirror))
    clean = warehouse.build(get_settings(), NEW)  # a full build of the same lake, never interrupted
    try:
        assert data_digest(clean) == final
    finally:
        publisher.discard(clean)

    assert len(kills) >= 20
    assert {k[1] for k in kills} == {"random", "raw-landed-meta-missing", "partition-temp-written",
                                     "some-partitions-written", "staging-open", "before-publish-rename"}
    print(f"\nreliability: {len(kills)} SIGKILLs ({sum(k[0] == 'ingest' for k in kills)} ingest, "
          f"{sum(k[0] == 'transform' for k in kills)} transform/publish); uninterrupted ingest "
          f"{ingest['seconds']:.1f}s, transform {transform['seconds']:.1f}s; kill times "
          + ", ".join(f"{step}:{point}@{t:.2f}s" for step, point, t in kills)
          + f"; staging files swept by the rerun: {len(leftovers)}; checks after the kills took {checking:.1f}s")


def test_the_sweepers_remove_leftovers_and_keep_what_a_live_process_holds(tmp_path, monkeypatch):
    monkeypatch.setenv("REGIME_DATA_DIR", str(tmp_path / "data"))
    settings = get_settings()
    partition = settings.lake_dir / "index_prices" / "symbol=RUT"
    partition.mkdir(parents=True)
    finished = subprocess.run([PYTHON, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(finished.stdout)
    live = partition / f".data.parquet.{os.getpid()}.k3j2a9x_.tmp"
    stale = partition / f".data.parquet.{dead}.q8w7e6r5.tmp"
    unnamed = partition / ".data.parquet.abcdefgh.tmp"  # an older writer's name, without its pid
    kept = partition / "data.parquet"
    for path in (live, stale, unnamed, kept):
        path.write_bytes(b"x")
    assert sorted(lake.sweep_temp(settings.lake_dir / "index_prices", tmp_path / "absent")) == sorted([stale, unnamed])
    assert live.exists() and kept.exists()

    build = settings.build_dir
    build.mkdir(parents=True)
    abandoned = build / "warehouse-2024-07-17-0badf00d.duckdb"
    duckdb.connect(str(abandoned)).close()
    orphan_wal = build / "warehouse-2024-07-16-deadbeef.duckdb.wal"
    orphan_wal.write_bytes(b"wal")
    spilled = build / "warehouse-2024-07-16-deadbeef.duckdb.tmp"  # DuckDB's spill folder of a killed build
    spilled.mkdir()
    (spilled / "duckdb_temp_storage_S32K-0.tmp").write_bytes(b"spill")
    empty = datasets.INDEX_PRICES.empty_file(build)  # a cache the builds reuse, not a leftover
    held = build / "warehouse-2024-07-17-0pen0pen.duckdb"
    holder = subprocess.Popen([PYTHON, "-c", f"import duckdb, sys, time; c = duckdb.connect({str(held)!r});"
                                            " c.execute('create table t as select 1'); print('open', flush=True);"
                                            " time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        assert sorted(publisher.sweep_builds(settings)) == sorted([abandoned, orphan_wal, spilled])
        assert not spilled.exists()
        assert held.exists() and empty.exists()
    finally:
        holder.kill()
        holder.wait(30)
    leftovers = sorted(build.glob("warehouse-*"))  # the killed holder's file (and its .wal): swept now
    assert held in leftovers and sorted(publisher.sweep_builds(settings)) == leftovers
