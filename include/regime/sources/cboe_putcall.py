"""Cboe's daily put/call volume history: `totalpc.csv`, `equitypc.csv`, `indexpc.csv` (one file per product).

The files hold every Cboe session from 11/1/2006 and stopped updating on 10/04/2019, when Cboe retired them for its
daily market statistics page (docs/sources.md, "Cboe put/call volume"). Layout of the genuine files:

    <one-line legal disclaimer>,,,,
    , PRODUCT: TOTAL,,EXCHANGE: Cboe,                 (`PRODUCT:INDEX` without the space in indexpc.csv)
    DATE,CALLS,PUTS,TOTAL,P/C Ratio                   (CALL,PUT in equitypc.csv and indexpc.csv)
    11/1/2006,1401036,1271445,2672481,0.91
    ...
    06/11/2012, 1946611, 1573187, 3519798, 0.81       (from 06/11/2012 on: zero-padded dates, a space before values)

CRLF or LF line ends. The P/C ratio is puts over calls rounded to 2 decimals; TOTAL is calls plus puts. Each parses
to (date, call_volume, put_volume, total_volume, pc_ratio), the ratio as published. A file that contradicts itself
(a total that is not calls + puts, a ratio more than rounding away from puts / calls), another product's file, a
repeated date or a last line without a line end (cut short) is refused with a SourceError naming file and line.
"""

from __future__ import annotations

import csv
import io
import math
import re
from datetime import date, datetime

import pandas as pd

from regime.sources.cboe import ends_with_line_end  # the same sign of a cut file as Cboe's index files
from regime.sources.errors import SourceError, excerpt
from regime.sources.fetch import in_date_order, text_of

SOURCE = "cboe_putcall"
FOLDER = "cboe/putcall"  # mirror folder: <mirror>/cboe/putcall/totalpc.csv
URL = "https://cdn.cboe.com/resources/options/volume_and_call_put_ratios/{name}"
FILES = {"total": "totalpc.csv", "equity": "equitypc.csv", "index": "indexpc.csv"}  # product -> file name
PRODUCTS = tuple(FILES)
HEADERS = (("DATE", "CALLS", "PUTS", "TOTAL", "P/C RATIO"), ("DATE", "CALL", "PUT", "TOTAL", "P/C RATIO"))
# the published ratio is puts / calls rounded to 2 decimals: at most 0.005 away (the genuine files: 0.004999)
RATIO_TOLERANCE = 0.005 + 1e-6
COLUMNS = ["date", "call_volume", "put_volume", "total_volume", "pc_ratio"]
_PRODUCT = re.compile(r"PRODUCT:\s*([A-Z]+)", re.IGNORECASE)
_COUNT = re.compile(r"\d+")


def file_name(product: str) -> str:
    return FILES[product]


def url(product: str) -> str:
    return URL.format(name=FILES[product])


def parse(data: bytes, product: str, location: str, today: date | None = None) -> pd.DataFrame:
    """Parse one put/call history file of `product` (total, equity, index) into typed rows, or raise SourceError."""

    def fail(problem: str) -> SourceError:
        return SourceError(SOURCE, location, problem)

    if product not in FILES:
        raise ValueError(f"unknown put/call product {product!r}: expected one of {', '.join(PRODUCTS)}")
    text = text_of(data, fail, "a CSV file")
    try:  # newline="": the csv module reads LF, CRLF and CR line ends itself; line_num counts physical lines
        reader = csv.reader(io.StringIO(text, newline=""))
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as exc:
        raise fail(f"not a readable CSV file ({exc})") from None
    rows = [(n, [cell.strip() for cell in row]) for n, row in rows if any(cell.strip() for cell in row)]

    start = next((i for i, (_, row) in enumerate(rows) if row and row[0].upper() == "DATE"), None)
    if start is None:
        raise fail("no header line DATE,CALLS,PUTS,TOTAL,P/C Ratio (nor DATE,CALL,PUT,TOTAL,P/C Ratio): not a Cboe "
                   f"put/call volume file; it begins {excerpt(text)!r}")
    for n, row in rows[:start]:  # the preamble: a disclaimer and the metadata row naming the product
        found = _PRODUCT.search(",".join(row))
        if found and found.group(1).lower() != product:
            raise fail(f"line {n}: the file is Cboe's {found.group(1).upper()} put/call volume, not {product.upper()}"
                       f" ({FILES.get(found.group(1).lower(), 'another file')}, not {FILES[product]})")
    n, header = rows[start]
    names = tuple(h.upper() for h in header)
    while names and not names[-1]:
        names = names[:-1]
    if names not in HEADERS:
        raise fail(f"line {n}: header {','.join(header)!r}, expected DATE,CALLS,PUTS,TOTAL,P/C Ratio "
                   "(or DATE,CALL,PUT,TOTAL,P/C Ratio)")
    body = rows[start + 1:]
    if not body:
        raise fail("no data rows after the header")
    if not ends_with_line_end(text):
        raise fail(f"truncated: the file does not end with a line end, so its last line (line {body[-1][0]}) may "
                   f"be cut short: {','.join(body[-1][1])!r}")

    records, seen = [], {}
    for n, row in body:
        cells = row[:]
        while len(cells) > 5 and not cells[-1]:
            cells.pop()
        if len(cells) != 5:
            raise fail(f"line {n} has {len(cells)} fields, expected 5 (DATE,CALLS,PUTS,TOTAL,P/C Ratio): "
                       f"{excerpt(','.join(row))!r}")
        day_text, *counts, ratio_text = cells
        try:
            day = datetime.strptime(day_text, "%m/%d/%Y").date()
        except ValueError:
            raise fail(f"line {n}: date {excerpt(day_text)!r} is not M/D/YYYY") from None
        values = []
        for name, value in zip(("calls", "puts", "total"), counts, strict=True):
            if not _COUNT.fullmatch(value):
                raise fail(f"line {n}: {name} {excerpt(value)!r} is not a whole number of contracts")
            values.append(int(value))
        calls, puts, total = values
        try:
            ratio = float(ratio_text)
        except ValueError:
            raise fail(f"line {n}: P/C ratio {excerpt(ratio_text)!r} is not a number") from None
        if not math.isfinite(ratio) or ratio < 0:
            raise fail(f"line {n}: P/C ratio {excerpt(ratio_text)!r} is not a finite number >= 0")
        if total != calls + puts:
            raise fail(f"line {n} ({day.isoformat()}): total {total:,} is not calls {calls:,} + puts {puts:,} "
                       f"(= {calls + puts:,})")
        if calls == 0 or abs(puts / calls - ratio) > RATIO_TOLERANCE:
            computed = "undefined (no calls)" if calls == 0 else f"{puts / calls:.4f}"
            raise fail(f"line {n} ({day.isoformat()}): P/C ratio {ratio_text} disagrees with puts / calls = "
                       f"{puts:,} / {calls:,} = {computed} (more than rounding to 2 decimals)")
        if day in seen:
            raise fail(f"line {n}: date {day.isoformat()} repeated (first on line {seen[day]})")
        seen[day] = n
        records.append((day, calls, puts, total, ratio))

    out = pd.DataFrame.from_records(records, columns=COLUMNS)
    out = out.astype({"call_volume": "int64", "put_volume": "int64", "total_volume": "int64",
                      "pc_ratio": "float64"})
    return in_date_order(out, fail, today)
