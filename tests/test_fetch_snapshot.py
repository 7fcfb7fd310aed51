"""`regime-fetch --to DIR` (regime.snapshot): every live source fetched once from a local 127.0.0.1 server playing
the upstream files (the sample's, and the REAL iShares IVV fund file), written in the mirror layout, then replayed
by the mirror-mode ingests: the same lake as fetching live."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from conftest import PROJECT, SAMPLE_LAST
from regime import pipeline, snapshot
from regime.config import get_settings
from regime.sources import cboe, cboe_putcall, cftc, etf, ishares, occ
from upstream import Upstream, path_of

IVV_FUND = Path(__file__).parent / "sources" / "data" / "ishares-IVV_fund.xls.gz"
DATASETS = ("index_prices", "options_volume", "cftc_tff", "etf_nav", "options_putcall")


@pytest.fixture
def upstream(monkeypatch, settings, mirror):
    """The sample's files at their publishers' paths (IVV: the real fund file), live settings pointing there."""
    ivv = gzip.decompress(IVV_FUND.read_bytes())
    with Upstream() as up:
        for path in (mirror / "cboe").glob("*_History.csv"):
            up.route(path_of(cboe.url(path.name.removesuffix("_History.csv"))), path.read_bytes())
        for path in (mirror / occ.FOLDER).glob("*/*.csv"):
            up.route(path_of(occ.url(path.stem, date.fromisoformat(path.parent.name))), path.read_bytes())
        for path in (mirror / "cftc").glob("fut_fin_txt_*.zip"):
            up.route(path_of(cftc.zip_url(int(path.stem[-4:]))), path.read_bytes())
        for ticker in ("IWM", "IJR", "SPY"):
            up.route(path_of(etf.live_url(ticker)), (mirror / etf.mirror_name(ticker)).read_bytes())
        up.route(path_of(ishares.url("IVV")), ivv)
        for product in cboe_putcall.PRODUCTS:
            up.route(path_of(cboe_putcall.url(product)),
                     (mirror / cboe_putcall.FOLDER / cboe_putcall.file_name(product)).read_bytes())
        monkeypatch.setenv("REGIME_SOURCE", "live")
        monkeypatch.setenv("REGIME_LIVE_BASE_URL", up.url(""))
        monkeypatch.setenv("REGIME_OCC_LOOKBACK_SESSIONS", "3")
        monkeypatch.setenv("REGIME_CFTC_FIRST_YEAR", "2018")
        monkeypatch.setenv("REGIME_HTTP_TIMEOUT", "2")
        monkeypatch.setenv("REGIME_ETF_TICKERS", "IWM,IJR,SPY,IVV")
        yield up, ivv


@pytest.mark.slow
def test_fetch_writes_a_mirror_that_replays_to_the_same_lake(upstream, tmp_path, monkeypatch, capsys):
    up, ivv = upstream
    to = tmp_path / "snapshot"
    assert snapshot.main(["--to", str(to), "--as-of", SAMPLE_LAST.isoformat()]) == 0
    out = capsys.readouterr().out
    files = sorted(p.relative_to(to).as_posix() for p in to.rglob("*") if p.is_file())
    expected = sorted(t.path for t in snapshot.targets(get_settings(), SAMPLE_LAST)
                      if not t.path.endswith("fut_fin_txt_2018.zip")) + [snapshot.MANIFEST]
    assert files == expected  # the sample has no 2018 zip: absent upstream, not written
    assert "cboe/RUT_History.csv" in files and "occ/volume-query/2024-07-17/IWM.csv" in files
    assert "etf/ishares/iShares-Core-SP-500-ETF_fund.xls" in files and "cftc/fut_fin_txt_2024.zip" in files
    assert (to / "etf/ishares/iShares-Core-SP-500-ETF_fund.xls").read_bytes() == ivv  # as received
    lines = out.splitlines()
    assert lines[0].startswith(f"regime-fetch: {len(expected)} file(s) as of 2024-07-17 into ")  # + 2018, - manifest
    assert any(line.startswith("[1/") and "cboe  cboe/RUT_History.csv: " in line and "parses" in line for line in lines)
    assert any("cftc/fut_fin_txt_2018.zip: absent upstream (HTTP 404 not found)" in line for line in lines)
    assert "0 failed; replay with REGIME_SOURCE=mirror" in lines[-1]
    manifest = json.loads((to / snapshot.MANIFEST).read_text())
    entry = manifest["etf/ishares/iShares-Core-SP-500-ETF_fund.xls"]
    assert entry["sha256"] == hashlib.sha256(ivv).hexdigest() and entry["url"].startswith("http://127.0.0.1:")
    agents = {headers.get("User-Agent") for _, headers in up.requests}
    assert len(agents) == 1 and agents.pop().startswith("regime-monitor/")

    # replay: mirror mode on the snapshot gives the rows live mode gives
    live = {name: pipeline.ingest(name, SAMPLE_LAST, get_settings())["rows"] for name in DATASETS}
    monkeypatch.setenv("REGIME_SOURCE", "mirror")
    monkeypatch.setenv("REGIME_MIRROR_DIR", str(to))
    monkeypatch.setenv("REGIME_DATA_DIR", str(tmp_path / "replay"))
    replayed = {name: pipeline.ingest(name, SAMPLE_LAST, get_settings())["rows"] for name in DATASETS}
    assert replayed == live
    assert replayed["etf_nav"]["IVV"] == 5534
    from regime import demo  # the demo's as-of chooser reads the snapshot as the ingests do

    seen = {(s.dataset.name, s.name): s.dates for s in demo.mirror_series(get_settings())}
    assert max(seen[("etf_nav", "IVV")]) == date(2022, 5, 11) and max(seen[("etf_nav", "IWM")]) == SAMPLE_LAST
    lake = pd.read_parquet(tmp_path / "replay" / "lake" / "options_volume" / "underlying=IWM" / "data.parquet")
    assert sorted(lake["date"]) == [date(2024, 7, 15), date(2024, 7, 16), date(2024, 7, 17)]


@pytest.mark.slow
def test_a_file_the_parser_refuses_is_kept_and_a_failure_sets_the_exit_code(upstream, tmp_path, capsys):
    up, _ = upstream
    up.route(path_of(cboe.url("RUT")), b"<html><body>maintenance</body></html>")
    up.route(path_of(cboe.url("SPX")), responses=[(503, b"")])
    to = tmp_path / "snapshot"
    assert snapshot.main(["--to", str(to), "--as-of", SAMPLE_LAST.isoformat()]) == 1
    out = capsys.readouterr().out
    assert "cboe/RUT_History.csv: 37 bytes, kept, but the parser refuses it: an HTML page" in out
    assert "cboe/SPX_History.csv: FAILED: gave up after 4 attempts: HTTP 503" in out
    assert (to / "cboe" / "RUT_History.csv").read_bytes() == b"<html><body>maintenance</body></html>"
    assert not (to / "cboe" / "SPX_History.csv").exists()


@pytest.mark.slow
def test_usage_errors_exit_2(tmp_path, monkeypatch):
    monkeypatch.setenv("REGIME_SOURCE", "nowhere")
    assert snapshot.main(["--to", str(tmp_path)]) == 2
    monkeypatch.delenv("REGIME_SOURCE")
    assert snapshot.main(["--to", str(tmp_path), "--as-of", "2999-01-01"]) == 2
    done = subprocess.run([sys.executable, "-m", "regime.snapshot", "--help"], capture_output=True, text=True,
                          cwd=PROJECT, check=False)
    assert done.returncode == 0 and "--to" in done.stdout
