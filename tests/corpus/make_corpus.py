"""Generate the bad-input corpus: malformed upstream files of the four sources, and the index `cases.csv`.

    .venv/bin/python tests/corpus/make_corpus.py            # rewrites tests/corpus/<source>/ and cases.csv

Deterministic (a seeded RNG, fixed zip and workbook timestamps): running it again gives the same bytes, which
tests/test_reliability_corpus.py checks. Every file starts from a small valid file in the upstream layout (cut from
the bundled SYNTHETIC sample, or built like it) and breaks it one way. `cases.csv` says, per file, where the ingest
finds it in a mirror, what it is, and the outcome the parser and the ingest must give:

    error     the parser raises SourceError and the ingest IngestError, both containing `expect`
              (and naming the source and the file); nothing reaches the lake, the bytes are quarantined
    repaired  both accept the file; `expect` says what was repaired; the lake holds valid rows only
    gap       a known gap: accepted today although it should be an error containing `expect` (the test is an
              expected failure until the parser is fixed; docs/reliability.md lists them; none left since #9)
"""

from __future__ import annotations

import csv
import io
import json
import random
import sys
import zipfile
from datetime import date, datetime, timedelta
from pathlib import Path

from openpyxl import Workbook

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "include"))
from regime.sources.cftc import API_FIELDS, FILE_FIELDS  # noqa: E402

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parents[1]
SAMPLE = PROJECT / "include" / "sample" / "mirror"
SEED = 20240717
ZIP_TIME = (2024, 7, 19, 15, 30, 0)
BOOK_TIME = datetime(2024, 7, 17, 21, 0, 0)
HTML = (b"<!DOCTYPE html>\n<html><head><title>Just a moment...</title></head>\n"
        b"<body><p>Checking your browser before accessing the site.</p></body></html>\n")
FIELDS = ["file", "source", "mirror_path", "subject", "day", "outcome", "expect", "ingest_expect", "same_as",
          "description"]
SOURCES = ("cboe", "occ", "cftc", "etf")


class Corpus:
    def __init__(self, root: Path):
        self.root = root
        self.rows: list[dict] = []
        self.rng = random.Random(SEED)

    def add(self, source: str, name: str, data: bytes, mirror_path: str, subject: str, outcome: str, expect: str,
            description: str, day: str = "", ingest_expect: str = "") -> None:
        path = self.root / source / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        same_as = ""
        if outcome == "repaired" and any(word in expect for word in ("BOM", "sorted", "by name", "duplicate",
                                                                      "repeated", "line ends", "dropped")):
            same_as = next(r["file"] for r in self.rows if r["source"] == source and r["outcome"] == "valid")
        self.rows.append({"file": f"{source}/{name}", "source": source, "mirror_path": mirror_path,
                          "subject": subject, "day": day, "outcome": outcome, "expect": expect,
                          "ingest_expect": ingest_expect, "same_as": same_as, "description": description})

    def cut(self, data: bytes, low: float = 0.3) -> tuple[bytes, int]:
        """`data` truncated at a random byte offset in its last (1 - low) part."""
        offset = self.rng.randrange(int(len(data) * low), len(data) - 1)
        return data[:offset], offset

    def write_index(self) -> None:
        with (self.root / "cases.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=FIELDS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(self.rows)


def lines(data: bytes) -> list[str]:
    return data.decode().splitlines()


def joined(rows: list[str], eol: str = "\n") -> bytes:
    return (eol.join(rows) + eol).encode()


# ------------------------------------------------------------------------------------------------ Cboe


def cboe(c: Corpus) -> None:
    sample = lines((SAMPLE / "cboe" / "RUT_History.csv").read_bytes())
    header, body = sample[0], sample[-30:]  # DATE,OPEN,HIGH,LOW,CLOSE; 2024-06-04 .. 2024-07-17
    good = joined([header, *body])
    where, subject = "cboe/RUT_History.csv", "RUT"

    def add(name, data, outcome, expect, description):
        c.add("cboe", name, data, where, subject, outcome, expect, description)

    add("valid.csv", good, "valid", "", "the last 30 sessions of the sample's RUT history (the fuzzers' seed)")

    def edit(row: int, column: int, value: str) -> bytes:
        rows = [r.split(",") for r in body]
        rows[row][column] = value
        return joined([header, *(",".join(r) for r in rows)])

    add("html_with_200.csv", HTML, "error", "an HTML page, not a CSV file", "a bot-check page served with HTTP 200")
    add("empty.csv", b"", "error", "empty file", "zero bytes")
    add("header_only.csv", joined([header]), "error", "no data rows", "the header and nothing else")
    cut_short = "truncated: the file does not end with a line end"
    for n, expect in enumerate([cut_short, "has 2 fields, expected 5", cut_short]):
        data, offset = c.cut(good)
        add(f"truncated_{n + 1}.csv", data, "error", expect,
            f"cut at byte {offset} of {len(good)}" + (" (inside the last close: a shorter number)"
                                                      if expect == cut_short else ""))
    last = good.rstrip(b"\n")
    add("truncated_in_last_number.csv", last[:last.rindex(b",") + 3], "error", cut_short,
        f"cut two digits into the last close ({last[last.rindex(b',') + 1:].decode()} becomes 22)")
    add("utf16.csv", good.decode().encode("utf-16"), "error", "not UTF-8 text", "UTF-16 with its BOM")
    latin = joined(["DATE,OPEN,HIGH,LOW,CLOSE", *body[:-1], body[-1] + ",clôture provisoire"]).decode()
    add("latin1.csv", latin.encode("latin-1"), "error", "not UTF-8 text",
        "Latin-1 with a non-ASCII character (and an extra field)")
    add("bom_crlf.csv", b"\xef\xbb\xbf" + joined([header, *body], "\r\n"), "repaired",
        "UTF-8 BOM and CRLF accepted", "UTF-8 BOM and Windows line ends")
    swapped = [",".join([r.split(",")[0], r.split(",")[4], *r.split(",")[1:4]]) for r in body]
    add("columns_swapped.csv", joined(["DATE,CLOSE,OPEN,HIGH,LOW", *swapped]), "repaired",
        "columns matched by name", "CLOSE moved before OPEN (header and rows agree)")
    add("column_renamed.csv", joined(["DATE,OPEN,HIGH,LOW,LAST", *body]), "error", "missing column(s) ['CLOSE']",
        "CLOSE renamed LAST")
    close = body[5].split(",")[4]
    big = f"{float(close):,.2f}"
    add("thousands_quoted.csv", edit(5, 4, f'"{big}"'), "error", "is not a finite number",
        f"close written {big!r} (quoted)")
    add("thousands_unquoted.csv", edit(5, 4, big), "error", "has 6 fields, expected 5",
        f"close written {big} (unquoted: one field too many)")
    add("nan_close.csv", edit(7, 4, "NaN"), "error", "is not a finite number", "close NaN")
    add("inf_close.csv", edit(7, 4, "inf"), "error", "is not a finite number", "close inf")
    add("negative_close.csv", edit(9, 4, "-" + close), "error", "is not positive", "a negative close")
    add("zero_close.csv", edit(9, 4, "0.000000"), "error", "is not positive", "a zero close")
    opening = body[9].split(",")[1]
    add("negative_open.csv", edit(9, 1, "-" + opening), "error", f"line 11: open {-float(opening)} is not positive",
        "a negative open with a valid close")
    add("duplicate_dates.csv", joined([header, *body[:12], body[11], *body[12:]]), "error", "duplicated dates",
        "one row repeated exactly")
    shuffled = body[:]
    c.rng.shuffle(shuffled)
    add("out_of_order.csv", joined([header, *shuffled]), "repaired", "rows sorted by date", "rows shuffled")
    add("future_date.csv", joined([header, *body, "07/17/2099,2000,2010,1990,2005"]), "error", "is in the future",
        "a row dated 2099")
    add("cr_line_ends.csv", joined([header, *body], "\r"), "repaired", "CR line ends read",
        "classic Mac line ends (CR only)")
    add("only_separators.csv", b",,,,\n,,,,\n", "error", "no header and no data: only blank lines or separators",
        "commas and nothing else")
    iso = [f"{d[6:10]}-{d[0:2]}-{d[3:5]}" + r[10:] for r in body for d in [r[:10]]]
    add("iso_dates.csv", joined([header, *iso]), "error", "is not MM/DD/YYYY", "dates as YYYY-MM-DD")
    # observed cases of wrong numbers that were published (docs/reliability.md, "Wrong numbers")
    spx = lines((SAMPLE / "cboe" / "SPX_History.csv").read_bytes())[-30:]
    add("other_series_header.csv", joined(["DATE,SPX", *(f"{r.split(',')[0]},{r.split(',')[4]}" for r in spx)]),
        "error", "header names SPX, not RUT: another series' file", "RUT_History.csv holding SPX's closes (DATE,SPX)")
    add("trailing_separators.csv", joined([header, *body, ",,,,"]), "repaired", "a separator-only line dropped",
        "a trailing ,,,, line (the demo once failed on it before Airflow)")


# ------------------------------------------------------------------------------------------------ OCC


def occ(c: Corpus) -> None:
    day = "2024-07-16"
    sample = lines((SAMPLE / "occ" / "volume-query" / day / "IWM.csv").read_bytes())
    header, body = sample[0], sample[1:]
    good = joined([header, *body], "\r\n")
    where, subject = f"occ/volume-query/{day}/IWM.csv", "IWM"

    def add(name, data, outcome, expect, description, ingest_expect=""):
        c.add("occ", name, data, where, subject, outcome, expect, description, day=day, ingest_expect=ingest_expect)

    add("valid.csv", good, "valid", "", "the sample's IWM answer for 2024-07-16 (the fuzzers' seed)")

    def edit(row: int, column: int, value: str) -> bytes:
        rows = [r.split(",") for r in body]
        rows[row][column] = value
        return joined([header, *(",".join(r) for r in rows)], "\r\n")

    add("html_with_200.csv", HTML, "error", "an HTML page, not the volume-query CSV", "an HTML page with HTTP 200")
    for n, expect in enumerate(["(truncated last line?)", "(truncated last line?)"]):
        data, offset = c.cut(good)
        add(f"truncated_{n + 1}.csv", data, "error", expect, f"cut at byte {offset} of {len(good)}")
    add("utf16.csv", good.decode().encode("utf-16"), "error", "not UTF-8 text", "UTF-16 with its BOM")
    add("latin1.csv", edit(2, 5, "BÖRSE").decode().encode("latin-1"), "error", "not UTF-8 text",
        "Latin-1 exchange name with a non-ASCII letter")
    add("bom.csv", b"\xef\xbb\xbf" + good, "repaired", "UTF-8 BOM accepted", "UTF-8 BOM")
    add("columns_swapped.csv", joined([header.replace("actype,porc", "porc,actype"), *body], "\r\n"), "error",
        "header columns out of order", "actype and porc swapped in the header")
    add("column_renamed.csv", joined([header.replace("porc", "callput"), *body], "\r\n"), "error",
        "header drift: missing column(s) ['porc'], unexpected column(s) ['callput'] (renamed?)", "porc renamed")
    quantity = body[3].split(",")[0]
    add("thousands.csv", edit(3, 0, f'"{int(quantity):,}"'), "error", "has thousands separators",
        f"quantity written {int(quantity):,} (quoted)")
    add("negative.csv", edit(3, 0, "-" + quantity), "error", "negative quantity", "a negative quantity")
    add("nan.csv", edit(3, 0, "NaN"), "error", "is not a whole number", "quantity NaN")
    add("decimal.csv", edit(3, 0, quantity + ".5"), "error", "is not a whole number", "a fractional quantity")
    add("duplicate_row.csv", joined([header, *body[:4], body[3], *body[4:]], "\r\n"), "error",
        "line 6: duplicated row (the same as line 5", "one row repeated exactly (its volume would count twice)")
    add("other_date.csv", edit(4, 6, "07/15/2024"), "error",
        "actdate 2024-07-15, but this file should hold 2024-07-16", "a row of the previous day")
    add("future_actdate.csv", edit(4, 6, "07/16/2099"), "error",
        "actdate 2099-07-16, but this file should hold 2024-07-16", "a row dated 2099")
    add("other_underlying.csv", edit(4, 1, "SPY"), "error", "underlying 'SPY', but this file should hold IWM only",
        "a row of another underlying")
    add("porc_bad.csv", edit(4, 4, "X"), "error", "porc 'X' is neither C (call) nor P (put)", "porc X")
    add("no_records_on_session.csv", b"No record(s) found", "error", "no volume for IWM on 2024-07-16",
        "OCC's holiday answer for an NYSE session",
        ingest_expect="no volume published for NYSE session(s): ['IWM 2024-07-16']")
    add("other_message.csv", b"Internal error, please try again later", "error",
        "not the volume-query CSV: it starts 'Internal error", "an unexpected one-line answer (with a comma)")
    add("other_message_plain.csv", b"Service temporarily unavailable", "error",
        "OCC answered a message instead of the CSV", "an unexpected one-line answer")
    add("header_only.csv", joined([header], "\r\n"), "error", "header but no data rows", "the header only")


# ------------------------------------------------------------------------------------------------ CFTC


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return out.getvalue()


def _zeros_zip(name: str, size: int) -> bytes:
    """A zip whose one member inflates to `size` zero bytes (deflate: about 1000:1)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        chunk = bytes(1 << 20)
        with archive.open(info, "w", force_zip64=True) as member:
            for _ in range(size // len(chunk)):
                member.write(chunk)
    return out.getvalue()


def _claim_size(data: bytes, size: int) -> bytes:
    """The zip with the central directory claiming `size` uncompressed bytes for its first member."""
    at = data.index(b"PK\x01\x02") + 24
    return data[:at] + size.to_bytes(4, "little") + data[at + 4:]


def cftc(c: Corpus) -> None:
    with zipfile.ZipFile(SAMPLE / "cftc" / "fut_fin_txt_2024.zip") as archive:
        text = archive.read(archive.infolist()[0]).decode()
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0]
    wanted = {"13874A", "239742", "209742"}
    code, report = header.index("CFTC_Contract_Market_Code"), header.index("Report_Date_as_YYYY-MM-DD")
    keep = [r for r in rows[1:] if r[code] in wanted and "2024-06-18" <= r[report] <= "2024-07-09"]
    keep += [r for r in rows[1:] if r[code] == "090741"][:2]  # a market we do not use
    col = {name: i for i, name in enumerate(header)}
    where, subject = "cftc/fut_fin_txt_2024.zip", "13874A,239742,209742"

    def member(body: list[list[str]], head: list[str] | None = None, encoding: str = "utf-8") -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(head or header)
        writer.writerows(body)
        return out.getvalue().encode(encoding)

    def edited(row: int, column: str, value: str) -> list[list[str]]:
        body = [r[:] for r in keep]
        body[row][col[column]] = value
        return body

    good_member = member(keep)
    good = _zip([("FinFutYY.txt", good_member)])

    def add(name, data, outcome, expect, description):
        c.add("cftc", name, data, where, subject, outcome, expect, description)

    add("valid.zip", good, "valid", "", "3 markets x 4 weekly reports of the sample's 2024 file, plus 2 rows of "
        "another market (the fuzzers' seed)")
    api = []
    for r in keep:
        if r[code] in wanted:
            record = {field: r[col[FILE_FIELDS[name]]].strip() for name, field in API_FIELDS.items()}
            record["report_date_as_yyyy_mm_dd"] += "T00:00:00.000"
            record["futonly_or_combined"] = "FutOnly"
            api.append(record)
    c.add("cftc", "valid_api.json", (json.dumps(api, indent=1) + "\n").encode(), "", subject, "valid", "",
          "the same reports as the public reporting API answers them (parser only: the ingest reads the zips)")

    add("html_with_200.zip", HTML, "error", "an HTML page (an error page served with HTTP 200?), not a zip archive",
        "an HTML page with HTTP 200")
    add("empty.zip", b"", "error", "empty file (0 bytes)", "zero bytes")
    add("not_a_zip.zip", good_member, "error", "not a zip archive", "the text member itself, not zipped")
    for n, expect in enumerate(["truncated or corrupt zip archive", "truncated or corrupt zip archive"]):
        data, offset = c.cut(good, low=0.1)
        add(f"truncated_{n + 1}.zip", data, "error", expect, f"cut at byte {offset} of {len(good)}")
    add("bomb_250mb_of_zeros.zip", _zeros_zip("FinFutYY.txt", 250 * 2**20), "error",
        "declares 262,144,000 bytes uncompressed, over the 209,715,200-byte limit (zip bomb?)",
        "one member of 250 MiB of zeros (about 250 KB compressed)")
    add("bomb_header_claims_4gb.zip", _claim_size(good, 0xFFFFFFF0), "error",
        "bytes uncompressed, over the 209,715,200-byte limit (zip bomb?)",
        "a small member whose central directory claims 4 GiB")
    add("unexpected_member.zip", _zip([("report.pdf", b"%PDF-1.4\n")]), "error", "unexpected zip member 'report.pdf'",
        "a PDF instead of FinFutYY.txt")
    add("path_traversal.zip", _zip([("../evil.txt", good_member)]), "error", "unsafe zip member name '../evil.txt'",
        "member named ../evil.txt")
    add("two_members.zip", _zip([("FinFutYY.txt", good_member), ("FinFutYY_old.txt", good_member)]), "error",
        "zip archive has 2 members", "two text members")
    add("no_member.zip", _zip([]), "error", "zip archive has no member", "an empty archive")
    add("utf16_member.zip", _zip([("FinFutYY.txt", member(keep, encoding="utf-16"))]), "error",
        "header drift: missing column(s)", "the member in UTF-16 (read as Latin-1, so no header matches)")
    latin = edited(0, "Market_and_Exchange_Names", "E-MINI S&P 500 - BÖRSE DE CHICAGO MERCANTILE EXCHANGE")
    add("latin1_member.zip", _zip([("FinFutYY.txt", member(latin, encoding="latin-1"))]), "repaired",
        "read as Latin-1", "a Latin-1 market name with a non-ASCII letter")
    add("bom_member.zip", _zip([("FinFutYY.txt", b"\xef\xbb\xbf" + good_member)]), "repaired", "UTF-8 BOM accepted",
        "the member starts with a UTF-8 BOM")
    renamed = [("Open_Interest" if h == "Open_Interest_All" else h) for h in header]
    add("column_renamed.zip", _zip([("FinFutYY.txt", member(keep, renamed))]), "error",
        "header drift: missing column(s) 'Open_Interest_All' (closest present: 'Open_Interest')",
        "Open_Interest_All renamed Open_Interest")
    a, b = col["Dealer_Positions_Long_All"], col["Lev_Money_Positions_Short_All"]

    def swap(r: list[str]) -> list[str]:
        r = r[:]
        r[a], r[b] = r[b], r[a]
        return r

    add("columns_swapped.zip", _zip([("FinFutYY.txt", member([swap(r) for r in keep], swap(header)))]), "repaired",
        "columns matched by name", "two position columns swapped (header and rows agree)")
    add("thousands.zip", _zip([("FinFutYY.txt", member(edited(1, "Lev_Money_Positions_Long_All", "1,234,567")))]),
        "error", "lev_money_positions_long value '1,234,567' is not a whole number", "a position with separators")
    add("negative.zip", _zip([("FinFutYY.txt", member(edited(1, "Dealer_Positions_Short_All", "-5")))]), "error",
        "dealer_positions_short_all value -5 is negative", "a negative position")
    add("nan.zip", _zip([("FinFutYY.txt", member(edited(1, "Open_Interest_All", "NaN")))]), "error",
        "open_interest value 'NaN' is not a whole number", "open interest NaN")
    add("duplicate_identical.zip", _zip([("FinFutYY.txt", member([*keep, keep[2]]))]), "repaired",
        "identical duplicated row dropped", "one row repeated exactly")
    add("duplicate_conflicting.zip", _zip([("FinFutYY.txt", member([*keep, edited(2, "Open_Interest_All", "1")[2]]))]),
        "error", "conflicting duplicated rows", "one row repeated with another open interest")
    shuffled = keep[:]
    c.rng.shuffle(shuffled)
    add("out_of_order.zip", _zip([("FinFutYY.txt", member(shuffled))]), "repaired", "rows sorted by report date",
        "rows shuffled")
    future = edited(0, "Report_Date_as_YYYY-MM-DD", "2060-01-06")
    future[0][col["As_of_Date_In_Form_YYMMDD"]] = "600106"
    add("future_date.zip", _zip([("FinFutYY.txt", member(future))]), "error", "report date 2060-01-06 is in the future",
        "a report dated 2060")
    add("combined.zip", _zip([("FinFutYY.txt", member(edited(0, "FutOnly_or_Combined", "Combined")))]), "error",
        "a futures-and-options combined report", "a futures-and-options combined row")
    short = [r[:] for r in keep]
    short[3] = short[3][:40]
    add("row_wrong_width.zip", _zip([("FinFutYY.txt", member(short))]), "error",
        f"has 40 fields, expected {len(header)}", "a row cut to 40 fields")


# ------------------------------------------------------------------------------------------------ ETF


def _book(rows: list[list], ticker: str = "IWM", header: list | None = None) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = "navhist"
    sheet.append(["Fund Name:", "iShares Russell 2000 ETF (SYNTHETIC SAMPLE)"])
    sheet.append(["Ticker Symbol:", ticker])
    sheet.append([])
    sheet.append(header or ["Date", "NAV", "Shares Outstanding", "Total Net Assets"])
    for row in rows:
        sheet.append(row)
    sheet.append([])
    sheet.append(["SYNTHETIC corpus file for the reliability tests; not fund data."])
    book.properties.creator = "regime corpus generator"
    book.properties.created = BOOK_TIME
    book.properties.modified = BOOK_TIME
    raw = io.BytesIO()
    book.save(raw)
    return _restamp(raw.getvalue())


def _restamp(data: bytes) -> bytes:
    """openpyxl stamps the save time into docProps/core.xml and the zip members: pin both."""
    import re

    stamp = BOOK_TIME.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for member in source.infolist():
            content = source.read(member.filename)
            if member.filename == "docProps/core.xml":
                content = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)",
                                 rb"\g<1>" + stamp + rb"\g<2>", content)
            info = zipfile.ZipInfo(member.filename, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o600 << 16
            target.writestr(info, content)
    return out.getvalue()


def _text_date(day: date) -> str:
    return f"{day.day:02d}-{day:%b}-{day.year}"


def etf(c: Corpus) -> None:
    days, day = [], date(2024, 7, 17)
    while len(days) < 20:
        if day.weekday() < 5 and day != date(2024, 7, 4):
            days.append(day)
        day -= timedelta(days=1)
    rows = []  # newest first, as SSGA ships it
    for i, d in enumerate(days):
        nav = round(225.38 - 0.61 * i, 2)
        shares = 301_300_000 - 1_050_000 * i
        rows.append([_text_date(d), nav, shares, round(nav * shares, 2)])
    where, subject = "etf/ssga/navhist-us-en-iwm.xlsx", "IWM"
    good = _book(rows)

    def add(name, data, outcome, expect, description):
        c.add("etf", name, data, where, subject, outcome, expect, description)

    add("valid.xlsx", good, "valid", "", "20 sessions of IWM in the SSGA NAV-history layout (the fuzzers' seed)")

    def edited(row: int, column: int, value) -> list[list]:
        out = [r[:] for r in rows]
        out[row][column] = value
        return out

    add("html_with_200.xlsx", HTML, "error", "an HTML page, not an xlsx workbook", "an HTML page with HTTP 200")
    add("empty.xlsx", b"", "error", "empty file", "zero bytes")
    for n in range(2):
        data, offset = c.cut(good)
        add(f"truncated_{n + 1}.xlsx", data, "error", "truncated or damaged zip container",
            f"cut at byte {offset} of {len(good)}")
    add("no_data_rows.xlsx", _book([]), "error", "no data rows under the header", "the header, then the footer")
    add("not_a_workbook.xlsx", _zip([("navhist.csv", b"Date,NAV\n")]), "error",
        "not an xlsx workbook (no xl/workbook.xml)", "a zip holding a CSV")
    add("column_renamed.xlsx", _book(rows, header=["Date", "Net Asset Value", "Shares Outstanding",
                                                  "Total Net Assets"]),
        "error", "header drift", "NAV renamed Net Asset Value")
    swapped = [[r[0], r[2], r[1], r[3]] for r in rows]
    add("columns_swapped.xlsx", _book(swapped, header=["Date", "Shares Outstanding", "NAV", "Total Net Assets"]),
        "repaired", "columns matched by name", "Shares Outstanding before NAV (header and rows agree)")
    add("negative_nav.xlsx", _book(edited(3, 1, -12.5)), "error", "is not positive", "a negative NAV")
    add("negative_shares.xlsx", _book(edited(3, 2, -5000)), "error", "is negative", "negative shares outstanding")
    add("nan_nav.xlsx", _book(edited(3, 1, "NaN")), "error", "NAV 'NaN' is not a number", "NAV as the text NaN")
    add("inf_nav.xlsx", _book(edited(3, 1, "inf")), "error", "is not a finite number", "NAV as the text inf")
    add("thousands_shares.xlsx", _book(edited(3, 2, "298,150,000")), "error", "is not a number",
        "shares outstanding as text with separators")
    add("duplicate_identical.xlsx", _book([*rows[:5], rows[4], *rows[5:]]), "repaired",
        "identical repeated day merged", "one day listed twice with the same figures")
    conflicting = rows[4][:]
    conflicting[1] = conflicting[1] + 1
    add("duplicate_conflicting.xlsx", _book([*rows[:5], conflicting, *rows[5:]]), "error",
        "conflicting rows for the same date(s)", "one day listed twice with different NAVs")
    shuffled = rows[:]
    c.rng.shuffle(shuffled)
    add("out_of_order.xlsx", _book(shuffled), "repaired", "rows sorted by date", "rows in random order")
    add("future_date.xlsx", _book([["17-Jul-2099", 230.0, 301_000_000, 69_230_000_000.0], *rows]), "error",
        "is in the future", "a row dated 2099")
    add("other_ticker.xlsx", _book(rows, ticker="SPY"), "error", "the workbook is for 'SPY', not IWM",
        "a workbook labelled SPY")
    add("bad_date.xlsx", _book(edited(2, 0, "2024/07/15")), "error", "is neither DD-Mon-YYYY text nor an Excel date",
        "a date as 2024/07/15")
    json_good = ('{"name": "funddetails", "ticker": "IWM", "data": {"fundFlowsData": {"data": ['
                 + ", ".join(f'{{"navDate": "{d.isoformat()}", "nav": {r[1]}, "sharesOutstanding": {r[2]}}}'
                             for d, r in zip(days, rows, strict=True)) + "]}}}")
    add("valid_fund_details.json", json_good.encode(), "valid", "",
        "the same 20 sessions as a fund-details JSON (read through the same mirror path: the parser sniffs)")
    add("fund_details_utf16.json", json_good.encode("utf-16"), "error", "not an xlsx workbook",
        "fund-details JSON in UTF-16 (not recognised as JSON)")
    add("fund_details_latin1.json", json_good.replace("funddetails", "fund détails").encode("latin-1"), "error",
        "not UTF-8 text", "fund-details JSON in Latin-1 with a non-ASCII letter")
    add("fund_details_bom.json", b"\xef\xbb\xbf" + json_good.encode(), "repaired", "UTF-8 BOM accepted",
        "fund-details JSON with a UTF-8 BOM")
    add("fund_details_nan.json", json_good.replace('"nav": 223.55', '"nav": NaN').encode(), "error",
        "is not a finite number", "a NaN NAV literal in the JSON")


def main(root: Path = HERE) -> list[dict]:
    for source in SOURCES:  # files of cases that no longer exist go too
        for old in (root / source).glob("*") if (root / source).is_dir() else ():
            old.unlink()
    corpus = Corpus(root)
    for make in (cboe, occ, cftc, etf):
        make(corpus)
    corpus.write_index()
    return corpus.rows


if __name__ == "__main__":
    made = main()
    print(f"{len(made)} cases written to {HERE}")
