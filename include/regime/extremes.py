"""The extremes engine: for every reading of marts.indicators, its record flags, the latest earlier date at or
beyond its value ("highest since" / "lowest since") and its expanding percentile rank.

SQL reads the readings (include/sql/marts/extremes_readings.sql) and assembles the table
(include/sql/marts/extremes.sql); this module computes the columns in between. DuckDB's framed window functions
can state them without a self-join (`lag(date ORDER BY date) OVER (... ORDER BY value RANGE BETWEEN CURRENT ROW
AND UNBOUNDED FOLLOWING)`, `cume_dist(ORDER BY value) OVER (... ROWS UNBOUNDED PRECEDING)`), but that took 36 s
(70 CPU-s) for 10 M readings on 2 cores, against 8-13 s (12 CPU-s) for the whole step here, ~3 CPU-s of it in the
numpy below (docs/indicators.md has the measurements). Everything is O(n log L), L = the longest series, in
batches of whole series that fit in cache, computed on several threads (numpy releases the GIL):

- "latest earlier row with value >= v" (previous greater-or-equal element): binary lifting over a sparse table of
  window maxima, log2(L) vectorised passes over the rows the previous row does not answer;
- "readings up to this one with value <= v" (expanding rank): a wavelet-style split on the bits of the position,
  log2(L) vectorised stable partitions of each series' rows sorted by value.

Past _PART_READINGS readings the engine runs in parts of whole series, so that its memory stays bounded (build).
An incremental build (warehouse.update) does not run the engine: `update` computes the rows of the new readings
only, in SQL, against the stored table (UPDATE_SQL).
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from regime.warehouse import bind, read_sql, scalar

log = logging.getLogger(__name__)

ENGINE_VIEW = "extremes_engine"  # what include/sql/marts/extremes.sql reads
_CHUNK_ROWS = 1 << 17  # rows per batch of whole series: keeps the working arrays in cache
_THREADS = min(os.cpu_count() or 1, 4)  # batches computed at once


@dataclass(frozen=True)
class Extremes:
    """Row-aligned results for rows sorted by (series, date). Row indices are -1 where there is none."""

    first: np.ndarray  # index of the first row of the row's series
    above: np.ndarray  # latest earlier row of the series with value >= this one
    below: np.ndarray  # latest earlier row of the series with value <= this one
    is_record_high: np.ndarray  # nothing earlier in the series is >= this value, and something earlier exists
    is_record_low: np.ndarray
    pct_rank: np.ndarray  # rows of the series up to this one with value <= this one, over the rows up to this one


def compute(series: np.ndarray, value: np.ndarray) -> Extremes:
    """`series` (integer id) non-decreasing, rows of one series in date order, `value` finite."""
    series = np.asarray(series)
    value = np.asarray(value, dtype=np.float64)
    n = len(value)
    if len(series) != n:
        raise ValueError("series and value differ in length")
    if n and np.any(series[1:] < series[:-1]):
        raise ValueError("rows must be sorted by series")
    if not np.all(np.isfinite(value)):
        raise ValueError("values must be finite")
    index = np.int32 if n < 2**31 else np.int64
    out = Extremes(*(np.empty(n, index) for _ in range(3)), np.empty(n, bool), np.empty(n, bool), np.empty(n))
    if n == 0:
        return out
    starts = np.flatnonzero(np.r_[True, series[1:] != series[:-1]])
    lengths = np.diff(np.r_[starts, n])

    def batch(lo: int, hi: int, st: np.ndarray, ln: np.ndarray) -> None:  # writes disjoint slices only
        gs = np.repeat(st, ln)  # batch-local start of each row's series
        pos = np.arange(hi - lo, dtype=np.int32) - gs  # position in its series
        v = value[lo:hi]
        levels = int(ln.max()).bit_length()
        out.first[lo:hi] = gs + lo
        for target, record, values in ((out.above, out.is_record_high, v), (out.below, out.is_record_low, -v)):
            found = _previous_at_least(values, gs, levels)
            none = found < 0
            target[lo:hi] = np.where(none, -1, found.astype(target.dtype) + lo)
            np.greater(pos, 0, out=record[lo:hi])
            record[lo:hi] &= none
        out.pct_rank[lo:hi] = (_count_le_before(v, gs, np.repeat(ln, ln), st, ln) + 1) / (pos + 1)

    batches = list(_batches(starts, lengths, n))
    workers = min(_THREADS, len(batches))
    if workers > 1:  # numpy releases the GIL inside its loops: batches run in parallel
        with ThreadPoolExecutor(workers) as pool:
            for done in [pool.submit(batch, *b) for b in batches]:
                done.result()
    else:
        for b in batches:
            batch(*b)
    return out


def _batches(starts, lengths, n):
    """(lo, hi, local series starts, lengths) of consecutive whole series, about _CHUNK_ROWS rows each."""
    ends = starts + lengths
    cut = [0]
    for i, end in enumerate(ends.tolist()):
        if end - starts[cut[-1]] >= _CHUNK_ROWS or i == len(ends) - 1:
            cut.append(i + 1)
    for a, b in zip(cut[:-1], cut[1:], strict=True):
        lo, hi = int(starts[a]), int(ends[b - 1])
        yield lo, hi, (starts[a:b] - lo).astype(np.int32), lengths[a:b].astype(np.int32)


def _previous_at_least(v: np.ndarray, gs: np.ndarray, levels: int) -> np.ndarray:
    """For each row i: the largest j < i with j >= gs[i] and v[j] >= v[i], else -1.

    table[k][q] = max(v[q - 2^k], ..., v[q - 1]). Rows the previous row answers (about half) are done at once.
    For the others, binary lifting keeps p such that every row in [p, i) is < v[i] and moves it back by 2^k
    (k descending) while the window just before p is entirely < v[i] and stays inside the series; the answer is
    then p - 1 if that is still inside the series.
    """
    n = len(v)
    base = np.empty(n + 1)
    base[0] = -np.inf
    base[1:] = v
    tables = [base]
    for k in range(1, levels):
        prev, half = tables[-1], 1 << (k - 1)
        cur = prev.copy()
        np.maximum(prev[half:], prev[:-half], out=cur[half:])
        tables.append(cur)
    found = np.arange(-1, n - 1, dtype=np.int32)  # the previous row
    todo = np.flatnonzero((base[:-1] < v) | (found < gs)).astype(np.int32)
    p, start, w = todo.copy(), gs[todo], v[todo]
    for k in range(levels - 1, -1, -1):
        step = np.int32(1 << k)
        p -= ((p - step >= start) & (tables[k][p] < w)) * step
    p -= 1
    p[p < start] = -1
    found[todo] = p
    return found


def _count_le_before(v, gs, length, starts, lengths) -> np.ndarray:
    """For each row i: the number of rows j < i of its series with v[j] <= v[i].

    Rows of each series are laid out in (value, position) order, one slot each. For bit b of the position
    (most significant first), the slots of a group — rows of one series whose positions agree above bit b —
    are stably split into bit-0 rows then bit-1 rows; before the split, a bit-1 row is preceded in its group by
    exactly the bit-0 rows (earlier positions, same higher bits) with a value <= its own (ties are ordered by
    position). Every earlier row is counted at exactly one bit: the highest bit in which the positions differ.
    Groups are aligned position blocks, so a group's first slot is computable: series start + (pos >> b+1 << b+1).
    After the last bit the slots are in position order again, i.e. slot s holds row s. Each slot carries
    (count so far << bits) | position, so that one scatter per bit moves both.
    """
    n = len(v)
    order = np.empty(n, np.int32)
    for s, ln in zip(starts.tolist(), lengths.tolist(), strict=True):
        order[s:s + ln] = s + np.argsort(v[s:s + ln], kind="stable")
    bits = max(int(lengths.max() - 1).bit_length(), 1)
    dtype = np.int32 if 2 * bits < 31 else np.int64
    mask = (1 << bits) - 1
    slot = np.arange(n, dtype=dtype)
    gs = gs.astype(dtype, copy=False)
    length = length.astype(dtype, copy=False)
    packed = (order - gs[order]).astype(dtype)
    prefix = np.zeros(n + 1, dtype)
    for b in range(bits - 1, -1, -1):
        pos = packed & mask
        bit = (pos >> b) & 1
        np.cumsum(bit, out=prefix[1:])
        block = (pos >> (b + 1)) << (b + 1)
        group = gs + block  # the group's first slot
        ones_before = prefix[:-1] - prefix[group]
        stay = slot - ones_before  # where a bit-0 row goes: group + the bit-0 rows before it
        packed += ((stay - group) * bit) << bits  # a bit-1 row counts the bit-0 rows before it
        split = group + np.minimum(1 << b, length - block)  # first slot of the group's bit-1 rows
        target = stay + bit * (split + ones_before - stay)
        moved = np.empty_like(packed)
        moved[target] = packed
        packed = moved
    return packed >> bits


# marts.extremes rows of the readings dated after $since, against the history already in marts.extremes (every
# stored row is earlier than every new reading: warehouse.update deletes those after $since first) and against the
# new readings dated before them (an update spanning several days). One pass over the stored rows of each series
# with a new reading counts those <= the new value (pct_rank) and finds the latest dates >= and <= it
# (highest_since, lowest_since). Same values as the engine: a record is "something earlier and nothing earlier at
# or beyond", pct_rank is (earlier <= value + 1) / (earlier + 1) in double precision, history_start the series'
# first date.
UPDATE_SQL = """
with new as materialized (

    select date, indicator, subject, value
    from marts.indicators
    where date > $since and value is not null and isfinite(value)

),

stored as (

    select
        n.date,
        n.indicator,
        n.subject,
        count(*) as n_earlier,
        count(*) filter (where e.value <= n.value) as n_at_or_below,
        max(e.date) filter (where e.value >= n.value) as highest_since,
        max(e.date) filter (where e.value <= n.value) as lowest_since,
        min(e.history_start) as history_start
    from new as n
    inner join marts.extremes as e on e.indicator = n.indicator and e.subject = n.subject
    group by n.date, n.indicator, n.subject

),

recent as (

    select
        n.date,
        n.indicator,
        n.subject,
        count(*) as n_earlier,
        count(*) filter (where m.value <= n.value) as n_at_or_below,
        max(m.date) filter (where m.value >= n.value) as highest_since,
        max(m.date) filter (where m.value <= n.value) as lowest_since,
        min(m.date) as history_start
    from new as n
    inner join new as m on m.indicator = n.indicator and m.subject = n.subject and m.date < n.date
    group by n.date, n.indicator, n.subject

),

combined as (

    select
        n.date,
        n.indicator,
        n.subject,
        n.value,
        coalesce(s.history_start, r.history_start, n.date) as history_start,
        coalesce(r.highest_since, s.highest_since) as highest_since,  -- new readings are the later ones
        coalesce(r.lowest_since, s.lowest_since) as lowest_since,
        coalesce(s.n_earlier, 0) + coalesce(r.n_earlier, 0) as n_earlier,
        coalesce(s.n_at_or_below, 0) + coalesce(r.n_at_or_below, 0) as n_at_or_below
    from new as n
    left join stored as s using (date, indicator, subject)
    left join recent as r using (date, indicator, subject)

)

select
    date,
    indicator,
    subject,
    value,
    history_start,
    highest_since,
    lowest_since,
    n_earlier > 0 and highest_since is null as is_record_high,
    n_earlier > 0 and lowest_since is null as is_record_low,
    (n_at_or_below + 1)::double / (n_earlier + 1)::double as pct_rank
from combined
"""


def update(con: duckdb.DuckDBPyConnection, since) -> int:
    """Incremental marts.extremes (warehouse.update): replace its rows dated after `since` with those of the readings
    of marts.indicators dated after `since`; returns the rows inserted. Cost: one scan of the stored history of each
    series with a new reading, per new reading of it (a day's update reads each affected series once) — linear in
    history, against the engine's O(n log L) for everything."""
    con.execute("delete from marts.extremes where date > $since", {"since": since})
    rows = con.execute(f"insert into marts.extremes by name select * from ({UPDATE_SQL})", {"since": since}).fetchall()
    return rows[0][0] if rows else 0


def build(con: duckdb.DuckDBPyConnection, params: dict) -> int:
    """Build marts.extremes from marts.indicators; returns its row count.

    Series are independent, so beyond _PART_READINGS readings the engine runs in parts of whole series (whole
    indicators, or an indicator's subjects split by hash), each through the same two SQL models in a scratch
    catalog whose `marts.indicators` is a view of that part: memory stays bounded (the engine holds ~100 bytes per
    reading at its peak) however many readings there are, and time stays O(n log L)."""
    parts = _parts(con)
    if len(parts) == 1:
        return _build_part(con, params, "marts.extremes", create=True)
    home = '"' + scalar(con, "select current_database()").replace('"', '""') + '"'
    con.execute(f"attach ':memory:' as {_SCRATCH}")
    try:
        con.execute(f"create schema {_SCRATCH}.marts")
        rows = 0
        for n, where in enumerate(parts):
            con.execute(f"create or replace view {_SCRATCH}.marts.indicators as select * from {home}.marts.indicators"
                        f" where {where}")
            con.execute(f"use {_SCRATCH}")
            try:
                rows += _build_part(con, params, f"{home}.marts.extremes", create=n == 0)
            finally:
                con.execute(f"use {home}")
        log.info("extremes engine: %d readings in %d parts", rows, len(parts))
        return rows
    finally:
        con.execute(f"detach {_SCRATCH}")


_PART_READINGS = 4_000_000  # readings per run of the engine (a part): bounds its memory
_SCRATCH = "extremes_part"


def _parts(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Filters on marts.indicators, each selecting whole series and about _PART_READINGS readings at most."""
    counts = con.execute("select indicator, count(*) from marts.indicators where value is not null and"
                         " isfinite(value) group by indicator order by indicator").fetchall()
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


def _build_part(con: duckdb.DuckDBPyConnection, params: dict, table: str, create: bool) -> int:
    """Run the engine on the readings `marts.indicators` resolves to and add them to `table`; returns the rows."""
    readings = register(con)
    try:
        sql = read_sql("marts/extremes.sql")
        if create:
            con.execute(f"create or replace table {table} as {sql}", bind(sql, params))
            rows = scalar(con, f"select count(*) from {table}")
        else:
            rows = scalar(con, f"insert into {table} {sql}", bind(sql, params))
    finally:
        con.unregister(ENGINE_VIEW)
    if rows != readings:  # two series with the same hash(indicator, subject): astronomically unlikely, never silent
        raise RuntimeError(f"marts.extremes has {rows} rows for {readings} readings: series ids collide")
    return rows


def register(con: duckdb.DuckDBPyConnection) -> int:
    """Compute the engine's columns for marts.indicators and register them as ENGINE_VIEW; returns the row count.

    ENGINE_VIEW: (series_id, date, value, history_start, highest_since, lowest_since, is_record_high,
    is_record_low, pct_rank); series_id = hash(indicator, subject), as in extremes_readings.sql.
    """
    started = time.perf_counter()
    rows = con.execute(read_sql("marts/extremes_readings.sql")).fetchnumpy()
    read = time.perf_counter()
    day = np.asarray(rows["date"]).astype("datetime64[D]").astype(np.int32)  # days since 1970-01-01
    value = np.asarray(rows["value"], dtype=np.float64)
    series = np.asarray(rows["series_id"])
    if len(day) > 1 and np.any((series[1:] == series[:-1]) & (day[1:] <= day[:-1])):
        raise ValueError("extremes_readings.sql must return one row per (series, date), sorted")
    ext = compute(series, value)
    log.info("extremes engine: %d readings read in %.1f s, computed in %.1f s", len(value), read - started,
             time.perf_counter() - read)

    def dates(index: np.ndarray | None = None) -> pa.Array:
        """date32 straight from the day numbers (of the rows `index`, NULL where it is -1)."""
        if index is None:
            return pa.Array.from_buffers(pa.date32(), len(day), [None, pa.py_buffer(day)])
        valid = pa.py_buffer(np.packbits(index >= 0, bitorder="little"))
        days = np.ascontiguousarray(day[np.maximum(index, 0)])
        return pa.Array.from_buffers(pa.date32(), len(days), [valid, pa.py_buffer(days)], null_count=-1)

    table = pa.table({
        "series_id": series,
        "date": dates(),
        "value": value,
        "history_start": dates(ext.first),
        "highest_since": dates(ext.above),
        "lowest_since": dates(ext.below),
        "is_record_high": ext.is_record_high,
        "is_record_low": ext.is_record_low,
        "pct_rank": ext.pct_rank,
    })
    con.register(ENGINE_VIEW, table)
    return len(value)
