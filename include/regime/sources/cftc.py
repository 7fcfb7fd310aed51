"""CFTC Commitments of Traders: Traders in Financial Futures (TFF), futures only.

Two ways to obtain the same weekly numbers:

* the yearly history zip `fut_fin_txt_<YYYY>.zip`, holding one comma-separated text file `FinFutYY.txt`
  (a header row, then one row per market and report date, all markets of the year, newest first);
* the CFTC public reporting (Socrata) API, dataset `gpe5-46if`: a JSON list of objects whose values are
  all strings, dates like `2024-08-20T00:00:00.000`.

Both parse to the same canonical frame, one row per (report_date, market_code), filtered to `markets`.
Contract market codes are always text ("13874A", "090741"): never numbers, never stripped of letters or
leading zeros.

Field names differ between the two: the API drops the `_all` suffix of the asset manager, leveraged money
and other reportable positions (`lev_money_positions_long`) but keeps it for the dealer and non-reportable
ones (`dealer_positions_long_all`). The canonical frame uses the API names.

Every problem raises SourceError(source, location, problem). Two documented leniencies:

* rows of markets not in `markets` are only checked for their width (so an odd value in a market we do not
  use does not fail the year), and a requested market absent from the file is logged, not fatal (markets
  come and go over the years); a file with none of them fails;
* identical duplicated (report_date, market_code) rows are dropped with a warning; conflicting ones fail.

It stays one file (about 490 lines): one source, its URLs and release calendar and its two layouts of the same
numbers, which share their checks (header, dates, market codes, duplicates) and end in the same frame.
"""

from __future__ import annotations

import csv
import difflib
import functools
import io
import json
import logging
import lzma
import re
import struct
import zipfile
import zlib
from collections.abc import Iterable
from datetime import date, datetime, time
from urllib.parse import quote

import pandas as pd
from pandas.tseries.holiday import USFederalHolidayCalendar
from pandas.tseries.offsets import CustomBusinessDay

from regime.sources.errors import SourceError
from regime.sources.fetch import looks_like_html, refuse_future

log = logging.getLogger(__name__)

SOURCE = "cftc"
ZIP_URL = "https://www.cftc.gov/files/dea/history/fut_fin_txt_{year}.zip"
DATASET = "gpe5-46if"  # TFF futures only; gpe5-46if's sibling yw9f-hn96 is futures-and-options combined
API_URL = f"https://publicreporting.cftc.gov/resource/{DATASET}.json"
API_LIMIT = 50_000

MARKETS = ("13874A", "239742", "209742")
MARKET_LABELS = {"13874A": "E-mini S&P 500", "239742": "Russell E-mini", "209742": "Nasdaq mini"}

MAX_MEMBER_BYTES = 200 * 1024 * 1024  # zip-bomb guard: the real yearly member is about 2 MB
RELEASE_BUSINESS_DAYS = 3  # see release_date()
RELEASE_TIME = time(15, 30)
RELEASE_TZ = "America/New_York"

POSITIONS = [
    "dealer_positions_long_all", "dealer_positions_short_all", "dealer_positions_spread_all",
    "asset_mgr_positions_long", "asset_mgr_positions_short", "asset_mgr_positions_spread",
    "lev_money_positions_long", "lev_money_positions_short", "lev_money_positions_spread",
    "other_rept_positions_long", "other_rept_positions_short", "other_rept_positions_spread",
    "nonrept_positions_long_all", "nonrept_positions_short_all",
]
COLUMNS = ["report_date", "release_date", "market_code", "market_name", "open_interest", *POSITIONS]
INTEGERS = ["open_interest", *POSITIONS]


def _file_name_of(position: str) -> str:
    """`lev_money_positions_long` -> `Lev_Money_Positions_Long_All` (the yearly file keeps `_All` everywhere)."""
    special = {"asset_mgr": "Asset_Mgr", "lev_money": "Lev_Money", "other_rept": "Other_Rept",
               "nonrept": "NonRept", "dealer": "Dealer"}
    group = next(g for g in special if position.startswith(g + "_"))
    side = position.removeprefix(group + "_positions_").removesuffix("_all")
    return f"{special[group]}_Positions_{side.capitalize()}_All"


# canonical column -> header of FinFutYY.txt
FILE_FIELDS = {
    "report_date": "Report_Date_as_YYYY-MM-DD",
    "market_code": "CFTC_Contract_Market_Code",
    "market_name": "Market_and_Exchange_Names",
    "open_interest": "Open_Interest_All",
    **{p: _file_name_of(p) for p in POSITIONS},
}
FILE_ALIASES = {"Report_Date_as_YYYY-MM-DD": ("Report_Date_as_MM_DD_YYYY",)}  # older CFTC headers
FILE_AS_OF = "As_of_Date_In_Form_YYMMDD"
FILE_KIND = "FutOnly_or_Combined"

# canonical column -> field of the Socrata API
API_FIELDS = {
    "report_date": "report_date_as_yyyy_mm_dd",
    "market_code": "cftc_contract_market_code",
    "market_name": "market_and_exchange_names",
    "open_interest": "open_interest_all",
    **{p: p for p in POSITIONS},
}
API_KIND = "futonly_or_combined"
FUTURES_ONLY = "FutOnly"

_CODE = re.compile(r"[0-9A-Za-z+]{1,12}")
_INT = re.compile(r"[+-]?\d{1,19}")
_API_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})(?:T00:00:00(?:\.0+)?)?")
_INT64_MAX = 2**63 - 1
# What zipfile and its decompressors raise on corrupt input (besides BadZipFile).
_ZIP_ERRORS = (zipfile.BadZipFile, OSError, EOFError, ValueError, struct.error, NotImplementedError,
               RuntimeError, zlib.error, lzma.LZMAError, OverflowError, IndexError, KeyError)


def file_name(year: int) -> str:
    return f"fut_fin_txt_{year}.zip"


def zip_url(year: int) -> str:
    return ZIP_URL.format(year=year)


def api_url(markets: Iterable[str] = MARKETS, start: date | None = None, end: date | None = None,
            limit: int = API_LIMIT) -> str:
    """URL of a Socrata query for `markets` with report dates in [start, end] (inclusive), oldest first.

    The SoQL is percent-encoded (spaces as %20, quotes as %27); the `$` of the parameter names is kept.
    Codes are validated, so nothing a caller passes can change the query.
    """
    codes = _codes(markets)
    for code in codes:
        if not _CODE.fullmatch(code):
            raise ValueError(f"not a CFTC contract market code: {code!r}")
    where = f"{API_FIELDS['market_code']} in(" + ",".join(f"'{c}'" for c in codes) + ")"
    if start is not None:
        where += f" AND {API_FIELDS['report_date']} >= '{start.isoformat()}T00:00:00.000'"
    if end is not None:
        where += f" AND {API_FIELDS['report_date']} <= '{end.isoformat()}T00:00:00.000'"
    params = {
        "$where": where,
        "$order": f"{API_FIELDS['report_date']},{API_FIELDS['market_code']}",
        "$limit": str(int(limit)),
    }
    return API_URL + "?" + "&".join(f"{key}={quote(value, safe='')}" for key, value in params.items())


@functools.cache
def _release_offset() -> CustomBusinessDay:
    return CustomBusinessDay(n=RELEASE_BUSINESS_DAYS, calendar=USFederalHolidayCalendar())


def release_date(report_date: date) -> date:
    """The day the CFTC publishes the report with this as-of (report) date, at 3:30 pm Eastern.

    Rule: three business days after the as-of date, business days being Monday-Friday except US federal
    holidays (pandas' USFederalHolidayCalendar, observed dates). So:

    * the usual Tuesday as-of date is released on Friday (2024-07-09 -> Fri 2024-07-12);
    * a federal holiday on the Wednesday, Thursday or Friday after it pushes the release one business day,
      to Monday: July 4th (2024-07-02 -> Mon 2024-07-08), Thanksgiving (2024-11-26 -> Mon 2024-12-02),
      Juneteenth (2024-06-18 -> Mon 2024-06-24), Christmas (2024-12-24 -> Mon 2024-12-30), New Year;
    * a Monday holiday (MLK, Presidents', Memorial, Labor, Columbus Day; Veterans Day some years) comes
      BEFORE the Tuesday as-of date and delays nothing (2024-01-16, MLK week -> Fri 2024-01-19);
    * when the Tuesday itself is a holiday the CFTC uses Monday data (as-of 2025-11-10 for Veterans Day),
      and Monday + 3 business days is again the Friday (2025-11-14).

    Checked against the CFTC's published schedule for 2024 (cftc.gov "Commitments of Traders release
    schedule": delayed dates 24 Jun, 8 Jul, 2 Dec, 30 Dec) and the original dates in its November 2025
    post-shutdown schedule. Not modelled: ad-hoc closures by executive order (e.g. 9 Jan 2025) and the
    catch-up schedules after government shutdowns (Oct-Nov 2013, Dec 2018-Jan 2019, Oct-Nov 2025); the
    CFTC notes holidays "may delay release by one or two days".
    """
    return (pd.Timestamp(report_date) + _release_offset()).date()


def release_timestamp(report_date: date) -> pd.Timestamp:
    """release_date() at 3:30 pm America/New_York (timezone-aware): when the numbers become public."""
    return pd.Timestamp(datetime.combine(release_date(report_date), RELEASE_TIME), tz=RELEASE_TZ)


def parse_zip(data: bytes, location: str, markets: Iterable[str] = MARKETS,
              today: date | None = None) -> pd.DataFrame:
    """Parse a yearly `fut_fin_txt_<YYYY>.zip` into the canonical frame, or raise SourceError."""

    def fail(problem: str) -> SourceError:
        return SourceError(SOURCE, location, problem)

    member, text = _read_member(data, fail)
    wanted = set(_codes(markets))
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        header: list[str] | None = None
        for row in reader:
            if any(cell.strip() for cell in row):
                header = [h.strip() for h in row]
                break
        if header is None:
            raise fail(f"{member} is empty")
        index = _file_header_index(header, member, fail)
        width = len(header)
        as_of = header.index(FILE_AS_OF) if FILE_AS_OF in header else None
        kind = header.index(FILE_KIND) if FILE_KIND in header else None
        records: list[dict[str, str]] = []
        where: list[str] = []
        others = 0
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            here = f"{member} line {reader.line_num}"
            if len(row) != width:
                raise fail(f"{here} has {len(row)} fields, expected {width} (truncated or corrupt file?)")
            if row[index["market_code"]].strip() not in wanted:
                others += 1
                continue
            if kind is not None and row[kind].strip() != FUTURES_ONLY:
                raise fail(f"{here}: {FILE_KIND} is {row[kind].strip()!r}: a futures-and-options combined "
                           f"report, expected the futures-only {FUTURES_ONLY!r} file")
            record = {col: row[i] for col, i in index.items()}
            if as_of is not None:
                _check_as_of(row[as_of], record["report_date"], here, fail)
            records.append(record)
            where.append(here)
    except csv.Error as exc:
        raise fail(f"{member} is not readable CSV: {exc}") from None
    if not records:
        if not others:
            raise fail(f"{member} has a header but no data rows")
        raise fail(f"none of the markets {sorted(wanted)} in {member} ({others} rows of other markets): "
                   "contract codes changed?")
    return _finish(records, where, wanted, today, fail)


def parse_api(data: bytes, location: str, markets: Iterable[str] = MARKETS,
              today: date | None = None, limit: int | None = None) -> pd.DataFrame:
    """Parse a Socrata JSON response of dataset gpe5-46if into the canonical frame, or raise SourceError.

    An empty list is a valid answer (no report in the requested range yet): it gives an empty frame.
    Socrata leaves out the keys of null values, so a field missing from every record means the field was
    renamed (header drift), while one missing from some records is a null value: both fail.
    Socrata silently stops at `$limit` records: pass the query's `limit` and a full page fails instead of
    being taken for the whole answer (narrow the date range, or page with `$offset`).
    """

    def fail(problem: str) -> SourceError:
        return SourceError(SOURCE, location, problem)

    if not data.strip():
        raise fail("empty response")
    if looks_like_html(data):
        raise fail("an HTML page, not a JSON response")
    try:
        payload = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise fail(f"not JSON: {str(exc)[:200]}") from None
    if isinstance(payload, dict):
        message = payload.get("message") or payload.get("error") or payload.get("code")
        if message is not None:
            raise fail(f"API error response: {str(message)[:300]}")
        raise fail(f"a JSON object with keys {sorted(payload)[:10]}, expected a list of records")
    if not isinstance(payload, list):
        raise fail(f"JSON {type(payload).__name__}, expected a list of records")
    if limit is not None and len(payload) >= limit:
        raise fail(f"{len(payload)} records, the query's $limit: the answer is probably cut short")
    for i, item in enumerate(payload):
        if not isinstance(item, dict):
            raise fail(f"record {i} is a JSON {type(item).__name__}, not an object")

    seen = set().union(*payload) if payload else set()
    missing = [f for f in API_FIELDS.values() if f not in seen]
    if payload and missing:
        raise fail(f"header drift: field(s) {_with_hints(missing, seen)} missing from every record "
                   "(renamed upstream? note the API drops `_all` for asset_mgr, lev_money and other_rept)")
    wanted = set(_codes(markets))
    records: list[dict[str, str]] = []
    where: list[str] = []
    for i, item in enumerate(payload):
        here = f"record {i}"
        record: dict[str, str] = {}
        for col, field in API_FIELDS.items():
            value = item.get(field)
            if value is None:
                raise fail(f"{here}: no value for {field} (null)")
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise fail(f"{here}: {field} is a JSON {type(value).__name__} ({str(value)[:40]}), "
                           "expected a string")
            if col in ("market_code", "market_name", "report_date") and not isinstance(value, str):
                raise fail(f"{here}: {field} is a JSON number ({value}), expected a string")
            record[col] = str(value)
        if record["market_code"].strip() not in wanted:
            continue
        kind = item.get(API_KIND)
        if kind is not None and str(kind).strip() != FUTURES_ONLY:
            raise fail(f"{here}: {API_KIND} is {str(kind)[:40]!r}: a futures-and-options combined dataset, "
                       f"expected the futures-only {DATASET}")
        records.append(record)
        where.append(here)
    if not records:
        if payload:
            log.warning("%s: %s: %d records, none for markets %s", SOURCE, location, len(payload), sorted(wanted))
        return _empty()
    return _finish(records, where, wanted, today, fail)


# ---------------------------------------------------------------------------------------------------------


def _codes(markets: Iterable[str]) -> tuple[str, ...]:
    if isinstance(markets, str):
        markets = (markets,)
    codes = tuple(str(m).strip() for m in markets)
    if not codes:
        raise ValueError("no markets given")
    return codes


def _read_member(data: bytes, fail) -> tuple[str, str]:
    """The name and text of the single .txt member, after the zip checks."""
    if not data:
        raise fail("empty file (0 bytes)")
    if looks_like_html(data):
        raise fail("an HTML page (an error page served with HTTP 200?), not a zip archive")
    if not data.startswith(b"PK"):
        raise fail(f"not a zip archive (starts with {data[:16]!r})")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except _ZIP_ERRORS as exc:
        raise fail(f"truncated or corrupt zip archive ({len(data)} bytes): {exc}") from None
    names = [info.filename for info in infos]
    if not infos:
        raise fail("zip archive has no member, expected FinFutYY.txt")
    for name in names:
        if "/" in name or "\\" in name or ".." in name or ":" in name:
            raise fail(f"unsafe zip member name {name!r} (path separator or '..')")
    if len(infos) > 1:
        raise fail(f"zip archive has {len(infos)} members {names[:5]}, expected the single FinFutYY.txt")
    info = infos[0]
    if not info.filename.lower().endswith(".txt"):
        raise fail(f"unexpected zip member {info.filename!r}, expected FinFutYY.txt")
    if info.file_size > MAX_MEMBER_BYTES:
        raise fail(f"zip member {info.filename} declares {info.file_size:,} bytes uncompressed, over the "
                   f"{MAX_MEMBER_BYTES:,}-byte limit (zip bomb?)")
    try:
        with archive.open(info) as member:
            raw = member.read(MAX_MEMBER_BYTES + 1)
    except _ZIP_ERRORS as exc:
        raise fail(f"zip member {info.filename} cannot be read (truncated or corrupt archive): {exc}") from None
    if len(raw) > MAX_MEMBER_BYTES:
        raise fail(f"zip member {info.filename} inflates past {MAX_MEMBER_BYTES:,} bytes (zip bomb?)")
    if not raw.strip():
        raise fail(f"{info.filename} is empty")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        log.warning("%s: %s is not UTF-8, reading it as Latin-1", SOURCE, info.filename)
        text = raw.decode("latin-1")
    return info.filename, text


def _file_header_index(header: list[str], member: str, fail) -> dict[str, int]:
    index: dict[str, int] = {}
    missing: list[str] = []
    for col, name in FILE_FIELDS.items():
        found = [n for n in (name, *FILE_ALIASES.get(name, ())) if n in header]
        if not found:
            missing.append(name)
            continue
        if header.count(found[0]) > 1:
            raise fail(f"{member}: header has column {found[0]!r} {header.count(found[0])} times")
        index[col] = header.index(found[0])
    if missing:
        raise fail(f"{member}: header drift: missing column(s) {_with_hints(missing, header)}")
    return index


def _with_hints(missing: list[str], available: Iterable[str]) -> str:
    available = list(available)
    parts = []
    for name in missing:
        close = difflib.get_close_matches(name, available, n=1, cutoff=0.8)
        parts.append(f"{name!r} (closest present: {close[0]!r})" if close else repr(name))
    return ", ".join(parts)


def _parse_date(value: str) -> date | None:
    value = value.strip()
    match = _API_DATE.fullmatch(value)
    try:
        if match:
            return date.fromisoformat(match.group(1))
        if re.fullmatch(r"\d{2}/\d{2}/\d{4}", value):
            return datetime.strptime(value, "%m/%d/%Y").date()
    except ValueError:
        return None
    return None


def _check_as_of(as_of: str, report: str, here: str, fail) -> None:
    report_day = _parse_date(report)
    try:
        as_of_day = datetime.strptime(as_of.strip(), "%y%m%d").date()
    except ValueError:
        raise fail(f"{here}: {FILE_AS_OF} {as_of!r} is not YYMMDD") from None
    if report_day is not None and as_of_day != report_day:
        raise fail(f"{here}: {FILE_AS_OF} {as_of.strip()} disagrees with report date {report.strip()}")


def _parse_int(value: str) -> int | None:
    value = value.strip()
    if not _INT.fullmatch(value):
        return None
    number = int(value)
    return number if abs(number) <= _INT64_MAX else None


def _empty() -> pd.DataFrame:
    frame = pd.DataFrame({
        "report_date": pd.Series([], dtype=object),
        "release_date": pd.Series([], dtype=object),
        "market_code": pd.Series([], dtype=str),
        "market_name": pd.Series([], dtype=str),
        **{col: pd.Series([], dtype="int64") for col in INTEGERS},
    })
    return frame[COLUMNS]


def _finish(records: list[dict[str, str]], where: list[str], wanted: set[str], today: date | None,
            fail) -> pd.DataFrame:
    """Type, validate, de-duplicate and sort the selected rows (the same for both formats)."""
    columns: dict[str, list] = {col: [] for col in COLUMNS if col != "release_date"}
    for record, here in zip(records, where, strict=True):
        day = _parse_date(record["report_date"])
        if day is None:
            raise fail(f"{here}: report date {record['report_date']!r} is not YYYY-MM-DD")
        name = record["market_name"].strip()
        if not name:
            raise fail(f"{here}: empty market name")
        columns["report_date"].append(day)
        columns["market_code"].append(record["market_code"].strip())
        columns["market_name"].append(name)
        for col in INTEGERS:
            number = _parse_int(record[col])
            if number is None:
                raise fail(f"{here}: {col} value {record[col]!r} is not a whole number")
            if number < 0:
                raise fail(f"{here}: {col} value {number} is negative")
            columns[col].append(number)

    frame = pd.DataFrame({
        "report_date": pd.Series(columns["report_date"], dtype=object),
        "release_date": pd.Series([release_date(d) for d in columns["report_date"]], dtype=object),
        "market_code": pd.Series(columns["market_code"], dtype=str),
        "market_name": pd.Series(columns["market_name"], dtype=str),
        **{col: pd.Series(columns[col], dtype="int64") for col in INTEGERS},
    })[COLUMNS]

    key = ["report_date", "market_code"]
    dup = frame.duplicated(key, keep=False)
    if dup.any():
        conflicting = frame[dup].drop_duplicates().duplicated(key, keep=False)
        if conflicting.any():
            rows = frame[dup].drop_duplicates()[conflicting]
            first = rows.iloc[0]
            lines = [where[i] for i in frame.index[dup & (frame["report_date"] == first["report_date"])
                                                   & (frame["market_code"] == first["market_code"])]]
            raise fail(f"conflicting duplicated rows for {len(rows[key].drop_duplicates())} (report_date, "
                       f"market_code) pair(s), e.g. {first['report_date'].isoformat()} {first['market_code']} "
                       f"at {', '.join(lines[:3])}")
        dropped = int(frame.duplicated(key).sum())
        log.warning("%s: dropped %d identical duplicated row(s), e.g. %s", SOURCE, dropped,
                    where[int(frame.index[frame.duplicated(key)][0])])
        frame = frame.drop_duplicates(key)

    refuse_future(max(frame["report_date"]), fail, today, what="report date")
    absent = sorted(wanted - set(frame["market_code"]))
    if absent:
        log.warning("%s: no rows for market(s) %s", SOURCE, absent)
    return frame.sort_values(key, kind="stable").reset_index(drop=True)
