"""ETF NAV and shares outstanding, daily, in three published layouts.

All parse to the canonical frame (date, ticker, nav, shares_outstanding), sorted by date with unique dates;
a day-over-day change in shares outstanding times NAV is the fund's net creation/redemption flow.

1. SSGA NAV-history workbook ``navhist-us-en-<ticker>.xlsx`` (the SPDR funds' own download). One sheet: a
   preamble (``Fund Name:`` / ``Ticker Symbol:`` rows, then a blank row), the header row
   ``Date | NAV | Shares Outstanding | Total Net Assets``, one row per day NEWEST FIRST with the date as text
   ``16-Jul-2024`` (an Excel date cell is accepted too), then a blank row and a disclaimer footer. Share counts
   of the earliest years may be ``-`` (unpublished): they parse as NaN. Only SPDR funds are published there;
   any other ticker answers SSGA's HTML 404 page.
2. Fund-details JSON ``{"name": "funddetails", "ticker": ..., "data": {"fundFlowsData": {"data": [...]}}}``,
   one entry per day: navDate, nav, navChange, navChangePercent, premiumDiscount, fundFlows,
   sharesOutstanding, aum. The reference sample (QQQ, 1999-2026) is filed as "Invesco" but carries no URL;
   its envelope and fields are those of etf.com's fund-details API (FactSet data: fundFlows is
   (shares_t - shares_t-1) x NAV_t-1, the previous day restated in new shares on a split; on the sample it
   matches the published figure within 1 % on 99.9 % of days, median difference $0). That API is a keyed
   POST, so this layout has no GET URL here: the file is placed in the mirror. Entries come in no particular
   order; market holidays may appear as rows repeating the previous day (the parser keeps them); the inception
   day may have a null share count (NaN).
3. iShares fund file (SpreadsheetML 2003 XML, its ``Historical`` worksheet): `regime.sources.ishares`.

Where each default ticker comes from (`LISTINGS`; docs/sources.md has the table):

* SPY: SSGA ``navhist-us-en-spy.xlsx`` (live and mirror ``etf/ssga/``);
* IWM, IJR, IVV: the iShares fund file (live and mirror ``etf/ishares/<fileName>_fund.xls``);
* QQQ: the fund-details JSON ``etf/etfcom/fund-details-qqq.json``, mirror only (its API is a keyed POST);
* VTWO: no issuer source (no public Vanguard download of NAV and shares outstanding was found), mirror only.

A mirror may instead hold any ticker in the SSGA workbook layout, ``etf/ssga/navhist-us-en-<ticker>.xlsx``: the
bundled SYNTHETIC sample does so for all six (`SAMPLE_LISTING`). `locate` picks, for one ticker, the issuer's
file when the mirror has it, else that sample-layout file. In live mode a ticker with no public GET source is
read from the mirror folder when an operator placed its file there, else reported missing.

It stays one file (about 410 lines): one source, where its files are and the parsers of its two layouts, which
share the cell readers; the canonical frame's checks are regime/sources/etf_frame.py, iShares' layout
regime/sources/ishares.py.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import warnings
import zipfile
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pandas as pd
from openpyxl import load_workbook
from openpyxl.utils.datetime import from_excel

from regime.sources import ishares
from regime.sources.errors import SourceError
from regime.sources.etf_frame import COLUMNS as COLUMNS  # the columns of every parsed ETF file
from regime.sources.etf_frame import finish
from regime.sources.fetch import looks_like_html

SOURCE = "etf"
TICKERS = ("IWM", "IJR", "VTWO", "SPY", "IVV", "QQQ")
SMALL_CAP = ("IWM", "IJR", "VTWO")
LARGE_CAP = ("SPY", "IVV", "QQQ")

NAVHIST_XLSX = "ssga-navhist-xlsx"
FUND_DETAILS_JSON = "fund-details-json"
ISHARES_XML = "ishares-fund-xml"
SSGA_URL = "https://www.ssga.com/library-content/products/fund-data/etfs/us/navhist-us-en-{ticker}.xlsx"
# the pages an operator downloads a mirror-only ticker's file from (never fetched by the ingest)
MANUAL_PAGES = {"QQQ": "https://www.etf.com/QQQ",
                "VTWO": "https://investor.vanguard.com/investment-products/etfs/profile/vtwo"}
ETFCOM_API = "https://api-prod.etf.com/v2/fund/fund-details"  # POST, needs etf.com's API key: not fetched here
NAVHIST_HEADER = ["date", "nav", "shares outstanding", "total net assets"]
FUND_DETAILS_KEYS = ("navDate", "nav", "sharesOutstanding")
HEADER_SCAN_ROWS = 50
MAX_UNZIPPED = 64 * 1024 * 1024  # a navhist workbook unzips to well under 1 MB
MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                                      "dec"), start=1)}
TEXT_DATE = re.compile(r"^(\d{1,2})-([A-Za-z]{3})-(\d{4})$")
ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(T[0-9:.]*Z?)?$")


@dataclass(frozen=True)
class Listing:
    issuer: str  # folder under etf/ in the mirror
    layout: str  # NAVHIST_XLSX or FUND_DETAILS_JSON
    published: bool  # True when the issuer really publishes this file for this ticker (else: sample layout only)


# the issuer's own file per ticker (`published`: a live GET URL exists); VTWO has none (module docstring)
LISTINGS = {"SPY": Listing("ssga", NAVHIST_XLSX, published=True),
            "IWM": Listing("ishares", ISHARES_XML, published=True),
            "IJR": Listing("ishares", ISHARES_XML, published=True),
            "IVV": Listing("ishares", ISHARES_XML, published=True),
            "QQQ": Listing("etfcom", FUND_DETAILS_JSON, published=False)}
SAMPLE_LISTING = Listing("ssga", NAVHIST_XLSX, published=False)  # the SSGA layout, any ticker (the sample's)
DEFAULT_LISTING = SAMPLE_LISTING
LAYOUTS = {NAVHIST_XLSX: Listing("ssga", NAVHIST_XLSX, published=True),
           FUND_DETAILS_JSON: Listing("etfcom", FUND_DETAILS_JSON, published=False),
           ISHARES_XML: Listing("ishares", ISHARES_XML, published=True)}


def listing(ticker: str, layout: str | None = None) -> Listing:
    """How `ticker` is read: `layout` if given, else the issuer's file (`LISTINGS`), else the SSGA layout."""
    if layout is not None:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; expected one of {sorted(LAYOUTS)}")
        if layout == ISHARES_XML and ticker.upper() not in ishares.FUNDS:
            raise ValueError(f"{ticker.upper()} is not an iShares fund known here ({sorted(ishares.FUNDS)})")
        return LAYOUTS[layout]
    return LISTINGS.get(ticker.upper(), SAMPLE_LISTING)


def candidates(ticker: str) -> list[Listing]:
    """Where a mirror may hold `ticker`, in order: the issuer's file, then the SSGA (sample) layout."""
    own = listing(ticker)
    return [own] if own == SAMPLE_LISTING or own.layout == NAVHIST_XLSX else [own, SAMPLE_LISTING]


def folder(ticker: str, layout: str | None = NAVHIST_XLSX) -> str:
    """The mirror folder of `ticker` in `layout` (default: the SSGA layout every ticker may be given in)."""
    return f"etf/{listing(ticker, layout).issuer}"


def file_name(ticker: str, layout: str | None = NAVHIST_XLSX) -> str:
    kind = listing(ticker, layout).layout
    if kind == FUND_DETAILS_JSON:
        return f"fund-details-{ticker.lower()}.json"
    if kind == ISHARES_XML:
        return ishares.file_name(ticker)
    return f"navhist-us-en-{ticker.lower()}.xlsx"


def mirror_name(ticker: str, layout: str | None = NAVHIST_XLSX) -> str:
    """Path relative to the mirror root, e.g. etf/ssga/navhist-us-en-iwm.xlsx; layout None: the issuer's file."""
    return f"{folder(ticker, layout)}/{file_name(ticker, layout)}"


def locate(mirror_dir: Path, ticker: str) -> Listing:
    """The listing of the file the mirror holds for `ticker`: its issuer's file if present, else the SSGA-layout
    file (present or not: then the ingest reports the ticker missing)."""
    options = candidates(ticker)
    for option in options:
        if os.path.lexists(mirror_dir / mirror_name(ticker, option.layout)):
            return option
    return options[0]


def live_url(ticker: str) -> str | None:
    """The issuer's public GET URL for `ticker`, or None when there is none (QQQ, VTWO: mirror only)."""
    own = listing(ticker)
    if not own.published:
        return None
    if own.layout == ISHARES_XML:
        return ishares.url(ticker)
    return SSGA_URL.format(ticker=ticker.lower())


def url(ticker: str, layout: str | None = None) -> str:
    """The live URL of `ticker` (layout None: its issuer's file; NAVHIST_XLSX: the SSGA workbook, which SSGA serves
    for SPDR funds only). A mirror-only ticker answers the page its file is downloaded from by hand, which the
    ingest never fetches (`live_url` is None for it)."""
    if layout is None:
        return live_url(ticker) or MANUAL_PAGES.get(ticker.upper(), SSGA_URL.format(ticker=ticker.lower()))
    kind = listing(ticker, layout).layout
    if kind == FUND_DETAILS_JSON:
        raise SourceError(SOURCE, mirror_name(ticker, layout),
                          f"no public GET URL: the fund-details JSON comes from a keyed POST API ({ETFCOM_API}); "
                          "place the file in the mirror")
    if kind == ISHARES_XML:
        return ishares.url(ticker)
    return SSGA_URL.format(ticker=ticker.lower())


def parse(data: bytes, location: str, ticker: str, today: date | None = None) -> pd.DataFrame:
    """Parse either layout, told apart by content (zip container -> workbook, '{' -> JSON)."""
    head = data[:64].lstrip()
    if ishares.looks_like_spreadsheetml(data):
        return ishares.parse(data, location, ticker, today=today)
    if head.startswith(b"PK"):
        return parse_navhist_xlsx(data, location, ticker, today=today)
    if head.startswith((b"{", b"\xef\xbb\xbf{")):
        return parse_invesco_json(data, location, ticker, today=today)
    return parse_navhist_xlsx(data, location, ticker, today=today)  # names the problem (HTML, not a zip, ...)


# ---------------------------------------------------------------------------------------------- SSGA workbook


def parse_navhist_xlsx(data: bytes, location: str, ticker: str, today: date | None = None) -> pd.DataFrame:
    """Parse one SSGA ``navhist-us-en-<ticker>.xlsx`` into typed rows, or raise SourceError naming the problem."""

    def fail(problem: str) -> SourceError:
        return SourceError(SOURCE, location, problem)

    if not data.strip():
        raise fail("empty file")
    if looks_like_html(data):
        raise fail("an HTML page, not an xlsx workbook")
    if not data.startswith(b"PK\x03\x04"):
        raise fail(f"not an xlsx workbook (no zip signature; starts {data[:16]!r})")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            if "xl/workbook.xml" not in {m.filename for m in members}:
                raise fail("a zip file but not an xlsx workbook (no xl/workbook.xml)")
            if sum(m.file_size for m in members) > MAX_UNZIPPED:
                raise fail(f"unzips to more than {MAX_UNZIPPED // 2**20} MB: not a NAV-history workbook")
            damaged = archive.testzip()
        if damaged is not None:
            raise fail(f"damaged zip container (bad CRC in {damaged})")
    except SourceError:
        raise
    except Exception as exc:  # zipfile raises several types for truncated or corrupt containers
        raise fail(f"truncated or damaged zip container ({type(exc).__name__}: {exc})") from None
    sheets = _read_sheets(data, fail)
    if not sheets:
        raise fail("no worksheet in the workbook")

    located = next(((title, rows, hit) for title, rows in sheets if (hit := _find_header(rows)) is not None), None)
    if located is None:
        raise fail(f"no header row ({', '.join(h.title() for h in NAVHIST_HEADER)}) in the first "
                   f"{HEADER_SCAN_ROWS} rows of sheet(s) {[t for t, _ in sheets]}")
    title, rows, (h, names) = located
    missing = [c for c in NAVHIST_HEADER[:3] if c not in names]
    if missing:
        shown = [c for c in rows[h] if c is not None]
        raise fail(f"header drift in sheet {title!r} row {h + 1}: missing column(s) {missing}; header is {shown}")
    col = {name: names.index(name) for name in NAVHIST_HEADER[:3]}

    labelled = _preamble_ticker(rows[:h])
    if labelled is not None and _bare(labelled) != _bare(ticker):
        raise fail(f"the workbook is for {labelled!r}, not {ticker.upper()}")

    records: list[tuple[date, float, float]] = []
    footer = False
    for n, row in enumerate(rows[h + 1:], start=h + 2):
        if all(_blank(c) for c in row):
            footer = footer or bool(records)
            continue
        cells = [row[i] if i < len(row) else None for i in (col["date"], col["nav"], col["shares outstanding"])]
        day = _cell_date(cells[0])
        if day is None:
            if footer or all(_blank(c) for c in cells[1:]):
                footer = True  # disclaimer text in the date column
                continue
            raise fail(f"row {n}: date {cells[0]!r} is neither DD-Mon-YYYY text nor an Excel date")
        if footer:
            raise fail(f"row {n}: a data row ({day.isoformat()}) after the blank row that starts the footer")
        nav = _cell_number(cells[1])
        if nav is None or math.isnan(nav):
            raise fail(f"row {n} ({day.isoformat()}): NAV {cells[1]!r} is not a number")
        shares = _cell_number(cells[2])
        if shares is None:
            raise fail(f"row {n} ({day.isoformat()}): shares outstanding {cells[2]!r} is not a number")
        records.append((day, nav, shares))
    if not records:
        raise fail(f"no data rows under the header in sheet {title!r}")
    return finish(records, ticker, fail, today)


def _read_sheets(data: bytes, fail) -> list[tuple[str, list[tuple]]]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
            try:
                return [(ws.title, list(ws.iter_rows(values_only=True))) for ws in book.worksheets]
            finally:
                book.close()
    except Exception as exc:  # openpyxl surfaces corrupt parts as many exception types
        raise fail(f"unreadable xlsx workbook ({type(exc).__name__}: {exc})") from None


def _find_header(rows: list[tuple]) -> tuple[int, list[str]] | None:
    for i, row in enumerate(rows[:HEADER_SCAN_ROWS]):
        names = [_label(c) for c in row]
        if sum(1 for c in NAVHIST_HEADER if c in names) >= 2:
            return i, names
    return None


def _preamble_ticker(rows: list[tuple]) -> str | None:
    for row in rows:
        cells = [c for c in row if not _blank(c)]
        if len(cells) >= 2 and _label(cells[0]).startswith("ticker"):
            return str(cells[1]).strip()
    return None


def _label(cell) -> str:
    return re.sub(r"\s+", " ", str(cell)).strip().rstrip(":").lower() if cell is not None else ""


def _bare(ticker: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", ticker.upper())


def _blank(cell) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip())


def _cell_date(cell) -> date | None:
    if isinstance(cell, datetime):
        return cell.date()
    if isinstance(cell, date):
        return cell
    if isinstance(cell, (int, float)) and not isinstance(cell, bool):
        if not (1 <= cell < 2958466) or cell != cell:
            return None
        value = from_excel(cell)
        return value.date() if isinstance(value, datetime) else None
    if isinstance(cell, str):
        match = TEXT_DATE.match(cell.strip())
        if match and match.group(2).lower() in MONTHS:
            try:
                return date(int(match.group(3)), MONTHS[match.group(2).lower()], int(match.group(1)))
            except ValueError:
                return None
    return None


def _cell_number(cell) -> float | None:
    """A float; NaN for blank or '-' (unpublished); None when the cell is not a number."""
    if _blank(cell):
        return float("nan")
    if isinstance(cell, bool):
        return None
    if isinstance(cell, (int, float)):
        try:
            return float(cell)
        except OverflowError:  # an integer cell too large for a float
            return float("inf")
    if isinstance(cell, str):
        text = cell.strip()
        if text in ("-", "--", "n/a", "N/A"):
            return float("nan")
        try:
            return float(text)
        except ValueError:
            return None
    return None


# ----------------------------------------------------------------------------------------- fund-details JSON


def parse_invesco_json(data: bytes, location: str, ticker: str, today: date | None = None) -> pd.DataFrame:
    """Parse one fund-details JSON (``data.fundFlowsData.data`` entries) into typed rows, or raise SourceError."""

    def fail(problem: str) -> SourceError:
        return SourceError(SOURCE, location, problem)

    if not data.strip():
        raise fail("empty file")
    if looks_like_html(data):
        raise fail("an HTML page, not a JSON document")
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise fail(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (ValueError, RecursionError) as exc:
        raise fail(f"not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise fail(f"expected a JSON object at the top level, got {type(doc).__name__}")
    labelled = doc.get("ticker")
    if labelled is not None and _bare(str(labelled)) != _bare(ticker):
        raise fail(f"the document is for {labelled!r}, not {ticker.upper()}")
    entries = doc
    for key in ("data", "fundFlowsData", "data"):
        entries = entries.get(key) if isinstance(entries, dict) else None
    if not isinstance(entries, list):
        raise fail(f"no data.fundFlowsData.data list (layout changed?); top-level keys are {sorted(doc)[:10]}")
    if not entries:
        raise fail("no data rows in data.fundFlowsData.data")

    records: list[tuple[date, float, float]] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise fail(f"entry {i} is a {type(entry).__name__}, not an object")
        missing = [k for k in FUND_DETAILS_KEYS if k not in entry]
        if missing:
            raise fail(f"entry {i}: missing key(s) {missing} (field names changed?); keys are {sorted(entry)[:12]}")
        raw = entry["navDate"]
        match = ISO_DATE.match(raw.strip()) if isinstance(raw, str) else None
        try:
            day = date(int(match.group(1)), int(match.group(2)), int(match.group(3))) if match else None
        except ValueError:
            day = None
        if day is None:
            raise fail(f"entry {i}: navDate {raw!r} is not YYYY-MM-DD")
        nav = _json_number(entry["nav"])
        if nav is None:
            raise fail(f"entry {i} ({day.isoformat()}): NAV {entry['nav']!r} is not a number")
        shares = float("nan") if entry["sharesOutstanding"] is None else _json_number(entry["sharesOutstanding"])
        if shares is None:
            raise fail(f"entry {i} ({day.isoformat()}): sharesOutstanding {entry['sharesOutstanding']!r} is not a "
                       "number")
        records.append((day, nav, shares))
    return finish(records, ticker, fail, today)


parse_fund_details_json = parse_invesco_json  # the layout's accurate name (see the module docstring)


def _json_number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:  # a JSON integer too large for a float
        return float("inf")
