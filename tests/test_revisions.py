"""Revisions: a full-history upstream file that changes past numbers is recorded in meta.revisions (series, date,
old, new, file) and shown by the gate; a past price revised by more than 5 % blocks until an exception entry accepts
it, and the published warehouse stays as it was meanwhile. A file is authoritative for the dates it covers: a row
it no longer holds leaves the lake."""

import duckdb
import pandas as pd
import pytest

from conftest import SAMPLE_LAST, file_digest
from regime import lake, pipeline, state
from regime.sql import connect_readonly
from regime.validation import revisions
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


def _accepted(published, tmp_path, entry: str):
    """A build of the published sample's lake validated with `entry` on the reviewed exception list: the staging
    file and the gate's report (nothing published)."""
    listed = tmp_path / "exceptions.csv"
    listed.write_text(HEADER + entry + "\n")
    staging = pipeline.build(SAMPLE_LAST, published)
    report = validate_build(staging, SAMPLE_LAST, tmp_path / "docs", published.state_dir,
                            published=published.warehouse_path, exceptions=listed)
    return staging, report


def _published_revisions(settings):
    con = connect_readonly(settings.warehouse_path)
    try:
        return con.execute("select series, date, field, kind, old, new, file from meta.revisions "
                           "order by seq").fetchall()
    finally:
        con.close()


@pytest.mark.slow
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
    staging, report = _accepted(published, tmp_path, "index_prices,RUT,2023-05-10,revision,test case: Cboe "
                                "restated the close")
    assert not report.blocking_failures
    [warning] = [w for w in report.warnings if w.dataset == "revisions"]
    assert warning.unexpected_count == 2
    pipeline.publish(staging, published)
    assert _published_revisions(published) == [
        ("RUT", "2023-05-10", "close", "revised", 1451.449951, 1886.884936, rut),
        ("RUT", "2023-05-10", "high", "revised", 1459.839966, 1886.884936, rut),
    ]
    con = connect_readonly(published.warehouse_path)
    try:
        assert con.execute("select close from marts.prices where symbol = 'RUT' and date = '2023-05-10'"
                           ).fetchall() == [(1886.884936,)]
    finally:
        con.close()


@pytest.mark.slow
def test_a_revision_taken_back_upstream_no_longer_blocks(published, mirror):
    _edit_rut(mirror, RUT_2023_05_10, RUT_2023_05_10_REVISED)
    pipeline.ingest("index_prices", SAMPLE_LAST, published)
    _edit_rut(mirror, RUT_2023_05_10_REVISED, RUT_2023_05_10)
    pipeline.ingest("index_prices", SAMPLE_LAST, published)
    # four records (there and back), but from the first old value to the last new one nothing changed
    assert len(state.frames(published.state_dir)["revisions"]) == 4
    summary = pipeline.build_validate_publish(SAMPLE_LAST, published)
    assert [w for w in summary["warnings"] if w.startswith("revisions:")]


@pytest.mark.slow
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


@pytest.mark.slow
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


MARCH_2023 = ["03/01/2023", "03/02/2023", "03/03/2023", "03/06/2023", "03/07/2023", "03/08/2023", "03/09/2023"]


@pytest.mark.slow
def test_a_file_dropping_a_week_of_history_blocks_until_accepted(published, mirror, tmp_path):
    path = mirror / "cboe" / "RUT_History.csv"
    full = path.read_text()
    path.write_text("".join(line for line in full.splitlines(keepends=True) if line[:10] not in MARCH_2023))
    before = file_digest(published.warehouse_path)
    pipeline.ingest("index_prices", SAMPLE_LAST, published)  # authoritative within its dates: 7 rows leave the lake
    with pytest.raises(ValidationFailed) as err:
        pipeline.build_validate_publish(SAMPLE_LAST, published)
    [line] = [x for x in str(err.value).splitlines() if "BLOCKING" in x and "column=removals" in x]
    assert (f"index_prices RUT: 7 rows removed by {path} as of 2024-07-17 (2023-03-01 … 2023-03-09; more than 5): "
            "accept with the exception entry index_prices,RUT,2024-07-17,removal,<reason>") in line
    assert file_digest(published.warehouse_path) == before

    _, report = _accepted(published, tmp_path, "index_prices,RUT,2024-07-17,removal,test case: Cboe withdrew a "
                          "week of history")
    assert report.passed

    path.write_text(full)  # upstream puts the week back: the removals no longer count, nothing to accept
    pipeline.ingest("index_prices", SAMPLE_LAST, published)
    summary = pipeline.build_validate_publish(SAMPLE_LAST, published)
    assert len(state.frames(published.state_dir)["revisions"].query("kind == 'removed'")) == 7
    assert [w for w in summary["warnings"] if w.startswith("revisions:")]


@pytest.mark.slow
def test_five_rows_removed_only_warn(published, mirror):
    path = mirror / "cboe" / "RUT_History.csv"
    path.write_text("".join(line for line in path.read_text().splitlines(keepends=True)
                            if line[:10] not in MARCH_2023[:5]))
    pipeline.ingest("index_prices", SAMPLE_LAST, published)
    summary = pipeline.build_validate_publish(SAMPLE_LAST, published)
    [warning] = [w for w in summary["warnings"] if w.startswith("revisions:")]
    assert f"index_prices RUT 2023-03-01: row removed (not in {path})" in warning


def _with_revision(published, tmp_path, dataset, series, field, old, new):
    """A copy of the published warehouse whose meta.revisions holds one more record (as the lake would write it)."""
    staging = tmp_path / "candidate.duckdb"
    staging.write_bytes(published.warehouse_path.read_bytes())
    con = duckdb.connect(str(staging))
    con.execute("insert into meta.revisions (seq, recorded_at, as_of, dataset, series, date, field, kind, old, new, "
                "file) values (1, '2024-07-17T22:00:00+00:00', '2024-07-17', ?, ?, '2024-07-10', ?, 'revised', ?, ?, "
                "'upstream.file')", [dataset, series, field, old, new])
    con.close()
    return staging


@pytest.mark.parametrize(("dataset", "series", "field", "old", "new", "blocks", "said"), [
    # shares outstanding -60 %: more than half, and more than 1,000 shares
    ("etf_nav", "IWM", "shares_outstanding", 298_000_000, 119_200_000, True,
     "etf_nav IWM 2024-07-10 shares_outstanding 298,000,000.00 -> 119,200,000.00 (-60.0%) by upstream.file"),
    # shares outstanding +40 %: within half
    ("etf_nav", "IWM", "shares_outstanding", 298_000_000, 417_200_000, False, "(+40.0%)"),
    # a CFTC category of 800 contracts tripled: more than half, but 1,600 contracts: blocks
    ("cftc_tff", "239742", "asset_mgr_short", 800, 2_400, True, "asset_mgr_short 800.00 -> 2,400.00 (+200.0%)"),
    # 300 contracts tripled: a change of 600 contracts never blocks
    ("cftc_tff", "239742", "asset_mgr_short", 300, 900, False, "(+200.0%)"),
    # a NAV (a price) revised by 6 %
    ("etf_nav", "SPY", "nav", 500.0, 530.0, True, "etf_nav SPY 2024-07-10 nav 500.00 -> 530.00 (+6.0%)"),
    # a number that became empty has no size: recorded and warned, never blocking
    ("index_prices", "RUT", "open", 2000.0, None, False, "index_prices RUT 2024-07-10 open 2,000.00 -> empty by"),
    ("index_prices", "RUT", "open", None, 2000.0, False, "open empty -> 2,000.00 by upstream.file"),
])
@pytest.mark.slow
def test_revision_bounds_per_column(published, tmp_path, dataset, series, field, old, new, blocks, said):
    staging = _with_revision(published, tmp_path, dataset, series, field, old, new)
    args = (staging, SAMPLE_LAST, tmp_path / "docs", tmp_path / "state")
    if blocks:
        with pytest.raises(ValidationFailed) as err:
            validate_build(*args, published=published.warehouse_path, suites=(revisions,))
        [line] = [x for x in str(err.value).splitlines() if "BLOCKING" in x]
        assert "column=unaccepted" in line and said in line
    else:
        report = validate_build(*args, published=published.warehouse_path, suites=(revisions,))
        assert said in report.summary()


def test_a_number_emptied_upstream_is_recorded():
    old = pd.DataFrame({"date": pd.to_datetime(["2024-07-10", "2024-07-11"]), "open": [2000.0, None],
                        "close": [2001.0, 2002.0]})
    new = pd.DataFrame({"date": pd.to_datetime(["2024-07-10", "2024-07-11"]), "open": [None, 1999.0],
                        "close": [2001.0, 2002.0]})
    changes = lake.revisions(old, new, ["date"])
    assert changes[["field", "kind"]].values.tolist() == [["open", "revised"], ["open", "revised"]]
    assert changes["old"].tolist()[0] == 2000.0 and pd.isna(changes["new"].tolist()[0])
    assert pd.isna(changes["old"].tolist()[1]) and changes["new"].tolist()[1] == 1999.0
