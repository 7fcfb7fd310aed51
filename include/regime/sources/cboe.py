"""Cboe index history files `<SYM>_History.csv`.

Cboe publishes two layouts: `DATE,OPEN,HIGH,LOW,CLOSE` and the single-value `DATE,<SYM>`; dates are
MM/DD/YYYY. Both parse to the canonical frame (date, open, high, low, close), with open/high/low NULL for
the single-value layout. Every real file ends with a line end: one that does not was cut short (SourceError).
"""

from __future__ import annotations

import csv
import io
from datetime import date

import pandas as pd

from regime.sources.errors import SourceError
from regime.sources.fetch import in_date_order, text_of

SOURCE = "cboe"
URL = "https://cdn.cboe.com/api/global/us_indices/daily_prices/{symbol}_History.csv"
VOL_INDEXES = {"VIX": "SPX", "RVX": "RUT", "VXN": "NDX"}  # volatility index -> its underlying index
OHLC = ["OPEN", "HIGH", "LOW", "CLOSE"]
COLUMNS = ["date", "open", "high", "low", "close"]


def file_name(symbol: str) -> str:
    return f"{symbol}_History.csv"


def url(symbol: str) -> str:
    return URL.format(symbol=symbol)


def parse(data: bytes, symbol: str, location: str, today: date | None = None) -> pd.DataFrame:
    """Parse one Cboe history file into typed rows, or raise SourceError naming the problem."""

    def fail(problem: str) -> SourceError:
        return SourceError(SOURCE, location, problem)

    text = text_of(data, fail, "a CSV file")

    rows = _rows(text, fail)
    header = [h.strip().upper() for h in rows[0]]
    if "DATE" not in header:
        raise fail(f"no DATE column in header {rows[0]}")
    if all(c in header for c in OHLC):
        value_cols = OHLC
    else:
        others = [h for h in header if h != "DATE"]
        if len(others) != 1 or (others[0] in OHLC[:3]):
            missing = [c for c in OHLC if c not in header]
            raise fail(f"missing column(s) {missing}: header is {rows[0]}; expected DATE,OPEN,HIGH,LOW,CLOSE "
                       f"or DATE,{symbol}")
        if others[0] not in ("CLOSE", symbol.upper()):
            # Cboe names the series in a one-value file's header: another name is another series' file
            raise fail(f"header names {others[0]}, not {symbol}: another series' file (header is {rows[0]})")
        value_cols = others
    width = len(header)
    body = rows[1:]
    if not body:
        raise fail("no data rows")
    for lineno, row in enumerate(body, start=2):
        if len(row) != width:
            raise fail(f"line {lineno} has {len(row)} fields, expected {width} (truncated file?): {row}")
    if not ends_with_line_end(text):
        raise fail(f"truncated: the file does not end with a line end, so its last line may be cut short: "
                   f"{','.join(body[-1])!r}")

    frame = pd.DataFrame(body, columns=header)
    out = pd.DataFrame({"date": pd.to_datetime(frame["DATE"].str.strip(), format="%m/%d/%Y", errors="coerce")})
    bad = out["date"].isna()
    if bad.any():
        i = int(bad.idxmax())
        raise fail(f"line {i + 2}: date {frame['DATE'].iloc[i]!r} is not MM/DD/YYYY")
    for col in value_cols:
        values = pd.to_numeric(frame[col].str.strip(), errors="coerce")
        bad = values.isna() | ~values.abs().lt(float("inf"))
        if bad.any():
            i = int(bad.idxmax())
            raise fail(f"line {i + 2}: {col} value {frame[col].iloc[i]!r} is not a finite number")
        name = "close" if value_cols != OHLC else col.lower()
        out[name] = values.astype("float64")
    for col in COLUMNS[1:]:
        if col not in out:
            out[col] = pd.Series(float("nan"), index=out.index, dtype="float64")
    out = out[COLUMNS]
    out["date"] = out["date"].dt.date

    for col in ("close", "open", "high", "low"):  # NULL (the single-value layout) compares False: accepted
        bad = out[col] <= 0
        if bad.any():
            i = int(bad.idxmax())
            raise fail(f"line {i + 2}: {col} {out[col].iloc[i]} is not positive")
    dup = out["date"].duplicated(keep=False)
    if dup.any():
        raise fail(f"duplicated dates: {sorted({d.isoformat() for d in out.loc[dup, 'date']})[:5]}")
    return in_date_order(out, fail, today)


def _rows(text: str, fail) -> list[list[str]]:
    """The CSV rows holding a value (blank or separator-only lines dropped); SourceError if none or unreadable."""
    try:  # newline="": the csv module reads LF, CRLF and CR line ends itself (and line breaks inside quotes)
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:  # e.g. a stray quote that swallows the rest of the file: "field larger than field limit"
        raise fail(f"not a readable CSV file ({exc})") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise fail("no header and no data: only blank lines or separators")
    return rows


def ends_with_line_end(text: str) -> bool:
    """Whether the last line holding anything but blanks and separators ends with a line end.

    Every real Cboe file does (the reference mirror's five, the five in formats/, the bundled sample): a file cut
    inside its last line keeps every field, only shorter (a close of 2245.79 cut to 22), so this is the one sign."""
    tail = text[max(text.rfind("\n"), text.rfind("\r")) + 1:]
    return not tail.replace(",", "").strip()
