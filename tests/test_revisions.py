"""Revisions: a full-history upstream file that changes past numbers is recorded in meta.revisions (series, date,
old, new, file) and shown by the gate; a past price revised by more than 5 % blocks until an exception entry accepts
it, and the published warehouse stays as it was meanwhile. A file is authoritative for the dates it covers: a row
it no longer holds leaves the lake."""

import pandas as pd
import pytest

from conftest import SAMPLE_LAST, file_digest
from regime import pipeline, state, warehouse
from regime.validation.gate import ValidationFailed, validate_build

HEADER = "dataset,series,date,check,reason\n"
# RUT on 2023-05-10 in the sample's Cboe file, and the same row with its high and close revised by +30 %
RUT_2023_05_10 = "05/10/2023,1456.810059,1459.839966,1444.920044,1451.449951"
RUT_2023_05_10_REVISED = "05/10/2023,1456.810059,1886.884936,1444.920044,1886.884936"


def _edit_rut(mirror, old: str, new: str) -> str:
    path = mirror / "cboe" / "RUT_History.csv"
    text = path.read_text()
    assert text.count(old) == 1
    path.write_text(text.replace(old, new))
    return str(path)


def _published_revisions(settings):
    con = warehouse.connect_readonly(settings.warehouse_path)
    try:
        return con.execute("select series, date, field, kind, old, new, file from meta.revisions "
                           "order by seq").fetchall()
    finally:
        con.close()


def test_a_2023_close_revised_30_percent_blocks_until_accepted(published, mirror, tmp_path):
    before = file_digest(published.warehouse_path)
    rut = _edit_rut(mirror, RUT_2023_05_10, RUT_2023_05_10_REVISED)
    pipeline.ingest("index_prices", SAMPLE_LAST, published)

    recorded = state.frames(published.state_dir)["revisions"]
    assert recorded[["dataset", "series", "date", "field", "kind", "old", "new", "file", "as_of"]].values.tolist() == [
        ["index_prices", "RUT", "2023-05-10", "close", "revised", 1451.449951, 1886.884936, rut, "2024-07-17"],
        ["index_prices", "RUT", "2023-05-10", "high", "revised", 1459.839966, 1886.884936, rut, "2024-07-17"],
    ]
    with pytest.raises(ValidationFailed) as err:
        pipeline.build_validate_publish(SAMPLE_LAST, published)
    [line] = [x for x in str(err.value).splitlines() if "BLOCKING" in x and "column=unaccepted" in x]
    # 1886.884936 / 1451.449951 - 1 = +30.0 %; 1886.884936 / 1459.839966 - 1 = +29.3 %
    assert "2 unexpected rows" in line
    assert f"index_prices RUT 2023-05-10 close 1,451.45 -> 1,886.88 (+30.0%) by {rut}" in line
    assert f"index_prices RUT 2023-05-10 high 1,459.84 -> 1,886.88 (+29.3%) by {rut}" in line
    assert file_digest(published.warehouse_path) == before

    # the reviewed exception list accepts the revised day: the build validates and publishes, meta.revisions shows it
    listed = tmp_path / "exceptions.csv"
    listed.write_text(HEADER + "index_prices,RUT,2023-05-10,revision,test case: Cboe restated the close\n")
    staging = pipeline.build(SAMPLE_LAST, published)
    report = validate_build(staging, SAMPLE_LAST, tmp_path / "docs", published.state_dir,
                            published=published.warehouse_path, exceptions=listed)
    assert not report.blocking_failures
    [warning] = [w for w in report.warnings if w.dataset == "revisions"]
    assert warning.unexpected_count == 2
    pipeline.publish(staging, published)
    assert _published_revisions(published) == [
        ("RUT", "2023-05-10", "close", "revised", 1451.449951, 1886.884936, rut),
        ("RUT", "2023-05-10", "high", "revised", 1459.839966, 1886.884936, rut),
    ]
    con = warehouse.connect_readonly(published.warehouse_path)
    try:
        assert con.execute("select close from marts.prices where symbol = 'RUT' and date = '2023-05-10'"
                           ).fetchall() == [(1886.884936,)]
    finally:
        con.close()


def test_a_revision_taken_back_upstream_no_longer_blocks(published, mirror):
    _edit_rut(mirror, RUT_2023_05_10, RUT_2023_05_10_REVISED)
    pipeline.ingest("index_prices", SAMPLE_LAST, published)
    _edit_rut(mirror, RUT_2023_05_10_REVISED, RUT_2023_05_10)
    pipeline.ingest("index_prices", SAMPLE_LAST, published)
    # four records (there and back), but from the first old value to the last new one nothing changed
    assert len(state.frames(published.state_dir)["revisions"]) == 4
    summary = pipeline.build_validate_publish(SAMPLE_LAST, published)
    assert [w for w in summary["warnings"] if w.startswith("revisions:")]


def test_a_small_revision_is_recorded_and_only_warned(published, mirror):
    rut = _edit_rut(mirror, "05/11/2023,1452.270020,1455.239990,1428.680054,1434.579956",
                    "05/11/2023,1452.270020,1455.239990,1428.680054,1435.000000")
    pipeline.ingest("index_prices", SAMPLE_LAST, published)
    summary = pipeline.build_validate_publish(SAMPLE_LAST, published)
    # 1435 / 1434.579956 - 1 = +0.03 %: below the 5 % bound, a warning naming it
    [warning] = [w for w in summary["warnings"] if w.startswith("revisions:")]
    assert f"index_prices RUT 2023-05-11 close 1,434.58 -> 1,435.00 (+0.0%) by {rut}" in warning
    assert _published_revisions(published) == [("RUT", "2023-05-11", "close", "revised", 1434.579956, 1435.0, rut)]


def test_a_rerun_of_the_same_file_records_nothing(published):
    pipeline.ingest("index_prices", SAMPLE_LAST, published)
    assert state.frames(published.state_dir)["revisions"].empty


def test_a_saturday_row_blocks_and_the_corrected_file_removes_it(published, mirror):
    before = file_digest(published.warehouse_path)
    saturday = "07/13/2024,2126.739990,2126.739990,2126.739990,2126.739990"
    rut = _edit_rut(mirror, "07/15/2024,", f"{saturday}\n07/15/2024,")
    pipeline.ingest("index_prices", SAMPLE_LAST, published)
    with pytest.raises(ValidationFailed, match=r"column=iso_dow.*dates must be NYSE sessions.*1 unexpected rows"):
        pipeline.build_validate_publish(SAMPLE_LAST, published)
    assert file_digest(published.warehouse_path) == before

    _edit_rut(mirror, f"{saturday}\n", "")  # upstream corrects its file
    pipeline.ingest("index_prices", SAMPLE_LAST, published)
    lake_rows = published.lake_dir / "index_prices" / "symbol=RUT" / "data.parquet"
    dates = {d.isoformat() for d in pd.read_parquet(lake_rows)["date"]}
    assert "2024-07-13" not in dates and {"2024-07-12", "2024-07-15", "2019-01-02"} <= dates
    pipeline.build_validate_publish(SAMPLE_LAST, published)
    assert _published_revisions(published) == [("RUT", "2024-07-13", "*", "removed", None, None, rut)]


def test_a_truncated_file_drops_nothing_outside_its_dates(published, mirror):
    path = mirror / "cboe" / "RUT_History.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], *lines[-20:]]) + "\n")  # the last 20 sessions only
    lake_rows = published.lake_dir / "index_prices" / "symbol=RUT" / "data.parquet"
    held = file_digest(lake_rows)
    pipeline.ingest("index_prices", SAMPLE_LAST, published)
    assert file_digest(lake_rows) == held
    assert state.frames(published.state_dir)["revisions"].empty
