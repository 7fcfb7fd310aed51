"""iShares fund file: the per-fund download behind each iShares product page (IWM, IJR, IVV).

URL (`url`), linked from the product page as "Data Download"::

    https://www.ishares.com/us/products/<portfolio id>/<slug>/1467271812596.ajax
        ?fileType=xls&fileName=<name>_fund&dataType=fund

Despite `fileType=xls` it is not a binary workbook but SpreadsheetML 2003 XML (``<ss:Workbook
xmlns:ss="urn:schemas-microsoft-com:office:spreadsheet">``), as a real IVV download kept verbatim in the tests
shows (tests/sources/data/PROVENANCE.md): two UTF-8 byte-order marks before ``<?xml``, LF line ends, one element
per line, worksheets ``Disclaimers``, ``Holdings``, ``Historical``, ``Performance``, ``Distributions``. The
``Historical`` worksheet holds the fund's whole daily history, NEWEST FIRST::

    As Of | NAV per Share | Ex-Dividends | Shares Outstanding
    May 11, 2022 | 394.279541 | -- | 707900000

dates as text ``Mon DD, YYYY`` (``ss:Type="String"``), numbers as ``ss:Type="Number"`` cells, ``--`` for a
value not published (Ex-Dividends on most days; a share count the fund did not report parses as NaN). The
``Holdings`` worksheet starts with the file's date, then the fund's name (``iShares Core S&amp;P 500 ETF``),
which is checked against the ticker asked for.

The file is not well-formed XML as a whole (attributes of other worksheets carry unescaped ``&``, e.g. a
hyperlink ``…#!type=ishares&style=All``), so a strict parser refuses it. The parser cuts out the
``Historical`` worksheet alone and parses that fragment with the standard library's XML parser, after refusing
any DTD or entity declaration (``<!``) in it: no external entities, no entity expansion.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date

from regime.sources.errors import SourceError, excerpt
from regime.sources.etf_frame import finish  # the checks every ETF layout shares

SOURCE = "etf"
FOLDER = "etf/ishares"  # mirror: etf/ishares/<fileName>_fund.xls, the name iShares gives the download
URL = ("https://www.ishares.com/us/products/{portfolio}/{slug}/1467271812596.ajax?fileType=xls&fileName={name}_fund"
       "&dataType=fund")
NS = "urn:schemas-microsoft-com:office:spreadsheet"
HEADER = ["as of", "nav per share", "ex-dividends", "shares outstanding"]
DATE = re.compile(r"^([A-Za-z]{3})\s+(\d{1,2}),\s+(\d{4})$")
MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                                      "dec"), start=1)}
MISSING = {"--", "-", ""}
SIGNATURE = b"urn:schemas-microsoft-com:office:spreadsheet"


@dataclass(frozen=True)
class Fund:
    portfolio: int  # iShares' portfolio id, in the product page's URL
    slug: str  # the product page's slug
    name: str  # fileName before `_fund`
    title: str  # the fund's name as the file states it


FUNDS = {
    "IWM": Fund(239710, "ishares-russell-2000-etf", "iShares-Russell-2000-ETF", "iShares Russell 2000 ETF"),
    "IJR": Fund(239774, "ishares-core-sp-smallcap-etf", "iShares-Core-SP-Small-Cap-ETF",
                "iShares Core S&P Small-Cap ETF"),
    "IVV": Fund(239726, "ishares-core-sp-500-etf", "iShares-Core-SP-500-ETF", "iShares Core S&P 500 ETF"),
}


def file_name(ticker: str) -> str:
    return f"{FUNDS[ticker.upper()].name}_fund.xls"


def url(ticker: str) -> str:
    fund = FUNDS[ticker.upper()]
    return URL.format(portfolio=fund.portfolio, slug=fund.slug, name=fund.name)


def looks_like_spreadsheetml(data: bytes) -> bool:
    return SIGNATURE in data[:1024]


def parse(data: bytes, location: str, ticker: str, today: date | None = None):
    """Parse one fund file into (date, ticker, nav, shares_outstanding), or raise SourceError naming the problem."""

    def fail(problem: str) -> SourceError:
        return SourceError(SOURCE, location, problem)

    if not data.strip():
        raise fail("empty file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    text = text.lstrip("\ufeff \t\r\n")
    if not text.startswith("<") or "<ss:Workbook" not in text[:2048]:
        what = "an HTML page" if re.match(r"(?is)\s*<(!doctype\s+html|html|head|body)", text) else \
            f"starts {excerpt(text, 40)!r}"
        raise fail(f"not an iShares fund file (SpreadsheetML <ss:Workbook>): {what}")
    labelled = _fund_title(text)
    expected = FUNDS.get(ticker.upper())
    if labelled and expected and _bare(labelled) != _bare(expected.title):
        raise fail(f"the fund file is for {labelled!r}, not {ticker.upper()} ({expected.title})")

    start = text.find('<ss:Worksheet ss:Name="Historical"')
    if start < 0:
        names = re.findall(r'<ss:Worksheet ss:Name="([^"]{0,60})"', text)
        raise fail(f"no Historical worksheet (worksheets: {names[:8]})")
    end = text.find("</ss:Worksheet>", start)
    if end < 0:
        raise fail("the Historical worksheet is cut off (no </ss:Worksheet>): truncated download")
    fragment = text[start:end + len("</ss:Worksheet>")]
    if "<!" in fragment:
        raise fail("a DTD, entity declaration or comment inside the Historical worksheet: refused")
    try:
        sheet = ET.fromstring(f'<ss:Workbook xmlns:ss="{NS}">{fragment}</ss:Workbook>')
    except ET.ParseError as exc:
        raise fail(f"the Historical worksheet is not well-formed XML ({exc})") from None

    rows = [[_cell_text(cell) for cell in row.iter(f"{{{NS}}}Cell")] for row in sheet.iter(f"{{{NS}}}Row")]
    rows = [r for r in rows if any(v.strip() for v in r)]
    if not rows:
        raise fail("the Historical worksheet has no rows")
    names = [re.sub(r"\s+", " ", v).strip().lower() for v in rows[0]]
    missing = [h for h in (HEADER[0], HEADER[1], HEADER[3]) if h not in names]
    if missing:
        raise fail(f"header drift in the Historical worksheet: missing column(s) {missing}; header is {rows[0][:8]}")
    col = {h: names.index(h) for h in (HEADER[0], HEADER[1], HEADER[3])}
    records = []
    for n, row in enumerate(rows[1:], start=2):
        cells = [row[i].strip() if i < len(row) else "" for i in (col["as of"], col["nav per share"],
                                                                   col["shares outstanding"])]
        day = _date(cells[0])
        if day is None:
            raise fail(f"Historical row {n}: date {excerpt(cells[0], 40)!r} is not 'Mon DD, YYYY'")
        nav = _number(cells[1])
        if nav is None or math.isnan(nav):
            raise fail(f"Historical row {n} ({day.isoformat()}): NAV per share {excerpt(cells[1], 40)!r} is not a "
                       "number")
        shares = _number(cells[2])
        if shares is None:
            raise fail(f"Historical row {n} ({day.isoformat()}): shares outstanding {excerpt(cells[2], 40)!r} is "
                       "not a number")
        records.append((day, nav, shares))
    if not records:
        raise fail("no data rows under the Historical worksheet's header")
    return finish(records, ticker, fail, today)


def _cell_text(cell: ET.Element) -> str:
    data = cell.find(f"{{{NS}}}Data")
    return "".join(data.itertext()) if data is not None else ""


def _fund_title(text: str) -> str | None:
    """The fund's name at the top of the Holdings worksheet (the first 'iShares …' string cell), if any."""
    start = text.find('<ss:Worksheet ss:Name="Holdings"')
    if start < 0:
        return None
    match = re.search(r'<ss:Data ss:Type="String">(iShares[^<]{0,120})</ss:Data>', text[start:start + 4096])
    if not match:
        return None
    return match.group(1).replace("&amp;", "&").strip()


def _bare(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _date(text: str) -> date | None:
    match = DATE.match(text)
    if not match or match.group(1).lower() not in MONTHS:
        return None
    try:
        return date(int(match.group(3)), MONTHS[match.group(1).lower()], int(match.group(2)))
    except ValueError:
        return None


def _number(text: str) -> float | None:
    """A float; NaN for '--' (not published); None when the cell is not a number."""
    if text in MISSING:
        return float("nan")
    if not re.fullmatch(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?", text):
        return None
    return float(text)
