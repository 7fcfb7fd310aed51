"""Repair: `regime-lake show` prints a partition's rows, `regime-lake remove` takes a bad row out of the lake (atomic,
journaled, recorded in meta.revisions) and `--rebuild` publishes a warehouse without it; a removal is refused while
an ingest of the dataset runs, or when a date is not in the partition, and then nothing changes."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import SAMPLE_LAST, file_digest
from regime import lake, pipeline, state
from regime.locks import exclusive
from regime.sql import connect_readonly
from regime.validation.gate import ValidationFailed

REGIME_LAKE = str(Path(sys.executable).with_name("regime-lake"))
SATURDAY = "07/13/2024,2126.739990,2126.739990,2126.739990,2126.739990"


def _regime_lake(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([REGIME_LAKE, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture
def saturday_in_lake(published, mirror):
    """RUT's Cboe file with a Saturday row, ingested: the lake holds it and the gate blocks."""
    path = mirror / "cboe" / "RUT_History.csv"
    path.write_text(path.read_text().replace("07/15/2024,", f"{SATURDAY}\n07/15/2024,"))
    pipeline.ingest("index_prices", SAMPLE_LAST, published)
    with pytest.raises(ValidationFailed, match="dates must be NYSE sessions"):
        pipeline.build_validate_publish(SAMPLE_LAST, published)
    return published.lake_dir / "index_prices" / "symbol=RUT" / "data.parquet"


@pytest.mark.slow
def test_show_and_remove_a_bad_row_then_rebuild(published, saturday_in_lake):
    shown = _regime_lake("show", "index_prices", "RUT", "--from", "2024-07-12", "--to", "2024-07-15")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"{saturday_in_lake}: 1395 rows,")  # 1394 sample rows + Saturday
    assert [line.split()[0] for line in lines[2:]] == ["2024-07-12", "2024-07-13", "2024-07-15"]
    assert lines[1].split() == ["date", "open", "high", "low", "close"]
    assert [float(v) for v in lines[3].split()[1:]] == [2126.73999] * 4
    journal = lake.read_journal(saturday_in_lake)

    removed = _regime_lake("remove", "index_prices", "RUT", "--date", "2024-07-13", "--rebuild", "2024-07-17")
    assert removed.returncode == 0, removed.stderr
    assert "removed 1 row(s) from index_prices RUT" in removed.stdout
    assert "rebuilt as of 2024-07-17 and published" in removed.stdout
    rows = pd.read_parquet(saturday_in_lake)
    assert len(rows) == 1394 and date_iso(rows).count("2024-07-13") == 0
    # one journaled write, its first changed date the removed row's
    after = lake.read_journal(saturday_in_lake)
    assert after[:-1] == journal and after[-1]["first_changed"] == "2024-07-13"

    con = connect_readonly(published.warehouse_path)
    try:
        assert con.execute("select count(*) from marts.prices where symbol = 'RUT' and date = '2024-07-13'"
                           ).fetchall() == [(0,)]
        assert con.execute("select series, date, field, kind, file from meta.revisions").fetchall() == [
            ("RUT", "2024-07-13", "*", "removed", "regime-lake remove")]
    finally:
        con.close()


def date_iso(rows: pd.DataFrame) -> list[str]:
    return [d.isoformat() for d in rows["date"]]


@pytest.mark.slow
def test_remove_then_an_incremental_build_publishes(published, saturday_in_lake):
    removed = _regime_lake("remove", "index_prices", "RUT", "--date", "2024-07-13")
    assert removed.returncode == 0, removed.stderr
    assert "the published warehouse still holds them: rebuild it" in removed.stdout
    pipeline.build_validate_publish(SAMPLE_LAST, published)  # the journal tells the update where to start
    con = connect_readonly(published.warehouse_path)
    try:
        assert con.execute("select count(*) from marts.prices where symbol = 'RUT' and date = '2024-07-13'"
                           ).fetchall() == [(0,)]
    finally:
        con.close()


@pytest.mark.slow
def test_remove_is_refused_while_an_ingest_runs(published, saturday_in_lake):
    held = file_digest(saturday_in_lake)
    with exclusive(published.state_dir / "ingest-index_prices.lock", "ingest of index_prices"):
        refused = _regime_lake("remove", "index_prices", "RUT", "--date", "2024-07-13")
    assert refused.returncode == 1
    assert "an ingest of index_prices is running; nothing was removed" in refused.stderr
    assert file_digest(saturday_in_lake) == held
    assert state.frames(published.state_dir)["revisions"].empty


@pytest.mark.slow
def test_remove_of_a_date_not_held_changes_nothing(published, saturday_in_lake):
    held = file_digest(saturday_in_lake)
    refused = _regime_lake("remove", "index_prices", "RUT", "--date", "2024-07-13", "--date", "2024-07-14")
    assert refused.returncode == 1
    assert "index_prices RUT holds no row for 2024-07-14; nothing was removed" in refused.stderr
    assert file_digest(saturday_in_lake) == held
    unknown = _regime_lake("show", "index_prices", "XYZ")
    assert unknown.returncode == 1 and "the lake holds no index_prices partition 'XYZ'" in unknown.stderr


@pytest.mark.slow
def test_removing_a_published_row_lifts_the_row_count_floors(published):
    # RUT 2024-07-16 is a real session in the published warehouse: without it the next build holds one price fewer,
    # which the "rows are never dropped" floor would refuse; the recorded removal explains the shorter history
    con = connect_readonly(published.warehouse_path)
    try:
        prices = con.execute("select count(*) from marts.prices").fetchall()[0][0]
    finally:
        con.close()
    removed = _regime_lake("remove", "index_prices", "RUT", "--date", "2024-07-16", "--rebuild", "2024-07-17")
    assert removed.returncode == 0, removed.stderr
    con = connect_readonly(published.warehouse_path)
    try:
        assert con.execute("select count(*) from marts.prices").fetchall() == [(prices - 1,)]
    finally:
        con.close()
