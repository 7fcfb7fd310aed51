"""What a gate run validates: every row (a full build) or the rows an incremental update wrote.

An update (warehouse.update) keeps every row dated up to `since` (meta.build_method.recomputed_after) from a warehouse
that passed this gate when it was published, and writes the rows dated after it. So the update's gate validates:

- the **changed rows**: each suite's QUERY and `prepare` run on the rows dated after `since`, plus the `context`
  rows of each series before them that the derived columns look back on (the previous close for a day's move, the
  trailing 252 sessions for a volume spike, the previous row for a gap); only the rows dated after `since` reach GX;
- the **whole-table invariants**, computed by DuckDB in one pass over each table (`INVARIANTS`): row count (the
  "rows never fewer" floor), NULL keys, the latest date (never after the as-of date), and duplicate keys among the
  changed rows (a key includes the date, so a duplicate of a new row is a new row too; the kept rows were unique
  when published). GX validates that one-row frame.

Identifiers below come from this fixed registry (never from data); values are bound parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from regime.freshness import CFTC_FRESH_DAYS
from regime.sql import bind

# the catalog name under which a full build's gate attaches the last published warehouse (read-only) for a suite whose
# SUSPECT rows compare with it (`suspect_query(attached)`: prices' identity)
PUBLISHED = "gate_published"
# Monday, 0001-01-01: weekdays before a date = 5 * (days // 7) + least(days % 7, 5) (WEEKDAYS_BEFORE)
WEEKDAYS_BEFORE = "(5 * ((({d}) - date '0001-01-01') // 7) + least((({d}) - date '0001-01-01') % 7, 5))"

# calendar days before `since` that an update's context rows may reach back: a series whose previous row is older
# (a new row after two years of silence) gets no day-over-day or gap check on its first new row
MAX_CONTEXT_DAYS = 800


@dataclass(frozen=True)
class TableSpec:
    """How to scope one suite's table: its date column, its key, its series column, and the rows of context (per
    series, before the changed rows) its derived columns need."""

    date: str
    keys: tuple[str, ...]
    series: str | None = None
    context: int = 0
    # freshness of a series the update wrote no row of (the suite's own `stale` column covers the others): its
    # latest `fresh` before $fresh_after (fresh_days None) or before $as_of - fresh_days
    fresh: str | None = None
    fresh_days: int | None = None


SPECS = {
    "prices": TableSpec("date", ("date", "symbol"), "symbol", 1, "date"),
    "options_volume": TableSpec("date", ("date", "underlying"), "underlying", 252, "date"),
    "cftc_tff": TableSpec("report_date", ("report_date", "market_code"), "market_code", 1, "release_date",
                          CFTC_FRESH_DAYS),
    "etf_nav": TableSpec("date", ("date", "ticker"), "ticker", 1, "date"),
    # an archive (ends 2019-10-04): no freshness of a series the update wrote no row of
    "options_putcall": TableSpec("date", ("date", "product"), "product"),
    "indicators": TableSpec("date", ("date", "indicator", "subject")),
    "extremes": TableSpec("date", ("date", "indicator", "subject")),
    "regime_daily": TableSpec("date", ("date",)),
    "headlines": TableSpec("date", ("date", "rank")),
    # an update rewrites the forward returns that end after `since` (analogs.update): scoped on end_date
    "forward_returns": TableSpec("end_date", ("date", "subject", "horizon")),
    # validated whole on every run: revisions (meta.revisions, a few rows per recorded revision) and episodes
    # (marts.episodes: an update rewrites them from a cut of its own; DuckDB narrows them to the rows that may fail,
    # its SUSPECT, gate._read)
}


def spec_of(name: str) -> TableSpec:
    return SPECS[name]


@dataclass(frozen=True)
class Scope:
    """`since` None: a full build, every row; else an update that wrote the rows dated after `since`."""

    since: date | None = None

    @property
    def full(self) -> bool:
        return self.since is None

    def describe(self) -> str:
        return "every row (full build)" if self.full else f"rows dated after {self.since} (incremental update)"

    def suspect_rows(self, con: duckdb.DuckDBPyConnection, sql: str, suite_module, run) -> pd.DataFrame:
        """A full build's rows of a suite with a SUSPECT predicate that may fail one of its row-level expectations:
        `sql` (its QUERY where SUSPECT) with the suite's bound parameters, or the suite's own
        `suspect_query(attached)` with the last published warehouse attached read-only as PUBLISHED when it holds
        the suite's table (`attached`); then the suite's `prepare` (the message columns of those rows)."""
        params = {**run.sql_params(), **suite_module.suspect_params(run)}
        query = getattr(suite_module, "suspect_query", None)
        attached = query is not None and _attach(con, run.published, suite_module.TABLE)
        try:
            if query is not None:
                sql = query(attached)
            frame = con.execute(sql, bind(sql, params)).df()
        finally:
            if attached:
                con.execute(f"detach {PUBLISHED}")
        prepare = getattr(suite_module, "prepare", None)
        return prepare(frame, run) if prepare else frame


def _attach(con: duckdb.DuckDBPyConnection, published: Path | None, table: str) -> bool:
    """Attach the published warehouse read-only as PUBLISHED; False (nothing attached) without one or without
    `table` in it (nothing to compare with)."""
    if published is None or not Path(published).exists():
        return False
    try:
        con.execute(f"attach $path as {PUBLISHED} (read_only)", {"path": str(published)})
    except duckdb.Error:
        return False
    schema, name = table.split(".")
    found = con.execute("select count(*) from duckdb_tables() where database_name = $db and schema_name = $schema "
                        "and table_name = $name", {"db": PUBLISHED, "schema": schema, "name": name}).fetchall()[0][0]
    if not found:
        con.execute(f"detach {PUBLISHED}")
    return bool(found)


def read_scope(con: duckdb.DuckDBPyConnection) -> Scope:
    """The scope of a staging warehouse from its meta.build_method; a full one when it has none."""
    try:
        rows = con.execute("select method, recomputed_after from meta.build_method").fetchall()
    except duckdb.Error:
        return Scope()
    if len(rows) != 1 or rows[0][0] != "incremental" or rows[0][1] is None:
        return Scope()
    return Scope(since=rows[0][1])


def context_from(con: duckdb.DuckDBPyConnection, table: str, spec: TableSpec, since: date) -> date:
    """The earliest date a scoped QUERY reads: the `context`-th latest row dated up to `since` of each series that
    has a changed row (at most MAX_CONTEXT_DAYS back); the day after `since` without context."""
    after = since + timedelta(days=1)
    if not spec.context or spec.series is None:
        return after
    floor = since - timedelta(days=MAX_CONTEXT_DAYS)
    d, s = spec.date, spec.series
    found = con.execute(f"""
        with changed as (select distinct {s} as series from {table} where {d} > $since),
        back as (
            select t.{s} as series, t.{d} as day,
                   row_number() over (partition by t.{s} order by t.{d} desc) as n
            from {table} as t join changed on t.{s} = changed.series
            where t.{d} <= $since and t.{d} >= $floor
        )
        select min(day) from back where n <= $context""",
                        {"since": since, "floor": floor, "context": spec.context}).fetchall()[0][0]
    return min(found, after) if found is not None else after


def scoped_query(query: str, table: str, spec: TableSpec) -> str | None:
    """A suite's QUERY reading only the rows of `table` dated on or after $context_from; None when the QUERY does not
    read `table` exactly once as `from <table>` (the gate then validates that suite whole)."""
    alias = table.split(".")[-1]
    needle = f"from {table}"
    if query.count(needle) != 1:
        return None
    return query.replace(needle, f"from (select * from {table} where {spec.date} >= $context_from) as {alias}")


def invariants_sql(table: str, spec: TableSpec) -> str:
    """One pass over the whole table: rows, NULL keys, latest date; duplicate keys among the rows after $since."""
    nulls = " or ".join(f"{k} is null" for k in spec.keys)
    keys = ", ".join(spec.keys)
    return f"""
        with whole as (
            select count(*) as rows, count(*) filter (where {nulls}) as null_keys, max({spec.date}) as max_date
            from {table}
        )
        select rows, null_keys, strftime(max_date, '%Y-%m-%d') as max_date, {_stale(table, spec)} as stale_series,
               case when max_date > $as_of then strftime(max_date, '%Y-%m-%d') end as latest_after_as_of,
               (select count(*) from (select {keys} from {table} where {spec.date} > $since
                                      group by all having count(*) > 1)) as duplicate_keys
        from whole"""


def _stale(table: str, spec: TableSpec) -> str:
    """SQL of the series with no row after $since whose latest row is not fresh ('RUT last 2024-07-01, …'; NULL)."""
    if spec.fresh is None or spec.series is None:
        return "null::varchar"
    cutoff = "$fresh_after" if spec.fresh_days is None else f"$as_of - interval {int(spec.fresh_days)} day"
    return f"""(select string_agg(series || ' last ' || strftime(latest, '%Y-%m-%d'), ', ' order by series)
                from (select {spec.series} as series, max({spec.fresh}) as latest, max({spec.date}) as day
                      from {table} group by all)
                where latest < {cutoff} and day <= $since)"""


def invariant_expectations(name: str, run, floor: int | None) -> list:
    """GX expectations on the one-row invariants frame of `name`."""
    import great_expectations.expectations as gxe

    checks = [
        gxe.ExpectColumnValuesToBeBetween(column="null_keys", max_value=0,
                                          notes=f"{name}: no NULL key anywhere in the table"),
        gxe.ExpectColumnValuesToBeBetween(column="duplicate_keys", max_value=0,
                                          notes=f"{name}: keys unique (an update: among the rows it wrote, a "
                                                "duplicate of a new row has its date)"),
        gxe.ExpectColumnValuesToBeNull(column="latest_after_as_of",
                                       notes=f"{name}: no row dated after the run's as-of date {run.as_of}"),
    ]
    if spec_of(name).fresh is not None:
        checks.append(gxe.ExpectColumnValuesToBeNull(
            column="stale_series", severity="warning",
            notes=f"freshness of {name}: the series the update wrote no row of are fresh too"))
    if floor is not None:
        checks.append(gxe.ExpectColumnValuesToBeBetween(
            column="rows", min_value=floor,
            notes=f"{name} had {floor} rows in the last published warehouse: rows are never dropped"))
    return checks
