"""The optional Yahoo Finance chart provider (REGIME_YAHOO_INDEXES): the parser on a real recorded answer and on
Yahoo's quirks, live ingest over real HTTP (tests/upstream.py on 127.0.0.1) and mirror ingest, the failures, the
synthetic S&P 600 sample and the validation gate with it.

REAL fixture `data/yahoo-chart-SP500TR.json`: Yahoo's v8 chart answer for ^SP500TR (the S&P 500 total return
index, an S&P index on Yahoo's "SNP" exchange as ^SP600 is), daily bars 2023-06-20 .. 2023-07-14, recorded after
that day's close (meta.regularMarketTime 1689369274 = 17:14 New York). Provenance: the response body kept verbatim
as a string literal (`func QuoteData() []byte`, package `comm`) in a public Go repository, found through the
public code index used for this project, which does not name the repository; copied byte for byte (2,423 bytes,
sha256 7ee8881bcfa15c5c655aa930a4ecdb067d52f996d12db2f11584c637fa1f24df). Its values are consistent: every high
and low brackets its open and close, the last close equals meta.regularMarketPrice (9683.69), and the sessions are
exactly the NYSE's (Juneteenth and July 4th absent, the July 3rd half day present).
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import pytest

from conftest import SAMPLE_LAST, SAMPLE_MIRROR, tree_digest
from regime import pipeline
from regime.config import ConfigError, get_settings
from regime.ingest import IngestError
from regime.sources import cboe, yahoo
from regime.sources.errors import SourceError
from upstream import Upstream

REAL = Path(__file__).parent / "data" / "yahoo-chart-SP500TR.json"
REAL_SHA256 = "7ee8881bcfa15c5c655aa930a4ecdb067d52f996d12db2f11584c637fa1f24df"
LOCATION = "mirror/yahoo/chart/^SP500TR.json"
TODAY = date(2023, 7, 31)
SAMPLE = SAMPLE_MIRROR / yahoo.FOLDER / "^SP600.json"
NOT_FOUND = (b'{"chart":{"result":null,"error":{"code":"Not Found",'  # Yahoo's answer to an unknown symbol (HTTP 404)
             b'"description":"No data found, symbol may be delisted"}}}')
CONSENT = (b'<!DOCTYPE html>\n<html lang="en-US"><head><meta charset="utf-8"><title>Yahoo is part of the Yahoo family '
           b'of brands</title></head><body><form method="post" action="https://consent.yahoo.com/v2/collectConsent">'
           b'</form></body></html>')


def real() -> dict:
    return json.loads(REAL.read_bytes())


def encode(doc: dict) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def parse(data: bytes, symbol: str = "^SP500TR", today: date = TODAY) -> pd.DataFrame:
    return yahoo.parse(data, symbol, LOCATION, today=today)


def edit(change) -> bytes:
    """The real answer with `change(result)` applied to chart.result[0]."""
    doc = real()
    change(doc["chart"]["result"][0])
    return encode(doc)


def ny_midnight(day: date) -> int:
    from zoneinfo import ZoneInfo

    return int(datetime(day.year, day.month, day.day, tzinfo=ZoneInfo("America/New_York")).timestamp())


# --------------------------------------------------------------------------- the real answer


def test_the_fixture_is_the_recorded_answer_byte_for_byte():
    assert hashlib.sha256(REAL.read_bytes()).hexdigest() == REAL_SHA256


def test_a_real_answer_parses_to_hand_checked_rows():
    frame = parse(REAL.read_bytes())
    assert list(frame.columns) == ["date", "open", "high", "low", "close"]
    assert len(frame) == 18
    # timestamps are the 09:30 New York open in UTC seconds: 1687267800 = 2023-06-20 13:30 UTC
    assert frame["date"].iloc[0] == date(2023, 6, 20) and frame["date"].iloc[-1] == date(2023, 7, 14)
    assert date(2023, 6, 19) not in set(frame["date"]) and date(2023, 7, 4) not in set(frame["date"])  # holidays
    assert date(2023, 7, 3) in set(frame["date"])  # the half day
    # float32 noise rounded to meta.priceHint (2): open 9439.91015625 -> 9439.91, close 9424.01953125 -> 9424.02
    assert frame.iloc[0][["open", "high", "low", "close"]].tolist() == [9439.91, 9448.52, 9378.63, 9424.02]
    july_3 = frame[frame["date"] == date(2023, 7, 3)].iloc[0]
    assert (july_3["open"], july_3["high"], july_3["low"], july_3["close"]) == (9560.37, 9572.95, 9542.76, 9571.35)
    assert frame["close"].iloc[-1] == real()["chart"]["result"][0]["meta"]["regularMarketPrice"] == 9683.69
    assert (frame["high"] >= frame[["open", "close"]].max(axis=1)).all()
    assert (frame["low"] <= frame[["open", "close"]].min(axis=1)).all()


def test_the_bar_of_a_session_still_open_is_left_out():
    def during_the_session(result):  # Yahoo answered at 15:00 New York, before the 16:00 close
        result["meta"]["regularMarketTime"] = result["meta"]["currentTradingPeriod"]["regular"]["start"] + 19800

    frame = parse(edit(during_the_session))
    assert len(frame) == 17 and frame["date"].iloc[-1] == date(2023, 7, 13)


def test_the_live_price_appended_as_a_separate_bar_is_merged_into_the_session():
    def append_live(result):
        result["timestamp"].append(result["meta"]["regularMarketTime"])  # 17:14 New York, same date as 13:30 UTC
        for name, value in (("open", None), ("high", 9740.0), ("low", 9680.0), ("close", 9690.0), ("volume", 0)):
            result["indicators"]["quote"][0][name].append(value)

    frame = parse(edit(append_live))
    assert len(frame) == 18
    assert frame.iloc[-1][["open", "high", "low", "close"]].tolist() == [9703.44, 9740.0, 9671.32, 9690.0]


def test_holiday_null_bars_are_dropped_and_a_missing_open_is_null():
    def gaps(result):
        quote = result["indicators"]["quote"][0]
        for name in ("open", "high", "low", "close", "volume"):
            quote[name][9] = None  # 2023-07-03: a bar with every value null
        quote["open"][5] = None  # 2023-06-27: open missing
        quote["low"][6] = 0  # 2023-06-28: Yahoo's 0 for a missing value

    frame = parse(edit(gaps)).set_index("date")
    assert len(frame) == 17 and date(2023, 7, 3) not in frame.index
    assert math.isnan(frame.loc[date(2023, 6, 27), "open"]) and frame.loc[date(2023, 6, 27), "close"] == 9403.62
    assert math.isnan(frame.loc[date(2023, 6, 28), "low"])


def test_trading_dates_follow_the_exchange_time_zone_across_a_dst_change():
    """Bars stamped at midnight New York on both sides of 2024-03-10, in an answer given in winter (gmtoffset
    -18000): the fixed offset would put the summer bar on the Sunday before; the IANA zone does not."""
    days = [date(2024, 3, 7), date(2024, 3, 8), date(2024, 3, 11), date(2024, 3, 12)]
    stamps = [ny_midnight(d) for d in days]
    assert stamps[2] - stamps[1] == 3 * 86400 - 3600  # 2024-03-11 04:00 UTC: the clocks went forward
    fixed = timezone(timedelta(seconds=-18000))
    assert datetime.fromtimestamp(stamps[2], fixed).date() == date(2024, 3, 10)  # the trap

    def winter_answer(result):
        result["meta"].update(gmtoffset=-18000, timezone="EST")
        result["timestamp"] = stamps
        for name, values in result["indicators"]["quote"][0].items():
            result["indicators"]["quote"][0][name] = values[:4]

    frame = parse(edit(winter_answer), today=date(2024, 3, 31))
    assert frame["date"].tolist() == days


def test_yahoos_dst_slip_of_a_midnight_bar_to_23_00_the_day_before_is_dated_the_next_day():
    stamps = [ny_midnight(date(2024, 11, 1)), ny_midnight(date(2024, 11, 4)) - 3600]  # 2024-11-03 23:00 EST

    def slipped(result):
        result["timestamp"] = stamps
        for name, values in result["indicators"]["quote"][0].items():
            result["indicators"]["quote"][0][name] = values[:2]

    assert parse(edit(slipped), today=date(2024, 11, 30))["date"].tolist() == [date(2024, 11, 1), date(2024, 11, 4)]


def test_url_asks_for_daily_bars_up_to_the_as_of_date():
    url = yahoo.url("^SP600", date(2024, 7, 17))
    # period1 = 1927-01-01 00:00 UTC (-1356998400), period2 = 2024-07-18 00:00 UTC (19,922 days after 1970-01-01)
    assert url == ("https://query2.finance.yahoo.com/v8/finance/chart/%5ESP600"
                   "?period1=-1356998400&period2=1721260800&interval=1d&includePrePost=false")
    assert 1721260800 == 19922 * 86400
    assert yahoo.canonical("^SP600") == "SP600" and yahoo.file_name("^SP600") == "^SP600.json"


# --------------------------------------------------------------------------- malformed answers


def _set(path: str, value):
    def change(result):
        *parents, leaf = path.split(".")
        target = result
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        target[int(leaf) if leaf.isdigit() else leaf] = value
    return change


def _all_null(result):
    for name, values in result["indicators"]["quote"][0].items():
        result["indicators"]["quote"][0][name] = [None] * len(values)


def _repeat_last_stamp(result):
    result["timestamp"][-1] = result["timestamp"][-2]


def _second_bar_same_day(result):
    result["timestamp"][-2] = result["timestamp"][-1] - 3600  # 2023-07-14 08:30 New York


MALFORMED = [
    (b"", "empty file"),
    (CONSENT, "an HTML page, not chart JSON"),
    (NOT_FOUND, "chart.error Not Found: No data found, symbol may be delisted"),
    (b'{"finance":{"result":null,"error":{"code":"Unauthorized","description":"Invalid Crumb"}}}',
     "Yahoo answered with an error: Unauthorized: Invalid Crumb"),
    (b'{"chart":{"result":[],"error":null}}', "chart.result is empty and chart.error is null"),
    (b'{"chart":{"result":[{"meta":{"symbol":"^SP500TR","exchangeTimezoneName":"America/New_York",'
     b'"dataGranularity":"1d"},"indicators":{"quote":[{}],"adjclose":[{}]}}],"error":null}}',
     "no bars: the answer has no timestamps"),
    (edit(_all_null), "no bar has a close: all 18 bars are null"),
    (REAL.read_bytes()[:1500], r"not valid JSON: .* at character 1500 of 1500 \(truncated download\?\)"),
    (REAL.read_bytes().replace(b",9683.6904296875]", b"]", 1), "close has 17 values for 18 timestamps"),
    (edit(_set("indicators.quote.0.close.0", "9424.02")), r"bar 0 \(2023-06-20\): close '9424.02' is not a number"),
    (REAL.read_bytes().replace(b"9424.01953125,", b"NaN,", 1), "not valid JSON: NaN is not a JSON number"),
    (edit(_set("indicators.quote.0.close.3", 0)), "2023-06-23: close 0.0 is not positive"),
    (edit(_repeat_last_stamp), r"duplicated timestamps: \[1689255000\] \(\['2023-07-13'\]\)"),
    (edit(_second_bar_same_day), r"more than one bar for trading date\(s\) \['2023-07-14'\]"),
    (edit(_set("meta.symbol", "^GSPC")), r"the answer is for '\^GSPC', not '\^SP500TR'"),
    (edit(_set("meta.dataGranularity", "1wk")), r"bars of '1wk', expected daily bars \('1d'\)"),
    (edit(_set("meta.exchangeTimezoneName", None)), "exchangeTimezoneName None is not a known time zone"),
    (edit(_set("timestamp.0", 10**12)), "timestamp is not a list of integer UTC seconds: '1000000000000'"),
    (edit(_set("indicators.quote.0.high.0", 10**400)), r"bar 0 \(2023-06-20\): high 1000000000.* is not a number"),
    (b"Edge: Too Many Requests", "not valid JSON: Expecting value"),
    (b"\xff\xfe{\x00", "not UTF-8 text"),
]


@pytest.mark.parametrize(("data", "problem"), MALFORMED, ids=[m[1][:40] for m in MALFORMED])
def test_malformed_answers_name_the_file_and_the_problem(data, problem):
    with pytest.raises(SourceError, match=problem) as err:
        parse(data)
    assert str(err.value).startswith(f"yahoo: {LOCATION}: ")


def test_a_bar_after_today_is_an_error():
    with pytest.raises(SourceError, match=r"date 2023-07-14 is in the future \(today is 2023-07-10\)"):
        parse(REAL.read_bytes(), today=date(2023, 7, 10))


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(("value", "expected"), [
    ("", ()),
    ("^SP600", (("^SP600", "SP600"),)),
    ("^sp600=sml, ^SP400", (("^SP600", "SML"), ("^SP400", "SP400"))),
    ("^SP600,^SP600", (("^SP600", "SP600"),)),
])
def test_yahoo_series_are_off_unless_named(monkeypatch, value, expected):
    monkeypatch.setenv("REGIME_YAHOO_INDEXES", value)
    assert get_settings().yahoo_indexes == expected


def test_the_provider_is_off_by_default(monkeypatch):
    monkeypatch.delenv("REGIME_YAHOO_INDEXES", raising=False)
    assert get_settings().yahoo_indexes == ()


@pytest.mark.parametrize(("value", "words"), [
    ("^RUT", r"'RUT' is also a Cboe series \(REGIME_INDEXES\).*e.g. \^RUT=RUTY"),
    ("../x", "'../X' is not a valid symbol"),
    ("^SP600=A,^SP400=A", "more than one series named 'A'"),
])
def test_bad_yahoo_settings_say_what_is_wrong(monkeypatch, value, words):
    monkeypatch.setenv("REGIME_YAHOO_INDEXES", value)
    with pytest.raises(ConfigError, match=words):
        get_settings()


# --------------------------------------------------------------------------- ingest, live and mirror

CHART_PATH = urlsplit(yahoo.url("^SP600", SAMPLE_LAST)).path  # /v8/finance/chart/%5ESP600


@pytest.fixture
def with_yahoo(monkeypatch, regime_env):
    monkeypatch.setenv("REGIME_YAHOO_INDEXES", "^SP600")
    return get_settings()


@pytest.fixture
def live(monkeypatch, with_yahoo, mirror):
    with Upstream() as up:
        for symbol in with_yahoo.indexes:
            up.route(urlsplit(cboe.url(symbol)).path, (mirror / "cboe" / cboe.file_name(symbol)).read_bytes())
        up.route(CHART_PATH, (mirror / yahoo.FOLDER / "^SP600.json").read_bytes())
        monkeypatch.setenv("REGIME_SOURCE", "live")
        monkeypatch.setenv("REGIME_LIVE_BASE_URL", up.url(""))
        monkeypatch.setenv("REGIME_HTTP_TIMEOUT", "2")
        yield up, get_settings()


def _lake(settings, symbol: str) -> pd.DataFrame:
    return pd.read_parquet(settings.lake_dir / "index_prices" / f"symbol={symbol}" / "data.parquet")


@pytest.mark.slow
def test_mirror_and_live_land_the_same_rows(with_yahoo, live, tmp_path, monkeypatch):
    up, live_settings = live
    mirror_result = pipeline.ingest("index_prices", SAMPLE_LAST, with_yahoo)
    monkeypatch.setenv("REGIME_DATA_DIR", str(tmp_path / "live-data"))
    live_settings = get_settings()
    live_result = pipeline.ingest("index_prices", SAMPLE_LAST, live_settings)

    assert mirror_result["rows"] == live_result["rows"]
    assert mirror_result["rows"]["SP600"] == 1394 and mirror_result["rows"]["RUT"] == 1394
    pd.testing.assert_frame_equal(_lake(with_yahoo, "SP600"), _lake(live_settings, "SP600"))
    # the raw JSON is landed unchanged, with where it came from
    raw = "raw/yahoo/as_of=2024-07-17/^SP600.json"
    assert (with_yahoo.data_dir / raw).read_bytes() == (live_settings.data_dir / raw).read_bytes() \
        == SAMPLE.read_bytes()
    meta = json.loads((live_settings.data_dir / (raw + ".meta.json")).read_text())
    assert meta["location"] == up.url(CHART_PATH) + "?period1=-1356998400&period2=1721260800&interval=1d" \
                                                   "&includePrePost=false"
    assert meta["sha256"] == hashlib.sha256(SAMPLE.read_bytes()).hexdigest()
    [(path, headers)] = [r for r in up.requests if r[0].startswith(CHART_PATH)]
    assert headers["User-Agent"].startswith("regime-monitor/")


@pytest.mark.slow
def test_rows_after_the_as_of_date_are_not_landed(with_yahoo):
    pipeline.ingest("index_prices", date(2024, 7, 12), with_yahoo)
    sp600 = _lake(with_yahoo, "SP600")
    assert sp600["date"].max() == date(2024, 7, 12) and len(sp600) == 1394 - 3


LIVE_FAILURES = [
    ({"body": CONSENT}, "an HTML page, not chart JSON"),
    ({"body": NOT_FOUND}, "chart.error Not Found: No data found, symbol may be delisted"),
    ({"body": b'{"chart":{"result":[],"error":null}}'}, "chart.result is empty"),
    ({"body": edit(_all_null).replace(b"^SP500TR", b"^SP600")}, "no bar has a close"),
    ({"body": SAMPLE.read_bytes()[:-100]}, r"not valid JSON: .*\(truncated download\?\)"),
    ({"body": SAMPLE.read_bytes().replace(b'"timestamp":[1546439400,1546525800,',
                                          b'"timestamp":[1546439400,1546439400,')}, "duplicated timestamps"),
    ({"body": SAMPLE.read_bytes().replace(b",1721223000],", b",4092211800],")},  # last bar: 2099-09-04
     r"date 2099-09-04 is in the future"),
    ({"responses": [(429, b"Too Many Requests")]}, "gave up after 4 attempts: HTTP 429"),
]


@pytest.mark.parametrize(("respond", "words"), LIVE_FAILURES, ids=[f[1][:30] for f in LIVE_FAILURES])
@pytest.mark.slow
def test_live_failures_fail_the_ingest_quarantine_the_bytes_and_write_nothing(live, respond, words):
    up, settings = live
    up.route(CHART_PATH, headers={"Retry-After": "0"}, **respond)
    with pytest.raises(IngestError, match=words) as err:
        pipeline.ingest("index_prices", SAMPLE_LAST, settings)
    assert f"yahoo: {up.url(CHART_PATH)}?period1=-1356998400&period2=1721260800" in str(err.value)
    assert not (settings.lake_dir / "index_prices").exists()  # not even Cboe's rows: one ingest, all or nothing
    if "body" in respond:
        kept = settings.quarantine_dir / "yahoo" / "as_of=2024-07-17" / "^SP600.json"
        assert kept.read_bytes() == respond["body"]
        assert kept.with_name("^SP600.json.error.txt").read_text().startswith(f"yahoo: {up.url(CHART_PATH)}?")


@pytest.mark.slow
def test_a_failure_leaves_the_lake_as_it_was(live):
    up, settings = live
    pipeline.ingest("index_prices", SAMPLE_LAST, settings)
    before = tree_digest(settings.lake_dir)
    up.route(CHART_PATH, CONSENT)
    with pytest.raises(IngestError, match="yahoo: .*an HTML page"):
        pipeline.ingest("index_prices", SAMPLE_LAST, settings)
    assert tree_digest(settings.lake_dir) == before


@pytest.mark.slow
def test_429_with_retry_after_is_retried_then_succeeds(live):
    up, settings = live
    good = SAMPLE.read_bytes()
    up.route(CHART_PATH, responses=[(429, b"Too Many Requests"), (200, good)], headers={"Retry-After": "1"})
    result = pipeline.ingest("index_prices", SAMPLE_LAST, settings)
    assert result["rows"]["SP600"] == 1394
    assert sum(path.startswith(CHART_PATH) for path, _ in up.requests) == 2


@pytest.mark.slow
def test_a_symbol_yahoo_does_not_have_is_skipped_with_a_warning(live, caplog):
    """Yahoo answers an unknown or delisted symbol with HTTP 404 and its chart.error body: like a Cboe file the
    publisher does not have, the series is skipped and named in the warning; Cboe's rows still land."""
    up, settings = live
    up.route(CHART_PATH, NOT_FOUND, status=404)
    result = pipeline.ingest("index_prices", SAMPLE_LAST, settings)
    assert result["missing"] == ["SP600"] and "SP600" not in result["rows"] and result["rows"]["RUT"] == 1394
    assert "not available upstream, skipped: SP600" in caplog.text


@pytest.mark.slow
def test_a_series_absent_from_the_mirror_is_skipped(with_yahoo, mirror):
    (mirror / yahoo.FOLDER / "^SP600.json").unlink()
    result = pipeline.ingest("index_prices", SAMPLE_LAST, with_yahoo)
    assert result["missing"] == ["SP600"] and result["rows"]["RUT"] == 1394


def test_a_cboe_failure_and_a_yahoo_failure_are_both_named(with_yahoo, mirror):
    (mirror / "cboe" / "RUT_History.csv").write_bytes(b"<html>oops</html>")
    (mirror / yahoo.FOLDER / "^SP600.json").write_bytes(NOT_FOUND)
    with pytest.raises(IngestError) as err:
        pipeline.ingest("index_prices", SAMPLE_LAST, with_yahoo)
    assert "cboe: " in str(err.value) and "RUT_History.csv: an HTML page" in str(err.value)
    assert "yahoo: " in str(err.value) and "^SP600.json: Yahoo answered with chart.error" in str(err.value)
    assert not (with_yahoo.lake_dir / "index_prices").exists()


# --------------------------------------------------------------------------- the synthetic sample and the gate


def test_the_bundled_sample_parses_on_the_sessions_of_the_cboe_sample_and_rallies_with_rut():
    frame = yahoo.parse(SAMPLE.read_bytes(), "^SP600", str(SAMPLE))
    rut = cboe.parse((SAMPLE_MIRROR / "cboe" / "RUT_History.csv").read_bytes(), "RUT", "RUT")
    assert frame["date"].tolist() == rut["date"].tolist()  # 1394 NYSE sessions, 2019-01-02 .. 2024-07-17
    assert len(frame) == 1394 and frame["date"].iloc[-1] == SAMPLE_LAST
    assert (frame[["open", "high", "low", "close"]] == frame[["open", "high", "low", "close"]].round(2)).all().all()
    assert (frame["high"] >= frame[["open", "close"]].max(axis=1)).all()
    assert (frame["low"] <= frame[["open", "close"]].min(axis=1)).all()
    closes, rut_closes = frame["close"], rut["close"]
    move = closes.iloc[-1] / closes.iloc[-6] - 1
    assert 0.10 <= move <= 0.13 and 0.11 <= rut_closes.iloc[-1] / rut_closes.iloc[-6] - 1 <= 0.12
    assert closes.pct_change().corr(rut_closes.pct_change()) > 0.93
    assert frame["close"].iloc[-1] == 1400.66


@pytest.mark.slow
def test_with_the_yahoo_series_the_sample_passes_the_gate(with_yahoo):
    import duckdb

    for name in ("index_prices", "options_volume", "cftc_tff", "etf_nav"):
        pipeline.ingest(name, SAMPLE_LAST, with_yahoo)
    summary = pipeline.build_validate_publish(SAMPLE_LAST, with_yahoo)
    assert summary["warnings"] == []
    con = duckdb.connect(str(with_yahoo.warehouse_path), read_only=True)
    try:
        rows = con.execute("select count(*), max(date) from marts.prices where symbol = 'SP600'").fetchone()
        z = con.execute("select value from marts.indicators where indicator = 'zscore_50d' and subject = 'SP600'"
                        " and date = ?", [SAMPLE_LAST]).fetchone()[0]
    finally:
        con.close()
    assert rows == (1394, SAMPLE_LAST)
    assert z >= 3.0  # the S&P 600 is stretched by the squeeze too
