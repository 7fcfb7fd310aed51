"""The ETF ingest: each ticker from its issuer's file, live from a local 127.0.0.1 server playing the REAL iShares
IVV fund file (tests/sources/data) or from the mirror; nothing obtained fails like the Cboe ingest; a ticker not
obtained is a warning naming the spread's side, and the gate names the ETFs the flow spread lacks."""

from __future__ import annotations

import gzip
import logging
import shutil
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from conftest import REFERENCE, SAMPLE_LAST
from regime import pipeline
from regime.config import get_settings
from regime.ingest import IngestError
from regime.sources import etf, ishares
from regime.validation import etf_nav
from regime.validation.gate import validate_build
from upstream import live_upstream, path_of

IVV_FUND = Path(__file__).parent / "sources" / "data" / "ishares-IVV_fund.xls.gz"
QQQ_JSON = REFERENCE / "formats" / "etf-issuer-nav-shares" / "ManULoreN14+regimen-tilt-nq" / "FUND_FLOWS.txt"


@pytest.fixture(scope="module")
def ivv() -> bytes:
    return gzip.decompress(IVV_FUND.read_bytes())


@pytest.fixture
def live(monkeypatch, settings):
    with live_upstream(monkeypatch, REGIME_HTTP_TIMEOUT="2") as up:
        yield up


@pytest.mark.slow
def test_live_the_real_fund_file_lands_and_missing_tickers_are_warnings(live, ivv, mirror, caplog):
    up = live
    up.route(path_of(ishares.url("IVV")), ivv)  # IWM, IJR, SPY: the server answers 404
    (mirror / etf.mirror_name("VTWO")).unlink()  # a mirror-only ticker whose file nobody placed
    caplog.set_level(logging.WARNING)
    result = pipeline.ingest("etf_nav", SAMPLE_LAST, get_settings())
    assert result["rows"]["IVV"] == 5534
    assert set(result["rows"]) == {"IVV", "QQQ"}  # QQQ: mirror only, read from the mirror folder in live mode
    assert sorted(result["missing"]) == ["IJR", "IWM", "SPY", "VTWO"]
    said = caplog.text
    assert "etf: IWM not obtained: the small-cap side of the ETF flow spread lacks it" in said
    assert "etf: SPY not obtained: the large-cap side of the ETF flow spread lacks it" in said
    assert "VTWO has no public live source" in said
    asked = [p for p, _ in up.requests]
    assert path_of(ishares.url("IWM")) in asked and not any("vanguard" in p or "etf.com" in p for p in asked)
    raw = get_settings().raw_dir / "etf" / f"as_of={SAMPLE_LAST}" / ishares.file_name("IVV")
    assert raw.read_bytes() == ivv  # landed as received


def test_live_an_etf_ingest_that_gets_nothing_fails_like_cboe(live, monkeypatch, settings):
    monkeypatch.setenv("REGIME_ETF_TICKERS", "IWM,IJR,IVV,SPY")
    with pytest.raises(IngestError, match=r"etf: none of \['IWM', 'IJR', 'IVV', 'SPY'\] found in the live source"):
        pipeline.ingest("etf_nav", SAMPLE_LAST, get_settings())
    assert not (settings.lake_dir / "etf_nav").exists()


@pytest.mark.slow
def test_live_a_broken_fund_file_fails_naming_it(live, ivv):
    up = live
    up.route(path_of(ishares.url("IVV")), ivv[: len(ivv) // 3])  # truncated inside the Historical worksheet
    with pytest.raises(IngestError, match=r"etf: http://127\.0\.0\.1:\d+/us/products/239726/.*cut off"):
        pipeline.ingest("etf_nav", SAMPLE_LAST, get_settings())


def test_mirror_without_an_etf_folder_is_skipped_but_an_empty_one_fails(settings, mirror, caplog):
    shutil.rmtree(mirror / "etf")
    caplog.set_level(logging.WARNING)
    result = pipeline.ingest("etf_nav", SAMPLE_LAST, settings)
    assert result["rows"] == {} and len(result["missing"]) == 6
    assert "has no etf/ folder" in caplog.text
    (mirror / "etf").mkdir()
    with pytest.raises(IngestError, match="etf: none of .* found in the mirror source"):
        pipeline.ingest("etf_nav", SAMPLE_LAST, settings)


@pytest.mark.slow
def test_mirror_prefers_the_issuers_file_over_the_sample_layout(settings, mirror, ivv):
    (mirror / "etf" / "ishares").mkdir()
    (mirror / etf.mirror_name("IVV", None)).write_bytes(ivv)  # beside the sample's navhist-us-en-ivv.xlsx
    result = pipeline.ingest("etf_nav", SAMPLE_LAST, settings)
    assert result["rows"]["IVV"] == 5534 and result["rows"]["IWM"] == 1394
    lake = pd.read_parquet(settings.lake_dir / "etf_nav" / "ticker=IVV" / "data.parquet")
    assert lake["date"].max() == date(2022, 5, 11)


@pytest.mark.skipif(not QQQ_JSON.exists(), reason="../shared/reference-data is absent")
@pytest.mark.slow
def test_mirror_reads_qqq_at_its_documented_path(settings, mirror):
    (mirror / etf.mirror_name("QQQ")).unlink()
    (mirror / "etf" / "etfcom").mkdir()
    shutil.copy(QQQ_JSON, mirror / "etf" / "etfcom" / "fund-details-qqq.json")
    result = pipeline.ingest("etf_nav", SAMPLE_LAST, settings)
    lake = pd.read_parquet(settings.lake_dir / "etf_nav" / "ticker=QQQ" / "data.parquet")
    assert result["rows"]["QQQ"] == len(lake) and lake["date"].min() == date(1999, 3, 10)
    assert lake["date"].max() == SAMPLE_LAST  # rows after the as-of date are not landed


@pytest.mark.slow
def test_the_gate_names_the_etfs_the_spread_lacks(settings, mirror, tmp_path):
    (mirror / etf.mirror_name("VTWO")).unlink()
    (mirror / etf.mirror_name("QQQ")).unlink()
    for name in ("index_prices", "options_volume", "cftc_tff", "etf_nav"):
        pipeline.ingest(name, SAMPLE_LAST, settings)
    staging = pipeline.build(SAMPLE_LAST, settings, incremental=False)
    report = validate_build(Path(staging), SAMPLE_LAST, tmp_path / "docs", tmp_path / "state", suites=(etf_nav,))
    assert report.passed
    [lacks] = [w for w in report.warnings if "spread_lacks" in w.expectation]
    assert lacks.sample == ["the ETF flow spread lacks small caps VTWO; large caps QQQ (no NAV rows)"]
    assert lacks.unexpected_count == 1
