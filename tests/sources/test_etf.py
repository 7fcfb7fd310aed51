"""ETF NAV/shares parsers (SSGA navhist workbook, fund-details JSON), live fetch, and the synthetic sample."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import zipfile
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

import sample_scripts
from regime.sources import etf
from regime.sources.errors import SourceError
from regime.sources.fetch import fetch_http
from upstream import Upstream

PROJECT = Path(__file__).resolve().parents[2]
REFERENCE = PROJECT.parent / "shared" / "reference-data"
QQQ_JSON = REFERENCE / "formats" / "etf-issuer-nav-shares" / "ManULoreN14+regimen-tilt-nq" / "FUND_FLOWS.txt"
SSGA_HOLDINGS = REFERENCE / "formats" / "ssga-xlsx" / "CalvoSeko+market_terminal" / "holdings-daily-us-en-spy.xlsx"
TODAY = date(2024, 7, 31)
LOCATION = "mirror/etf/ssga/navhist-us-en-spy.xlsx"
HEADER = ["Date", "NAV", "Shares Outstanding", "Total Net Assets"]
ROWS = [  # newest first, as SSGA ships it
    ["17-Jul-2024", 556.83, 1_003_532_116, 558_807_281_563.52],
    ["16-Jul-2024", 564.86, 1_005_182_116, 567_787_179_002.26],
    ["15-Jul-2024", 561.53, 1_004_432_116, 564_018_771_050.40],
]
DISCLAIMER = "Before investing, consider the funds' investment objectives, risks, charges and expenses."


def workbook(rows=ROWS, header=HEADER, ticker="SPY", preamble=True, footer=True, title="navhist") -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = title
    if preamble:
        sheet.append(["Fund Name:", "SPDR® S&P 500® ETF Trust"])
        sheet.append(["Ticker Symbol:", ticker])
        sheet.append([])
    if header is not None:
        sheet.append(header)
    for row in rows:
        sheet.append(row)
    if footer:
        sheet.append([])
        sheet.append([DISCLAIMER])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def navhist(data: bytes, ticker: str = "SPY") -> pd.DataFrame:
    return etf.parse_navhist_xlsx(data, LOCATION, ticker, today=TODAY)


def fund_details(entries, ticker="QQQ", envelope=True) -> bytes:
    doc = {"name": "funddetails", "label": "Fund Details", "ticker": ticker,
           "data": {"fundFlowsData": {"name": "fundflows", "label": "Net Fund Flows", "data": entries,
                                      "asOfDate": "2024/07/22 12:00:00 AM (ET)"}}} if envelope else entries
    return json.dumps(doc, indent=4).encode()


ENTRIES = [  # the issuer's odd order: not sorted
    {"navDate": "2024-04-04", "nav": 435.154, "navChange": -6.845, "navChangePercent": -1.548646,
     "premiumDiscount": -0.186, "fundFlows": -66299850, "sharesOutstanding": 584450000, "aum": 258326315550},
    {"navDate": "2024-04-02", "nav": 441.014, "navChange": -4.133, "navChangePercent": -0.928457,
     "premiumDiscount": None, "fundFlows": -823521950, "sharesOutstanding": 583150000, "aum": 259587473050},
    {"navDate": "2024-04-03", "nav": 441.999, "navChange": 0.985, "navChangePercent": 0.223349,
     "premiumDiscount": -0.101, "fundFlows": 639470300, "sharesOutstanding": 584600000, "aum": 257816784400},
]


def details(data: bytes, ticker: str = "QQQ") -> pd.DataFrame:
    return etf.parse_invesco_json(data, "mirror/etf/etfcom/fund-details-qqq.json", ticker, today=TODAY)


# ------------------------------------------------------------------------------------------- SSGA: happy paths


def test_navhist_text_dates_newest_first():
    frame = navhist(workbook())
    assert list(frame.columns) == ["date", "ticker", "nav", "shares_outstanding"]
    assert frame["date"].tolist() == [date(2024, 7, 15), date(2024, 7, 16), date(2024, 7, 17)]
    assert frame["nav"].tolist() == [561.53, 564.86, 556.83]
    assert frame["shares_outstanding"].iloc[-1] == 1_003_532_116
    assert frame["ticker"].unique().tolist() == ["SPY"]
    assert str(frame["nav"].dtype) == "float64" and str(frame["shares_outstanding"].dtype) == "float64"


def test_navhist_excel_date_cells_and_unpublished_shares():
    rows = [[datetime(2024, 7, 17), 556.83, 1_003_532_116, 5.5e11],
            [date(2024, 7, 16), 564.86, "-", "-"],
            [45488, 561.53, None, None]]  # an Excel serial without a date format: 2024-07-15
    frame = navhist(workbook(rows))
    assert frame["date"].tolist() == [date(2024, 7, 15), date(2024, 7, 16), date(2024, 7, 17)]
    assert frame["shares_outstanding"].isna().tolist() == [True, True, False]


def test_navhist_tolerates_no_preamble_no_footer_extra_column_and_repeated_identical_rows():
    rows = [[*r, "x"] for r in ROWS] + [[*ROWS[0], "x"]]
    frame = navhist(workbook(rows, header=[*HEADER, "Currency"], preamble=False, footer=False))
    assert len(frame) == 3


def test_navhist_finds_the_sheet_with_the_header():
    book = Workbook()
    book.active.title = "cover"
    book.active.append(["State Street Global Advisors"])
    sheet = book.create_sheet("navhist")
    for row in [["Fund Name:", "x"], ["Ticker Symbol:", "spy"], [], HEADER, *ROWS]:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    assert len(navhist(out.getvalue())) == 3


# ---------------------------------------------------------------------------------------------- SSGA: failures


def zip_without_workbook() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("hello.txt", "not a workbook")
    return out.getvalue()


def without_sheets(data: bytes) -> bytes:
    """The same workbook with its sheet list emptied (xl/workbook.xml ``<sheets/>``)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for member in source.infolist():
            content = source.read(member.filename)
            if member.filename == "xl/workbook.xml":
                content = re.sub(rb"<sheets>.*</sheets>", b"<sheets/>", content)
            target.writestr(member, content)
    return out.getvalue()


def chartsheet_only() -> bytes:
    book = Workbook()
    book.create_chartsheet("chart")
    book.remove(book.active)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def bad_crc(data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo("xl/worksheets/sheet1.xml")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    broken = bytearray(data)
    broken[start + info.compress_size // 2] ^= 0xFF
    return bytes(broken)


GOOD_BOOK = workbook()


@pytest.mark.parametrize(("data", "problem"), [
    (b"", "empty file"),
    (b"<!DOCTYPE html><html><head><title>404</title></head><body>Page not found</body></html>",
     "an HTML page, not an xlsx workbook"),
    (b"Date,NAV\n17-Jul-2024,1\n", "not an xlsx workbook \\(no zip signature"),
    (GOOD_BOOK[: len(GOOD_BOOK) // 2], "truncated or damaged zip container"),
    (GOOD_BOOK[:-10], "truncated or damaged zip container"),
    (bad_crc(GOOD_BOOK), "damaged zip container|truncated or damaged|unreadable xlsx"),
    (zip_without_workbook(), "a zip file but not an xlsx workbook"),
    (without_sheets(GOOD_BOOK), "no worksheet in the workbook"),
    (chartsheet_only(), "unreadable xlsx workbook"),  # openpyxl cannot read back its own chartsheet-only book
    (workbook(header=None, preamble=False), r"no header row \(Date, Nav, Shares Outstanding, Total Net Assets\)"),
    (workbook(header=["Date", "Net Asset Value", "Shares Outstanding", "Total Net Assets"]),
     r"header drift in sheet 'navhist' row 4: missing column\(s\) \['nav'\]"),
    (workbook(header=["As Of", "NAV", "Shares Out", "Total Net Assets"]), r"missing column\(s\) \['date'"),
    (workbook(rows=[]), "no data rows under the header in sheet 'navhist'"),
    (workbook(rows=[["17-Jul-2024", "n/a", 1, 1]]), r"row 5 \(2024-07-17\): NAV 'n/a' is not a number"),
    (workbook(rows=[["17-Jul-2024", None, 1, 1]]), "NAV None is not a number"),
    (workbook(rows=[["17-Jul-2024", 0.0, 1, 1]]), "NAV 0.0 on 2024-07-17 is not positive"),
    (workbook(rows=[["17-Jul-2024", -3.5, 1, 1]]), "NAV -3.5 on 2024-07-17 is not positive"),
    (workbook(rows=[["17-Jul-2024", 5.0, -100, 1]]), "shares outstanding -100 on 2024-07-17 is negative"),
    (workbook(rows=[["17-Jul-2024", 5.0, "lots", 1]]), "shares outstanding 'lots' is not a number"),
    (workbook(rows=[["17-Jul-2024", 5.0, "1e400", 1]]), "shares outstanding inf on 2024-07-17 is not a finite"),
    (workbook(rows=[["17-Jul-2024", 5.0, 1, 5], ["17-Jul-2024", 5.1, 1, 5]]),
     r"conflicting rows for the same date\(s\) \['2024-07-17'\]"),
    (workbook(rows=[["01-Aug-2024", 5.0, 1, 5]]), "date 2024-08-01 is in the future \\(today is 2024-07-31\\)"),
    (workbook(rows=[["2024/07/17", 5.0, 1, 5]]), "row 5: date '2024/07/17' is neither DD-Mon-YYYY text"),
    (workbook(rows=[["31-Feb-2024", 5.0, 1, 5]]), "date '31-Feb-2024' is neither"),
    (workbook(ticker="IWM"), "the workbook is for 'IWM', not SPY"),
    (workbook(rows=[*ROWS, [], ["15-Jul-2023", 1.0, 1, 1]], footer=False), "a data row \\(2023-07-15\\) after"),
])
def test_navhist_failures_name_the_file_and_the_problem(data, problem):
    with pytest.raises(SourceError, match=problem) as err:
        navhist(data)
    assert str(err.value).startswith(f"etf: {LOCATION}: ")


@pytest.mark.reference
@pytest.mark.skipif(not SSGA_HOLDINGS.exists(), reason=f"reference file not present at {SSGA_HOLDINGS}")
def test_real_ssga_holdings_workbook_is_recognised_as_the_wrong_file():
    with pytest.raises(SourceError, match=r"no header row .* sheet\(s\) \['holdings'\]"):
        etf.parse_navhist_xlsx(SSGA_HOLDINGS.read_bytes(), str(SSGA_HOLDINGS), "SPY", today=TODAY)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400) | st.binary(max_size=400).map(lambda b: b"PK\x03\x04" + b))
def test_navhist_arbitrary_bytes_raise_only_source_error(data):
    with contextlib.suppress(SourceError):
        navhist(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=len(GOOD_BOOK) - 1), st.integers(min_value=1, max_value=255),
       st.booleans())
@pytest.mark.slow
def test_navhist_corrupted_workbooks_raise_only_source_error(position, flip, truncate):
    data = GOOD_BOOK[:position] if truncate else bytes(b ^ flip if i == position else b
                                                         for i, b in enumerate(GOOD_BOOK))
    try:
        frame = navhist(data)
    except SourceError:
        return
    assert frame["nav"].gt(0).all()


# ------------------------------------------------------------------------------------------ fund-details JSON


def test_fund_details_sorted_typed_and_null_shares_kept_as_nan():
    entries = [*ENTRIES, {"navDate": "1999-03-10", "nav": 50.96, "navChange": None, "navChangePercent": None,
                          "premiumDiscount": None, "fundFlows": 0, "sharesOutstanding": None, "aum": None}]
    frame = details(fund_details(entries))
    assert frame["date"].tolist() == [date(1999, 3, 10), date(2024, 4, 2), date(2024, 4, 3), date(2024, 4, 4)]
    assert frame["nav"].tolist() == [50.96, 441.014, 441.999, 435.154]
    assert np.isnan(frame["shares_outstanding"].iloc[0]) and frame["shares_outstanding"].iloc[-1] == 584450000
    assert list(frame.columns) == ["date", "ticker", "nav", "shares_outstanding"]
    assert frame["ticker"].unique().tolist() == ["QQQ"]


def test_fund_details_accepts_timestamp_dates_and_repeated_identical_entries():
    entries = [{**e, "navDate": e["navDate"] + "T00:00:00.000Z"} for e in ENTRIES] + [ENTRIES[0]]
    assert len(details(fund_details(entries))) == 3


def with_entry(**change) -> bytes:
    return fund_details([ENTRIES[0], {**ENTRIES[1], **change}])


@pytest.mark.parametrize(("data", "problem"), [
    (b"", "empty file"),
    (b"<html><body>Just a moment...</body></html>", "an HTML page, not a JSON document"),
    (b'{"name": "funddetails", "data": ', "not valid JSON"),
    (b"\xff\xfe{", "not UTF-8 text"),
    (b"[1, 2]", "expected a JSON object at the top level, got list"),
    (fund_details(ENTRIES, ticker="SPY"), "the document is for 'SPY', not QQQ"),
    (json.dumps({"ticker": "QQQ", "data": {"fundFlows": []}}).encode(), "no data.fundFlowsData.data list"),
    (fund_details([]), "no data rows"),
    (fund_details([ENTRIES[0], "x"]), "entry 1 is a str, not an object"),
    (fund_details([{k: v for k, v in ENTRIES[0].items() if k != "sharesOutstanding"}]),
     r"entry 0: missing key\(s\) \['sharesOutstanding'\]"),
    (with_entry(navDate="04/02/2024"), "entry 1: navDate '04/02/2024' is not YYYY-MM-DD"),
    (with_entry(navDate="2024-02-30"), "navDate '2024-02-30' is not YYYY-MM-DD"),
    (with_entry(navDate=None), "navDate None is not YYYY-MM-DD"),
    (with_entry(nav=None), r"entry 1 \(2024-04-02\): NAV None is not a number"),
    (with_entry(nav="441.01"), "NAV '441.01' is not a number"),
    (with_entry(nav=True), "NAV True is not a number"),
    (with_entry(nav=0), "NAV 0.0 on 2024-04-02 is not positive"),
    (with_entry(nav=-1.5), "NAV -1.5 on 2024-04-02 is not positive"),
    (b'{"ticker": "QQQ", "data": {"fundFlowsData": {"data": [{"navDate": "2024-04-02", "nav": Infinity, '
     b'"sharesOutstanding": 1}]}}}', "NAV inf on 2024-04-02 is not a finite number"),
    (with_entry(sharesOutstanding=-5), "shares outstanding -5 on 2024-04-02 is negative"),
    (with_entry(sharesOutstanding="many"), "sharesOutstanding 'many' is not a number"),
    (with_entry(navDate="2024-04-04"), r"conflicting rows for the same date\(s\) \['2024-04-04'\]"),
    (with_entry(navDate="2024-08-01"), "date 2024-08-01 is in the future"),
])
def test_fund_details_failures_name_the_file_and_the_problem(data, problem):
    with pytest.raises(SourceError, match=problem) as err:
        details(data)
    assert str(err.value).startswith("etf: mirror/etf/etfcom/fund-details-qqq.json: ")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
@pytest.mark.slow
def test_fund_details_arbitrary_bytes_raise_only_source_error(data):
    with contextlib.suppress(SourceError):
        details(data)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
ENTRY = st.fixed_dictionaries({}, optional={
    "navDate": st.sampled_from(["2024-04-02", "2024-04-03", "2031-01-01", "x", ""]) | JSON_VALUES,
    "nav": st.floats(allow_nan=True) | JSON_VALUES,
    "sharesOutstanding": st.integers() | st.floats() | JSON_VALUES,
})


@settings(max_examples=300, deadline=None)
@given(st.lists(ENTRY | JSON_VALUES, max_size=5), st.sampled_from(["QQQ", "qqq", None, 7]))
@pytest.mark.slow
def test_fund_details_structured_garbage_raises_only_source_error(entries, ticker):
    data = json.dumps({"ticker": ticker, "data": {"fundFlowsData": {"data": entries}}}).encode()
    try:
        frame = details(data)
    except SourceError:
        return
    assert frame["nav"].gt(0).all() and frame["date"].is_unique


@pytest.mark.reference
@pytest.mark.skipif(not QQQ_JSON.exists(), reason=f"reference file not present at {QQQ_JSON}")
def test_real_qqq_fund_details_and_its_own_flow_figure():
    data = QQQ_JSON.read_bytes()
    frame = etf.parse_invesco_json(data, str(QQQ_JSON), "QQQ", today=date(2026, 7, 23))
    assert len(frame) == 7138 and frame["date"].is_monotonic_increasing and frame["date"].is_unique
    assert frame["date"].iloc[0] == date(1999, 3, 10) and frame["date"].iloc[-1] == date(2026, 7, 17)
    assert int(frame["shares_outstanding"].isna().sum()) == 1  # the inception day has no share count
    assert frame["nav"].gt(0).all()

    issuer = pd.DataFrame(json.loads(data)["data"]["fundFlowsData"]["data"])
    issuer["date"] = pd.to_datetime(issuer["navDate"]).dt.date
    both = frame.merge(issuer[["date", "fundFlows"]], on="date", validate="one_to_one")
    delta = both["shares_outstanding"].diff()
    prior_nav = delta * both["nav"].shift()  # the issuer's convention: change in shares at the previous NAV
    same_nav = delta * both["nav"]
    ok = prior_nav.notna() & both["fundFlows"].notna()
    flows, prior_nav, same_nav = both.loc[ok, "fundFlows"], prior_nav[ok], same_nav[ok]
    gap = (prior_nav - flows).abs()
    assert gap.median() < 1.0  # dollars: the same figure up to rounding
    assert (gap <= 0.01 * flows.abs()).mean() > 0.995
    assert np.corrcoef(prior_nav, flows)[0, 1] > 0.98
    split = both.loc[ok, "date"] == date(2000, 3, 20)  # QQQ's 2-for-1: shares double, it is not a flow
    assert np.corrcoef(prior_nav[~split], flows[~split])[0, 1] > 0.999
    assert np.corrcoef(same_nav, flows)[0, 1] > 0.99  # at the same day's NAV: close, not exact
    assert (same_nav - flows).abs().median() < 0.02 * flows.abs().median()


# ---------------------------------------------------------------------------------------- table, URL, dispatch


def test_listing_mirror_names_and_urls(tmp_path):
    assert etf.TICKERS == ("IWM", "IJR", "VTWO", "SPY", "IVV", "QQQ")
    assert set(etf.SMALL_CAP) | set(etf.LARGE_CAP) == set(etf.TICKERS)
    # each ticker's own issuer file ...
    assert {t: etf.listing(t).layout for t in etf.TICKERS} == {
        "IWM": etf.ISHARES_XML, "IJR": etf.ISHARES_XML, "IVV": etf.ISHARES_XML, "SPY": etf.NAVHIST_XLSX,
        "QQQ": etf.FUND_DETAILS_JSON, "VTWO": etf.NAVHIST_XLSX}
    assert {t: etf.mirror_name(t, None) for t in etf.TICKERS} == {
        "IWM": "etf/ishares/iShares-Russell-2000-ETF_fund.xls",
        "IJR": "etf/ishares/iShares-Core-SP-Small-Cap-ETF_fund.xls",
        "IVV": "etf/ishares/iShares-Core-SP-500-ETF_fund.xls", "SPY": "etf/ssga/navhist-us-en-spy.xlsx",
        "QQQ": "etf/etfcom/fund-details-qqq.json", "VTWO": "etf/ssga/navhist-us-en-vtwo.xlsx"}
    assert etf.live_url("SPY") == "https://www.ssga.com/library-content/products/fund-data/etfs/us/navhist-us-en-spy.xlsx"
    assert etf.live_url("IWM").startswith("https://www.ishares.com/us/products/239710/")
    assert etf.live_url("QQQ") is None and etf.live_url("VTWO") is None  # mirror only
    assert etf.url("SPY") == etf.live_url("SPY") and etf.url("VTWO").startswith("https://investor.vanguard.com/")
    assert etf.listing("SPY").published and not etf.listing("VTWO").published and not etf.listing("QQQ").published
    # ... or, in a mirror, the SSGA layout any ticker may be given in (the synthetic sample's)
    assert etf.mirror_name("IWM") == "etf/ssga/navhist-us-en-iwm.xlsx"
    assert f"{etf.folder('VTWO')}/{etf.file_name('VTWO')}" == etf.mirror_name("VTWO")
    assert etf.mirror_name("QQQ", etf.FUND_DETAILS_JSON) == "etf/etfcom/fund-details-qqq.json"
    assert etf.locate(tmp_path, "IWM").layout == etf.ISHARES_XML  # neither there: the issuer's file is reported
    (tmp_path / "etf" / "ssga").mkdir(parents=True)
    (tmp_path / etf.mirror_name("IWM")).write_bytes(b"x")
    assert etf.locate(tmp_path, "IWM") == etf.SAMPLE_LISTING
    (tmp_path / "etf" / "ishares").mkdir()
    (tmp_path / etf.mirror_name("IWM", None)).write_bytes(b"x")
    assert etf.locate(tmp_path, "IWM").layout == etf.ISHARES_XML  # the issuer's file first
    with pytest.raises(SourceError, match="no public GET URL"):
        etf.url("QQQ", etf.FUND_DETAILS_JSON)
    with pytest.raises(ValueError, match="unknown layout"):
        etf.listing("QQQ", "csv")
    with pytest.raises(ValueError, match="not an iShares fund"):
        etf.listing("SPY", etf.ISHARES_XML)


def test_parse_dispatches_on_content():
    assert len(etf.parse(workbook(), LOCATION, "SPY", today=TODAY)) == 3
    assert len(etf.parse(fund_details(ENTRIES), "x.json", "QQQ", today=TODAY)) == 3
    with pytest.raises(SourceError, match="an HTML page"):
        etf.parse(b"<html>blocked</html>", "x", "SPY", today=TODAY)


# ------------------------------------------------------------------------------------------------- live mode


def test_live_fetch_good_workbook():
    path = "/library-content/products/fund-data/etfs/us/navhist-us-en-spy.xlsx"
    assert etf.url("SPY").endswith(path)
    with Upstream() as up:
        up.route(path, body=GOOD_BOOK,
                 headers={"Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"})
        fetched = fetch_http(up.url(path), etf.file_name("SPY"), etf.SOURCE, timeout=5)
    assert fetched.data == GOOD_BOOK
    assert len(etf.parse_navhist_xlsx(fetched.data, fetched.location, "SPY", today=TODAY)) == 3


@pytest.mark.slow
def test_live_fetch_honours_retry_after_then_succeeds():
    with Upstream() as up:
        up.route("/navhist-us-en-iwm.xlsx", responses=[(429, b"slow down"), (200, workbook(ticker="IWM"))],
                 headers={"Retry-After": "1"})
        fetched = fetch_http(up.url("/navhist-us-en-iwm.xlsx"), "navhist-us-en-iwm.xlsx", etf.SOURCE, timeout=5)
        assert len(up.requests) == 2
    assert etf.parse_navhist_xlsx(fetched.data, fetched.location, "IWM", today=TODAY)["ticker"].iloc[0] == "IWM"


def test_live_html_with_200_is_rejected():
    with Upstream() as up:
        up.route("/navhist-us-en-iwm.xlsx", body=b"<!DOCTYPE html><html><body>We're sorry</body></html>",
                 headers={"Content-Type": "text/html"})
        fetched = fetch_http(up.url("/navhist-us-en-iwm.xlsx"), "navhist-us-en-iwm.xlsx", etf.SOURCE, timeout=5)
    with pytest.raises(SourceError, match="an HTML page, not an xlsx workbook"):
        etf.parse_navhist_xlsx(fetched.data, fetched.location, "IWM", today=TODAY)


# ---------------------------------------------------------------------------------------------------- sample


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    module = sample_scripts.load("etf_sample")
    sessions = sample_scripts.nyse_sessions("2019-01-02", "2024-07-17")
    out = tmp_path_factory.mktemp("etf-sample")
    paths = module.generate(out, np.random.default_rng(20240716), sessions)
    frames = {t: etf.parse_navhist_xlsx((out / etf.mirror_name(t)).read_bytes(), etf.mirror_name(t), t,
                                        today=date(2024, 7, 17)) for t in etf.TICKERS}
    return module, sessions, out, paths, frames


@pytest.mark.slow
def test_sample_layout_covers_every_session(sample):
    _, sessions, out, paths, frames = sample
    assert sorted(p.relative_to(out).as_posix() for p in paths) == sorted(etf.mirror_name(t) for t in etf.TICKERS)
    for frame in frames.values():
        assert frame["date"].tolist() == sessions
        assert frame["shares_outstanding"].notna().all() and frame["nav"].gt(0).all()
    first = (out / etf.mirror_name("IWM")).read_bytes()
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        core = archive.read("docProps/core.xml").decode()
    assert "2024-07-17T21:00:00Z</dcterms:modified>" in core


def test_sample_tells_the_squeeze(sample):
    *_, frames = sample

    def five_day(ticker: str) -> tuple[float, float]:
        frame = frames[ticker].iloc[-6:]
        nav, shares = frame["nav"].to_numpy(), frame["shares_outstanding"].to_numpy()
        flow = (np.diff(shares) * nav[:-1]).sum() / (shares[0] * nav[0])
        return nav[-1] / nav[0] - 1, flow

    for ticker in etf.SMALL_CAP:
        move, flow = five_day(ticker)
        assert move > 0.08 and 0.04 < flow < 0.10, (ticker, move, flow)
    for ticker in ("SPY", "QQQ"):
        move, flow = five_day(ticker)
        assert abs(move) < 0.05 and -0.03 < flow < 0, (ticker, move, flow)
    assert five_day("IVV")[1] < 0


@pytest.mark.slow
def test_sample_is_byte_identical_on_regeneration_and_small(sample, tmp_path):
    module, sessions, out, paths, _ = sample
    again = module.generate(tmp_path, np.random.default_rng(20240716), sessions)
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in again] == \
           [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    assert sum(p.stat().st_size for p in paths) < 400_000
