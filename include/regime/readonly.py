"""The analysts' read-only access to the published warehouse: the hardened connection, the guard that lets one
reading statement through (`regime sql`), and AnswerError, what a question raises when it cannot be answered as asked.

Three layers keep `regime sql` from writing or reading outside: the statement guard (check_read_only), a
read-only connection, and DuckDB's access to other files, the network and extensions switched off.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb


class AnswerError(ValueError):
    """The question cannot be answered as asked; the message (one line) says why and what would work."""


# ---------------------------------------------------------------- opening the warehouse


def open_warehouse(path: Path) -> duckdb.DuckDBPyConnection:
    """The published warehouse, read-only, with no access to other files, the network or extensions
    (so not even a SELECT can write a file or fetch a URL), configuration locked."""
    missing = AnswerError(f"no warehouse at {path}: run the pipeline first (make demo)")
    if not path.is_file() or path.stat().st_size == 0:
        raise missing
    try:
        con = duckdb.connect(str(path), read_only=True, config={
            "enable_external_access": False,
            "python_enable_replacements": False,  # a query cannot read this process's Python objects
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "lock_configuration": True,
        })
    except duckdb.Error as exc:
        raise AnswerError(f"cannot open the warehouse at {path}: {first_line(exc)}") from None
    if not has_table(con, "marts", "indicators"):
        con.close()
        raise missing
    return con


def has_table(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    rows = con.execute(
        "select count(*) from information_schema.tables"
        " where table_catalog = current_database() and table_schema = $schema and table_name = $table",
        {"schema": schema, "table": table},
    ).fetchall()
    return rows[0][0] > 0


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ---------------------------------------------------------------- read-only SQL

READ_PRAGMAS = frozenset({
    "collations", "database_list", "database_size", "functions", "metadata_info", "platform", "show",
    "show_databases", "show_tables", "show_tables_expanded", "storage_info", "table_info", "user_agent", "version",
})
_READ_TYPES = frozenset({"SELECT"})  # SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE, UNPIVOT
_ALLOWED = "SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN, read-only PRAGMAs"
_PRAGMA = re.compile(r"\s*pragma\s+([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE)
_EXPLAIN = re.compile(r"\s*explain(\s+analyze)?\s+", re.IGNORECASE)
_LEADING_COMMENTS = re.compile(r"(\s+|--[^\n]*(\n|$)|/\*.*?\*/)*", re.DOTALL)


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Refuse anything but one reading statement (AnswerError). The connection is read-only besides."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise AnswerError(f"cannot parse the query: {first_line(exc)}") from None
    if not statements:
        raise AnswerError("no SQL statement given")
    for statement in statements:
        _check_statement(con, statement)
    if len(statements) > 1:
        raise AnswerError(f"one statement at a time, please (got {len(statements)})")


def _check_statement(con: duckdb.DuckDBPyConnection, statement) -> None:
    kind = statement.type.name
    text = _LEADING_COMMENTS.sub("", statement.query, count=1)
    if kind in _READ_TYPES:
        return
    pragma = _PRAGMA.match(text)
    if kind == "PRAGMA" and pragma and pragma.group(1).lower() in READ_PRAGMAS:
        return
    if kind == "EXPLAIN":
        try:
            inner = con.extract_statements(_EXPLAIN.sub("", text, count=1))
        except duckdb.Error:
            inner = []
        if len(inner) == 1:
            _check_statement(con, inner[0])
            return
    what = f"PRAGMA {pragma.group(1)}" if pragma else _keyword(text)
    raise AnswerError(f"{what} is refused: regime sql only reads the warehouse ({_ALLOWED})")


def _keyword(text: str) -> str:
    words = re.findall(r"[A-Za-z_]+", text)
    return words[0].upper() if words else "this statement"


def run_query(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[list[str], list[tuple]]:
    """(column names, rows) of one reading statement; AnswerError for anything else or a failing query."""
    check_read_only(con, sql)
    try:
        cursor = con.execute(sql)
        if cursor.description is None:
            return [], []
        names = [d[0] for d in cursor.description]
        return names, cursor.fetchall()
    except duckdb.Error as exc:
        raise AnswerError(f"query failed: {first_line(exc)}") from None
