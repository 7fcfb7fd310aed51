"""Helpers shared by the reliability tests (tests/test_reliability_*.py); no tests here.

* `published_sample(tmp_path_factory)` (tests/conftest.py, the data dir behind its `published` fixture): the bundled
  sample ingested and the warehouse published as of its last session, built once per pytest session (per xdist
  worker) and copied by each test that needs one;
* `lake_digest`, `raw_digest`, `warehouse_digest`: what "identical" means for the lake (file hashes of every
  Parquet partition), raw landing (bytes and metadata) and the warehouse (a content hash per table, since DuckDB
  files differ byte-wise between two writes of the same data);
* `Child`: a Python child process started with `python -c`, the REGIME_* environment and a script, for runs that
  are killed or raced.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb

from conftest import SAMPLE_MIRROR, published_sample  # noqa: F401 (published_sample: re-exported)

DATASETS = ("index_prices", "options_volume", "cftc_tff", "etf_nav")
PYTHON = sys.executable
# Excluded from "identical" (asserted apart): when and how a file was built, and the append-only log of runs.
VOLATILE_COLUMNS = {"meta.build_info": ["built_at"], "meta.validation_runs": ["run_at"]}
BUILD_PATH_TABLES = {"meta.build_method"}  # full rebuild or incremental update: equal content either way
DOCS_URL = r"regexp_replace(docs_url, '^file://.*/validation-docs/', 'file://<data dir>/validation-docs/')"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def lake_digest(data_dir: Path) -> dict[str, str]:
    """sha256 of every file under lake/ (the Parquet partitions): rewriting the same rows gives the same bytes."""
    root = data_dir / "lake"
    return {str(p.relative_to(root)): sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


def raw_digest(data_dir: Path) -> dict[str, str]:
    """sha256 of every landed file and its .meta.json (whose fetched_at is the first fetch of these bytes)."""
    root = data_dir / "raw"
    return {str(p.relative_to(root)): sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


def tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute("select schema_name || '.' || table_name from duckdb_tables()"
                       " where database_name = current_database() order by 1").fetchall()
    return [r[0] for r in rows]


def table_digest(con: duckdb.DuckDBPyConnection, table: str, exclude: list[str] = ()) -> tuple[int, str]:
    """(rows, md5 of every row as text, in a total order) of one table, without the `exclude` columns."""
    columns = [r[0] for r in con.execute(f"describe {table}").fetchall() if r[0] not in exclude]
    row = "cast(row(" + ", ".join(f'"{c}"' for c in columns) + ") as varchar)"
    rows, digest = con.execute(f"select count(*), md5(coalesce(string_agg(r, '|' order by r), ''))"
                               f" from (select {row} as r from {table})").fetchall()[0]
    return rows, digest


def warehouse_digest(path: Path) -> dict[str, tuple]:
    """Content hash of every table of a warehouse file, opened read-only. meta.build_info is hashed without
    built_at; meta.validation_runs is given as its set of distinct rows without run_at (each build appends its run:
    compare with `same_checks`); meta.build_method (full or incremental) is left out."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        digest = {}
        for table in tables(con):
            if table in BUILD_PATH_TABLES:
                continue
            exclude = VOLATILE_COLUMNS.get(table, [])
            if table == "meta.validation_runs":  # a log: the set of its distinct rows, without run_at
                keep = [r[0] for r in con.execute(f"describe {table}").fetchall() if r[0] not in exclude]
                # the Data Docs link names the data dir, which a test may have copied from elsewhere
                keep = [DOCS_URL if c == "docs_url" else c for c in keep]
                digest[table] = frozenset(con.execute(f"select distinct {', '.join(keep)} from {table}").fetchall())
            else:
                digest[table] = table_digest(con, table, exclude)
        return digest
    finally:
        con.close()


def same_checks(before: frozenset, after: frozenset) -> None:
    """The validation log of a rerun: every check of the first run again, with the same outcome, plus only the
    "rows never fewer" checks (expect_table_row_count_to_be_between), which need a previously published build, and
    the passing whole-table invariants of an update's gate (a rerun updates the warehouse: docs/validation.md)."""
    assert before <= after
    added = after - before
    table_checks = ("expect_table_row_count_to_be_between(", *(f"expect_column_values_to_be_between(column={c}," for c
                                                              in ("rows", "null_keys", "duplicate_keys")),
                    *(f"expect_column_values_to_be_null(column={c})" for c in ("latest_after_as_of", "stale_series")))
    assert all(row[2].startswith(table_checks) and row[4] == 1 for row in added), added


def build_info(path: Path) -> dict:
    con = duckdb.connect(str(path), read_only=True)
    try:
        cursor = con.execute("select * from meta.build_info")
        names = [d[0] for d in cursor.description]
        return dict(zip(names, cursor.fetchall()[0], strict=True))
    finally:
        con.close()


def regime_env(data_dir: Path, mirror: Path = SAMPLE_MIRROR, **extra: str) -> dict:
    """The environment of a child run: this process's, with REGIME_* pointing at `data_dir` and `mirror`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGIME_")}
    env.update({"REGIME_DATA_DIR": str(data_dir), "REGIME_MIRROR_DIR": str(mirror), "REGIME_SOURCE": "mirror",
                **extra})
    return env


class Child:
    """`python -c <script> <args>` with the given environment; stdout and stderr are kept in files under `log_dir`."""

    def __init__(self, script: str, env: dict, log_dir: Path, name: str, args: tuple[str, ...] = ()):
        log_dir.mkdir(parents=True, exist_ok=True)
        self.out, self.err = log_dir / f"{name}.out", log_dir / f"{name}.err"
        self.started = time.monotonic()
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen([PYTHON, "-c", textwrap.dedent(script), *args], env=env, stdout=out,
                                         stderr=err)

    def wait(self, timeout: float = 180) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stdout(self) -> str:
        return self.out.read_text()

    def stderr(self) -> str:
        return self.err.read_text()

    def result(self) -> dict:
        """The JSON object the script printed last."""
        lines = [line for line in self.stdout().splitlines() if line.startswith("{")]
        return json.loads(lines[-1]) if lines else {}
