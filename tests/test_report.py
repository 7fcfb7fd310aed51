"""The per-run HTML report: rendered from a synthetic warehouse, opened in headless Chromium (screenshot, console),
and rendered from warehouses that lack whole families of tables and indicators."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from regime.report import render_report, write_report

AS_OF = date(2024, 7, 16)
SESSIONS = 300
CHROMIUM = Path("/usr/bin/chromium")
SECTION_IDS = ("relative", "zscores", "ratio", "volcorr", "calls", "positioning", "flows")
OPTIONS_ETF_CFTC = ("call_volume_5d", "put_volume_5d", "call_put_ratio_5d", "net_pct_oi", "etf_flow_5d_pct",
                    "etf_flow_5d_pct_spread")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium "
                                  "(apt-get update && apt-get install -y chromium)")


# --- a deterministic synthetic warehouse ---------------------------------------------------------------------------

def synthetic_history(seed: int = 20240716) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(prices, indicators) for SESSIONS weekdays ending AS_OF; the last five sessions are a small-cap squeeze in
    which RUT's z-score, its 5-session lead over SPX and the Russell leveraged-fund short set records."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(end=AS_OF, periods=SESSIONS)
    n = len(dates)
    market = rng.normal(0.0004, 0.008, n)
    rets = {
        "SPX": market,
        "NDX": 1.2 * market + rng.normal(0, 0.004, n),
        "DJX": 0.8 * market + rng.normal(0, 0.003, n),
        "RUT": 1.1 * market + rng.normal(-0.0003, 0.006, n),
    }
    rets["RUT"][-5:] = [0.018, 0.021, 0.025, 0.017, 0.022]  # the squeeze
    rets["SPX"][-5:] = [0.001, -0.002, 0.000, 0.001, -0.001]
    levels = {"SPX": 4500.0, "NDX": 15500.0, "DJX": 350.0, "RUT": 1950.0}
    close = {s: levels[s] * np.exp(np.cumsum(r)) for s, r in rets.items()}
    close["VIX"] = 15 * np.exp(-6 * pd.Series(rets["SPX"]).rolling(5, min_periods=1).sum()
                               + rng.normal(0, 0.04, n)).to_numpy()
    rvx = 20 - 250 * pd.Series(rets["RUT"]).rolling(5, min_periods=1).sum() + rng.normal(0, .8, n)
    rvx.iloc[-5:] = [21.0, 22.5, 24.0, 25.5, 27.0]  # small-cap vol rising with the index
    close["RVX"] = np.clip(rvx.to_numpy(), 12, None)
    wide = pd.DataFrame(close, index=dates)
    prices = (wide.stack().rename("close").reset_index().rename(columns={"level_0": "date", "level_1": "symbol"}))
    prices["open"] = prices["high"] = prices["low"] = prices["close"]

    rows = []

    def add(indicator: str, subject: str, values: pd.Series) -> None:
        frame = values.dropna()
        rows.append(pd.DataFrame({"date": frame.index, "indicator": indicator, "subject": subject,
                                  "value": frame.to_numpy(dtype=float)}))

    for sym in wide:
        c = wide[sym]
        add("zscore_50d", sym, (c - c.rolling(50).mean()) / c.rolling(50).std())
        for k in (1, 5, 20):
            add(f"ret_{k}d", sym, c.pct_change(k))
    for other in ("SPX", "NDX"):
        for k in (5, 20):
            add(f"rel_ret_{k}d", f"RUT/{other}", wide["RUT"].pct_change(k) - wide[other].pct_change(k))
    add("price_ratio", "RUT/SPX", wide["RUT"] / wide["SPX"])
    add("vol_corr_5d", "RUT~RVX", wide["RUT"].pct_change().rolling(5).corr(wide["RVX"].pct_change()))
    add("vol_corr_5d", "SPX~VIX", wide["SPX"].pct_change().rolling(5).corr(wide["VIX"].pct_change()))

    base = {"IWM": 700_000, "SPY": 4_200_000, "QQQ": 2_300_000, "NVDA": 3_000_000, "TSLA": 1_900_000,
            "AAPL": 1_100_000}
    for underlying, size in base.items():
        calls = pd.Series(size * np.exp(rng.normal(0, 0.25, n)), index=dates)
        puts = pd.Series(size * 0.8 * np.exp(rng.normal(0, 0.25, n)), index=dates)
        if underlying == "IWM":
            calls.iloc[-5:] *= [2.0, 2.6, 3.1, 3.4, 3.8]
        c5, p5 = calls.rolling(5).sum().round(), puts.rolling(5).sum().round()
        add("call_volume_5d", underlying, c5)
        add("put_volume_5d", underlying, p5)
        add("call_put_ratio_5d", underlying, c5 / p5)

    fridays = dates[dates.weekday == 4]
    for code in ("239742", "13874A", "209742"):
        for cls in ("asset_mgr", "lev_money", "dealer"):
            walk = np.clip(np.cumsum(rng.normal(0, 0.02, len(fridays))) + rng.uniform(-0.2, 0.2), -0.6, 0.6)
            if (code, cls) == ("239742", "lev_money"):
                walk -= 0.25  # leveraged funds are short Russell futures
                walk[-1] = walk.min() - 0.05  # the most crowded short in the history
            add("net_pct_oi", f"{code}:{cls}", pd.Series(walk, index=fridays))

    flows = {}
    for ticker in ("IWM", "IJR", "VTWO", "SPY", "IVV", "QQQ"):
        daily = pd.Series(rng.normal(0, 0.0012, n), index=dates)
        if ticker in ("IWM", "IJR", "VTWO"):
            daily.iloc[-5:] += 0.004
        if ticker == "SPY":
            daily.iloc[-5:] -= 0.006  # a record outflow
        flows[ticker] = daily.rolling(5).sum()
        add("etf_flow_5d_pct", ticker, flows[ticker])
    small = pd.concat([flows[t] for t in ("IWM", "IJR", "VTWO")], axis=1).mean(axis=1)
    large = pd.concat([flows[t] for t in ("SPY", "IVV", "QQQ")], axis=1).mean(axis=1)
    add("etf_flow_5d_pct_spread", "small-large", small - large)
    return prices, pd.concat(rows, ignore_index=True)


def extremes_of(indicators: pd.DataFrame) -> pd.DataFrame:
    """marts.extremes computed the slow, obvious way."""
    out = []
    for (indicator, subject), g in indicators.sort_values("date").groupby(["indicator", "subject"]):
        d, v = g["date"].to_numpy(), g["value"].to_numpy()
        for i in range(len(v)):
            above, below = np.flatnonzero(v[:i] >= v[i]), np.flatnonzero(v[:i] <= v[i])
            out.append({
                "date": d[i], "indicator": indicator, "subject": subject, "value": v[i], "history_start": d[0],
                "highest_since": d[above[-1]] if len(above) else None,
                "lowest_since": d[below[-1]] if len(below) else None,
                "is_record_high": bool(i and not len(above)), "is_record_low": bool(i and not len(below)),
                "pct_rank": (np.sum(v[:i + 1] <= v[i])) / (i + 1),
            })
    return pd.DataFrame(out)


HEADLINE_INDICATORS = ("zscore_50d", "rel_ret_5d", "vol_corr_5d", "call_volume_5d", "net_pct_oi",
                       "etf_flow_5d_pct_spread")


def regime_of(indicators: pd.DataFrame, extremes: pd.DataFrame) -> pd.DataFrame:
    """marts.regime_daily as include/sql/marts/regime_daily.sql shapes it (columns, records text, labels)."""
    wide = indicators.pivot_table(index="date", columns=["indicator", "subject"], values="value")

    def col(indicator: str, subject: str) -> pd.Series:
        key = (indicator, subject)
        return wide[key] if key in wide.columns else pd.Series(np.nan, index=wide.index)

    sessions = wide.index[wide.index.weekday < 5]
    frame = pd.DataFrame({
        "rut_zscore_50d": col("zscore_50d", "RUT"),
        "spx_zscore_50d": col("zscore_50d", "SPX"),
        "rut_spx_rel_ret_5d": col("rel_ret_5d", "RUT/SPX"),
        "rut_spx_price_ratio": col("price_ratio", "RUT/SPX"),
        "rut_rvx_vol_corr_5d": col("vol_corr_5d", "RUT~RVX"),
        "iwm_call_volume_5d": col("call_volume_5d", "IWM"),
        "lev_money_net_pct_oi_russell": col("net_pct_oi", "239742:lev_money").ffill(),
        "etf_flow_5d_pct_spread": col("etf_flow_5d_pct_spread", "small-large"),
    }).reindex(sessions)
    hits = extremes[(extremes["is_record_high"] | extremes["is_record_low"])
                    & extremes["indicator"].isin(HEADLINE_INDICATORS)]
    words = (hits["indicator"] + " " + hits["subject"] + " " + np.where(hits["is_record_high"], "high", "low"))
    frame["records"] = words.groupby(hits["date"]).agg(lambda w: "; ".join(sorted(w))).reindex(frame.index)
    z, rel, spx = frame["rut_zscore_50d"], frame["rut_spx_rel_ret_5d"], frame["spx_zscore_50d"]
    frame["label"] = np.select(
        [(z >= 3) & (rel >= 0.05), (z <= -3) & (rel <= -0.05), (z.abs() >= 2) | (spx.abs() >= 2),
         z.isna() & spx.isna()],
        ["small-cap squeeze", "small-cap capitulation", "stretched", "insufficient history"], "normal")
    return frame.rename_axis("date").reset_index()


def write_warehouse(path: Path, prices: pd.DataFrame | None, indicators: pd.DataFrame | None,
                    extremes: pd.DataFrame | None, regime: pd.DataFrame | None) -> Path:
    con = duckdb.connect(str(path))
    try:
        for schema in ("staging", "marts", "meta"):
            con.execute(f"create schema {schema}")

        def table(name: str, frame: pd.DataFrame, date_columns: tuple[str, ...] = ("date",)) -> None:
            con.register("frame", frame)
            casts = ", ".join(f"{c}::date as {c}" for c in date_columns)
            con.execute(f"create table {name} as select * replace ({casts}) from frame")
            con.unregister("frame")

        if prices is not None:
            table("marts.prices", prices[["date", "symbol", "open", "high", "low", "close"]])
        if indicators is not None:
            table("marts.indicators", indicators)
        if extremes is not None:
            table("marts.extremes", extremes, ("date", "history_start", "highest_since", "lowest_since"))
        if regime is not None:
            table("marts.regime_daily", regime)
        con.execute("create table meta.build_info as select $as_of::date as as_of, $built::timestamptz as built_at,"
                    " 'mirror' as source, '/synthetic/mirror' as origin",
                    {"as_of": AS_OF, "built": datetime(2024, 7, 16, 22, 5, tzinfo=UTC)})
        con.execute("create table meta.validation_runs as select $run_at::timestamptz as run_at,"
                    " $as_of::date as as_of, 'index_prices' as dataset, 'expect_' || i::varchar as expectation,"
                    " 'critical' as severity, 1 as success, 0 as unexpected_count, '[]' as sample_values,"
                    " '' as docs_url from range(12) t(i)",
                    {"run_at": datetime(2024, 7, 16, 22, 4, tzinfo=UTC), "as_of": AS_OF})
        con.execute("checkpoint")
    finally:
        con.close()
    return path


@pytest.fixture(scope="module")
def history():
    prices, indicators = synthetic_history()
    return prices, indicators, extremes_of(indicators)


@pytest.fixture(scope="module")
def full_warehouse(tmp_path_factory, history) -> Path:
    prices, indicators, extremes = history
    path = tmp_path_factory.mktemp("full") / "warehouse.duckdb"
    return write_warehouse(path, prices, indicators, extremes, regime_of(indicators, extremes))


@pytest.fixture(scope="module")
def zscore_warehouse(tmp_path_factory, history) -> Path:
    """Only prices and z-scores, no extremes or regime_daily tables (like the published warehouse of today)."""
    prices, indicators, _ = history
    path = tmp_path_factory.mktemp("zscore") / "warehouse.duckdb"
    return write_warehouse(path, prices, indicators[indicators["indicator"] == "zscore_50d"], None, None)


@pytest.fixture(scope="module")
def report(full_warehouse, tmp_path_factory) -> Path:
    return render_report(full_warehouse, AS_OF, tmp_path_factory.mktemp("reports"))


# --- headless Chromium --------------------------------------------------------------------------------------------

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--host-resolver-rules=MAP * ~NOTFOUND")
CONSOLE_LINE = re.compile(r":CONSOLE\b|Uncaught")


def chromium(page: Path, tmp: Path, *flags: str) -> subprocess.CompletedProcess:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    done = subprocess.run([str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *flags, page.as_uri()],
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def console_messages(stderr: str) -> list[str]:
    """Lines Chromium logs (with --enable-logging=stderr) for the page's console: errors, uncaught exceptions,
    failed loads. A report without scripts or external resources has none at all."""
    return [line for line in stderr.splitlines() if CONSOLE_LINE.search(line)]


def screenshot(page: Path, tmp: Path, name: str) -> tuple[Path, list[str]]:
    png = tmp / f"{name}.png"
    done = chromium(page, tmp, "--enable-logging=stderr", "--v=0", f"--screenshot={png}", "--window-size=1280,4000")
    return png, console_messages(done.stderr)


# --- the tests ----------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_report_has_every_section_and_is_self_contained(report):
    assert report.name == f"{AS_OF.isoformat()}.html"
    assert not [p for p in report.parent.iterdir() if p != report], "a temporary file was left behind"
    text = report.read_text(encoding="utf-8")
    assert len(text.encode()) < 3 * 1024 * 1024
    for section in SECTION_IDS:
        body = re.search(rf'<section id="{section}">(.*?)</section>', text, re.S)
        assert body, f"section {section} is missing"
        assert "<svg" in body[1] or "data:image/png;base64," in body[1], f"section {section} has no chart"
        assert "<figcaption>" in body[1], f"section {section} has no caption"
    assert "No data for" not in text and "Could not render" not in text
    # self-contained: nothing to fetch, nothing to run
    assert "http://" not in text and "https://" not in text
    assert not re.search(r"<script|<link|<iframe|@import|url\((?!#)", text, re.I)
    assert re.search(r'\bsrc="(?!data:)', text) is None
    # ids inside the inlined SVGs are unique across charts
    ids = re.findall(r'\bid="([^"]+)"', text)
    assert len(ids) == len(set(ids))


def test_report_content_reads_like_the_warehouse(report):
    text = report.read_text(encoding="utf-8")
    assert "as of 2024-07-16" in text
    assert "Warehouse built 2024-07-16 22:05 UTC · source: mirror (/synthetic/mirror)" in text
    assert "Validation: all 12 checks passed" in text
    assert 'class="badge hot">small-cap squeeze<' in text
    # records of the day: among them RUT's z-score, its 5-session lead over SPX and SPY's outflow
    records = re.search(r'<section id="records">(.*?)</section>', text, re.S)[1]
    assert "RECORD HIGH" in records and "RECORD LOW" in records
    assert "z-score vs 50-day average</td><td>Russell 2000</td>" in records
    assert "5-day relative return</td><td>Russell 2000 vs S&amp;P 500</td>" in records
    # headline wording (regime.words, as in the CLI and the mails): σ, pp, % of open interest, contracts,
    # percentiles, "highest since"
    summary = re.search(r'<section id="summary">(.*?)</section>', text, re.S)[1]
    assert re.search(r"Russell 2000 z-score vs its 50-day average</td><td class=\"num\">\+\d\.\d\dσ", summary)
    assert re.search(r"RECORD HIGH</span> the highest on record \(history since 20\d\d-\d\d-\d\d\)", summary)
    assert re.search(r"the (highest|lowest) since 20\d\d-\d\d-\d\d \(\d+ (days|months)\)", summary)
    assert re.search(r"\d+(st|nd|rd|th) percentile", summary)
    assert re.search(r'class="num">\+\d+\.\d pp<', summary)  # RUT - SPX, 5 sessions, in percentage points
    assert re.search(r'class="num">-\d+\.\d% of open interest<', summary)
    assert re.search(r'class="num">\d{1,3}(,\d{3})+ contracts<', summary)  # call volume
    assert "Russell 2000 E-mini · leveraged funds" in summary


@pytest.mark.slow
def test_report_in_headless_chromium(report, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)")
    from PIL import Image

    png, console = screenshot(report, tmp_path, "report")
    assert console == [], "the report logged to the browser console:\n" + "\n".join(console)
    image = Image.open(png).convert("RGB")
    assert image.size == (1280, 4000)
    pixels = np.asarray(image).astype(int)
    ink = (pixels.min(axis=2) < 235).mean()
    assert ink > 0.05, f"the screenshot is almost blank ({ink:.1%} non-white)"
    lower = pixels[2000:]  # the charts, not only the header
    assert (lower.min(axis=2) < 235).mean() > 0.03
    red = (pixels[..., 0] > 180) & (pixels[..., 1] < 90) & (pixels[..., 2] < 90)
    assert red.sum() > 500, "no red chart lines (RUT) in the screenshot"
    dom = chromium(report, tmp_path, "--dump-dom").stdout
    assert dom.count("<svg") == len(SECTION_IDS)
    assert "small-cap squeeze" in dom


@needs_chromium
@pytest.mark.slow
def test_console_detector_catches_a_script_error(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><p>x</p><script>throw new Error('boom')</script></body></html>")
    good = tmp_path / "good.html"
    good.write_text("<!DOCTYPE html><html><body><p>x</p></body></html>")
    _png, messages = screenshot(bad, tmp_path, "bad")
    assert any("Uncaught Error: boom" in m for m in messages), messages
    _png, messages = screenshot(good, tmp_path, "good")
    assert messages == []


@pytest.mark.slow
def test_missing_options_etf_cftc_say_no_data(history, tmp_path):
    prices, indicators, extremes = history
    keep = ~indicators["indicator"].isin(OPTIONS_ETF_CFTC)
    keep_ext = ~extremes["indicator"].isin(OPTIONS_ETF_CFTC)
    path = write_warehouse(tmp_path / "warehouse.duckdb", prices, indicators[keep], extremes[keep_ext],
                           regime_of(indicators[keep], extremes[keep_ext]))
    text = render_report(path, AS_OF, tmp_path / "reports").read_text(encoding="utf-8")
    for section, words in (("calls", "No data for call volume (OCC options)"),
                           ("positioning", "No data for CFTC positioning"),
                           ("flows", "No data for ETF flows")):
        body = re.search(rf'<section id="{section}">(.*?)</section>', text, re.S)[1]
        assert words in body and "<svg" not in body
    for section in ("relative", "zscores", "ratio", "volcorr"):
        assert "<svg" in re.search(rf'<section id="{section}">(.*?)</section>', text, re.S)[1]
    assert "Could not render" not in text
    assert "Russell 2000 E-mini" not in text  # no positioning row in the headline table either


@pytest.mark.slow
def test_warehouse_without_extremes_and_regime_renders(zscore_warehouse, tmp_path):
    text = render_report(zscore_warehouse, AS_OF, tmp_path / "reports").read_text(encoding="utf-8")
    assert "No data for the regime label" in text
    assert "No data for records of the day: marts.extremes is missing or empty." in text
    assert "No data for percentiles" in text
    assert "<svg" in re.search(r'<section id="zscores">(.*?)</section>', text, re.S)[1]
    assert text.count("No data for") == 3 + len(SECTION_IDS) - 1
    assert "Could not render" not in text


def test_empty_warehouse_renders(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema marts")
    con.execute("create table marts.indicators (date date, indicator varchar, subject varchar, value double)")
    con.execute("create table marts.extremes (date date, indicator varchar, subject varchar, value double,"
                " history_start date, highest_since date, lowest_since date, is_record_high boolean,"
                " is_record_low boolean, pct_rank double)")
    con.close()
    text = render_report(path, AS_OF, tmp_path / "reports").read_text(encoding="utf-8")
    assert "No data for headline readings" in text
    assert "Could not render" not in text
    assert "unknown (meta.build_info is missing)" in text


def test_long_history_is_thinned():
    """A full Cboe history (~9,500 sessions since 1987) stays a small chart."""
    from regime.report import charts
    from regime.report.data import ReportData

    dates = pd.bdate_range(end=AS_OF, periods=9500)
    ratio = 0.5 + 0.1 * np.sin(np.arange(len(dates)) / 300)
    data = ReportData(as_of=AS_OF, indicators=pd.DataFrame(
        {"date": dates, "indicator": "price_ratio", "subject": "RUT/SPX", "value": ratio}))
    data.index()
    chart = charts.price_ratio(data)
    assert chart is not None and "since 1988" in chart.svg
    assert len(chart.svg) < 150_000
    assert charts.relative_performance(data) is None  # nothing to draw: the caller says "no data"


@pytest.mark.slow
def test_write_report_goes_to_the_data_dir(zscore_warehouse, tmp_path, monkeypatch):
    import shutil

    from regime.config import get_settings

    monkeypatch.setenv("REGIME_DATA_DIR", str(tmp_path / "data"))
    settings = get_settings()
    settings.data_dir.mkdir(parents=True)
    shutil.copy(zscore_warehouse, settings.warehouse_path)
    first = write_report(settings, AS_OF)
    assert first == settings.data_dir / "reports" / "2024-07-16.html"
    again = write_report(settings, "2024-07-16")  # replaced in place, atomically
    assert again == first and first.stat().st_size > 10_000
    assert sorted(p.name for p in first.parent.iterdir()) == ["2024-07-16.html"]


@pytest.mark.slow
def test_the_days_headlines_open_the_report(full_warehouse, tmp_path):
    """marts.headlines of the as-of date, in rank order, right under the header; other days' are not shown."""
    import shutil

    path = tmp_path / "warehouse.duckdb"
    shutil.copy(full_warehouse, path)
    con = duckdb.connect(str(path))
    con.execute("create table marts.headlines (date date, rank integer, headline varchar, indicator varchar,"
                " subject varchar, value double)")
    con.execute("insert into marts.headlines values"
                " ('2024-07-16', 2, 'Second: S&P 500 <b>calm</b>', 'zscore_50d', 'SPX', 0.1),"
                " ('2024-07-16', 1, 'First: Russell 2000 closed 4.42σ above its 50-day average', 'zscore_50d',"
                " 'RUT', 4.42),"
                " ('2024-07-15', 1, 'Yesterday', 'zscore_50d', 'RUT', 3.66)")
    con.close()
    text = render_report(path, AS_OF, tmp_path / "reports").read_text(encoding="utf-8")
    section = re.search(r'</nav>\n<section id="headlines" class="headlines">(.*?)</section>', text, re.S)
    assert section is not None, "the headlines follow the header"
    assert section[1] == ('<p class="lead">First: Russell 2000 closed 4.42σ above its 50-day average</p>'
                          "<p>Second: S&amp;P 500 &lt;b&gt;calm&lt;/b&gt;</p>")
    assert "Yesterday" not in text
    # no headlines table (a warehouse built before it existed): no section, and the footer names it
    older = render_report(full_warehouse, AS_OF, tmp_path / "older").read_text(encoding="utf-8")
    assert 'id="headlines"' not in older and "marts.headlines" in older
