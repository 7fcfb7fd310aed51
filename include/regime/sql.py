"""SQL plumbing: connecting to a warehouse file (the published one read-only), reading model files (include/sql),
binding `$name` parameters, scalar queries, materialising one model as a table and counting a warehouse's rows.

Every other module takes these from here; this module imports nothing else of the package but its SQL_DIR.
"""

from __future__ import annotations

import re
import sys
from datetime import date
from pathlib import Path

import duckdb

from regime import SQL_DIR

FULL = date(1, 1, 1)  # $since and $history_from of a full build: every reading, from every input row
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_COMMENT = re.compile(r"--[^\n]*")


class WarehouseError(RuntimeError):
    """A warehouse file or a model cannot be used as asked (a parameter without a value, nothing to publish)."""


def connect(path: Path | str, read_only: bool = False, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """A connection to a warehouse file. DuckDB's Python replacement scans are off: a missing table is reported as
    missing, not resolved to a Python variable or module of the same name in the calling code. `memory_limit` bounds
    DuckDB's buffer pool (default: 80 % of RAM, which it fills with blocks it has written and could drop; builds
    pass Settings.duckdb_memory_limit, beyond which sorts and joins spill to `<file>.tmp/`). DuckDB's progress bar
    (long queries) is shown on a terminal only: in a task log it is carriage-return noise, and builds log each step
    with its rows and seconds instead."""
    config = {"python_enable_replacements": False}
    if memory_limit:
        config["memory_limit"] = memory_limit
    con = duckdb.connect(str(path), read_only=read_only, config=config)
    if not sys.stdout.isatty():
        con.execute("set enable_progress_bar = false")
    return con


def connect_readonly(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the warehouse at `path` (the published one); a clear error if there is none."""
    if not path.exists():
        raise WarehouseError(f"no warehouse at {path}: run the pipeline first (make demo)")
    return connect(path, read_only=True)


def read_sql(relpath: str) -> str:
    """The text of the SQL file `relpath` under SQL_DIR (include/sql)."""
    return (SQL_DIR / relpath).read_text()


def without_comments(sql: str) -> str:
    """`sql` without its `--` comments (what parameters reads)."""
    return _COMMENT.sub("", sql)


def parameters(sql: str) -> set[str]:
    """The names of the `$name` parameters `sql` uses (outside `--` comments)."""
    return set(_PARAM.findall(without_comments(sql)))


def bind(sql: str, params: dict) -> dict:
    """The subset of `params` that `sql` uses; every `$name` it uses must be given (outside `--` comments)."""
    used = parameters(sql)
    missing = used - params.keys()
    if missing:
        raise WarehouseError(f"SQL parameters without a value: {sorted(missing)}")
    return {k: params[k] for k in used}


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None):
    """The single value a query returns (fetched completely: DuckDB 2 keeps a half-read result pending)."""
    rows = con.execute(sql, params or {}).fetchall()
    return rows[0][0] if rows else None


def run_model(con: duckdb.DuckDBPyConnection, table: str, relpath: str, params: dict) -> int:
    """Materialise the model file `relpath` as `table` with the parameters it uses; returns its rows."""
    sql = read_sql(relpath)
    con.execute(f"create or replace table {table} as {sql}", bind(sql, params))
    return scalar(con, f"select count(*) from {table}")


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """{schema.table: rows} of every table of the connection's database."""
    rows = con.execute(
        "select schema_name || '.' || table_name, estimated_size from duckdb_tables() "
        "where database_name = current_database() order by 1"
    ).fetchall()
    return {name: scalar(con, f"select count(*) from {name}") for name, _ in rows}
