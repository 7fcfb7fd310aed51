"""Plausibility and identity checks block: each observed case of a wrong number that was published (RUT at 1e12,
RUT_History.csv holding SPX's closes, an OCC volume of 999,999,999,999, IWM's shares -99 % in a day) is refused
with the series, date and value named, and the published warehouse stays as it was. A reviewed exception entry lets
a genuine row through."""

import re
import shutil

import duckdb
import pytest

from conftest import SAMPLE_LAST, file_digest, tree_digest
from regime import pipeline
from regime.ingest import IngestError
from regime.validation import etf_nav, options_volume, prices
from regime.validation.gate import ValidationFailed, validate_build
from regime.validation.plausibility import CHECKS, EXCEPTIONS_FILE, ExceptionListError, load_exceptions

HEADER = "dataset,series,date,check,reason\n"


def _tampered(settings, tmp_path, sql: str):
    staging = tmp_path / "candidate.duckdb"
    shutil.copy(settings.warehouse_path, staging)
    con = duckdb.connect(str(staging))
    con.execute(sql)
    con.close()
    return staging


def _refused(settings, tmp_path, suite, sql: str, exceptions=EXCEPTIONS_FILE) -> str:
    """Validate a tampered copy of the published warehouse: the gate must block; the published file is unchanged."""
    before = file_digest(settings.warehouse_path)
    staging = _tampered(settings, tmp_path, sql)
    with pytest.raises(ValidationFailed) as err:
        validate_build(staging, SAMPLE_LAST, tmp_path / "docs", tmp_path / "state",
                       published=settings.warehouse_path, suites=(suite,), exceptions=exceptions)
    assert file_digest(settings.warehouse_path) == before
    return str(err.value)


def _blocking(summary: str, column: str) -> str:
    [line] = [line for line in summary.splitlines() if "BLOCKING" in line and f"column={column})" in line]
    return line


@pytest.mark.slow
def test_a_close_of_1e12_blocks_naming_the_series_day_and_value(published, tmp_path):
    summary = _refused(published, tmp_path, prices, "update marts.prices set close = 1e12, high = 1e12 "
                                                     "where symbol = 'RUT' and date = '2024-07-01'")
    line = _blocking(summary, "implausible_move")
    # RUT closed at 1,991.78 on 2024-06-28 and 2,003.25 on 2024-07-02: ln(1e12 / 1991.78) = 20.034,
    # ln(2003.25 / 1e12) = -20.028
    assert "2 unexpected rows" in line
    assert "RUT 2024-07-01 close 1,000,000,000,000.00 after 1,991.78 on 2024-06-28: log move +20.03, bound 0.30" \
        in line
    assert "RUT 2024-07-02 close 2,003.25 after 1,000,000,000,000.00 on 2024-07-01: log move -20.03" in line


@pytest.mark.slow
def test_a_vol_index_close_far_outside_its_range_blocks(published, tmp_path):
    # VIX 2024-07-01: low 11.98, high 13.49; a close of 27 is 13.51 above the high (> 1e-5 of 27)
    summary = _refused(published, tmp_path, prices,
                       "update marts.prices set close = 27 where symbol = 'VIX' and date = '2024-07-01'")
    assert "VIX 2024-07-01 close 27.00 outside low 11.98 - high 13.49" in _blocking(summary, "close_outside_range")
    assert "implausible_move" not in summary  # ln(27 / 12.98) = 0.73: a move a vol index can make


@pytest.mark.slow
def test_a_vol_index_close_just_outside_its_range_blocks_too(published, tmp_path):
    # VIX 2024-07-01: high 13.49; a close of 13.76 is 2 % above it. Cboe's documented VIX defect is in the OPEN,
    # never the close: every close of the reference record and of the sample lies within its range (1e-5).
    summary = _refused(published, tmp_path, prices,
                       "update marts.prices set close = 13.76 where symbol = 'VIX' and date = '2024-07-01'")
    assert "VIX 2024-07-01 close 13.76 outside low 11.98 - high 13.49" in _blocking(summary, "close_outside_range")


@pytest.mark.slow
def test_another_series_levels_on_dates_the_lake_lacks_block_at_the_seam(published):
    """RUT_History.csv gains three sessions before its first one, carrying SPX's closes (2018-12-27/28/31): no
    overlapping day differs, so the identity check cannot see them, but the move into RUT's own first close can."""
    path = published.mirror_dir / "cboe" / "RUT_History.csv"
    header, *rows = path.read_text().splitlines()
    spx = ["12/27/2018,2442.500000,2489.100098,2397.939941,2488.830078",
           "12/28/2018,2498.770020,2520.270020,2472.889893,2485.739990",
           "12/31/2018,2498.939941,2509.239990,2482.820068,2506.850098"]
    path.write_text("\n".join([header, *spx, *rows]) + "\n")
    before = file_digest(published.warehouse_path)
    pipeline.ingest("index_prices", SAMPLE_LAST, published)
    with pytest.raises(ValidationFailed) as err:
        pipeline.build_validate_publish(SAMPLE_LAST, published)
    # ln(1343.859985 / 2506.850098) = -0.623
    assert "RUT 2019-01-02 close 1,343.86 after 2,506.85 on 2018-12-31: log move -0.62, bound 0.30" in \
        _blocking(str(err.value), "implausible_move")
    assert "column=identity" not in str(err.value)
    assert file_digest(published.warehouse_path) == before


def test_an_index_file_naming_another_series_is_refused_by_the_parser(published):
    """RUT_History.csv with SPX's closes under a `DATE,SPX` header: the header names another series."""
    cboe = published.mirror_dir / "cboe"
    spx = (cboe / "SPX_History.csv").read_text().splitlines()
    lines = ["DATE,SPX"] + [f"{row.split(',')[0]},{row.split(',')[4]}" for row in spx[1:]]
    (cboe / "RUT_History.csv").write_text("\n".join(lines) + "\n")
    before = tree_digest(published.lake_dir)
    with pytest.raises(IngestError, match=r"RUT_History.csv: header names SPX, not RUT: another series' file"):
        pipeline.ingest("index_prices", SAMPLE_LAST, published)
    assert tree_digest(published.lake_dir) == before


@pytest.mark.slow
def test_an_index_file_holding_another_series_is_refused(published):
    """RUT_History.csv with SPX's closes under RUT's own `DATE,RUT` header: ingested, but the build is not
    published (the levels are not RUT's)."""
    cboe = published.mirror_dir / "cboe"
    spx = (cboe / "SPX_History.csv").read_text().splitlines()
    lines = ["DATE,RUT"] + [f"{row.split(',')[0]},{row.split(',')[4]}" for row in spx[1:]]
    (cboe / "RUT_History.csv").write_text("\n".join(lines) + "\n")
    before = file_digest(published.warehouse_path)
    pipeline.ingest("index_prices", SAMPLE_LAST, published)
    with pytest.raises(ValidationFailed) as err:
        pipeline.build_validate_publish(SAMPLE_LAST, published)
    line = _blocking(str(err.value), "identity")
    # the sample's first session: SPX closed at 2,466.09, RUT at 1,343.86; every one of the 1394 days differs
    assert "1394 unexpected rows" in line
    assert ("RUT 2019-01-02 close 2,466.09, published 1,343.86: RUT's history differs from the published one on "
            "1394 of 1394 overlapping days: another series' file?") in line
    assert file_digest(published.warehouse_path) == before  # analysts keep the last good warehouse
    con = duckdb.connect(str(published.warehouse_path), read_only=True)
    try:
        rut = con.execute("select close from marts.prices where symbol = 'RUT' and date = '2024-07-17'").fetchone()
    finally:
        con.close()
    assert rut == (pytest.approx(2245.790039),)


def test_an_occ_volume_of_999_999_999_999_blocks(published, tmp_path):
    summary = _refused(published, tmp_path, options_volume, "update staging.options_volume set call_volume = "
                       "999999999999 where underlying = 'IWM' and date = '2024-07-16'")
    line = _blocking(summary, "implausible_volume")
    # IWM's largest call volume before 2024-07-16 in the sample: 3,394,460 on 2024-07-15
    assert "1 unexpected rows" in line
    assert ("IWM 2024-07-16 call volume 999,999,999,999 (trailing 252-session max 3,394,460, cap 1,000,000,000)"
            in line)


def test_a_volume_20x_its_trailing_max_blocks_below_the_cap(published, tmp_path):
    # IWM's largest put volume before 2024-07-16: 2,441,054; 20x is 48,821,080 < 50,000,000
    summary = _refused(published, tmp_path, options_volume, "update staging.options_volume set put_volume = "
                       "50000000 where underlying = 'IWM' and date = '2024-07-16'")
    assert "IWM 2024-07-16 put volume 50,000,000 (trailing 252-session max 2,441,054" in \
        _blocking(summary, "implausible_volume")


def test_shares_outstanding_down_99_percent_in_a_day_blocks(published, tmp_path):
    # IWM: 293,000,000 shares on 2024-07-15, 298,000,000 on 2024-07-16 (set to 2,980,000), 301,300,000 on 2024-07-17
    summary = _refused(published, tmp_path, etf_nav, "update staging.etf_nav set shares_outstanding = 2980000 "
                                                      "where ticker = 'IWM' and date = '2024-07-16'")
    line = _blocking(summary, "implausible_shares")
    assert "IWM 2024-07-16 shares outstanding 2,980,000 after 293,000,000 on 2024-07-15 (-99.0%)" in line
    assert "IWM 2024-07-17 shares outstanding 301,300,000 after 2,980,000 on 2024-07-16 (+10010.7%)" in line


def test_a_nav_jump_blocks(published, tmp_path):
    # IWM NAV 216.03 on 2024-07-15; 22.337 on 2024-07-16 (a tenth of 223.37) is -89.7 %
    summary = _refused(published, tmp_path, etf_nav,
                       "update staging.etf_nav set nav = 22.337 where ticker = 'IWM' and date = '2024-07-16'")
    assert "IWM 2024-07-16 NAV 22.34 after 216.03 on 2024-07-15 (-89.7%)" in _blocking(summary, "implausible_nav")


@pytest.mark.slow
def test_an_exception_entry_lets_the_reviewed_rows_through(published, tmp_path):
    shares = "update staging.etf_nav set shares_outstanding = 2980000 where ticker = 'IWM' and date = '2024-07-16'"
    listed = tmp_path / "exceptions.csv"
    listed.write_text(HEADER + "etf_nav,IWM,2024-07-16,shares_move,test case: a reviewed share count\n")
    # one entry covers one row and one check: the next day's rebound still blocks
    summary = _refused(published, tmp_path, etf_nav, shares, exceptions=listed)
    line = _blocking(summary, "implausible_shares")
    assert "1 unexpected rows" in line and "IWM 2024-07-17 shares outstanding" in line
    listed.write_text(HEADER + "etf_nav,IWM,2024-07-16,shares_move,test case: a reviewed share count\n"
                               "etf_nav,IWM,2024-07-17,shares_move,\"test case: the count back, a day later\"\n")
    staging = _tampered(published, tmp_path, shares)
    report = validate_build(staging, SAMPLE_LAST, tmp_path / "docs", tmp_path / "state",
                            published=published.warehouse_path, suites=(etf_nav,), exceptions=listed)
    assert report.passed


def test_the_repository_exception_list_is_complete():
    entries = load_exceptions()
    assert all(e.reason and e.check in CHECKS[e.dataset] for e in entries)
    assert EXCEPTIONS_FILE.read_text().splitlines()[0] == HEADER.strip()


@pytest.mark.parametrize(("entry", "problem"), [
    ("etf_nav,IWM,2024-07-16,shares_move,\n", "line 2: every entry names its series and gives a reason"),
    ("etf_nav,IWM,2024-07-16,split,a split\n", "line 2: no check 'split' for dataset 'etf_nav'"),
    ("prices,RUT,07/01/2024,day_move,a glitch\n", "line 2: date '07/01/2024' is not YYYY-MM-DD"),
    ("prices,RUT,2024-07-01,day_move\n", "line 2: 4 fields, expected 5"),
])
def test_an_unusable_exception_entry_is_refused(tmp_path, entry, problem):
    listed = tmp_path / "exceptions.csv"
    listed.write_text(HEADER + entry)
    with pytest.raises(ExceptionListError, match=re.escape(problem)):
        load_exceptions(listed)
