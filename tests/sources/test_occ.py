"""OCC volume-query parser, its live fetch against a local upstream, and the synthetic sample."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sample_scripts
from regime.sources import occ
from regime.sources.errors import SourceError
from regime.sources.fetch import fetch_http
from upstream import Upstream

PROJECT = Path(__file__).resolve().parents[2]
REFERENCE = PROJECT.parent / "shared" / "reference-data"
DAY = date(2024, 7, 17)
LOCATION = "mirror/occ/volume-query/2024-07-17/IWM.csv"
HEADER = "quantity,underlying,symbol,actype,porc,exchange,actdate"


def body(*rows: str, header: str = HEADER, newline: str = "\r\n", final: bool = True) -> bytes:
    text = newline.join([header, *rows]) + (newline if final else "")
    return text.encode()


GOOD = body(
    "34483,IWM,IWM,C,C,ISE,07/17/2024,",
    "34483,IWM,IWM,M,C,ISE,07/17/2024,",
    "1168,IWM,IWM,C,C,CBOE,07/17/2024,",
    "1168,IWM,IWM,F,C,CBOE,07/17/2024,",
    "14814,IWM,IWM,C,P,CBOE,07/17/2024,",
    "14814,IWM,IWM,M,P,CBOE,07/17/2024,",
)


def parse(data: bytes, underlying: str = "IWM", day: date = DAY) -> pd.DataFrame:
    return occ.parse(data, LOCATION, underlying, day)


# ------------------------------------------------------------------------------------------------ happy paths


def test_sums_sides_by_call_and_put():
    frame = parse(GOOD)
    assert list(frame.columns) == ["date", "underlying", "call_volume", "put_volume"]
    assert frame.to_dict("records") == [{"date": DAY, "underlying": "IWM", "call_volume": 71302,
                                         "put_volume": 29628}]
    assert str(frame["call_volume"].dtype) == "int64" and str(frame["put_volume"].dtype) == "int64"
    assert isinstance(frame["date"].iloc[0], date)


def test_bom_lf_spaces_quotes_and_rows_without_trailing_comma_are_accepted():
    data = b"\xef\xbb\xbf" + body(
        ' 100 , iwm ,"IWM", C ,"C", CBOE , 07/17/2024 ',
        '"50",IWM,2IWM,F,P,"PHLX","07/17/2024"',
        newline="\n",
    )
    frame = parse(data)
    assert (frame["call_volume"].iloc[0], frame["put_volume"].iloc[0]) == (100, 50)
    assert frame["underlying"].iloc[0] == "IWM"


def test_calls_only_gives_zero_puts():
    frame = parse(body("7,IWM,IWM,C,C,CBOE,07/17/2024,"))
    assert (frame["call_volume"].iloc[0], frame["put_volume"].iloc[0]) == (7, 0)


def test_url_and_mirror_layout():
    assert occ.url("iwm", DAY) == (
        "https://marketdata.theocc.com/volume-query?reportDate=20240717&format=csv&volumeQueryType=O"
        "&symbolType=U&symbol=IWM&reportType=D&accountType=ALL&productKind=ALL&porc=BOTH")
    assert occ.mirror_name("IWM", DAY) == "occ/volume-query/2024-07-17/IWM.csv"
    assert f"{occ.FOLDER}/{occ.file_name('IWM', DAY)}" == occ.mirror_name("IWM", DAY)
    assert occ.WATCHLIST == ("IWM", "SPY", "QQQ", "NVDA", "TSLA", "AAPL")


# ------------------------------------------------------------------------------------ no data / not published


@pytest.mark.parametrize("data", [b"No record(s) found", b"No record(s) found\r\n", b"", b"  \r\n", b"\r\n\r\n"])
def test_no_trading_data_is_its_own_error(data):
    with pytest.raises(occ.NoTradingData) as err:
        parse(data, day=date(2024, 7, 4))
    assert isinstance(err.value, SourceError)
    assert err.value.source == "occ" and err.value.location == LOCATION
    assert "2024-07-04" in str(err.value)


def test_not_yet_published_is_its_own_error():
    with pytest.raises(occ.NotYetPublished, match="not published 2024-07-17 yet"):
        parse(b"Report date cannot be greater than 07/16/2024")


def test_aged_out_is_an_error_not_a_holiday():
    with pytest.raises(SourceError, match="rolling ~2-year window") as err:
        parse(b"Report date cannot be prior to  2 years")
    assert not isinstance(err.value, occ.NoTradingData)


# -------------------------------------------------------------------------------------------------- failures


@pytest.mark.parametrize(("data", "problem"), [
    (b"<!DOCTYPE html><html><body>Service unavailable</body></html>", "an HTML page, not the volume-query CSV"),
    (b"Report Format is Required", "OCC answered a message instead of the CSV: 'Report Format is Required'"),
    (b"\xff\xfeq\x00u\x00", "not UTF-8 text"),
    (body("1,IWM,IWM,C,C,CBOE,07/17/2024,", header="volume,underlying,symbol,actype,porc,exchange,actdate"),
     r"header drift: missing column\(s\) \['quantity'\], unexpected column\(s\) \['volume'\] \(renamed\?\)"),
    (body("1,IWM,C,C,CBOE,07/17/2024,", header="quantity,underlying,actype,porc,exchange,actdate"),
     r"header drift: missing column\(s\) \['symbol'\]"),
    (body("1,IWM,IWM,C,C,CBOE,07/17/2024,x", header=HEADER + ",contractDate"),
     r"unexpected column\(s\) \['contractDate'\]"),
    (body("1,IWM,IWM,C,C,CBOE,07/17/2024", header="underlying,quantity,symbol,actype,porc,exchange,actdate"),
     "header columns out of order"),
    (b"date,open,high\n1,2,3\n", "not the volume-query CSV"),
    (body("12a,IWM,IWM,C,C,CBOE,07/17/2024,"), r"line 2: quantity '12a' is not a whole number"),
    (body("12.0,IWM,IWM,C,C,CBOE,07/17/2024,"), r"quantity '12.0' is not a whole number"),
    (body(",IWM,IWM,C,C,CBOE,07/17/2024,"), r"quantity '' is not a whole number"),
    (body("-5,IWM,IWM,C,C,CBOE,07/17/2024,"), r"line 2: negative quantity '-5'"),
    (body("9" * 30 + ",IWM,IWM,C,C,CBOE,07/17/2024,"), "implausibly large"),
    (body('"1,234",IWM,IWM,C,C,CBOE,07/17/2024,'), "thousands separators, which OCC's CSV never uses"),
    (body("5,IWM,IWM,C,X,CBOE,07/17/2024,"), r"line 2: porc 'X' is neither C \(call\) nor P \(put\)"),
    (body("5,IWM,IWM,C,CALL,CBOE,07/17/2024,"), r"porc 'CALL' is neither"),
    (body("5,IWM,IWM,C,C,CBOE,07/17/2024,", "5,IWM,IWM,C,P,CBOE,07/16/2024,"),
     "line 3: actdate 2024-07-16, but this file should hold 2024-07-17"),
    (body("5,IWM,IWM,C,C,CBOE,2024-07-17,"), "actdate '2024-07-17' is not MM/DD/YYYY"),
    (body("5,SPY,SPY,C,C,CBOE,07/17/2024,"), "line 2: underlying 'SPY', but this file should hold IWM only"),
    (body("5,IWM,IWM,,C,CBOE,07/17/2024,"), "empty actype"),
    (body("5,IWM,IWM,C,C,CBOE,07/17/2024,", "5,IWM,IWM,C,P,CB", final=False),
     r"line 3 has 6 fields, expected 7 .*truncated last line"),
    (body("5,IWM,IWM,C,C,CBOE,07/17/2024", "5,IWM,IWM,C,P,CBOE,07/1", final=False),
     r"actdate '07/1' is not MM/DD/YYYY \(truncated last line\?\)"),
    (body("5,IWM,IWM,C,C,CBOE,07/17/2024,", "5,IWM,IWM,C,P,CBOE,07/17/2024", final=False),
     "lost its trailing comma and the file its final newline"),
    (body(), "header but no data rows"),
    (body("5,IWM,IWM,C,C,CBOE,07/17/2024,extra,"), r"line 2 has 9 fields"),
])
def test_malformed_answers_name_the_file_and_the_problem(data, problem):
    with pytest.raises(SourceError, match=problem) as err:
        parse(data)
    assert not isinstance(err.value, occ.NoTradingData)
    assert str(err.value).startswith(f"occ: {LOCATION}: ")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
@pytest.mark.slow
def test_arbitrary_bytes_raise_only_source_error(data):
    try:
        frame = parse(data)
    except SourceError:
        return
    assert list(frame.columns) == ["date", "underlying", "call_volume", "put_volume"]


CSVISH = st.text(alphabet="0123456789,CPFMIWX \"-/\r\n\ufeff", max_size=300)


@settings(max_examples=400, deadline=None)
@given(CSVISH, st.booleans())
@pytest.mark.slow
def test_csv_like_text_after_a_good_header_raises_only_source_error(tail, with_header):
    data = ((HEADER + "\r\n") if with_header else "") + tail
    try:
        frame = parse(data.encode())
    except SourceError:
        return
    assert frame["call_volume"].iloc[0] >= 0 and frame["put_volume"].iloc[0] >= 0


# ------------------------------------------------------------------------------------------------- live mode


def test_live_fetch_good_answer():
    query = occ.url("IWM", DAY).split("?", 1)[1]
    with Upstream() as up:
        up.route("/volume-query", body=GOOD, headers={"Content-Type": "text/csv"})
        fetched = fetch_http(up.url(f"/volume-query?{query}"), occ.file_name("IWM", DAY), occ.SOURCE, timeout=5)
        assert up.requests[0][0] == f"/volume-query?{query}"
    frame = occ.parse(fetched.data, fetched.location, "IWM", DAY)
    assert frame["call_volume"].iloc[0] == 71302
    assert fetched.location.endswith(query)


@pytest.mark.slow
def test_live_fetch_honours_retry_after_then_succeeds():
    with Upstream() as up:
        up.route("/volume-query", responses=[(429, b"Too Many Requests"), (200, GOOD)], headers={"Retry-After": "1"})
        fetched = fetch_http(up.url("/volume-query?reportDate=20240717"), "IWM.csv", occ.SOURCE, timeout=5)
        assert len(up.requests) == 2
        assert "regime-monitor" in up.requests[1][1].get("User-Agent", "")
    assert occ.parse(fetched.data, fetched.location, "IWM", DAY)["put_volume"].iloc[0] == 29628


def test_live_holiday_answer_is_no_trading_data():
    with Upstream() as up:
        up.route("/volume-query", body=b"No record(s) found")
        fetched = fetch_http(up.url("/volume-query?reportDate=20240704"), "IWM.csv", occ.SOURCE, timeout=5)
    with pytest.raises(occ.NoTradingData):
        occ.parse(fetched.data, fetched.location, "IWM", date(2024, 7, 4))


# ---------------------------------------------------------------------------------------------------- sample


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    module = sample_scripts.load("occ_sample")
    sessions = sample_scripts.nyse_sessions("2019-01-02", "2024-07-17")
    out = tmp_path_factory.mktemp("occ-sample")
    paths = module.generate(out, np.random.default_rng(20240716), sessions)
    return module, sessions, out, paths


@pytest.mark.slow
def test_sample_layout_and_parse(sample):
    module, sessions, out, paths = sample
    window = sessions[-module.SESSIONS:]
    assert len(paths) == len(window) * len(occ.WATCHLIST) + 1
    frames = []
    for day in window:
        for name in occ.WATCHLIST:
            path = out / occ.mirror_name(name, day)
            data = path.read_bytes()
            assert data.startswith((HEADER + "\r\n").encode()) and data.endswith(b",\r\n")
            frames.append(occ.parse(data, str(path), name, day))
    frame = pd.concat(frames, ignore_index=True)
    assert (frame[["call_volume", "put_volume"]] % 2 == 0).all().all()  # both sides of every contract
    holiday = out / occ.mirror_name("IWM", date(2024, 7, 4))
    assert holiday.read_bytes() == b"No record(s) found"
    assert date(2024, 7, 4) not in window
    with pytest.raises(occ.NoTradingData):
        occ.parse(holiday.read_bytes(), str(holiday), "IWM", date(2024, 7, 4))


@pytest.mark.slow
def test_sample_tells_the_squeeze(sample):
    module, sessions, out, _ = sample
    window = sessions[-module.SESSIONS:]

    def series(name: str, column: str) -> np.ndarray:
        return np.array([occ.parse((out / occ.mirror_name(name, d)).read_bytes(), "x", name, d)[column].iloc[0]
                         for d in window])

    assert window[-5:] == [date(2024, 7, 11), date(2024, 7, 12), date(2024, 7, 15), date(2024, 7, 16), DAY]
    iwm_calls = series("IWM", "call_volume")
    record = iwm_calls[-5:].max() / iwm_calls[-105:-5].max()
    assert 2.0 <= record <= 3.0
    assert iwm_calls[-1] > 2.0 * iwm_calls[-105:-5].max()
    nvda_calls = series("NVDA", "call_volume")
    assert nvda_calls[-5:].mean() < 0.7 * nvda_calls[-25:-5].mean()
    iwm_puts = series("IWM", "put_volume")
    assert iwm_puts[-5:].max() < 1.3 * iwm_puts[-105:-5].max()  # the calls, not the puts, make the record


@pytest.mark.slow
def test_sample_is_deterministic_and_small(sample, tmp_path):
    module, sessions, out, paths = sample
    again = module.generate(tmp_path, np.random.default_rng(20240716), sessions)
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    assert [p.relative_to(tmp_path) for p in again] == [p.relative_to(out) for p in paths]
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in again] == digest
    assert sum(p.stat().st_size for p in paths) < 900_000


@pytest.mark.reference
@pytest.mark.skipif(not (REFERENCE / "formats").exists(), reason=f"reference data not present at {REFERENCE}")
def test_no_real_occ_file_in_the_reference_set():
    """PROVENANCE.md records that no real OCC download was found; if one appears, parse it here."""
    found = sorted((REFERENCE / "formats").glob("occ*/**/*.csv"))
    for path in found:
        day = date.fromisoformat(path.parent.name)
        occ.parse(path.read_bytes(), str(path), path.stem, day)
    if not found:
        pytest.skip("no real OCC volume-query file in the reference set (see formats/PROVENANCE.md)")
