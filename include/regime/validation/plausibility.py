"""Plausibility and identity: bounds a real market cannot break, and the reviewed exception list.

A suite's `prepare` computes one message column per check: NULL where the row is plausible, else a sentence naming
the series, the date and the value. The suite expects the column to be NULL with severity critical, so one bad row
blocks the build and the gate's summary shows the sentences. A row listed in the exception list (exceptions.csv
next to this module: dataset, series, date, check, reason) is not checked by that check.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

EXCEPTIONS_FILE = Path(__file__).with_name("exceptions.csv")
# The OCC volume spike check's trailing window (validation/options_volume.py), bound as $trailing_sessions
# (RunContext.sql_params): the window frame of its QUERY on a full build and an update alike.
TRAILING_SESSIONS = 252
FIELDS = ["dataset", "series", "date", "check", "reason"]
# dataset -> the checks an exception entry may name
CHECKS = {
    "prices": ("day_move", "close_range", "identity"),
    "options_volume": ("volume_spike", "revision"),
    # a past number revised, or more rows removed, beyond the bounds of validation/revisions.py (dataset: the lake
    # dataset of meta.revisions; for `removal` the date is the as-of date of the ingest that removed the rows)
    "etf_nav": ("nav_move", "shares_move", "revision", "removal"),
    "index_prices": ("revision", "removal"),
    "cftc_tff": ("revision", "removal"),
    "options_putcall": ("revision", "removal"),
}


@dataclass(frozen=True)
class Exemption:
    """One reviewed row that a check lets through, and why."""

    dataset: str
    series: str
    date: str  # YYYY-MM-DD
    check: str
    reason: str


class ExceptionListError(ValueError):
    """The exception list cannot be read or an entry is incomplete: the gate refuses to run without it."""


def load_exceptions(path: Path = EXCEPTIONS_FILE) -> tuple[Exemption, ...]:
    """Read and check the exception list; raise ExceptionListError naming the line of an unusable entry."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ExceptionListError(f"{path}: cannot be read ({exc.strerror})") from None
    rows = list(csv.reader(text.splitlines()))
    if not rows or [h.strip() for h in rows[0]] != FIELDS:
        raise ExceptionListError(f"{path}: the header must be {','.join(FIELDS)}")
    entries = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(FIELDS):
            raise ExceptionListError(f"{path} line {lineno}: {len(row)} fields, expected {len(FIELDS)}")
        entry = Exemption(*(cell.strip() for cell in row))
        if entry.check not in CHECKS.get(entry.dataset, ()):
            raise ExceptionListError(f"{path} line {lineno}: no check {entry.check!r} for dataset "
                                     f"{entry.dataset!r} (known: {CHECKS})")
        try:
            date.fromisoformat(entry.date)
        except ValueError:
            raise ExceptionListError(f"{path} line {lineno}: date {entry.date!r} is not YYYY-MM-DD") from None
        if not entry.series or not entry.reason:
            raise ExceptionListError(f"{path} line {lineno}: every entry names its series and gives a reason")
        entries.append(entry)
    return tuple(entries)


def excepted(frame: pd.DataFrame, key: str, exceptions, dataset: str, check: str) -> pd.Series:
    """Rows of `frame` (series in column `key`, date in `date_iso`) that the exception list lets through `check`."""
    listed = {(e.series, e.date) for e in exceptions if e.dataset == dataset and e.check == check}
    if not listed:
        return pd.Series(False, index=frame.index)
    return pd.Series([(s, d) in listed for s, d in zip(frame[key], frame["date_iso"], strict=True)],
                     index=frame.index)


def messages(mask: pd.Series, build) -> pd.Series:
    """An object column: `build(row)` on the rows where `mask` holds, None elsewhere."""
    out = pd.Series(None, index=mask.index, dtype=object)
    hits = mask.fillna(False).astype(bool)
    if hits.any():
        out[hits] = [build(i) for i in mask.index[hits]]
    return out


def num(value: float) -> str:
    """A level as operators read it: 2,045.31, 1,000,000,000,000.00."""
    return f"{value:,.2f}"
