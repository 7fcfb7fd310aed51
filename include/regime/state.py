"""The pipeline's own records that outlive any one warehouse build: alerts and validation runs.

They live in a small SQLite file (`state/state.sqlite`, transactional, one writer at a time) because the
published warehouse is never written in place; every build copies them into `meta.alerts` and
`meta.validation_runs` so analysts see them beside the data.
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
"""
TABLES = ("alerts", "validation_runs")


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
        return {name: pd.read_sql_query(f"select * from {name}", con) for name in TABLES}
