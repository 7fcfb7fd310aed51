"""What changed in the lake since a warehouse was built, and bringing a copied warehouse's staging tables up to date:
the partition files' write journals against meta.lake_writes, or else each staging model recomputed and compared
with the copy date by date; the result is `since`, the last date up to which nothing an update reads changed.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

import duckdb

from regime import datasets
from regime.config import Settings
from regime.incremental import NotIncremental, history_from
from regime.models import Model
from regime.sql import FULL, bind, read_sql, scalar

log = logging.getLogger(__name__)

# The date that places each staging model's row in time: a row dated d depends only on lake rows dated d or earlier
# (what makes the warehouse point in time, and what lets an update keep every row dated up to its `since`).
POINT_IN_TIME = {f"staging.{d.name}": d.time_column for d in datasets.ALL}
# Staging models whose rows look back on earlier rows of their series (etf_nav's flow: the previous row's shares and
# NAV): (kind of sessions in indicators.SESSIONS, rows). An update recomputes their rows after `since` from that far
# back; the others from `since` on.
STAGING_LOOKBACK = {"staging.etf_nav": ("etf", 1)}


def lake_journals(settings: Settings) -> dict[str, dict[str, list[dict] | None]]:
    """{dataset: {partition directory: its write journal, None if it has none}} of the lake now (lake.read_journal:
    file footers only), in REGIME_DATA_DIR or, with REGIME_LAKE_URI, in the bucket (regime.lake_store)."""
    from regime import lake, lake_store

    if settings.lake_uri:
        return lake_store.journals(settings, datasets.ALL)
    found: dict[str, dict[str, list[dict] | None]] = {}
    for dataset in datasets.ALL:
        root = settings.lake_dir / dataset.name
        files = sorted(root.glob("*/data.parquet")) if root.is_dir() else []
        found[dataset.name] = {path.parent.name: lake.read_journal(path) for path in files}
    return found


def recorded_writes(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, str | None]] | None:
    """meta.lake_writes of a warehouse: the journal entry each partition file was at when it was built."""
    try:
        rows = con.execute("select dataset, partition, write_id from meta.lake_writes").fetchall()
    except duckdb.CatalogException:
        return None
    recorded: dict[str, dict[str, str | None]] = {}
    for dataset, partition, write_id in rows:
        recorded.setdefault(dataset, {})[partition] = write_id
    return recorded


def journal_changes(recorded: dict[str, str | None],
                    journals: dict[str, list[dict] | None]) -> tuple[bool, date | None]:
    """(known, first_changed) of one dataset since a build that recorded `recorded`: known is False where the
    journals cannot tell (a file without a journal, written by another tool; an entry no longer in it; a file
    gone); first_changed is the earliest date a write since then added or changed (None: nothing)."""
    from regime import lake

    if set(recorded) - set(journals):
        return False, None
    first: date | None = None
    for partition, journal in journals.items():
        if journal is None:
            return False, None
        ids = [entry.get("id") for entry in journal]
        if partition in recorded:
            if recorded[partition] not in ids:
                return False, None
            entries = journal[ids.index(recorded[partition]) + 1:]
        elif len(journal) < lake.JOURNAL_LENGTH:  # a new file, with its whole journal since it was created
            entries = journal
        else:
            return False, None
        for entry in entries:
            changed = entry.get("first_changed")
            if changed:
                day = date.fromisoformat(changed)
                first = day if first is None else min(first, day)
    return True, first


def refresh_staging(con: duckdb.DuckDBPyConnection, params: dict, previous_as_of: date,
                    journals: dict[str, dict[str, list[dict] | None]], models: list[Model]) -> tuple[date, str]:
    """Bring the staging tables (`models`: the staging models) of a copied warehouse up to what the lake holds as of
    the run; return `since` (the last date up to which none of them changed, at most `previous_as_of`) and how each
    was checked.

    Each lake partition file journals its writes (regime.lake.upsert_partition): with meta.lake_writes, the entry
    each file was at when the copied warehouse was built, the journals tell the earliest date changed since, from
    the files' footers alone. Where they cannot tell (a file written by another tool, or gone), the dataset's
    staging model is recomputed from the whole lake into a temporary table and compared with the copy date by
    date (POINT_IN_TIME): row count and the sum of 64-bit hashes of the rows, every column (a change goes
    unnoticed with a probability of about 2^-64). The first date that differs bounds `since`. Then only the rows
    dated after `since` are replaced; they are read from the lake from `since` on (STAGING_LOOKBACK: further back),
    which Parquet row-group statistics keep to the recent end of each file.

    A staging model that is no dataset's (no journal) is always compared, by its `date` column; one without a `date`
    column is compared whole, and NotIncremental is raised if it changed."""
    since = previous_as_of
    recorded = recorded_writes(con)
    order = list(POINT_IN_TIME)  # datasets.ALL's order, then the staging models of no dataset
    models = sorted(models, key=lambda m: (order.index(m.name) if m.name in order else len(order), m.name))
    how: dict[str, str] = {}
    columns = {model.name: time_column(con, model.name) for model in models}
    for model in models:
        table, name = model.name, model.name.split(".")[1]
        known, first = False, None
        if recorded is not None and table in POINT_IN_TIME:
            known, first = journal_changes(recorded.get(name, {}), journals[name])
        how[name] = "journal" if known else "compared"
        if not known:
            first = _compare_with_lake(con, model, columns[table], params)
            if columns[table] is None and first is not None:
                raise NotIncremental(f"{table} ({model.path}) changed and has no date column to bound it by")
        if first is not None and first <= since:
            log.info("%s differs from the published warehouse from %s on", table, first)
            since = max(FULL, first - timedelta(days=1))
    for model in models:
        table, column = model.name, columns[model.name]
        if column is None:  # unchanged (else NotIncremental above)
            con.execute(f"drop table {_fresh(table)}")
            continue
        if how[table.split(".")[1]] == "journal":
            kind, rows = STAGING_LOOKBACK.get(table, (None, 0))
            start = history_from(con, kind, rows, since) if rows else since + timedelta(days=1)
            sql = read_sql(model.path)
            query = f"create or replace temp table {_fresh(table)} as select * from ({sql}) where {column} > $since"
            con.execute(query, bind(query, {**params, "history_from": start, "since": since}))
        con.execute(f"delete from {table} where {column} > $since", {"since": since})
        con.execute(f"insert into {table} select * from {_fresh(table)} where {column} > $since", {"since": since})
        con.execute(f"drop table {_fresh(table)}")
    checked = ", ".join(f"{name}: {way}" for name, way in how.items())
    return since, checked


def time_column(con: duckdb.DuckDBPyConnection, table: str) -> str | None:
    """The column that places a staging table's rows in time: its dataset's (POINT_IN_TIME), else `date` if it has
    one, else None."""
    if table in POINT_IN_TIME:
        return POINT_IN_TIME[table]
    schema, name = table.split(".")
    found = con.execute("select count(*) from duckdb_columns() where database_name = current_database()"
                        " and schema_name = $s and table_name = $t and column_name = 'date'",
                        {"s": schema, "t": name}).fetchall()
    return "date" if found[0][0] else None


def _compare_with_lake(con: duckdb.DuckDBPyConnection, model: Model, column: str | None, params: dict) -> date | None:
    """Recompute a staging model from the whole lake into a temporary table; the first date (of `column`) it
    differs from the copy on (None: identical). Without a column the tables are compared whole: FULL if they
    differ."""
    table, sql = model.name, read_sql(model.path)
    con.execute(f"create or replace temp table {_fresh(table)} as {sql}", bind(sql, {**params, "history_from": FULL}))
    day = f"r.{column}" if column else "$full::date"
    return scalar(con, f"""
        with lake as (
            select {day} as day, count(*) as n, sum(hash(r)::hugeint) as digest from {_fresh(table)} as r
            group by all
        ),
        kept as (
            select {day} as day, count(*) as n, sum(hash(r)::hugeint) as digest from {table} as r
            group by all
        )
        select min(day) from lake full join kept using (day)
        where lake.n is distinct from kept.n or lake.digest is distinct from kept.digest""",
                  {} if column else {"full": FULL})


def _fresh(table: str) -> str:
    return "temp.main.fresh_" + table.split(".")[-1]
