"""Ingest of the four source families, in mirror mode and in live mode against a local HTTP server that
plays the upstream files (good and broken)."""

from datetime import date

import pandas as pd
import pytest

from conftest import SAMPLE_LAST, tree_digest
from regime import pipeline
from regime.config import get_settings
from regime.ingest import IngestError
from regime.sources import cboe, cftc, etf, occ
from upstream import Upstream, path_of

DATASETS = ("index_prices", "options_volume", "cftc_tff", "etf_nav")


def serve_mirror(up: Upstream, mirror, as_of: date = SAMPLE_LAST) -> None:
    """Route every live URL the pipeline asks for to the bytes of the same file in the mirror."""
    for symbol in ("RUT", "SPX", "NDX", "DJX", "VIX", "RVX"):
        up.route(path_of(cboe.url(symbol)), (mirror / "cboe" / cboe.file_name(symbol)).read_bytes())
    for path in sorted((mirror / "occ" / "volume-query").glob("*/*.csv")):
        day = date.fromisoformat(path.parent.name)
        up.route(path_of(occ.url(path.stem, day)), path.read_bytes())
    for path in sorted((mirror / "cftc").glob("fut_fin_txt_*.zip")):
        up.route(path_of(cftc.zip_url(int(path.stem[-4:]))), path.read_bytes())
    for ticker in etf.TICKERS:  # IWM, IJR, IVV at iShares' URLs, SPY at SSGA's; QQQ and VTWO are mirror only
        if etf.live_url(ticker):
            up.route(path_of(etf.live_url(ticker)), (mirror / etf.mirror_name(ticker)).read_bytes())


@pytest.fixture
def live(monkeypatch, settings, mirror):
    with Upstream() as up:
        serve_mirror(up, mirror)
        monkeypatch.setenv("REGIME_SOURCE", "live")
        monkeypatch.setenv("REGIME_LIVE_BASE_URL", up.url(""))
        monkeypatch.setenv("REGIME_OCC_LOOKBACK_SESSIONS", "3")
        monkeypatch.setenv("REGIME_CFTC_FIRST_YEAR", "2023")
        monkeypatch.setenv("REGIME_HTTP_TIMEOUT", "1")
        yield up, get_settings()


@pytest.mark.slow
def test_mirror_ingest_of_all_four_families(settings):
    results = {name: pipeline.ingest(name, SAMPLE_LAST, settings) for name in DATASETS}
    assert results["index_prices"]["rows"] == dict.fromkeys(["DJX", "NDX", "RUT", "RVX", "SPX", "VIX"], 1394)
    assert results["options_volume"]["rows"] == dict.fromkeys(["AAPL", "IWM", "NVDA", "QQQ", "SPY", "TSLA"], 120)
    assert sorted(results["cftc_tff"]["rows"]) == ["13874A", "209742", "239742"]
    assert results["etf_nav"]["rows"] == dict.fromkeys(["IJR", "IVV", "IWM", "QQQ", "SPY", "VTWO"], 1394)
    tff = pd.read_parquet(settings.lake_dir / "cftc_tff" / "market_code=239742" / "data.parquet")
    assert tff["release_date"].max() <= SAMPLE_LAST  # the 2024-07-16 report (released 07-19) is not known yet
    assert tff["report_date"].max() == date(2024, 7, 9)
    raw = settings.raw_dir / "cftc" / "as_of=2024-07-17"
    assert (raw / "fut_fin_txt_2024.zip").exists() and (raw / "fut_fin_txt_2024.zip.meta.json").exists()


@pytest.mark.slow
def test_rerunning_the_same_date_leaves_the_lake_identical(settings):
    for name in DATASETS:
        pipeline.ingest(name, SAMPLE_LAST, settings)
    before = tree_digest(settings.data_dir)
    for name in DATASETS:
        pipeline.ingest(name, SAMPLE_LAST, settings)
    assert tree_digest(settings.data_dir) == before


def test_history_the_upstream_stops_serving_stays_in_the_lake(settings, mirror):
    pipeline.ingest("index_prices", SAMPLE_LAST, settings)
    path = mirror / "cboe" / "RUT_History.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], *lines[-30:]]) + "\n")  # upstream now serves 30 days only
    result = pipeline.ingest("index_prices", SAMPLE_LAST, settings)
    assert result["rows"]["RUT"] == 1394


@pytest.mark.slow
def test_live_mode_fetches_over_http_and_lands_the_same_data(live, settings):
    up, live_settings = live
    for name in DATASETS:
        pipeline.ingest(name, SAMPLE_LAST, live_settings)
    assert {p.name for p in (live_settings.lake_dir).iterdir()} == set(DATASETS)
    prices = pd.read_parquet(live_settings.lake_dir / "index_prices" / "symbol=RUT" / "data.parquet")
    assert len(prices) == 1394
    options = pd.read_parquet(live_settings.lake_dir / "options_volume" / "underlying=IWM" / "data.parquet")
    assert sorted(options["date"]) == [date(2024, 7, 15), date(2024, 7, 16), date(2024, 7, 17)]
    agents = {headers.get("User-Agent") for _, headers in up.requests}
    assert len(agents) == 1 and agents.pop().startswith("regime-monitor/")
    meta = (live_settings.raw_dir / "cboe" / "as_of=2024-07-17" / "RUT_History.csv.meta.json").read_text()
    assert '"location": "http://127.0.0.1:' in meta


@pytest.mark.parametrize(("respond", "words"), [
    ({"body": b"<!DOCTYPE html><html><title>Just a moment...</title></html>"}, "an HTML page, not a CSV file"),
    ({"responses": [(403, b"forbidden")]}, "gave up after 4 attempts: HTTP 403"),
    ({"responses": [(503, b"")]}, "gave up after 4 attempts: HTTP 503"),
    ({"delay": 3.0}, "gave up after 4 attempts: ReadTimeout"),
    ({"body": b"Date,OPEN,HIGH,LOW,CLOSE\n"}, "no data rows"),
    ({"body": b"TRADE_DATE,OPEN,HIGH,LOW,CLOSE\n07/16/2024,1,2,0.5,1.5\n"}, "no DATE column"),
    ({"body": b"DATE,OPEN,HIGH,LOW,CLOSE\n07/16/2024,1,2,0.5,1.5\n07/16/2024,1,2,0.5,1.5\n"}, "duplicated dates"),
    ({"body": b"DATE,OPEN,HIGH,LOW,CLOSE\n07/16/2099,1,2,0.5,1.5\n"}, "is in the future"),
    ({"body": b"DATE,OPEN,HIGH,LOW,CLOSE\n07/15/2024,1,2,0.5,1.5\n07/16/2024,1,2"}, "truncated file"),
])
@pytest.mark.slow
def test_live_failures_end_in_a_clear_error_with_nothing_written(live, respond, words):
    up, settings = live
    pipeline.ingest("index_prices", SAMPLE_LAST, settings)
    lake_before = tree_digest(settings.lake_dir)
    path = path_of(cboe.url("RUT"))
    up.route(path, **respond)
    with pytest.raises(IngestError, match=words) as err:
        pipeline.ingest("index_prices", SAMPLE_LAST, settings)
    assert f"cboe: {up.url(path)}" in str(err.value)
    assert tree_digest(settings.lake_dir) == lake_before
    if "body" in respond:  # bytes that arrived but failed to parse are kept for inspection
        kept = settings.quarantine_dir / "cboe" / "as_of=2024-07-17" / "RUT_History.csv"
        assert kept.read_bytes() == respond["body"]


@pytest.mark.slow
def test_429_with_retry_after_is_retried_then_succeeds(live, mirror):
    up, settings = live
    path = path_of(cboe.url("RUT"))
    good = (mirror / "cboe" / "RUT_History.csv").read_bytes()
    up.route(path, responses=[(429, b"slow down"), (200, good)], headers={"Retry-After": "1"})
    result = pipeline.ingest("index_prices", SAMPLE_LAST, settings)
    assert result["rows"]["RUT"] == 1394
    assert [p for p, _ in up.requests].count(path) == 2


def test_a_missing_yearly_cftc_zip_in_early_january_is_skipped(live):
    up, settings = live
    up.routes.pop(path_of(cftc.zip_url(2025)), None)  # not published yet: the server answers 404
    result = pipeline.ingest("cftc_tff", date(2025, 1, 3), settings)
    assert "2025" in result["missing"]
    assert sorted(result["rows"]) == ["13874A", "209742", "239742"]  # 2023 and 2024 still landed


def test_a_broken_cftc_zip_fails_and_is_quarantined(live):
    up, settings = live
    up.route(path_of(cftc.zip_url(2024)), b"PK\x03\x04 truncated zip")
    with pytest.raises(IngestError, match="cftc: .*fut_fin_txt_2024.zip"):
        pipeline.ingest("cftc_tff", SAMPLE_LAST, settings)
    assert (settings.quarantine_dir / "cftc" / "as_of=2024-07-17" / "fut_fin_txt_2024.zip").exists()
    assert not (settings.lake_dir / "cftc_tff").exists()


def test_occ_holiday_answer_on_a_session_is_an_error(live):
    up, settings = live
    up.route(path_of(occ.url("IWM", date(2024, 7, 16))), b"No record(s) found")
    with pytest.raises(IngestError, match=r"no volume published for NYSE session\(s\): \['IWM 2024-07-16'\]"):
        pipeline.ingest("options_volume", SAMPLE_LAST, settings)


@pytest.mark.slow
def test_an_etf_workbook_served_as_html_fails_naming_the_file(live):
    up, settings = live
    up.route(path_of(etf.live_url("IWM")), b"<html><body>Page not found</body></html>")
    with pytest.raises(IngestError, match="etf: .*iShares-Russell-2000-ETF_fund.*an HTML page"):
        pipeline.ingest("etf_nav", SAMPLE_LAST, settings)


def test_live_cftc_through_the_public_reporting_api(live, monkeypatch, mirror):
    """REGIME_CFTC_VIA=api: one Socrata query (dataset gpe5-46if, API field names) gives the same lake rows."""
    import json

    up, _ = live
    frame = cftc.parse_zip((mirror / "cftc" / "fut_fin_txt_2024.zip").read_bytes(), "fixture")
    records = []
    for row in frame.to_dict("records"):
        record = {"report_date_as_yyyy_mm_dd": f"{row['report_date'].isoformat()}T00:00:00.000",
                  "cftc_contract_market_code": row["market_code"], "market_and_exchange_names": row["market_name"],
                  "open_interest_all": str(row["open_interest"]), "futonly_or_combined": "FutOnly"}
        record.update({c: str(row[c]) for c in cftc.POSITIONS})
        records.append(record)
    up.route("/resource/gpe5-46if.json", json.dumps(records).encode(), headers={"Content-Type": "application/json"})
    monkeypatch.setenv("REGIME_CFTC_VIA", "api")
    monkeypatch.setenv("REGIME_CFTC_FIRST_YEAR", "2024")
    settings = get_settings()
    result = pipeline.ingest("cftc_tff", SAMPLE_LAST, settings)
    assert result["files"] == 1 and sorted(result["rows"]) == ["13874A", "209742", "239742"]
    [(path, _)] = [r for r in up.requests if r[0].startswith("/resource/gpe5-46if.json")]
    assert "cftc_contract_market_code%20in%28%2713874A%27" in path and "&$limit=50000" in path
    lake = pd.read_parquet(settings.lake_dir / "cftc_tff" / "market_code=239742" / "data.parquet")
    expected = frame[(frame["market_code"] == "239742") & (frame["release_date"] <= SAMPLE_LAST)]
    assert sorted(lake["report_date"]) == sorted(expected["report_date"])
