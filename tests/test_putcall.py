"""Cboe's put/call volume history as a long-history options source (dataset options_putcall): live mode on the genuine
Cboe files served from 127.0.0.1, the warehouse built from them passing the gate, a record stated against the whole
history since 2006 (hand-checked against the raw file with pandas), the indicators on a small hand-written file, and
the gate refusing a wrong value on a full build and on an update.

Genuine files: tests/sources/data/cboe-{total,equity,index}pc.csv (provenance in tests/sources/data/PROVENANCE.md).
"""

from __future__ import annotations

import io
import shutil
from dataclasses import replace
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from test_gate_update_path import candidate
from test_incremental import differences

from regime import pipeline, publisher, warehouse, words
from regime.config import get_settings
from regime.sources import cboe_putcall
from regime.validation import indicators, options_putcall
from regime.validation.gate import ValidationFailed, validate_build
from upstream import live_upstream, path_of

pytestmark = pytest.mark.slow  # each test builds a warehouse
DATA = Path(__file__).parent / "sources" / "data"
AS_OF = date(2019, 10, 4)  # the last day of Cboe's put/call volume files


def _raw(product: str) -> pd.DataFrame:
    """A genuine file read the plain pandas way, independently of the project's parser."""
    frame = pd.read_csv(DATA / f"cboe-{product}pc.csv", skiprows=2, skipinitialspace=True)
    frame.columns = ["date", "calls", "puts", "total", "ratio"]
    frame["date"] = pd.to_datetime(frame["date"], format="%m/%d/%Y").dt.date
    return frame.assign(exact=frame["puts"] / frame["calls"])


@pytest.fixture(scope="module")
def genuine(tmp_path_factory):
    """Live mode on the genuine files: ingested over HTTP from 127.0.0.1, built, validated (the gate passes) and
    published as of 2019-10-04. Never changed: tests copy its warehouse."""
    with pytest.MonkeyPatch.context() as mp:
        data_dir = tmp_path_factory.mktemp("putcall") / "data"
        mp.setenv("REGIME_DATA_DIR", str(data_dir))
        mp.setenv("REGIME_MIRROR_DIR", str(data_dir / "no-mirror"))
        with live_upstream(mp, REGIME_HTTP_TIMEOUT="2") as up:
            for product in cboe_putcall.PRODUCTS:
                up.route(path_of(cboe_putcall.url(product)), (DATA / f"cboe-{product}pc.csv").read_bytes())
            settings = get_settings()
            ingested = pipeline.ingest("options_putcall", AS_OF, settings)
            summary = pipeline.build_validate_publish(AS_OF, settings)
        served = sorted(path for path, _ in up.requests)
    return settings, ingested, summary, served


def test_live_mode_on_the_genuine_files_builds_a_warehouse_that_passes_the_gate(genuine):
    settings, ingested, summary, served = genuine
    assert served == ["/resources/options/volume_and_call_put_ratios/equitypc.csv",
                      "/resources/options/volume_and_call_put_ratios/indexpc.csv",
                      "/resources/options/volume_and_call_put_ratios/totalpc.csv"]
    assert ingested["rows"] == {"equity": 3253, "index": 3253, "total": 3240}
    assert summary["published"] and summary["warnings"] == [], summary
    raw = sorted(p.name for p in (settings.raw_dir / "cboe_putcall").rglob("*.csv"))
    assert raw == ["equitypc.csv", "indexpc.csv", "totalpc.csv"]
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        counts = dict(con.execute("select product, count(*) from staging.options_putcall group by all").fetchall())
    finally:
        con.close()
    assert counts == {"equity": 3253, "index": 3253, "total": 3240}


def test_the_highest_total_put_call_ratio_since_2006_is_a_record_read_from_marts_extremes(genuine):
    settings = genuine[0]
    raw = _raw("total")
    top = raw.loc[raw["exact"].idxmax()]  # 12/20/2018, 3009602 calls, 5489571 puts: 1.82 as published
    assert (top["date"], top["calls"], top["puts"], top["ratio"]) == (date(2018, 12, 20), 3009602, 5489571, 1.82)
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        record = con.execute(
            "select date, value, history_start, is_record_high, highest_since from marts.extremes "
            "where indicator = 'putcall_ratio' and subject = 'total' order by value desc limit 1").fetchall()[0]
        # a later reading that is not a record: the latest earlier day at least as high, by pandas on the raw file
        later = con.execute("select value, highest_since from marts.extremes where indicator = 'putcall_ratio' "
                            "and subject = 'total' and date = '2019-08-05'").fetchall()[0]
        lowest_equity = con.execute(
            "select date, value, is_record_low from marts.extremes where indicator = 'putcall_ratio' "
            "and subject = 'equity' order by value limit 1").fetchall()[0]
    finally:
        con.close()
    assert record[:4] == (date(2018, 12, 20), pytest.approx(5489571 / 3009602), date(2006, 11, 1), True)
    assert record[4] is None  # nothing earlier was as high: the highest since the series began, 2006-11-01
    day = raw[raw["date"] == date(2019, 8, 5)].iloc[0]
    earlier = raw[(raw["date"] < day["date"]) & (raw["exact"] >= day["exact"])]
    assert later == (pytest.approx(day["exact"]), earlier["date"].max())
    equity = _raw("equity")
    low = equity.loc[equity["exact"].idxmin()]
    assert lowest_equity == (low["date"], pytest.approx(low["exact"]), True)
    assert words.reading_name("putcall_ratio", "total") == "Cboe total options put/call volume ratio"
    assert words.value_text("putcall_ratio", record[1]) == "1.82"


def test_an_update_over_the_archive_equals_a_full_rebuild(genuine, tmp_path):
    """Published as of 2019-09-27, updated to 2019-10-04 (the put/call windows look back on the rows before the
    update's start): every table as a full rebuild as of 2019-10-04 has it."""
    settings = replace(genuine[0], data_dir=tmp_path / "data")
    shutil.copytree(genuine[0].data_dir, settings.data_dir)
    full = warehouse.build(settings, AS_OF)
    publisher.publish(settings, warehouse.build(settings, date(2019, 9, 27)))
    updated = warehouse.update(settings, AS_OF, settings.warehouse_path)
    assert differences(full, updated) == []
    con = duckdb.connect(str(updated), read_only=True)
    try:
        method = con.execute("select method, recomputed_after from meta.build_method").fetchall()
        recomputed = con.execute("select count(*) from marts.indicators where indicator = 'putcall_ratio_10d' "
                                 "and date > '2019-09-27'").fetchall()[0][0]
    finally:
        con.close()
    assert method == [("incremental", date(2019, 9, 27))]
    assert recomputed == 5 * 2  # 2019-09-30 .. 10-04 for equity and index (the total file ends 09-17)


# a small hand-written totalpc.csv: 12 sessions of 2019-09, calls 1,000,000 each day, puts 500,000 + 50,000 per day
# (day i = 0..11: ratio 0.50 + 0.05 i, so its last 10 ratios average 0.5 + 0.05 * 6.5 = 0.825 on the 12th day)
SESSIONS = [date(2019, 9, d) for d in (3, 4, 5, 6, 9, 10, 11, 12, 13, 16, 17, 18)]


def _small_file() -> bytes:
    out = io.StringIO()
    out.write("Synthetic test file in the layout of Cboe's put/call volume history.,,,,\r\n")
    out.write(", PRODUCT: TOTAL,,EXCHANGE: Cboe,\r\nDATE,CALLS,PUTS,TOTAL,P/C Ratio\r\n")
    for i, day in enumerate(SESSIONS):
        calls, puts = 1_000_000, 500_000 + 50_000 * i
        out.write(f"{day.strftime('%m/%d/%Y')}, {calls}, {puts}, {calls + puts}, {puts / calls:.2f}\r\n")
    return out.getvalue().encode()


def test_the_indicators_on_a_small_hand_written_file(settings, tmp_path):
    folder = Path(settings.mirror_dir) / cboe_putcall.FOLDER
    shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / "totalpc.csv").write_bytes(_small_file())
    result = pipeline.ingest("options_putcall", date(2019, 9, 18), settings)
    assert result["rows"] == {"total": 12} and sorted(result["missing"]) == ["equity", "index"]
    staging = pipeline.build(date(2019, 9, 18), settings, incremental=False)
    con = duckdb.connect(staging, read_only=True)
    try:
        readings = {(i, d): v for i, d, v in con.execute(
            "select indicator, date, value from marts.indicators where indicator like 'putcall%' "
            "and subject = 'total'").fetchall()}
    finally:
        con.close()
    assert readings[("putcall_ratio", date(2019, 9, 3))] == pytest.approx(0.50)
    assert readings[("putcall_ratio", date(2019, 9, 18))] == pytest.approx(1.05)  # 1,050,000 / 1,000,000
    # 10-day average: none before the 10th session (09-16); then (0.50 + ... + 0.95) / 10 = 0.725, and 0.825 on 09-18
    assert ("putcall_ratio_10d", date(2019, 9, 13)) not in readings
    assert readings[("putcall_ratio_10d", date(2019, 9, 16))] == pytest.approx(0.725)
    assert readings[("putcall_ratio_10d", date(2019, 9, 18))] == pytest.approx(0.825)
    # 5-day call volume: 5 x 1,000,000 from the 5th session (09-09) on
    assert ("putcall_call_volume_5d", date(2019, 9, 6)) not in readings
    assert readings[("putcall_call_volume_5d", date(2019, 9, 9))] == 5_000_000


@pytest.mark.parametrize("path", ["full", "update"])
@pytest.mark.parametrize(("suite", "sql", "blocked"), [
    (options_putcall, "update staging.options_putcall set pc_ratio = 25 where product = 'index' "
                      "and date = '2019-10-03'", ["column=pc_ratio", "column=ratio_gap"]),
    (options_putcall, "update staging.options_putcall set total_volume = total_volume + 1 where product = 'equity' "
                      "and date = '2019-10-04'", ["column=total_minus_sum"]),
    (options_putcall, "update staging.options_putcall set call_volume = -5 where product = 'index' "
                      "and date = '2019-10-01'", ["column=call_volume"]),
    (indicators, "update marts.indicators set value = 42 where indicator = 'putcall_ratio_10d' "
                 "and subject = 'equity' and date = '2019-10-02'", ["putcall_ratio_10d is bounded to"]),
])
def test_a_wrong_value_is_refused_on_a_full_build_and_on_an_update(genuine, tmp_path, suite, sql, blocked, path):
    settings = genuine[0]
    staging = candidate(settings, tmp_path, sql, path, since="2019-09-30")
    with pytest.raises(ValidationFailed) as err:
        validate_build(staging, date(2019, 10, 5), tmp_path / "docs", tmp_path / "state",
                       published=settings.warehouse_path, suites=(suite,))
    lines = [line for line in str(err.value).splitlines() if "BLOCKING" in line]
    for words_ in blocked:
        assert any(words_ in line for line in lines), (words_, lines)


@pytest.mark.airflow
def test_the_ingest_dag_lands_the_archive_and_waits_for_nothing_else(run_dag, settings):
    """`airflow dags test ingest_options_putcall` on the bundled sample (synthetic put/call files up to 2019-10-04):
    the archive's age fails nothing, and only its own lake folder is written."""
    done = run_dag(date(2024, 7, 17), dag_id="ingest_options_putcall")
    assert done.returncode == 0, done.stdout[-3000:]
    assert [p.name for p in settings.lake_dir.iterdir()] == ["options_putcall"]
    frame = pd.read_parquet(settings.lake_dir / "options_putcall" / "product=equity" / "data.parquet")
    assert (len(frame), frame["date"].max()) == (192, AS_OF)
