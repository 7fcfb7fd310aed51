"""The incremental path (warehouse.update) gives the same warehouse as a full rebuild: a full build as of D against a
full build as of an earlier date updated to D, every table compared row for row (EXCEPT ALL both ways, all columns);
and it refuses, leaving nothing behind, where it cannot show that (other code, a later published date, history
changed long ago). No timings here: benchmarks/run.py measures them."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from conftest import SAMPLE_LAST
from regime import datasets, pipeline, publisher, warehouse
from regime.incremental import MAX_INCREMENTAL_DAYS, NotIncremental
from regime.lake_changes import journal_changes
from regime.sql import connect

SKIPPED = {"meta.build_method"}  # says how the file was made: differs by design
VOLATILE = {"meta.build_info": ["built_at"]}


def _sessions(day: date, n: int) -> list[date]:
    from regime.calendar import sessions_until

    return sessions_until(day, n)


def _sessions_before(day: date, n: int) -> date:
    return _sessions(day, n + 1)[0]


def differences(a, b) -> list[str]:
    """Tables whose content differs between warehouses a and b (empty: identical but for SKIPPED / VOLATILE)."""
    con = duckdb.connect()
    try:
        con.execute(f"attach '{a}' as a (read_only)")
        con.execute(f"attach '{b}' as b (read_only)")
        tables = {}
        for db in ("a", "b"):
            tables[db] = {f"{s}.{t}": [c for c, in con.execute(
                "select column_name from duckdb_columns() where database_name = $db and schema_name = $s"
                " and table_name = $t order by column_index", {"db": db, "s": s, "t": t}).fetchall()]
                for s, t in con.execute("select schema_name, table_name from duckdb_tables() where database_name"
                                        " = $db", {"db": db}).fetchall()}
        if tables["a"].keys() != tables["b"].keys():
            return [f"tables: {sorted(tables['a'].keys() ^ tables['b'].keys())}"]
        found = []
        for table, columns in sorted(tables["a"].items()):
            if table in SKIPPED:
                continue
            if columns != tables["b"][table]:
                found.append(f"{table}: columns {columns} != {tables['b'][table]}")
                continue
            cols = ", ".join(f'"{c}"' for c in columns if c not in VOLATILE.get(table, []))
            extra = con.execute(f"select count(*) from ((select {cols} from a.{table} except all select {cols} from "
                                f"b.{table}) union all (select {cols} from b.{table} except all select {cols} from"
                                f" a.{table}))").fetchall()[0][0]
            counts = [con.execute(f"select count(*) from {db}.{table}").fetchall()[0][0] for db in "ab"]
            if extra or counts[0] != counts[1]:
                found.append(f"{table}: {extra} rows in only one of them, {counts[0]} vs {counts[1]} rows")
        return found
    finally:
        con.close()


def _method(path) -> tuple:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("select method, recomputed_after from meta.build_method").fetchall()[0]
    finally:
        con.close()


@pytest.fixture
def lake(ingested):
    """The sample's four datasets ingested as of its last session, nothing built (a private copy: conftest's
    `ingested`)."""
    return ingested


def _published(settings, as_of):
    publisher.publish(settings, warehouse.build(settings, as_of))
    return settings.warehouse_path


@pytest.mark.parametrize("sessions_back", [1, 4])
@pytest.mark.slow
def test_update_equals_a_full_rebuild(lake, sessions_back):
    settings = lake
    full = warehouse.build(settings, SAMPLE_LAST)
    previous = _published(settings, _sessions_before(SAMPLE_LAST, sessions_back))
    updated = warehouse.update(settings, SAMPLE_LAST, previous)
    assert differences(full, updated) == []
    assert _method(updated) == ("incremental", _sessions_before(SAMPLE_LAST, sessions_back))
    assert _method(full) == ("full", None)
    con = duckdb.connect(str(updated), read_only=True)
    try:  # something was recomputed: the last day's readings, extremes and regime row
        assert con.execute("select count(*) from marts.extremes where date = $d", {"d": SAMPLE_LAST}).fetchall()[0][0]
        assert con.execute("select label from marts.regime_daily where date = $d",
                           {"d": SAMPLE_LAST}).fetchall() == [("small-cap squeeze",)]
    finally:
        con.close()


@pytest.mark.slow
def test_updates_chain_and_a_rerun_of_the_same_date(lake):
    settings = lake
    first, *days = _sessions(SAMPLE_LAST, 4)
    _published(settings, first)
    for day in days:  # day after day, each update published and updated again
        publisher.publish(settings, warehouse.update(settings, day, settings.warehouse_path))
    again = warehouse.update(settings, SAMPLE_LAST, settings.warehouse_path)  # the same date: nothing new
    assert _method(again) == ("incremental", SAMPLE_LAST)
    full = warehouse.build(settings, SAMPLE_LAST)
    assert differences(full, settings.warehouse_path) == []
    assert differences(full, again) == []


@pytest.mark.slow
def test_a_series_with_a_long_gap_looks_back_far_enough(lake):
    """RVX missing for four months before the last two sessions: its zscore_50d and RUT~RVX vol_corr_5d windows
    reach back past the gap, further than history_from's first probe."""
    settings = lake
    path = datasets.INDEX_PRICES.partition_path(settings.lake_dir, "RVX")
    frame = pd.read_parquet(path)
    day = pd.to_datetime(frame["date"]).dt.date
    keep = (day < SAMPLE_LAST - timedelta(days=120)) | (day >= _sessions_before(SAMPLE_LAST, 1))
    frame[keep.to_numpy()].to_parquet(path, index=False)
    full = warehouse.build(settings, SAMPLE_LAST)
    updated = warehouse.update(settings, SAMPLE_LAST, _published(settings, _sessions_before(SAMPLE_LAST, 1)))
    assert differences(full, updated) == []
    con = duckdb.connect(str(updated), read_only=True)
    try:
        got = con.execute("select indicator, value is not null from marts.indicators where date = $d and subject in"
                          " ('RVX', 'RUT~RVX') order by 1", {"d": SAMPLE_LAST}).fetchall()
    finally:
        con.close()
    assert got == [("vol_corr_5d", True), ("zscore_50d", True)]


@pytest.mark.slow
def test_a_recent_revision_of_the_lake_is_recomputed_from_its_date(lake):
    settings = lake
    previous = _published(settings, _sessions_before(SAMPLE_LAST, 1))
    revised = _sessions_before(SAMPLE_LAST, 6)
    path = datasets.INDEX_PRICES.partition_path(settings.lake_dir, "SPX")
    frame = pd.read_parquet(path)
    frame.loc[pd.to_datetime(frame["date"]).dt.date.to_numpy() == revised, "close"] *= 1.01
    frame.to_parquet(path, index=False)
    updated = warehouse.update(settings, SAMPLE_LAST, previous)
    assert _method(updated) == ("incremental", revised - timedelta(days=1))
    assert differences(warehouse.build(settings, SAMPLE_LAST), updated) == []


@pytest.mark.slow
def test_refuses_what_it_cannot_show_and_leaves_nothing_behind(lake, monkeypatch):
    settings = lake
    previous = _published(settings, _sessions_before(SAMPLE_LAST, 1))
    before = set(settings.build_dir.glob("warehouse-*"))
    with pytest.raises(NotIncremental, match="after"):  # the published warehouse is newer
        warehouse.update(settings, _sessions_before(SAMPLE_LAST, 2), previous)
    path = datasets.INDEX_PRICES.partition_path(settings.lake_dir, "RUT")
    frame = pd.read_parquet(path)
    frame.loc[0, "close"] += 1  # history changed long ago
    frame.to_parquet(path, index=False)
    with pytest.raises(NotIncremental, match="differs from the published warehouse"):
        warehouse.update(settings, SAMPLE_LAST, previous)
    monkeypatch.setenv("REGIME_SMALL_CAPS", "IWM")  # a parameter of the build
    from regime.config import get_settings

    with pytest.raises(NotIncremental, match="fingerprint"):
        warehouse.update(get_settings(), SAMPLE_LAST, previous)
    assert set(settings.build_dir.glob("warehouse-*")) == before


@pytest.mark.slow
def test_the_pipeline_updates_when_it_can_and_rebuilds_otherwise(lake):
    settings = lake
    first = pipeline.build(_sessions_before(SAMPLE_LAST, 1), settings)  # nothing published yet: full
    assert _method(first)[0] == "full"
    publisher.publish(settings, Path(first))
    assert _method(pipeline.build(SAMPLE_LAST, settings)) == ("incremental", _sessions_before(SAMPLE_LAST, 1))
    assert _method(pipeline.build(SAMPLE_LAST, settings, incremental=False))[0] == "full"
    assert _method(pipeline.build(_sessions_before(SAMPLE_LAST, 3), settings))[0] == "full"  # an earlier date


@pytest.mark.slow
def test_the_extremes_engine_in_parts_gives_the_same_table(lake, monkeypatch):
    """Past build._PART_READINGS readings the engine runs per group of whole series (bounded memory): same table."""
    from regime.extremes import build

    whole = warehouse.build(lake, SAMPLE_LAST)
    monkeypatch.setattr(build, "_PART_READINGS", 4000)
    con = duckdb.connect(str(whole), read_only=True)
    try:
        parts = build._parts(con)
    finally:
        con.close()
    assert len(parts) > 10 and any("hash(subject)" in p for p in parts)
    assert differences(whole, warehouse.build(lake, SAMPLE_LAST)) == []


def _lake_check(path) -> str:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("select lake_check from meta.build_method").fetchall()[0][0]
    finally:
        con.close()


@pytest.mark.slow
def test_the_lake_journal_tells_what_changed_without_comparing(lake):
    """A revision written through Dataset.write is journalled in the file: the update reads the journals (file
    footers), not the whole lake, recomputes from the revised date and still equals a full rebuild."""
    settings = lake
    previous = _published(settings, _sessions_before(SAMPLE_LAST, 1))
    assert _lake_check(previous) is None  # a full build checks nothing
    revised = _sessions_before(SAMPLE_LAST, 3)
    frame = pd.read_parquet(datasets.ETF_NAV.partition_path(settings.lake_dir, "IWM"))
    row = frame[pd.to_datetime(frame["date"]).dt.date == revised].assign(ticker="IWM")
    row["shares_outstanding"] += 1_000_000  # a revised share count: that day's flow and the next day's change
    datasets.ETF_NAV.write(settings.lake_dir, row)
    updated = warehouse.update(settings, SAMPLE_LAST, previous)
    assert _lake_check(updated) == ("index_prices: journal, options_volume: journal, cftc_tff: journal, "
                                    "etf_nav: journal, options_putcall: journal")
    assert _method(updated) == ("incremental", revised - timedelta(days=1))
    assert differences(warehouse.build(settings, SAMPLE_LAST), updated) == []


@pytest.mark.slow
def test_a_file_rewritten_by_another_tool_is_compared_with_the_lake(lake):
    settings = lake
    previous = _published(settings, _sessions_before(SAMPLE_LAST, 1))
    path = datasets.OPTIONS_VOLUME.partition_path(settings.lake_dir, "SPY")
    frame = pd.read_parquet(path)
    revised = _sessions_before(SAMPLE_LAST, 2)
    frame.loc[pd.to_datetime(frame["date"]).dt.date.to_numpy() == revised, "call_volume"] += 7
    frame.to_parquet(path, index=False)  # no journal in the file: the update cannot trust the record
    updated = warehouse.update(settings, SAMPLE_LAST, previous)
    assert "options_volume: compared" in _lake_check(updated) and "index_prices: journal" in _lake_check(updated)
    assert _method(updated) == ("incremental", revised - timedelta(days=1))
    assert differences(warehouse.build(settings, SAMPLE_LAST), updated) == []


@pytest.mark.parametrize(("recorded", "journals", "expected"), [
    ({"symbol=RUT": "a"}, {"symbol=RUT": [{"id": "a", "first_changed": "2024-07-01"}]}, (True, None)),
    ({"symbol=RUT": "a"}, {"symbol=RUT": [{"id": "a", "first_changed": "2024-07-01"},
                                          {"id": "b", "first_changed": "2024-07-12"},
                                          {"id": "c", "first_changed": "2024-07-10"}]}, (True, date(2024, 7, 10))),
    ({}, {"symbol=RVX": [{"id": "x", "first_changed": "1990-01-02"}]}, (True, date(1990, 1, 2))),  # a new file
    ({"symbol=RUT": "a"}, {"symbol=RUT": [{"id": "z", "first_changed": "2024-07-12"}]}, (False, None)),  # lost
    ({"symbol=RUT": "a"}, {"symbol=RUT": None}, (False, None)),  # no journal in the file
    ({"symbol=RUT": "a", "symbol=SPX": "s"}, {"symbol=RUT": [{"id": "a", "first_changed": None}]}, (False, None)),
])
def test_journal_changes(recorded, journals, expected):
    assert journal_changes(recorded, journals) == expected


@pytest.mark.slow
def test_the_extremes_state_is_published_and_an_update_that_cannot_use_it_rebuilds(lake):
    """marts.extremes' incremental state (internal.*) is in the published file, and a lake that lost its latest day
    (the latest reading moves back: the state was pruned for the later horizon) is refused by the update, which
    leaves nothing behind, and rebuilt in full by the pipeline, with the same tables as a full build."""
    settings = lake
    previous = _published(settings, SAMPLE_LAST)
    con = duckdb.connect(str(previous), read_only=True)
    try:
        counts = con.execute("select (select count(*) from internal.extremes_series), (select count(*) from"
                             " internal.extremes_frontier), (select count(*) from internal.extremes_ranks)"
                             ).fetchall()[0]
    finally:
        con.close()
    assert all(counts)
    for dataset in datasets.ALL:
        for path in (settings.lake_dir / dataset.name).rglob("*.parquet"):
            frame = pd.read_parquet(path)
            frame[pd.to_datetime(frame[dataset.time_column]).dt.date != SAMPLE_LAST].to_parquet(path, index=False)
    before = set(settings.build_dir.glob("warehouse-*"))
    with pytest.raises(NotIncremental, match="moved back"):
        warehouse.update(settings, SAMPLE_LAST, previous)
    assert set(settings.build_dir.glob("warehouse-*")) == before
    rebuilt = pipeline.build(SAMPLE_LAST, settings)
    assert _method(rebuilt)[0] == "full"
    assert differences(warehouse.build(settings, SAMPLE_LAST), rebuilt) == []


@pytest.mark.slow
def test_builds_run_under_the_configured_duckdb_memory_limit(lake, monkeypatch):
    """REGIME_DUCKDB_MEMORY_LIMIT reaches the build's and the update's connections (what keeps a large build's
    peak memory bounded: docs/performance.md): far too little fails in DuckDB, leaving no staging file."""
    from regime.config import get_settings

    previous = _published(lake, _sessions_before(SAMPLE_LAST, 1))
    monkeypatch.setenv("REGIME_DUCKDB_MEMORY_LIMIT", "256KB")
    tiny = get_settings()
    assert tiny.duckdb_memory_limit == "256KB"
    for make in (lambda: warehouse.build(tiny, SAMPLE_LAST), lambda: warehouse.update(tiny, SAMPLE_LAST, previous)):
        with pytest.raises(duckdb.OutOfMemoryException, match="memory limit"):
            make()
        assert list(tiny.build_dir.glob("warehouse-*")) == []
    monkeypatch.setenv("REGIME_DUCKDB_MEMORY_LIMIT", "64MB")
    assert differences(warehouse.build(get_settings(), SAMPLE_LAST), warehouse.update(get_settings(), SAMPLE_LAST,
                                                                                      previous)) == []


def test_duckdbs_progress_bar_stays_out_of_logs(tmp_path, monkeypatch):
    """A build's long queries would print DuckDB's progress bar into the task log (carriage-return noise): off unless
    the output is a terminal."""
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    con = connect(tmp_path / "warehouse.duckdb")
    assert con.execute("select current_setting('enable_progress_bar')").fetchall() == [(False,)]
    con.close()


def _inode(path: Path) -> int:
    return path.stat().st_ino


@pytest.mark.slow
def test_publish_keeps_the_replaced_file_and_the_next_update_takes_it(lake):
    """publish() hard-links the file it replaces as the spare; update() given the spare updates it in place of a copy
    of the published file (it is renamed to the staging name: taken, never left half-updated), from its own as-of
    date, with the same result as a full rebuild."""
    settings = lake
    spare = publisher.spare_path(settings)
    two_back, one_back = _sessions_before(SAMPLE_LAST, 2), _sessions_before(SAMPLE_LAST, 1)
    _published(settings, two_back)
    assert not spare.exists()  # nothing was replaced
    older = _inode(settings.warehouse_path)
    publisher.publish(settings, warehouse.update(settings, one_back, settings.warehouse_path, spare))
    assert _inode(spare) == older and spare.stat().st_nlink == 1  # the replaced file itself, not a copy
    updated = warehouse.update(settings, SAMPLE_LAST, settings.warehouse_path, spare)
    assert not spare.exists() and _inode(updated) == older
    assert _method(updated) == ("incremental", two_back)  # one publication older: one more day recomputed
    full = warehouse.build(settings, SAMPLE_LAST)
    assert differences(full, updated) == []
    publisher.discard(full)
    published = _inode(settings.warehouse_path)
    publisher.publish(settings, updated)
    assert _inode(spare) == published and _inode(settings.warehouse_path) == older
    assert publisher.sweep_builds(settings) == []  # the spare is not a leftover


@pytest.mark.slow
def test_a_spare_is_not_taken_when_open_stale_or_built_otherwise(lake, monkeypatch):
    settings = lake
    spare = publisher.spare_path(settings)
    _published(settings, _sessions_before(SAMPLE_LAST, 2))
    publisher.publish(settings, warehouse.build(settings, _sessions_before(SAMPLE_LAST, 1)))
    kept = _inode(spare)
    code = f"import duckdb, time; c = duckdb.connect({str(spare)!r}, read_only=True); print('open', flush=True);"
    reader = subprocess.Popen([sys.executable, "-c", code + " time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:  # an analyst still reading the file published before: it is left alone, the published file is copied
        assert reader.stdout.readline().strip() == "open"
        copied = warehouse.update(settings, SAMPLE_LAST, settings.warehouse_path, spare)
        assert _inode(spare) == kept and _inode(copied) != kept
        assert _method(copied) == ("incremental", _sessions_before(SAMPLE_LAST, 1))
    finally:
        reader.kill()
        reader.wait(30)
    monkeypatch.setenv("REGIME_LARGE_CAPS", "SPY")  # other build parameters: neither file is updatable
    from regime.config import get_settings

    with pytest.raises(NotIncremental, match="fingerprint"):
        warehouse.update(get_settings(), SAMPLE_LAST, settings.warehouse_path, spare)
    monkeypatch.undo()
    assert _inode(spare) == kept
    later = SAMPLE_LAST  # a spare more than MAX_INCREMENTAL_DAYS old is not taken either
    monkeypatch.setattr(warehouse, "MAX_INCREMENTAL_DAYS", 0)
    with pytest.raises(NotIncremental, match="more than 0 days"):
        warehouse.update(settings, later, settings.warehouse_path, spare)
    assert _inode(spare) == kept


@pytest.mark.slow
def test_a_failed_update_of_the_spare_consumes_it_and_changes_nothing_published(lake, monkeypatch):
    settings = lake
    spare = publisher.spare_path(settings)
    _published(settings, _sessions_before(SAMPLE_LAST, 2))
    publisher.publish(settings, warehouse.build(settings, _sessions_before(SAMPLE_LAST, 1)))
    published = (_inode(settings.warehouse_path), settings.warehouse_path.read_bytes())
    monkeypatch.setenv("REGIME_DUCKDB_MEMORY_LIMIT", "256KB")
    from regime.config import get_settings

    with pytest.raises(duckdb.OutOfMemoryException):
        warehouse.update(get_settings(), SAMPLE_LAST, settings.warehouse_path, spare)
    assert not spare.exists() and list(settings.build_dir.glob("warehouse-*")) == []
    assert (_inode(settings.warehouse_path), settings.warehouse_path.read_bytes()) == published
    monkeypatch.undo()
    again = pipeline.build(SAMPLE_LAST, settings)  # no spare now: a copy of the published file
    assert _method(again) == ("incremental", _sessions_before(SAMPLE_LAST, 1))


@pytest.mark.slow
def test_a_spare_that_is_also_the_published_file_is_never_written(lake):
    """A publish killed after it linked the published file as the spare and before it replaced that file leaves one
    file under both names: updating the spare would change the published warehouse under its readers."""
    settings = lake
    spare = publisher.spare_path(settings)
    _published(settings, _sessions_before(SAMPLE_LAST, 1))
    spare.parent.mkdir(parents=True, exist_ok=True)
    os.link(settings.warehouse_path, spare)
    published = settings.warehouse_path.read_bytes()
    copied = warehouse.update(settings, SAMPLE_LAST, settings.warehouse_path, spare)
    assert spare.samefile(settings.warehouse_path) and settings.warehouse_path.read_bytes() == published
    assert not copied.samefile(settings.warehouse_path)
    assert _method(copied) == ("incremental", _sessions_before(SAMPLE_LAST, 1))


@pytest.mark.slow
def test_a_full_build_stores_the_readings_an_update_may_recompute_last(lake):
    """The indicator readings dated after as_of - MAX_INCREMENTAL_DAYS follow every other row of marts.indicators
    (what keeps an update's delete, and its checkpoint, to the last row groups), and are the same readings."""
    path = warehouse.build(lake, SAMPLE_LAST)
    horizon = SAMPLE_LAST - timedelta(days=MAX_INCREMENTAL_DAYS)
    con = duckdb.connect(str(path), read_only=True)
    try:
        head, tail, first_tail = con.execute(
            "select count(*) filter (where date <= $h), count(*) filter (where date > $h),"
            " min(rowid) filter (where date > $h) from marts.indicators", {"h": horizon}).fetchall()[0]
        last_head = con.execute("select max(rowid) from marts.indicators where date <= $h",
                                {"h": horizon}).fetchall()[0][0]
    finally:
        con.close()
    assert head > 0 and tail > 0 and last_head < first_tail == head
    previous = _published(lake, _sessions_before(SAMPLE_LAST, 1))
    assert differences(path, warehouse.update(lake, SAMPLE_LAST, previous)) == []
