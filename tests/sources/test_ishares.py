"""The iShares fund file parser (IWM, IJR, IVV) on a REAL download (data/ishares-IVV_fund.xls.gz, provenance in
data/PROVENANCE.md) and on broken variants of it, and the live fetch of it from the local test server."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regime.sources import etf, ishares
from regime.sources.errors import SourceError
from regime.sources.fetch import fetch_http
from upstream import Upstream

REAL = Path(__file__).parent / "data" / "ishares-IVV_fund.xls.gz"
SHA256 = "e4bb38fef44af3cdb9787430c93af27bfef376009d1f01a37cfdab2b488c2b7c"
TODAY = date(2022, 5, 12)
LOCATION = "mirror/etf/ishares/iShares-Core-SP-500-ETF_fund.xls"


@pytest.fixture(scope="module")
def real() -> bytes:
    data = gzip.decompress(REAL.read_bytes())
    assert hashlib.sha256(data).hexdigest() == SHA256  # the bytes iShares served, unchanged
    return data


def parse(data: bytes, ticker: str = "IVV"):
    return ishares.parse(data, LOCATION, ticker, today=TODAY)


def test_real_fund_file_quirks_are_there(real):
    assert real.startswith(b"\xef\xbb\xbf\xef\xbb\xbf<?xml")  # two byte-order marks
    assert b"\r\n" not in real
    with pytest.raises(ET.ParseError):  # unescaped '&' elsewhere: a strict parser refuses the whole file
        ET.fromstring(real.decode("utf-8").lstrip("\ufeff"))


def test_real_fund_file_parses_to_the_whole_history(real):
    frame = parse(real)
    assert len(frame) == 5534 and frame["date"].is_monotonic_increasing and frame["date"].is_unique
    assert list(frame.columns) == ["date", "ticker", "nav", "shares_outstanding"]
    assert set(frame["ticker"]) == {"IVV"}
    first, last = frame.iloc[0], frame.iloc[-1]
    assert (first["date"], first["nav"], first["shares_outstanding"]) == (date(2000, 5, 15), 145.236, 150_000)
    assert (last["date"], last["nav"], last["shares_outstanding"]) == (date(2022, 5, 11), 394.279541, 707_900_000)
    assert frame[["nav", "shares_outstanding"]].notna().all().all()
    assert frame["date"].map(date.isoweekday).le(5).all()
    # the last day repeats the previous day's share count while the NAV moved: a stale count, flow 0 that day
    tail = frame.set_index("date").loc[[date(2022, 5, 10), date(2022, 5, 11)]]
    assert tail["shares_outstanding"].nunique() == 1 and tail["nav"].nunique() == 2


@pytest.mark.slow
def test_the_dispatcher_and_the_ingest_table_know_the_fund_file(real):
    assert len(etf.parse(real, LOCATION, "IVV", today=TODAY)) == 5534
    assert etf.listing("IWM").layout == etf.ISHARES_XML and etf.live_url("IJR") == ishares.url("IJR")
    assert etf.mirror_name("IVV", None) == "etf/ishares/iShares-Core-SP-500-ETF_fund.xls"
    assert ishares.url("IWM") == ("https://www.ishares.com/us/products/239710/ishares-russell-2000-etf/"
                                  "1467271812596.ajax?fileType=xls&fileName=iShares-Russell-2000-ETF_fund&dataType=fund")
    assert {t: ishares.FUNDS[t].portfolio for t in ishares.FUNDS} == {"IWM": 239710, "IJR": 239774, "IVV": 239726}


def _historical(real: bytes) -> tuple[str, int, int]:
    text = real.decode("utf-8")
    start = text.index('<ss:Worksheet ss:Name="Historical"')
    return text, start, text.index("</ss:Worksheet>", start)


def _variant(real: bytes, change) -> bytes:
    text, start, end = _historical(real)
    return change(text, start, end).encode("utf-8")


BROKEN = [
    (lambda t, s, e: "", "empty file"),
    (lambda t, s, e: "<!DOCTYPE html><html><body>Access Denied</body></html>", "an HTML page"),
    (lambda t, s, e: t[: s + (e - s) // 2], "cut off"),
    (lambda t, s, e: t.replace('ss:Name="Historical"', 'ss:Name="History"'), "no Historical worksheet"),
    (lambda t, s, e: t[:s] + t[s:e].replace("NAV per Share", "NAV", 1) + t[e:], "header drift"),
    (lambda t, s, e: t[:s] + t[s:e].replace("May 11, 2022", "2022-05-11", 1) + t[e:], "is not 'Mon DD, YYYY'"),
    (lambda t, s, e: t[:s] + t[s:e].replace("394.279541", "394,279541", 1) + t[e:], "NAV per share"),
    (lambda t, s, e: t[:s] + t[s:e].replace("707900000", "n/a", 1) + t[e:], "shares outstanding 'n/a'"),
    (lambda t, s, e: t[:s] + t[s:e].replace("May 11, 2022", "May 11, 2099", 1) + t[e:], "in the future"),
    (lambda t, s, e: t[:s] + t[s:e].replace("May 10, 2022", "May 11, 2022", 1) + t[e:], "conflicting rows"),
    (lambda t, s, e: t[:s] + t[s:e].replace("<ss:Table>", "<!DOCTYPE x [<!ENTITY a 'b'>]><ss:Table>", 1) + t[e:],
     "refused"),
    (lambda t, s, e: t[:s] + t[s:e].replace("May 11, 2022", "&lol9;", 1) + t[e:], "not well-formed"),
    (lambda t, s, e: t[:s] + t[s:e].replace("May 11, 2022", "S&P", 1) + t[e:], "not well-formed"),
]


@pytest.mark.parametrize(("change", "problem"), BROKEN)
@pytest.mark.slow
def test_broken_fund_files_fail_naming_the_file_and_the_problem(real, change, problem):
    with pytest.raises(SourceError, match=problem) as err:
        parse(_variant(real, change))
    assert str(err.value).startswith(f"etf: {LOCATION}: ")


def test_a_file_for_another_fund_is_refused(real):
    with pytest.raises(SourceError, match=r"is for 'iShares Core S&P 500 ETF', not IWM"):
        parse(real, "IWM")


def test_a_binary_excel_resave_is_not_taken_for_the_fund_file():
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504  # what Excel writes when the download is re-saved
    with pytest.raises(SourceError, match="not an iShares fund file|not UTF-8"):
        parse(ole)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_source_error(data):
    with contextlib.suppress(SourceError):
        parse(b'<?xml version="1.0"?>\n<ss:Workbook xmlns:ss="urn:schemas-microsoft-com:office:spreadsheet">' + data)


@pytest.mark.slow
def test_live_fetch_of_the_real_fund_file_from_the_local_server(real):
    parts = urlsplit(ishares.url("IVV"))
    with Upstream() as up:
        up.route(f"{parts.path}?{parts.query}", real, headers={"Content-Type": "application/vnd.ms-excel"})
        fetched = fetch_http(up.url(f"{parts.path}?{parts.query}"), ishares.file_name("IVV"), etf.SOURCE, timeout=5)
    assert fetched.data == real
    assert len(etf.parse(fetched.data, fetched.location, "IVV", today=TODAY)) == 5534
