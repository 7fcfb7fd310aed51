"""The pipeline's own records that outlive any one warehouse build: alerts, validation runs and lake revisions.

They live in a small SQLite file (`state/state.sqlite`, transactional, one writer at a time) because the
published warehouse is never written in place; every build copies them into `meta.alerts`,
`meta.validation_runs` and `meta.revisions` so analysts see them beside the data.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

SCHEMA = """
create table if not exists alerts (
    alert_key   text primary key,   -- rule:indicator:subject:episode start; one mail per episode
    as_of       text not null,      -- run date that first raised it
    rule        text not null,
    indicator   text not null,
    subject     text not null,
    reading_date text not null,
    value       real,
    message     text not null,
    state       text not null check (state in ('pending', 'sent', 'failed')),
    attempts    integer not null default 0,
    last_error  text,
    created_at  text not null,
    sent_at     text
);
create table if not exists validation_runs (
    run_at      text not null,
    as_of       text not null,
    dataset     text not null,
    expectation text not null,
    severity    text not null,
    success     integer not null,
    unexpected_count integer,
    sample_values text,
    docs_url    text
);
create table if not exists revisions (
    seq         integer primary key, -- order of recording
    recorded_at text not null,
    as_of       text not null,      -- as-of date of the ingest (or 'regime-lake remove' run) that made the change
    dataset     text not null,
    series      text not null,      -- partition value: symbol, market code, ticker, underlying
    date        text not null,      -- the row's first key (report_date for cftc_tff)
    field       text not null,      -- the revised column, '*' for a removed row
    kind        text not null check (kind in ('revised', 'removed')),
    old         real,
    new         real,
    file        text not null       -- the upstream file that brought the change, or 'regime-lake remove'
);
"""
TABLES = ("alerts", "validation_runs", "revisions")
REMOVED_BY = "regime-lake remove"  # the `file` of a removal made by hand


def path(state_dir: Path) -> Path:
    return state_dir / "state.sqlite"


@contextlib.contextmanager
def connect(state_dir: Path) -> Iterator[sqlite3.Connection]:
    """A connection in a transaction: committed on success, rolled back on error."""
    state_dir.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path(state_dir), timeout=60, isolation_level=None)
    try:
        con.executescript(SCHEMA)
        con.execute("begin immediate")
        try:
            yield con
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
    finally:
        con.close()


def frames(state_dir: Path) -> dict[str, pd.DataFrame]:
    """Every state table as a DataFrame (empty, with its columns, when nothing is recorded yet)."""
    with connect(state_dir) as con:
        frames = {name: pd.read_sql_query(f"select * from {name}", con) for name in TABLES}
        for name, frame in frames.items():
            if frame.empty:  # typed as declared, so meta.* of a build has real column types, not NULL
                declared = {row[1]: row[2].lower() for row in con.execute(f"pragma table_info({name})")}
                frames[name] = frame.astype({c: _DTYPES.get(declared.get(c, ""), "string") for c in frame.columns})
        return frames


_DTYPES = {"integer": "int64", "real": "float64", "text": "string"}


def record_revisions(state_dir: Path, dataset: str, series: str, as_of: str, changes: pd.DataFrame,
                     files: pd.Series | str) -> None:
    """Record what a lake write revises or removes (rows of lake.revisions, first key column `date`-like); `files`
    names the file of each change (aligned with `changes`) or of all of them."""
    from datetime import UTC, datetime

    recorded_at = datetime.now(UTC).isoformat(timespec="seconds")
    key = changes.columns[0]
    names = files if isinstance(files, pd.Series) else pd.Series(files, index=changes.index)
    rows = [(recorded_at, as_of, dataset, series, pd.Timestamp(day).date().isoformat(), field, kind,
             None if pd.isna(old) else float(old), None if pd.isna(new) else float(new), str(name))
            for day, field, kind, old, new, name in zip(changes[key], changes["field"], changes["kind"],
                                                          changes["old"], changes["new"], names, strict=True)]
    with connect(state_dir) as con:
        con.executemany("insert into revisions (recorded_at, as_of, dataset, series, date, field, kind, old, new,"
                        " file) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
