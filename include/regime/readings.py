"""marts.indicators: the readings of the registry's indicators (regime.indicators.REGISTRY), each from its SQL file
in include/sql/indicators/, with the intermediate models that SQL reads built first.

An intermediate model (include/sql/intermediate/<name>.sql) is what several indicators compute alike: the ones an
indicator reads (schema-qualified `intermediate.<name>` in its `from`/`join`, found by DuckDB's parser:
regime.models.references), and those they read in turn, are built into an in-memory database attached as
`intermediate`, with the indicator's own parameters, once for the indicators that share them; it is detached at the
end, so no intermediate table is part of the warehouse.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator
from datetime import date, timedelta

import duckdb

from regime.incremental import MAX_INCREMENTAL_DAYS, history_from
from regime.indicators import REGISTRY, Indicator
from regime.models import ModelError, file_references
from regime.sql import FULL, bind, read_sql, scalar

log = logging.getLogger(__name__)

INTERMEDIATE = "intermediate"  # the schema of the intermediate models, and the in-memory database they are built in


def build_indicators(con: duckdb.DuckDBPyConnection, params: dict, names: Iterable[str] | None = None) -> int:
    """marts.indicators of a full build. The readings an update may recompute (dated after the horizon, $as_of -
    MAX_INCREMENTAL_DAYS) are computed the way an update does (insert_readings from the horizon, the same values)
    and written after all the others: an update's `delete ... where date > $since` then marks rows in the last row
    groups only (rows of every series in every row group made its checkpoint grow with the history)."""
    # Unique on (date, indicator, subject): each SQL file selects one row per (date, subject), and the gate blocks
    # a build where that fails (ExpectCompoundColumnsToBeUnique). No PRIMARY KEY constraint: maintaining its index
    # cost more than every indicator query together (docs/performance.md).
    con.execute(
        "create or replace table marts.indicators ("
        " date date not null, indicator varchar not null, subject varchar not null, value double)"
    )
    horizon = params["as_of"] - timedelta(days=MAX_INCREMENTAL_DAYS)
    insert_readings(con, params, FULL, names, until=horizon)
    insert_readings(con, params, horizon, names)
    return scalar(con, "select count(*) from marts.indicators")


def update_indicators(con: duckdb.DuckDBPyConnection, params: dict, since: date) -> int:
    """marts.indicators of an update: the readings dated after `since` deleted and computed again; returns them."""
    con.execute("delete from marts.indicators where date > $since", {"since": since})
    return insert_readings(con, params, since)


def insert_readings(con: duckdb.DuckDBPyConnection, params: dict, since: date,
                    names: Iterable[str] | None = None, until: date | None = None) -> int:
    """Insert into marts.indicators every reading dated after `since` (FULL: all) and up to `until` (None: no
    limit), each indicator reading its input from `history_from`; returns the rows inserted."""
    upto = "" if until is None else " where date <= $until"
    inserted = 0
    with contextlib.closing(indicator_queries(con, params, since, names)) as queries:
        for indicator, sql, bound in queries:
            extra = {"indicator": indicator.name} | ({} if until is None else {"until": until})
            rows = con.execute(
                f"insert into marts.indicators select date, $indicator, subject, value from ({sql}){upto}",
                {**bound, **extra},
            ).fetchall()
            inserted += rows[0][0] if rows else 0
    return inserted


def intermediate_inputs(relpath: str) -> list[str]:
    """The intermediate models the SQL file `relpath` reads, directly or through each other, each after those it
    reads. ModelError names the file that reads a missing one, or the cycle."""
    found: list[str] = []

    def visit(path: str, trail: tuple[str, ...]) -> None:
        for ref in sorted(file_references(path)):
            schema, _, name = ref.partition(".")
            if schema != INTERMEDIATE or name in found:
                continue
            if name in trail:
                raise ModelError(f"intermediate models read each other in a cycle: {' -> '.join((*trail, name))}")
            model = f"{INTERMEDIATE}/{name}.sql"
            try:
                read_sql(model)
            except FileNotFoundError:
                raise ModelError(f"{path} reads {ref}, which no model makes (no include/sql/{model})") from None
            visit(model, (*trail, name))
            found.append(name)

    visit(relpath, ())
    return found


def indicator_queries(con: duckdb.DuckDBPyConnection, params: dict, since: date,
                      names: Iterable[str] | None = None) -> Iterator[tuple[Indicator, str, dict]]:
    """Each chosen indicator (registry order) with its SQL and bound parameters for the readings dated after `since`,
    ready to run on `con`. First, the intermediate models its SQL reads (intermediate_inputs) are built with the same
    parameters into an in-memory database attached as `intermediate` (read-write even on a read-only connection),
    once for the indicators that share them, and detached at the end: not part of the warehouse."""
    wanted = None if names is None else set(names)
    chosen = [i for i in REGISTRY if wanted is None or i.name in wanted]
    # one look-back date per kind of sessions, for the longest look-back of that kind (more history is harmless)
    longest: dict[str, int] = {}
    for indicator in chosen:
        if indicator.lookback_sessions:
            longest[indicator.sessions] = max(longest.get(indicator.sessions, 0), indicator.lookback_sessions)
    starts = {kind: history_from(con, kind, n, since) for kind, n in longest.items()} if since != FULL else {}
    built: dict[str, dict] = {}  # intermediate model -> the parameters it was built with
    con.execute(f"attach if not exists ':memory:' as {INTERMEDIATE} (read_write, compress)")
    try:
        for indicator in chosen:
            sql = read_sql(indicator.sql)
            if since == FULL or indicator.lookback_sessions is None:
                start = FULL
            else:
                start = starts[indicator.sessions] if indicator.lookback_sessions else since
            bound = {**params, "since": since, "history_from": start}
            if indicator.window is not None:  # a file shared by indicators of several windows
                bound["window"] = indicator.window
            rebuilt = False  # a model built again: those after it (which may read it) are built again too
            for model in intermediate_inputs(indicator.sql):
                model_sql = read_sql(f"{INTERMEDIATE}/{model}.sql")
                model_params = bind(model_sql, bound)
                if rebuilt or built.get(model) != model_params:
                    rebuilt = True
                    t0 = time.perf_counter()
                    con.execute(f"create or replace table {INTERMEDIATE}.{model} as {model_sql}", model_params)
                    built[model] = model_params
                    log.debug("%s.%s built for %s in %.2f s", INTERMEDIATE, model, indicator.name,
                              time.perf_counter() - t0)
            yield indicator, sql, bind(sql, bound)
    finally:
        con.execute(f"detach database if exists {INTERMEDIATE}")
