"""The Great Expectations gate: every suite rejects bad data, a rejected build publishes nothing, the
failure is recorded, known upstream defects only warn."""

import re
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest

from conftest import SAMPLE_LAST, file_digest, published_run
from regime import pipeline, state
from regime.validation import cftc_tff, etf_nav, extremes, gate, indicators, options_volume, prices, regime_daily
from regime.validation.analogs import Episodes
from regime.validation.gate import ValidationFailed, validate_build


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """The validated, published warehouse of the whole sample and its run's summary (conftest's published_run,
    built once per session): shared, so read only; a test that writes into the data dir uses `own_copy`."""
    return published_run(tmp_path_factory)


@pytest.fixture
def own_copy(published, regime_env, settings):
    """A private copy of the published sample's data dir, for a test that writes into it: (settings, summary)."""
    shutil.copytree(published[0].data_dir, settings.data_dir)
    return settings, published[1]


# An update's gate validates the rows dated after meta.build_method.recomputed_after: every tampered row below is
# dated after this (the day before, 2024-06-28, is a context row: the previous close of RUT's 2024-07-01 move)
UPDATE_SINCE = "2024-06-28"
AS_UPDATE = ("update meta.build_method set method = 'incremental', recomputed_after = '" + UPDATE_SINCE + "'")


def _copy_and_tamper(settings, tmp_path, sql: str, path: str = "full") -> Path:
    """A copy of the published warehouse with `sql` applied; with path "update" it is marked as an incremental
    update that recomputed the rows dated after UPDATE_SINCE (the gate then validates those, and the whole-table
    invariants)."""
    staging = tmp_path / "candidate.duckdb"  # not staging.duckdb: the catalog would shadow the schema
    shutil.copy(settings.warehouse_path, staging)
    con = duckdb.connect(str(staging))
    con.execute(sql)
    if path == "update":
        con.execute(AS_UPDATE)
    con.close()
    return staging


@pytest.mark.slow
def test_the_sample_passes_every_suite_and_is_published(published):
    settings, summary = published
    assert summary["checks"] > 90 and summary["warnings"] == []
    assert Path(summary["docs_url"].removeprefix("file://")).exists()  # GX Data Docs were written
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        # the published file carries this run's validation records
        assert con.execute("select count(*) from meta.validation_runs where as_of = '2024-07-17'").fetchall()[0][0] \
            == summary["checks"]
    finally:
        con.close()


@pytest.mark.parametrize(("suite", "sql", "words"), [
    (prices, "update marts.prices set close = -1 where symbol = 'RUT' and date = '2024-07-01'",
     "prices: expect_column_values_to_be_between"),
    (prices, "update marts.prices set high = close * 0.9 where symbol = 'SPX' and date = '2024-07-01'",
     "OHLC must be consistent for price indexes"),
    (prices, "insert into marts.prices values ('2024-07-04', 'RUT', 1, 1, 1, 1)", "dates must be NYSE sessions"),
    (prices, "insert into marts.prices select * from marts.prices where date = '2024-07-01' and symbol = 'RUT'",
     "expect_compound_columns_to_be_unique"),
    (prices, "alter table marts.prices drop column low",
     'the dataset can be read with its expected columns.*"low" not found'),
    (prices, "delete from marts.prices where symbol = 'DJX' and date < '2020-01-01'", "rows are never dropped"),
    (options_volume, "drop table staging.options_volume",  # named as missing, not taken for the Python module
     "the dataset can be read with its expected columns.*Table with name options_volume does not exist"),
    (options_volume, "update staging.options_volume set call_volume = -5 where underlying = 'IWM'",
     "volumes are never negative"),
    (options_volume, "update staging.options_volume set date = '2024-07-13' where date = '2024-07-12'",
     "NYSE sessions only"),
    (cftc_tff, "update staging.cftc_tff set lev_money_positions_short = -1 where market_code = '239742'",
     "positions are never negative"),
    (cftc_tff, "update staging.cftc_tff set report_date = '2024-07-06' where report_date = '2024-07-09'",
     "report dates are Tuesdays"),
    (cftc_tff, "update staging.cftc_tff set release_date = report_date where report_date = '2024-07-09'",
     "released after its as-of date"),
    (etf_nav, "update staging.etf_nav set nav = 0 where ticker = 'IWM' and date = '2024-07-16'",
     r"etf_nav: expect_column_values_to_be_between\(column=nav"),
    (etf_nav, "update staging.etf_nav set date = '2024-07-14' where ticker = 'IWM' and date = '2024-07-15'",
     "business days only"),
    (indicators, "update marts.indicators set value = 9.5 where subject = 'RUT' and date = '2024-07-17' "
                 "and indicator = 'zscore_50d'", "zscore_50d is bounded to"),
    (indicators, "update marts.indicators set value = 1.5 where indicator = 'vol_corr_5d'",
     "vol_corr_5d is bounded to"),
    (extremes, "update marts.extremes set pct_rank = 1.5 where subject = 'RUT' and date = '2024-07-17'",
     r"a percentile in \(0, 1\]"),
    (extremes, "update marts.extremes set highest_since = date where subject = 'RUT' and date = '2024-07-16'",
     "record flags and since-dates agree"),
    (regime_daily, "update marts.regime_daily set label = 'bullish' where date = '2024-07-17'",
     "labels come from documented rules"),
    (regime_daily, "insert into marts.regime_daily select * replace (date + 1 as date) from marts.regime_daily "
                   "where date = '2024-07-17'", "after the run's as-of date"),
    (indicators, "insert into marts.indicators select * replace (date + 1 as date) from marts.indicators "
                 "where date = '2024-07-17' limit 1", "after the run's as-of date"),
    (indicators, "insert into marts.indicators select * from marts.indicators where date = '2024-07-17' limit 1",
     "expect_compound_columns_to_be_unique|keys unique"),
    (extremes, "update marts.extremes set pct_rank = null where date = '2024-07-15'",
     "extremes: expect_column_values_to_not_be_null"),
    # episodes are validated whole on both paths (an update rewrites them from a cut years back): defects in
    # episodes that ended long before the update's `since`
    (Episodes, "insert into marts.episodes select * from marts.episodes where kind = 'level' "
               "and end_date < '2022-01-01' limit 1", r"episodes: expect_compound_columns_to_be_unique"),
    (Episodes, "insert into marts.episodes select * replace (start_date + 1 as start_date, peak_date + 1 as peak_date) "
               "from marts.episodes where kind = 'level' and sessions > 3 and end_date < '2022-01-01' limit 1",
     "episodes of a threshold never overlap"),
    (Episodes, "update marts.episodes set peak_value = null where start_date = (select min(start_date) "
               "from marts.episodes)", r"episodes: expect_column_values_to_not_be_null\(column=peak_value"),
])
@pytest.mark.parametrize("path", ["full", "update"])
@pytest.mark.slow
def test_each_suite_rejects_bad_data(published, tmp_path, suite, sql, words, path):
    """Each blocking check fires on a full build's gate (every row) and on an update's (the changed rows and the
    whole-table invariants)."""
    settings, _ = published
    before = file_digest(settings.warehouse_path)
    staging = _copy_and_tamper(settings, tmp_path, sql, path)
    with pytest.raises(ValidationFailed, match=words) as err:
        validate_build(staging, SAMPLE_LAST, tmp_path / "docs", tmp_path / "state", published=settings.warehouse_path,
                       suites=(suite,))
    assert "BLOCKING" in str(err.value)
    if "drop " not in sql:  # a dataset that cannot be read has no GX results to render
        assert "Data Docs: file://" in str(err.value)
    assert file_digest(settings.warehouse_path) == before
    failed = state.frames(tmp_path / "state")["validation_runs"].query("success == 0 and severity == 'critical'")
    assert len(failed) >= 1 and failed["dataset"].eq(suite.NAME).all()  # which dataset, which check, samples


@pytest.mark.slow
def test_a_failed_run_publishes_nothing_and_keeps_the_record(own_copy, tmp_path):
    settings, _ = own_copy
    before = file_digest(settings.warehouse_path)
    staging = _copy_and_tamper(settings, tmp_path, "update marts.prices set close = 0 where symbol = 'NDX'")
    with pytest.raises(ValidationFailed, match="1394 unexpected rows"):
        pipeline.validate(str(staging), SAMPLE_LAST, settings)
    assert not staging.exists()  # the failed build is discarded
    assert file_digest(settings.warehouse_path) == before  # analysts keep the last good warehouse
    runs = state.frames(settings.state_dir)["validation_runs"]
    failed = runs[(runs["success"] == 0) & (runs["severity"] == "critical")]
    assert set(failed["dataset"]) == {"prices"} and failed["expectation"].str.contains("column=close").any()


@pytest.mark.slow
def test_known_vix_defects_warn_without_blocking(published, tmp_path):
    settings, _ = published
    # the documented defect of Cboe's VIX history: an OPEN above the day's HIGH (the close within its range)
    staging = _copy_and_tamper(settings, tmp_path, "update marts.prices set open = high + 1 "
                                                   "where symbol = 'VIX' and date = '2024-07-01'")
    report = validate_build(staging, SAMPLE_LAST, tmp_path / "docs", tmp_path / "state", suites=(prices,))
    assert report.passed
    assert any("documented exception" in w.note for w in report.warnings)


@pytest.mark.slow
def test_stale_sources_are_warnings_that_name_the_source(published, tmp_path):
    settings, _ = published
    staging = _copy_and_tamper(settings, tmp_path, "delete from staging.etf_nav where ticker = 'SPY' "
                                                   "and date > '2024-07-01'")
    report = validate_build(staging, SAMPLE_LAST, tmp_path / "docs", tmp_path / "state", suites=(etf_nav,))
    assert report.passed
    [stale] = [w for w in report.warnings if "freshness of etf" in w.note]
    assert stale.sample == ["SPY last 2024-07-01"] * len(stale.sample)


@pytest.mark.slow
def test_an_earlier_as_of_rebuild_may_hold_fewer_rows(own_copy, tmp_path):
    settings, _ = own_copy
    staging = pipeline.build(date(2024, 7, 10), settings)
    report = validate_build(Path(staging), date(2024, 7, 10), tmp_path / "docs", tmp_path / "state",
                            published=settings.warehouse_path, suites=(prices,))
    assert report.passed


@pytest.mark.slow
def test_data_docs_keep_a_failed_run_after_the_next(published, tmp_path):
    """Each gate renders its own pages into the Data Docs and keeps the earlier gates': after a failed run and a
    passing one, the index lists both, and the failed run's page still shows the failing expectation with its
    count and sampled values."""
    settings, _ = published
    docs = tmp_path / "docs"
    tampered = _copy_and_tamper(settings, tmp_path, "update marts.prices set close = -1 "
                                                    "where symbol = 'RUT' and date = '2024-07-01'")
    with pytest.raises(ValidationFailed, match="close_outside_range"):
        validate_build(tampered, SAMPLE_LAST, docs, tmp_path / "state", suites=(prices,))
    clean = _copy_and_tamper(settings, tmp_path, "select 1")
    report = validate_build(clean, SAMPLE_LAST, docs, tmp_path / "state", suites=(prices,))
    assert report.passed and report.docs_url == (docs / "index.html").as_uri()

    # validations/<suite>/<as-of>/<run time>/<batch>.html, one run per gate: the failed one first
    pages = sorted(docs.glob("validations/prices/2024-07-17/*/*.html"))
    assert len(pages) == 2
    index = (docs / "index.html").read_text(encoding="utf-8")
    for page in pages:
        assert page.relative_to(docs).as_posix() in index
    failed = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", pages[0].read_text(encoding="utf-8")))
    assert "1 unexpected values found" in failed and "Sampled Unexpected Values" in failed
    assert "RUT 2024-07-01 close -1.00 outside low 1,985.60 - high 2,029.47" in failed
    passed = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", pages[1].read_text(encoding="utf-8")))
    assert "unexpected values found" not in passed


@pytest.mark.slow
def test_data_docs_drop_the_gates_beyond_the_kept_ones(published, tmp_path, monkeypatch):
    """Only the last DOCS_RUNS_KEPT gates keep their stored results and pages; the older ones leave no file and no
    empty folder behind."""
    monkeypatch.setattr(gate, "DOCS_RUNS_KEPT", 2)
    settings, _ = published
    docs = tmp_path / "docs"
    clean = _copy_and_tamper(settings, tmp_path, "select 1")
    first = None
    for _ in range(3):
        assert validate_build(clean, SAMPLE_LAST, docs, tmp_path / "state", suites=(prices,)).passed
        runs = sorted(p.name for p in docs.glob("validations/prices/2024-07-17/*"))
        first = first or runs[0]

    assert len(runs) == 2 and first not in runs
    assert sorted(p.name for p in docs.glob("results/prices/2024-07-17/*")) == runs
    index = (docs / "index.html").read_text(encoding="utf-8")
    assert all(run in index for run in runs) and first not in index
    empty = [p for p in docs.rglob("*") if p.is_dir() and not any(p.iterdir())]
    assert empty == []
