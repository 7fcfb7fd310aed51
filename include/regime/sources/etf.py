"""ETF NAV and shares outstanding, daily, in two published layouts.

Both parse to the canonical frame (date, ticker, nav, shares_outstanding), sorted by date with unique dates;
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
   (shares_t - shares_t-1) x NAV_t-1; on the sample that formula matches the published figure within 1 % on
   99.9 % of days, median difference $0). That API is a keyed POST, so this layout has no GET URL here: the
   file is placed in the mirror. Entries come in no particular order; market holidays may appear as rows
   repeating the previous day (the parser keeps them); the inception day may have a null share count (NaN).

Mirror layout: ``etf/<issuer>/<file as published>``:

* ``etf/ssga/navhist-us-en-<ticker>.xlsx`` (lower-case ticker, SSGA's own file name);
* ``etf/etfcom/fund-details-<ticker>.json``.

`LISTINGS` says which layout each ticker is read in. Only SPY has a real issuer file among the defaults
(IWM/IJR/IVV are iShares, VTWO Vanguard, QQQ Invesco, whose own downloads are not supported here): every other
ticker defaults to the SSGA workbook layout, which is what the bundled SYNTHETIC sample uses for all six.
"""

from __future__ import annotations

import io
import json
import math
import re
import warnings
import zipfile
from dataclasses import dataclass
from datetime import date, datetime

import pandas as pd
from openpyxl import load_workbook
from openpyxl.utils.datetime import from_excel

from regime.sources.errors import SourceError
from regime.sources.fetch import looks_like_html

SOURCE = "etf"
TICKERS = ("IWM", "IJR", "VTWO", "SPY", "IVV", "QQQ")
SMALL_CAP = ("IWM", "IJR", "VTWO")
LARGE_CAP = ("SPY", "IVV", "QQQ")
COLUMNS = ["date", "ticker", "nav", "shares_outstanding"]

NAVHIST_XLSX = "ssga-navhist-xlsx"
FUND_DETAILS_JSON = "fund-details-json"
SSGA_URL = ("https://www.ssga.com/us/en/intermediary/etfs/library-content/products/fund-data/etfs/us/"
            "navhist-us-en-{ticker}.xlsx")
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


LISTINGS = {"SPY": Listing("ssga", NAVHIST_XLSX, published=True)}
DEFAULT_LISTING = Listing("ssga", NAVHIST_XLSX, published=False)
LAYOUTS = {NAVHIST_XLSX: Listing("ssga", NAVHIST_XLSX, published=True),
           FUND_DETAILS_JSON: Listing("etfcom", FUND_DETAILS_JSON, published=True)}


def listing(ticker: str, layout: str | None = None) -> Listing:
    """How `ticker` is read: its entry in `LISTINGS` (SSGA workbook layout by default), or `layout` if given."""
    if layout is not None:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; expected one of {sorted(LAYOUTS)}")
        return LAYOUTS[layout]
    return LISTINGS.get(ticker.upper(), DEFAULT_LISTING)


def folder(ticker: str, layout: str | None = None) -> str:
    return f"etf/{listing(ticker, layout).issuer}"


def file_name(ticker: str, layout: str | None = None) -> str:
    if listing(ticker, layout).layout == FUND_DETAILS_JSON:
        return f"fund-details-{ticker.lower()}.json"
    return f"navhist-us-en-{ticker.lower()}.xlsx"


def mirror_name(ticker: str, layout: str | None = None) -> str:
    """Path relative to the mirror root, e.g. etf/ssga/navhist-us-en-iwm.xlsx."""
    return f"{folder(ticker, layout)}/{file_name(ticker, layout)}"


def url(ticker: str, layout: str | None = None) -> str:
    """The live URL. SSGA answers only for SPDR funds (404, i.e. SourceMissing, for the others)."""
    if listing(ticker, layout).layout == FUND_DETAILS_JSON:
        raise SourceError(SOURCE, mirror_name(ticker, layout),
                          f"no public GET URL: the fund-details JSON comes from a keyed POST API ({ETFCOM_API}); "
                          "place the file in the mirror")
    return SSGA_URL.format(ticker=ticker.lower())


def parse(data: bytes, location: str, ticker: str, today: date | None = None) -> pd.DataFrame:
    """Parse either layout, told apart by content (zip container -> workbook, '{' -> JSON)."""
    head = data[:64].lstrip()
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
    return _finish(records, ticker, fail, today)


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
    return _finish(records, ticker, fail, today)


parse_fund_details_json = parse_invesco_json  # the layout's accurate name (see the module docstring)


def _json_number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:  # a JSON integer too large for a float
        return float("inf")


# ------------------------------------------------------------------------------------------------------ both


def _finish(records: list[tuple[date, float, float]], ticker: str, fail, today: date | None) -> pd.DataFrame:
    frame = pd.DataFrame(records, columns=["date", "nav", "shares_outstanding"])
    frame["nav"] = frame["nav"].astype("float64")
    frame["shares_outstanding"] = frame["shares_outstanding"].astype("float64")

    def first(mask: pd.Series) -> str:
        return frame.loc[mask, "date"].iloc[0].isoformat()

    bad = ~frame["nav"].abs().lt(float("inf"))
    if bad.any():
        raise fail(f"NAV {frame.loc[bad, 'nav'].iloc[0]} on {first(bad)} is not a finite number")
    bad = frame["nav"] <= 0
    if bad.any():
        raise fail(f"NAV {frame.loc[bad, 'nav'].iloc[0]} on {first(bad)} is not positive")
    shares = frame["shares_outstanding"]
    bad = shares.notna() & ~shares.abs().lt(float("inf"))
    if bad.any():
        raise fail(f"shares outstanding {shares[bad].iloc[0]} on {first(bad)} is not a finite number")
    bad = shares < 0
    if bad.any():
        raise fail(f"shares outstanding {shares[bad].iloc[0]:.0f} on {first(bad)} is negative")

    frame = frame.drop_duplicates()  # a day listed twice with the same figures is harmless
    dup = frame["date"].duplicated(keep=False)
    if dup.any():
        days = sorted({d.isoformat() for d in frame.loc[dup, "date"]})
        raise fail(f"conflicting rows for the same date(s) {days[:5]}" + (" ..." if len(days) > 5 else ""))
    frame = frame.sort_values("date").reset_index(drop=True)
    limit = today or date.today()
    if frame["date"].iloc[-1] > limit:
        raise fail(f"date {frame['date'].iloc[-1].isoformat()} is in the future (today is {limit.isoformat()})")
    frame.insert(1, "ticker", pd.Series([ticker.upper()] * len(frame), dtype="str"))
    return frame[COLUMNS]
