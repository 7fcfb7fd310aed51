import json
from datetime import date

import pandas as pd

from regime import lake


def test_upsert_keeps_rows_the_upstream_no_longer_serves(tmp_path):
    path = lake.partition_path(tmp_path, "index_prices", "symbol", "RUT")
    old = pd.DataFrame({"date": [date(2024, 1, 2), date(2024, 1, 3)], "close": [1.0, 2.0]})
    new = pd.DataFrame({"date": [date(2024, 1, 3), date(2024, 1, 4)], "close": [2.5, 3.0]})
    assert lake.upsert_partition(path, old, on=["date"]) == 2
    assert lake.upsert_partition(path, new, on=["date"]) == 3
    merged = pd.read_parquet(path)
    assert merged["close"].tolist() == [1.0, 2.5, 3.0]  # the newer file wins on 2024-01-03
    assert path.parent.name == "symbol=RUT"
    assert not list(path.parent.glob(".*tmp"))


def test_atomic_path_leaves_target_untouched_on_error(tmp_path):
    target = tmp_path / "x" / "data.parquet"
    lake.write_bytes_atomic(target, b"old")
    try:
        with lake.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed mid-write")
    except RuntimeError:
        pass
    assert target.read_bytes() == b"old"
    assert [p.name for p in target.parent.iterdir()] == ["data.parquet"]


def test_raw_landing_records_origin_and_is_idempotent(tmp_path):
    path = lake.land_raw(tmp_path, "cboe", date(2024, 7, 16), "RUT_History.csv", b"DATE,RUT\n", "http://x/RUT")
    meta_path = path.with_name("RUT_History.csv.meta.json")
    meta = json.loads(meta_path.read_text())
    assert path.read_bytes() == b"DATE,RUT\n"
    assert meta["sha256"] == lake.sha256(b"DATE,RUT\n") and meta["location"] == "http://x/RUT"
    assert path.parent.name == "as_of=2024-07-16"
    before = meta_path.read_bytes()
    lake.land_raw(tmp_path, "cboe", date(2024, 7, 16), "RUT_History.csv", b"DATE,RUT\n", "http://x/RUT")
    assert meta_path.read_bytes() == before  # same bytes: nothing rewritten, not even the fetch time


def test_quarantine_keeps_bytes_and_reason(tmp_path):
    path = lake.quarantine(tmp_path, "cboe", date(2024, 7, 16), "RUT_History.csv", b"<html>", "an HTML page")
    assert path.read_bytes() == b"<html>"
    assert path.with_name("RUT_History.csv.error.txt").read_text().strip() == "an HTML page"


def test_upsert_journals_each_write_and_leaves_a_rerun_untouched(tmp_path):
    path = lake.partition_path(tmp_path, "cftc_tff", "market_code", "239742")
    first = pd.DataFrame({"report_date": [date(2024, 7, 2), date(2024, 7, 9)],
                          "release_date": [date(2024, 7, 5), date(2024, 7, 12)], "net": [1, 2]})
    lake.upsert_partition(path, first, on=["report_date"], time_column="release_date")
    before = path.read_bytes()
    lake.upsert_partition(path, first.iloc[[1]], on=["report_date"], time_column="release_date")
    assert path.read_bytes() == before  # the same rows again: not rewritten, journal unchanged
    assert [e["first_changed"] for e in lake.read_journal(path)] == ["2024-07-05"]
    # a revision of the 07-02 report, now dated as released 07-19 (was 07-05): visible differently from 07-05 on
    revised = pd.DataFrame({"report_date": [date(2024, 7, 2)], "release_date": [date(2024, 7, 19)], "net": [5]})
    lake.upsert_partition(path, revised, on=["report_date"], time_column="release_date")
    new = pd.DataFrame({"report_date": [date(2024, 7, 16)], "release_date": [date(2024, 7, 19)], "net": [3]})
    assert lake.upsert_partition(path, new, on=["report_date"], time_column="release_date") == 3
    journal = lake.read_journal(path)
    assert [e["first_changed"] for e in journal] == ["2024-07-05", "2024-07-05", "2024-07-19"]
    assert len({e["id"] for e in journal}) == 3
    assert pd.read_parquet(path)["net"].tolist() == [5, 2, 3]


def test_a_file_without_journal_has_none(tmp_path):
    path = tmp_path / "data.parquet"
    pd.DataFrame({"date": [date(2024, 1, 2)], "close": [1.0]}).to_parquet(path, index=False)
    assert lake.read_journal(path) is None
