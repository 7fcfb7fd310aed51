"""OCC options volume by underlying: the daily "volume query" of marketdata.theocc.com.

One GET per underlying and day answers a CSV with one row per option root, account type, call/put and
exchange::

    quantity,underlying,symbol,actype,porc,exchange,actdate
    1610,SPY,SPY,C,C,CBOE,07/02/2026,

Observed upstream conventions (from live captures quoted in public code; no real file is in the reference
set): CRLF line endings; the header has 7 names but each data row of the per-underlying query ends with a
trailing comma (8 fields, the last empty); `actdate` is MM/DD/YYYY; quantities are plain integers (no
thousands separators, no decimals); `actype` is C customer, F firm, M market maker; `porc` is C or P.

OCC counts both sides of every trade (each contract appears once for the buyer's account type and once for
the seller's), so the quantities are *sides*; summed per `porc` they are about twice the contracts traded.
`parse` keeps them as OCC states them. A row repeated exactly (every field) is an error, never summed twice.

Answers that are not the CSV come back with HTTP 200 and a short text body:

* ``No record(s) found``: no volume for that day (weekend or holiday) -> `NoTradingData`. The caller
  decides whether that is fine (not an NYSE session) or an error (a session with no data).
* ``Report date cannot be greater than MM/DD/YYYY``: the session is not published yet (OCC publishes
  T+1, in the evening after the session at the earliest) -> `NotYetPublished`.
* ``Report date cannot be prior to  2 years``: OCC keeps a rolling ~2-year window -> `SourceError`.
* anything else (an HTML page, another message) -> `SourceError` naming what came back.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime

import pandas as pd

from regime.sources.errors import SourceError
from regime.sources.fetch import text_of

SOURCE = "occ"
URL = (
    "https://marketdata.theocc.com/volume-query?reportDate={yyyymmdd}&format=csv&volumeQueryType=O"
    "&symbolType=U&symbol={underlying}&reportType=D&accountType=ALL&productKind=ALL&porc=BOTH"
)
WATCHLIST = ("IWM", "SPY", "QQQ", "NVDA", "TSLA", "AAPL")
FOLDER = "occ/volume-query"  # mirror: occ/volume-query/<YYYY-MM-DD>/<UNDERLYING>.csv
HEADER = ["quantity", "underlying", "symbol", "actype", "porc", "exchange", "actdate"]
COLUMNS = ["date", "underlying", "call_volume", "put_volume"]

NO_RECORDS = re.compile(r"^no\s+record\(?s?\)?\s+found\.?$", re.IGNORECASE)
NOT_YET = re.compile(r"^report\s+date\s+cannot\s+be\s+greater\s+than", re.IGNORECASE)
AGED_OUT = re.compile(r"^report\s+date\s+cannot\s+be\s+prior\s+to", re.IGNORECASE)
QUANTITY = re.compile(r"^[0-9]+$")
MAX_DIGITS = 12  # one row's quantity; a whole day's volume in one name is below 10**9
MAX_MESSAGE = 200  # a longer body is not one of OCC's one-line answers


class NoTradingData(SourceError):
    """OCC has no volume for that day (its answer for weekends and holidays): skip it, unless it was a session."""


class NotYetPublished(SourceError):
    """OCC has not published that day yet (it publishes the session the next day): try again later."""


def file_name(underlying: str, day: date) -> str:
    """Path relative to `FOLDER`: one file per day and underlying, as the live query returns it."""
    return f"{day.isoformat()}/{underlying.upper()}.csv"


def mirror_name(underlying: str, day: date) -> str:
    """Path relative to the mirror root, e.g. occ/volume-query/2024-07-17/IWM.csv."""
    return f"{FOLDER}/{file_name(underlying, day)}"


def url(underlying: str, day: date) -> str:
    return URL.format(yyyymmdd=day.strftime("%Y%m%d"), underlying=underlying.upper())


def parse(data: bytes, location: str, underlying: str, day: date) -> pd.DataFrame:
    """One volume-query answer -> one row (date, underlying, call_volume, put_volume), or raise SourceError.

    Raises `NoTradingData` for OCC's no-data answer (or an empty body), `NotYetPublished` when the day is not
    out yet, and `SourceError` for anything that is not exactly this underlying's CSV for this day.
    """
    wanted = underlying.strip().upper()

    def fail(problem: str) -> SourceError:
        return SourceError(SOURCE, location, problem)

    if not data.strip():
        raise NoTradingData(SOURCE, location, f"empty body: OCC has no volume for {wanted} on {day.isoformat()}")
    text = text_of(data, fail, "the volume-query CSV")
    if "\x00" in text:
        raise fail("binary data (NUL bytes), not the volume-query CSV")

    body = text.strip()
    if "\n" not in body and "," not in body and len(body) <= MAX_MESSAGE:
        if NO_RECORDS.match(body):
            raise NoTradingData(SOURCE, location, f"OCC answered {body!r}: no volume for {wanted} on "
                                                  f"{day.isoformat()}")
        if NOT_YET.match(body):
            raise NotYetPublished(SOURCE, location, f"OCC has not published {day.isoformat()} yet: {body!r}")
        if AGED_OUT.match(body):
            raise fail(f"{day.isoformat()} is older than OCC's rolling ~2-year window: {body!r}")
        raise fail(f"OCC answered a message instead of the CSV: {body!r}")

    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise fail(f"not a readable CSV ({exc})") from None
    numbered = [(n, [cell.strip() for cell in row]) for n, row in enumerate(rows, start=1)]
    numbered = [(n, row) for n, row in numbered if any(row)]
    if not numbered:
        raise NoTradingData(SOURCE, location, f"blank body: OCC has no volume for {wanted} on {day.isoformat()}")

    header_line, header = numbered[0]
    names = [h.lower() for h in header]
    while names and names[-1] == "":  # tolerate a trailing comma on the header too
        names.pop()
    if names != HEADER:
        missing = [c for c in HEADER if c not in names]
        unexpected = [h for h in header if h and h.lower() not in HEADER]
        if not missing and not unexpected:
            raise fail(f"header columns out of order: {header}; expected {','.join(HEADER)}")
        if not set(names) & set(HEADER):
            snippet = body[:80]
            raise fail(f"not the volume-query CSV: it starts {snippet!r}")
        detail = f"missing column(s) {missing}" if missing else "column(s) added"
        if unexpected:
            detail += f", unexpected column(s) {unexpected}" + (" (renamed?)" if missing else "")
        raise fail(f"header drift: {detail}; header is {header}, expected {','.join(HEADER)}")

    body_rows = numbered[1:]
    if not body_rows:
        raise fail(f"header but no data rows for {wanted} on {day.isoformat()} (OCC's no-data answer is "
                   "'No record(s) found', so this looks cut short)")
    ends_cleanly = text.endswith(("\n", "\r"))
    width = len(HEADER)
    call = put = 0
    seen: dict[tuple[str, ...], int] = {}  # a row's fields -> the line it was first on
    for i, (lineno, row) in enumerate(body_rows):
        last = i == len(body_rows) - 1
        fields = row[:-1] if len(row) == width + 1 and row[-1] == "" else row
        if len(fields) != width:
            hint = " (truncated last line?)" if last else ""
            raise fail(f"line {lineno} has {len(row)} fields, expected {width} (or {width + 1} with a trailing "
                       f"comma){hint}: {row}")
        quantity, und, _symbol, actype, porc, _exchange, actdate = fields
        if last and not ends_cleanly and len(body_rows) > 1 and len(row) != len(body_rows[-2][1]):
            raise fail(f"line {lineno} lost its trailing comma and the file its final newline (truncated last "
                       f"line?): {row}")
        if len(quantity) > MAX_DIGITS and QUANTITY.match(quantity):
            raise fail(f"line {lineno}: quantity {quantity!r} is implausibly large")
        if not QUANTITY.match(quantity):
            if quantity.startswith("-") and QUANTITY.match(quantity[1:]):
                raise fail(f"line {lineno}: negative quantity {quantity!r}")
            if re.fullmatch(r"[0-9]{1,3}(,[0-9]{3})+", quantity):
                raise fail(f"line {lineno}: quantity {quantity!r} has thousands separators, which OCC's CSV "
                           "never uses")
            raise fail(f"line {lineno}: quantity {quantity!r} is not a whole number")
        if und.upper() != wanted:
            raise fail(f"line {lineno}: underlying {und!r}, but this file should hold {wanted} only")
        if porc not in ("C", "P"):
            raise fail(f"line {lineno}: porc {porc!r} is neither C (call) nor P (put)")
        if not actype:
            raise fail(f"line {lineno}: empty actype")
        try:
            when = datetime.strptime(actdate, "%m/%d/%Y").date()
        except ValueError:
            hint = " (truncated last line?)" if last and not ends_cleanly else ""
            raise fail(f"line {lineno}: actdate {actdate!r} is not MM/DD/YYYY{hint}") from None
        if when != day:
            raise fail(f"line {lineno}: actdate {when.isoformat()}, but this file should hold {day.isoformat()}")
        if (first := seen.setdefault(tuple(fields), lineno)) != lineno:
            raise fail(f"line {lineno}: duplicated row (the same as line {first}: {','.join(fields)}); OCC lists "
                       "each option root, account type, call/put and exchange once, so its volume would count twice")
        if porc == "C":
            call += int(quantity)
        else:
            put += int(quantity)

    return pd.DataFrame({
        "date": pd.Series([day], dtype="object"),
        "underlying": pd.Series([wanted], dtype="str"),
        "call_volume": pd.Series([call], dtype="int64"),
        "put_volume": pd.Series([put], dtype="int64"),
    })[COLUMNS]
