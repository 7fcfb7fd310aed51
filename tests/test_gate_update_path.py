"""The gate of an incremental update validates the rows it wrote (with the context rows before them) and the
whole-table invariants, and catches what a full build's gate catches: the plausibility defects of
tests/test_plausibility.py here, every blocking check of tests/test_validation_gate.py there (parametrized over both
paths). A real update's gate reads its scope from meta.build_method."""

import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest

from conftest import SAMPLE_LAST, file_digest
from regime import pipeline
from regime.sql import connect
from regime.validation import cftc_tff, etf_nav, indicators, options_volume, prices
from regime.validation.gate import ValidationFailed, validate_build
from regime.validation.scope import Scope, read_scope

SINCE = "2024-06-28"  # every tampered row is dated after it; the rows before it are context


def candidate(settings, tmp_path, sql: str, path: str, since: str = SINCE) -> Path:
    """A copy of the published warehouse tampered with by `sql`; on the update path, marked as an update that
    recomputed what is dated after `since`."""
    staging = tmp_path / "candidate.duckdb"
    shutil.copy(settings.warehouse_path, staging)
    con = duckdb.connect(str(staging))
    con.execute(sql)
    if path == "update":
        con.execute("update meta.build_method set method = 'incremental', recomputed_after = $since",
                    {"since": since})
    con.close()
    return staging


def _refused(settings, tmp_path, suite, sql: str, path: str) -> str:
    before = file_digest(settings.warehouse_path)
    staging = candidate(settings, tmp_path, sql, path)
    with pytest.raises(ValidationFailed) as err:
        validate_build(staging, SAMPLE_LAST, tmp_path / "docs", tmp_path / "state",
                       published=settings.warehouse_path, suites=(suite,))
    assert file_digest(settings.warehouse_path) == before
    return str(err.value)


def _blocking(summary: str, column: str) -> str:
    [line] = [line for line in summary.splitlines() if "BLOCKING" in line and f"column={column})" in line]
    return line


# (suite, tampering SQL, the column whose check blocks, sentences the blocking line must hold) from
# tests/test_plausibility.py: on the update path the previous row and the trailing maximum come from context rows
PLAUSIBILITY = [
    (prices, "update marts.prices set close = 1e12, high = 1e12 where symbol = 'RUT' and date = '2024-07-01'",
     "implausible_move", ["2 unexpected rows",
                          "RUT 2024-07-01 close 1,000,000,000,000.00 after 1,991.78 on 2024-06-28: log move +20.03",
                          "RUT 2024-07-02 close 2,003.25 after 1,000,000,000,000.00 on 2024-07-01"]),
    (prices, "update marts.prices set close = 27 where symbol = 'VIX' and date = '2024-07-01'",
     "close_outside_range", ["VIX 2024-07-01 close 27.00 outside low 11.98 - high 13.49"]),
    (options_volume, "update staging.options_volume set call_volume = 999999999999 where underlying = 'IWM' "
                     "and date = '2024-07-16'", "implausible_volume",
     ["1 unexpected rows", "IWM 2024-07-16 call volume 999,999,999,999 (trailing 252-session max 3,394,460"]),
    (options_volume, "update staging.options_volume set put_volume = 50000000 where underlying = 'IWM' "
                     "and date = '2024-07-16'", "implausible_volume",
     ["IWM 2024-07-16 put volume 50,000,000 (trailing 252-session max 2,441,054"]),
    (etf_nav, "update staging.etf_nav set shares_outstanding = 2980000 where ticker = 'IWM' and date = '2024-07-16'",
     "implausible_shares", ["IWM 2024-07-16 shares outstanding 2,980,000 after 293,000,000 on 2024-07-15 (-99.0%)",
                            "IWM 2024-07-17 shares outstanding 301,300,000 after 2,980,000 on 2024-07-16"]),
    (etf_nav, "update staging.etf_nav set nav = 22.337 where ticker = 'IWM' and date = '2024-07-16'",
     "implausible_nav", ["IWM 2024-07-16 NAV 22.34 after 216.03 on 2024-07-15 (-89.7%)"]),
]


@pytest.mark.parametrize(("suite", "sql", "column", "sentences"), PLAUSIBILITY)
@pytest.mark.parametrize("path", ["full", "update"])
@pytest.mark.slow
def test_plausibility_blocks_on_both_paths(published, tmp_path, suite, sql, column, sentences, path):
    line = _blocking(_refused(published, tmp_path, suite, sql, path), column)
    for sentence in sentences:
        assert sentence in line


@pytest.mark.parametrize("path", ["full", "update"])
@pytest.mark.slow
def test_a_hole_in_the_weekly_cftc_series_warns_without_blocking(published, tmp_path, path):
    """Weekly CFTC reports more than two weeks apart (the reference mirror has no 2023 file): a warning naming the
    market and the dates around the hole."""
    staging = candidate(published, tmp_path, "delete from staging.cftc_tff where market_code = '239742' "
                                              "and report_date between '2024-06-11' and '2024-06-25'", path)
    report = validate_build(staging, SAMPLE_LAST, tmp_path / "docs", tmp_path / "state", suites=(cftc_tff,))
    assert report.passed
    [gap] = [w for w in report.warnings if "weekly reports" in w.note]
    if path == "update":  # the hole ends 2024-07-02, after SINCE; 2024-06-04 is a context row
        assert gap.sample == ["239742 no report between 2024-06-04 and 2024-07-02"]
    else:
        assert "239742 no report between 2024-06-04 and 2024-07-02" in gap.sample


@pytest.mark.slow
def test_a_real_update_validates_what_it_wrote(published, tmp_path):
    """A warehouse as of 2024-07-16 published, then pipeline.build updates it to 2024-07-17: the gate validates the
    rows dated after 2024-07-16 and the whole-table invariants, and passes; a bad reading in those rows blocks."""
    staging = pipeline.build(date(2024, 7, 16), published, incremental=False)
    pipeline.validate(staging, date(2024, 7, 16), published)
    pipeline.publish(staging, published)
    updated = Path(pipeline.build(SAMPLE_LAST, published))
    con = connect(updated, read_only=True)
    try:
        assert read_scope(con) == Scope(since=date(2024, 7, 16))
    finally:
        con.close()
    report = validate_build(updated, SAMPLE_LAST, tmp_path / "docs", tmp_path / "state",
                            published=published.warehouse_path)
    assert report.passed and "rows dated after 2024-07-16 (incremental update)" in report.summary()
    assert any("rows are never dropped" in r.note for r in report.results if r.dataset == "indicators")
    con = duckdb.connect(str(updated))
    con.execute("update marts.indicators set value = 9.5 where subject = 'RUT' and date = '2024-07-17' "
                "and indicator = 'zscore_50d'")
    con.close()
    with pytest.raises(ValidationFailed, match="zscore_50d is bounded to"):
        validate_build(updated, SAMPLE_LAST, tmp_path / "docs", tmp_path / "state",
                       published=published.warehouse_path, suites=(indicators,))


def test_a_series_the_update_wrote_no_row_of_is_still_checked_for_freshness(published, tmp_path):
    """SPY's NAV stops on 2024-07-01: an update that recomputed the days after 2024-07-10 wrote no SPY row, and the
    whole-table invariants name it (a warning, as on a full build)."""
    staging = candidate(published, tmp_path, "delete from staging.etf_nav where ticker = 'SPY' "
                                              "and date > '2024-07-01'", "full")
    con = duckdb.connect(str(staging))
    con.execute("update meta.build_method set method = 'incremental', recomputed_after = '2024-07-10'")
    con.close()
    report = validate_build(staging, SAMPLE_LAST, tmp_path / "docs", tmp_path / "state", suites=(etf_nav,))
    assert report.passed
    [stale] = [w for w in report.warnings if "freshness of etf_nav" in w.note]
    assert stale.sample == ["SPY last 2024-07-01"]
