"""Building the warehouse from include/sql into a staging copy, and publishing it by atomic swap.

Analysts only ever open the published file, read-only. A build writes a new file under build/; only a
validated build replaces `warehouse.duckdb` (os.replace: readers see the old or the new file, never a mix).
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from regime import SQL_DIR, datasets, state
from regime.config import Settings
from regime.indicators import REGISTRY

log = logging.getLogger(__name__)

SCHEMAS = ("staging", "marts", "meta")
# (table, model file) in build order. Staging models are materialised as tables so that the published
# file is a self-contained snapshot of what the lake held on the as-of date.
MODELS: tuple[tuple[str, str], ...] = (
    *((f"staging.{d.name}", f"staging/{d.name}.sql") for d in datasets.ALL),
    ("marts.prices", "marts/prices.sql"),
)
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


class WarehouseError(RuntimeError):
    pass


def read_sql(relpath: str) -> str:
    return (SQL_DIR / relpath).read_text()


def bind(sql: str, params: dict) -> dict:
    """The subset of `params` that `sql` uses; every `$name` it uses must be given."""
    used = set(_PARAM.findall(sql))
    missing = used - params.keys()
    if missing:
        raise WarehouseError(f"SQL parameters without a value: {sorted(missing)}")
    return {k: params[k] for k in used}


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None):
    """The single value a query returns (fetched completely: DuckDB 2 keeps a half-read result pending)."""
    rows = con.execute(sql, params or {}).fetchall()
    return rows[0][0] if rows else None


def run_model(con: duckdb.DuckDBPyConnection, table: str, relpath: str, params: dict) -> int:
    sql = read_sql(relpath)
    con.execute(f"create or replace table {table} as {sql}", bind(sql, params))
    return scalar(con, f"select count(*) from {table}")


def lake_params(settings: Settings, as_of: date) -> dict:
    """Parameters every model may use: the as-of date, where each dataset's Parquet files are (an empty typed
    file for a dataset the lake does not hold yet), and the configured groups."""
    params = {"as_of": as_of, "small_caps": list(settings.small_caps), "large_caps": list(settings.large_caps)}
    for dataset in datasets.ALL:
        has_data = dataset.has_data(settings.lake_dir)
        if not has_data:
            log.warning("the lake holds no %s yet: staging.%s will be empty", dataset.name, dataset.name)
        params[f"{dataset.name}_glob"] = (dataset.glob(settings.lake_dir) if has_data
                                          else str(dataset.empty_file(settings.build_dir)))
    return params


def build_indicators(con: duckdb.DuckDBPyConnection, params: dict, names: Iterable[str] | None = None) -> int:
    con.execute(
        "create or replace table marts.indicators ("
        " date date not null, indicator varchar not null, subject varchar not null, value double,"
        " primary key (date, indicator, subject))"
    )
    wanted = set(names) if names is not None else None
    for indicator in REGISTRY:
        if wanted is not None and indicator.name not in wanted:
            continue
        sql = read_sql(indicator.sql)
        con.execute(
            f"insert into marts.indicators select date, $indicator, subject, value from ({sql})",
            {**bind(sql, params), "indicator": indicator.name},
        )
    return scalar(con, "select count(*) from marts.indicators")


def copy_state(con: duckdb.DuckDBPyConnection, state_dir: Path) -> None:
    """Copy the pipeline's state (alerts, validation runs) into meta.* of a build."""
    for name, frame in state.frames(state_dir).items():
        con.register("state_frame", frame)
        con.execute(f"create or replace table meta.{name} as select * from state_frame")
        con.unregister("state_frame")


def build(settings: Settings, as_of: date) -> Path:
    """Build every model into a new staging file and return its path (nothing is published)."""
    from regime import extremes
    from regime.indicators import REGIME_RULES

    settings.build_dir.mkdir(parents=True, exist_ok=True)
    target = settings.build_dir / f"warehouse-{as_of.isoformat()}-{uuid.uuid4().hex[:8]}.duckdb"
    params = {**REGIME_RULES, **lake_params(settings, as_of)}
    con = duckdb.connect(str(target))
    try:
        for schema in SCHEMAS:
            con.execute(f"create schema if not exists {schema}")
        copy_state(con, settings.state_dir)
        counts = {}
        for table, relpath in MODELS:
            counts[table] = run_model(con, table, relpath, params)
            log.info("built %s: %d rows", table, counts[table])
        counts["marts.indicators"] = build_indicators(con, params)
        log.info("built marts.indicators: %d rows", counts["marts.indicators"])
        counts["marts.extremes"] = extremes.build(con, params)
        log.info("built marts.extremes: %d rows", counts["marts.extremes"])
        counts["marts.regime_daily"] = run_model(con, "marts.regime_daily", "marts/regime_daily.sql", params)
        log.info("built marts.regime_daily: %d rows", counts["marts.regime_daily"])
        con.execute(
            "create or replace table meta.build_info as select $as_of::date as as_of,"
            " $built_at::timestamptz as built_at, $source as source, $origin as origin",
            {"as_of": as_of, "built_at": datetime.now(UTC), "source": settings.source,
             "origin": str(settings.mirror_dir) if settings.source == "mirror" else "live"},
        )
        con.execute("checkpoint")
    except Exception:
        con.close()
        discard(target)
        raise
    con.close()
    return target


def discard(staging: Path) -> None:
    for path in (staging, staging.with_name(staging.name + ".wal")):
        path.unlink(missing_ok=True)


def publish(settings: Settings, staging: Path) -> Path:
    """Atomically replace the published warehouse with a finished staging file."""
    if not staging.exists():
        raise WarehouseError(f"nothing to publish: {staging} does not exist")
    if staging.with_name(staging.name + ".wal").exists():
        raise WarehouseError(f"{staging} has a pending write-ahead log; it was not closed cleanly")
    target = settings.warehouse_path
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, target)
    log.info("published %s", target)
    return target


def connect_readonly(path: Path) -> duckdb.DuckDBPyConnection:
    if not path.exists():
        raise WarehouseError(f"no warehouse at {path}: run the pipeline first (make demo)")
    return duckdb.connect(str(path), read_only=True)


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    rows = con.execute(
        "select schema_name || '.' || table_name, estimated_size from duckdb_tables() "
        "where database_name = current_database() order by 1"
    ).fetchall()
    return {name: scalar(con, f"select count(*) from {name}") for name, _ in rows}
