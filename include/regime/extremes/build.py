"""The full build of marts.extremes (from warehouse.build): the engine (regime.extremes.kernels) run on
marts.indicators, in parts of whole series past _PART_READINGS readings so that its memory stays bounded, its
columns registered for the SQL models that assemble the table and the update's state (regime.extremes.state).
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import date

import duckdb
import numpy as np
import pyarrow as pa

from regime.extremes import state
from regime.extremes.kernels import compute
from regime.sql import bind, read_sql, scalar

log = logging.getLogger(__name__)

ENGINE_VIEW = "extremes_engine"  # what include/sql/marts/extremes.sql reads
SERIES_VIEW = "extremes_series_engine"  # include/sql/marts/extremes_series.sql, fetched: the part's series names
FRONTIER_VIEW = "extremes_frontier_engine"  # what include/sql/marts/extremes_frontier.sql reads
RANKS_VIEW = "extremes_ranks_engine"  # what include/sql/marts/extremes_ranks.sql reads


def build(con: duckdb.DuckDBPyConnection, params: dict) -> int:
    """Build marts.extremes and the update's state tables (internal.*) from marts.indicators; returns the rows of
    marts.extremes.

    Series are independent, so beyond _PART_READINGS readings the engine runs in parts of whole series (whole
    indicators, or an indicator's subjects split by hash), each through the same SQL models in a scratch
    catalog whose `marts.indicators` is a view of that part: memory stays bounded however many readings there
    are (docs/performance.md), and time stays O(n log L). What the next update reads
    is written last, after every part, so that it finds it in a few storage blocks: the rows of marts.extremes
    dated after the horizon (it deletes those after `since`), and the rank blocks the engine marks hot."""
    home = '"' + scalar(con, "select current_database()").replace('"', '""') + '"'
    counts = con.execute(_BY_INDICATOR).fetchall()
    latest = max((row[2] for row in counts), default=None)
    parts = _parts(con, counts)
    rows = 0
    if len(parts) > 1:
        con.execute(f"attach ':memory:' as {_SCRATCH}")
        con.execute(f"create schema {_SCRATCH}.marts")
    try:
        for n, where in enumerate(parts):
            if len(parts) > 1:  # outside the transaction: a transaction writes to one database only
                con.execute(f"create or replace view {_SCRATCH}.marts.indicators as select * from"
                            f" {home}.marts.indicators where {where}")
            con.begin()  # a transaction per part: one commit (WAL sync) instead of one per statement
            try:
                if n == 0:
                    con.execute(f"create schema if not exists {home}.internal")
                    for table, columns in state.STATE_TABLES.items():
                        con.execute(f"create or replace table {home}.{table} ({columns})")
                con.execute(f"use {_SCRATCH if len(parts) > 1 else home}")
                try:
                    rows += _build_part(con, params, home, state.horizon(latest), create=n == 0)
                finally:
                    con.execute(f"use {home}")
                if n == len(parts) - 1:
                    con.execute(f"insert into {home}.marts.extremes select * from temp.main.extremes_tail")
                    con.execute(f"insert into {home}.internal.extremes_ranks by name select * exclude (hot) from"
                                " temp.main.extremes_ranks_tail")
                con.commit()
            except BaseException:
                con.rollback()
                raise
    finally:
        for view in (ENGINE_VIEW, SERIES_VIEW, FRONTIER_VIEW, RANKS_VIEW):  # a failed part left them
            with contextlib.suppress(duckdb.Error):
                con.unregister(view)
        con.execute("drop table if exists temp.main.extremes_tail")
        con.execute("drop table if exists temp.main.extremes_ranks_tail")
        if len(parts) > 1:
            con.execute(f"detach {_SCRATCH}")
    if len(parts) > 1:
        log.info("extremes engine: %d readings in %d parts", rows, len(parts))
    return rows


_PART_READINGS = 4_000_000  # readings per run of the engine (a part): bounds its memory
_SCRATCH = "extremes_part"


_BY_INDICATOR = ("select indicator, count(*), max(date) from marts.indicators where value is not null and"
                 " isfinite(value) group by indicator order by indicator")


def _parts(con: duckdb.DuckDBPyConnection, counts: list | None = None) -> list[str]:
    """Filters on marts.indicators, each selecting whole series and about _PART_READINGS readings at most (`counts`:
    _BY_INDICATOR's rows, if already read)."""
    counts = [row[:2] for row in (con.execute(_BY_INDICATOR).fetchall() if counts is None else counts)]
    if sum(n for _, n in counts) <= _PART_READINGS:
        return ["true"]
    parts, group, size = [], [], 0
    for name, n in counts:
        literal = "'" + name.replace("'", "''") + "'"
        if n > _PART_READINGS:  # one indicator, its subjects split by hash
            k = -(-n // _PART_READINGS)
            parts += [f"indicator = {literal} and hash(subject) % {k} = {j}" for j in range(k)]
            continue
        if size + n > _PART_READINGS and group:
            parts.append(f"indicator in ({', '.join(group)})")
            group, size = [], 0
        group.append(literal)
        size += n
    if group:
        parts.append(f"indicator in ({', '.join(group)})")
    return parts


def _build_part(con: duckdb.DuckDBPyConnection, params: dict, home: str, cutoff: date | None, create: bool) -> int:
    """Run the engine on the readings `marts.indicators` resolves to and add them to {home}.marts.extremes (the rows
    dated after `cutoff` to temp.main.extremes_tail) and to the state tables (the hot rank blocks to
    temp.main.extremes_ranks_tail); returns the rows."""
    readings = register(con, cutoff)
    try:
        sql = read_sql("marts/extremes.sql")
        bound = {**bind(sql, params), "cutoff": cutoff}
        early = f"select * from ({sql}) where date <= $cutoff"
        late = f"select * from ({sql}) where date > $cutoff"
        ranks = read_sql("marts/extremes_ranks.sql")
        if create:
            con.execute(f"create or replace table {home}.marts.extremes as {early}", bound)
            con.execute(f"create or replace temp table extremes_tail as {late}", bound)
            rows = scalar(con, f"select count(*) from {home}.marts.extremes")
            rows += scalar(con, "select count(*) from temp.main.extremes_tail")
            con.execute(f"create or replace temp table extremes_ranks_tail as select * from ({ranks}) where hot",
                        bind(ranks, params))
        else:
            rows = scalar(con, f"insert into {home}.marts.extremes {early}", bound)
            rows += scalar(con, f"insert into temp.main.extremes_tail {late}", bound)
            con.execute(f"insert into temp.main.extremes_ranks_tail select * from ({ranks}) where hot",
                        bind(ranks, params))
        con.execute(f"insert into {home}.internal.extremes_ranks by name select * exclude (hot) from ({ranks})"
                    " where not hot", bind(ranks, params))
        frontier = read_sql("marts/extremes_frontier.sql")
        con.execute(f"insert into {home}.internal.extremes_frontier by name {frontier}", bind(frontier, params))
        con.execute(f"insert into {home}.internal.extremes_series by name select indicator, subject, history_start"
                    f" from {SERIES_VIEW}")
    finally:  # the part's arrays go before the next part's are made (a failed transaction refuses: build retries)
        for view in (ENGINE_VIEW, SERIES_VIEW, FRONTIER_VIEW, RANKS_VIEW):
            with contextlib.suppress(duckdb.Error):
                con.unregister(view)
    if rows != readings:  # two series with the same hash(indicator, subject): astronomically unlikely, never silent
        raise RuntimeError(f"marts.extremes has {rows} rows for {readings} readings: series ids collide")
    return rows


def register(con: duckdb.DuckDBPyConnection, cutoff: date | None = None) -> int:
    """Compute the engine's columns for marts.indicators and register them as ENGINE_VIEW, with the series' names
    (SERIES_VIEW) and the rows of the state tables (FRONTIER_VIEW: entries that stopped after `cutoff`, the
    horizon, or never; RANKS_VIEW); returns the row count.

    ENGINE_VIEW: (series_id, date, value, history_start, highest_since, lowest_since, is_record_high,
    is_record_low, pct_rank); series_id = hash(indicator, subject), as in extremes_readings.sql.
    """
    started = time.perf_counter()
    rows = con.execute(read_sql("marts/extremes_readings.sql")).fetchnumpy()
    read = time.perf_counter()
    day = np.asarray(rows["date"]).astype("datetime64[D]").astype(np.int32)  # days since 1970-01-01
    value = np.asarray(rows["value"], dtype=np.float64)
    series = np.asarray(rows["series_id"])
    del rows
    if len(day) > 1 and np.any((series[1:] == series[:-1]) & (day[1:] <= day[:-1])):
        raise ValueError("extremes_readings.sql must return one row per (series, date), sorted")
    ext = compute(series, value, blocks=True)
    log.info("extremes engine: %d readings read in %.1f s, computed in %.1f s", len(value), read - started,
             time.perf_counter() - read)

    def dates(index: np.ndarray | None = None) -> pa.Array:
        """date32 straight from the day numbers (of the rows `index`, NULL where it is -1)."""
        if index is None:
            return pa.Array.from_buffers(pa.date32(), len(day), [None, pa.py_buffer(day)])
        valid = pa.py_buffer(np.packbits(index >= 0, bitorder="little"))
        days = np.ascontiguousarray(day[np.maximum(index, 0)])
        return pa.Array.from_buffers(pa.date32(), len(days), [valid, pa.py_buffer(days)], null_count=-1)

    con.register(ENGINE_VIEW, pa.table({
        "series_id": series,
        "date": dates(),
        "value": value,
        "history_start": dates(ext.first),
        "highest_since": dates(ext.above),
        "lowest_since": dates(ext.below),
        "is_record_high": ext.is_record_high,
        "is_record_low": ext.is_record_low,
        "pct_rank": ext.pct_rank,
    }))
    con.register(SERIES_VIEW, con.sql(read_sql("marts/extremes_series.sql")).to_arrow_table())

    frontier = state.frontier_rows(series, day, value, state.NULL if cutoff is None else (cutoff - state.EPOCH).days)
    con.register(FRONTIER_VIEW, pa.table({
        "series_id": frontier["series_id"], "side": pa.array(np.where(frontier["low"], "low", "high"), pa.string()),
        "date": state.to_dates(frontier["day"]), "value": frontier["value"],
        "until": state.to_dates(frontier["until"])}))

    ranks = [pa.table(b) for b in ext.blocks]
    if not ranks:  # no readings: the columns, empty
        empty = state.rank_blocks(np.empty(0), np.empty(0, np.int64), np.empty(0, bool))
        del empty["start"]
        ranks = [pa.table({**empty, "series_id": series, "hot": np.empty(0, bool)})]
    con.register(RANKS_VIEW, pa.concat_tables(ranks))
    return len(value)
