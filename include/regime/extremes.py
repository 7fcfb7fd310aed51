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
only, from three small tables of state that `build` derives from the engine's arrays and `update` keeps current
(schema `internal`, not for analysis; docs/warehouse.md). Their content is a function of the readings alone, so a
full build and an update give the same tables:

- internal.extremes_series: each series' first date (history_start);
- internal.extremes_frontier: per series and side, the readings that can still be a later reading's highest_since
  (side 'high': no later reading is >= them) or lowest_since ('low': none is <=), with `until` NULL; plus, with
  `until` = the date of the first later reading that is >= (<=) them, those that stopped being so within
  MAX_INCREMENTAL_DAYS of the latest reading, so that an update can go back that far (a rollback to `since` makes
  the rows with until > since current again). highest_since of a new reading v is the latest frontier entry (or
  earlier new reading) >= v: the latest earlier reading >= v is never behind a later one >= it;
- internal.extremes_ranks: each series' distinct values (-0.0 stored as 0.0: they compare equal) ascending, with
  their counts, in blocks cut before each value whose hash has its top _BLOCK_BITS bits zero (2^_BLOCK_BITS
  distinct values per block on average; where blocks start depends on the values only): lo, hi, readings, the
  values and the counts as BLOBs. The readings <= v are the readings of the blocks before the last block with
  lo <= v plus a binary search in that one; an update rewrites only the blocks its new and removed values fall in
  (reading them by row id: a join on the key columns would read every block's BLOB).

A one-day update reads and writes O(new readings x (block size + frontier size + blocks per series)), not the
history. What it reads is stored last: a full build writes the rows of marts.extremes dated after the horizon and
the blocks around each series' latest value after the rest (an update appends), so that deleting the rows after
`since` skips the rest by zonemap and the blocks it reads share a few storage blocks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta

import duckdb
import numpy as np
import pyarrow as pa

from regime.incremental import MAX_INCREMENTAL_DAYS, NotIncremental
from regime.sql import bind, read_sql, scalar

log = logging.getLogger(__name__)

ENGINE_VIEW = "extremes_engine"  # what include/sql/marts/extremes.sql reads
SERIES_VIEW = "extremes_series_engine"  # include/sql/marts/extremes_series.sql, fetched: the part's series names
FRONTIER_VIEW = "extremes_frontier_engine"  # what include/sql/marts/extremes_frontier.sql reads
RANKS_VIEW = "extremes_ranks_engine"  # what include/sql/marts/extremes_ranks.sql reads
_CHUNK_ROWS = 1 << 17  # rows per batch of whole series: keeps the working arrays in cache
_THREADS = min(os.cpu_count() or 1, 4)  # batches computed at once
_BLOCK_BITS = 10  # a rank block holds 2^10 distinct values on average
_EPOCH = date(1970, 1, 1)
_NULL = np.iinfo(np.int32).min  # a NULL date among day numbers (since _EPOCH: negative before 1970)

# The incremental update's state (module docstring). BLOBs uncompressed: DuckDB's default halved 68 MB of them but
# took 16-18 s to checkpoint them instead of 0.4 s.
STATE_TABLES = {
    "internal.extremes_series": "indicator varchar not null, subject varchar not null, history_start date not null",
    "internal.extremes_frontier": "indicator varchar not null, subject varchar not null, side varchar not null,"
                                  " date date not null, value double not null, until date",
    "internal.extremes_ranks": "indicator varchar not null, subject varchar not null, lo double not null,"
                               " hi double not null, readings bigint not null,"
                               " sorted_values blob not null using compression uncompressed,"
                               " counts blob using compression uncompressed",
}


@dataclass(frozen=True)
class Extremes:
    """Row-aligned results for rows sorted by (series, date). Row indices are -1 where there is none."""

    first: np.ndarray  # index of the first row of the row's series
    above: np.ndarray  # latest earlier row of the series with value >= this one
    below: np.ndarray  # latest earlier row of the series with value <= this one
    is_record_high: np.ndarray  # nothing earlier in the series is >= this value, and something earlier exists
    is_record_low: np.ndarray
    pct_rank: np.ndarray  # rows of the series up to this one with value <= this one, over the rows up to this one
    blocks: list  # compute(..., blocks=True): internal.extremes_ranks' rows per batch (_rank_blocks + series_id, hot)


def compute(series: np.ndarray, value: np.ndarray, blocks: bool = False) -> Extremes:
    """`series` (integer id) non-decreasing, rows of one series in date order, `value` finite. With `blocks`, also
    the rank blocks of each series (internal.extremes_ranks), from the rows sorted by value that the expanding rank
    sorts anyway, batch by batch (in cache, and on the batches' threads)."""
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
    out = Extremes(*(np.empty(n, index) for _ in range(3)), np.empty(n, bool), np.empty(n, bool), np.empty(n), [])
    if n == 0:
        return out

    def batch(number: int, lo: int, hi: int, st: np.ndarray, ln: np.ndarray) -> None:  # writes disjoint slices
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
        order = np.empty(hi - lo, np.int32)
        for s, length in zip(st.tolist(), ln.tolist(), strict=True):
            order[s:s + length] = s + np.argsort(v[s:s + length], kind="stable")
        if blocks:
            out.blocks[number] = _series_blocks(series[lo:hi], v, order, st, ln)
        out.pct_rank[lo:hi] = (_count_le_before(order, gs, np.repeat(ln, ln), ln) + 1) / (pos + 1)

    starts = np.flatnonzero(np.r_[True, series[1:] != series[:-1]])
    lengths = np.diff(np.r_[starts, n])
    batches = list(_batches(starts, lengths, n))
    out.blocks.extend([None] * len(batches) if blocks else [])
    workers = min(_THREADS, len(batches))
    if workers > 1:  # numpy releases the GIL inside its loops: batches run in parallel
        with ThreadPoolExecutor(workers) as pool:
            for done in [pool.submit(batch, i, *b) for i, b in enumerate(batches)]:
                done.result()
    else:
        for i, b in enumerate(batches):
            batch(i, *b)
    return out


def _series_blocks(series: np.ndarray, v: np.ndarray, order: np.ndarray, st: np.ndarray, ln: np.ndarray) -> dict:
    """The rank blocks (_rank_blocks' columns, series_id, hot) of a batch of whole series: `v` their values, `order`
    each series' rows by value, `st`/`ln` the series' starts and lengths. "hot": the block each series' latest value
    falls in and its neighbours, where the next update's values most likely fall: the build writes them last, so
    that the update reads a few storage blocks, not one each."""
    ordered = v[order]
    first = np.zeros(len(v), bool)
    first[st] = True
    distinct = first.copy()
    np.not_equal(ordered[1:], ordered[:-1], out=distinct[1:], where=~first[1:])  # -0.0 == 0.0: one value
    at = np.flatnonzero(distinct)
    values = ordered[at]
    values += 0.0  # -0.0 is stored as 0.0
    counts = np.empty(len(at), np.int32)
    np.subtract(at[1:], at[:-1], out=counts[:-1], casting="unsafe")
    counts[-1] = len(v) - at[-1]
    blocks = _rank_blocks(values, counts, first[at])
    starts = blocks.pop("start")
    blocks["series_id"] = series[at[starts]]
    own = np.flatnonzero(first[at[starts]])  # each series' first block
    ends = np.append(own[1:], len(starts))
    latest = np.repeat(v[st + ln - 1] + 0.0, ends - own)
    k = own + np.maximum(np.add.reduceat((blocks["lo"] <= latest).astype(np.int64), own) - 1, 0)
    hot = np.zeros(len(starts), bool)
    hot[k] = True
    hot[(k - 1)[k > own]] = True
    hot[(k + 1)[k + 1 < ends]] = True
    blocks["hot"] = hot
    return blocks


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


def _count_le_before(order, gs, length, lengths) -> np.ndarray:
    """For each row i: the number of rows j < i of its series with v[j] <= v[i], given `order`: the rows of each
    series in (value, position) order.

    Rows of each series are laid out in (value, position) order, one slot each. For bit b of the position
    (most significant first), the slots of a group — rows of one series whose positions agree above bit b —
    are stably split into bit-0 rows then bit-1 rows; before the split, a bit-1 row is preceded in its group by
    exactly the bit-0 rows (earlier positions, same higher bits) with a value <= its own (ties are ordered by
    position). Every earlier row is counted at exactly one bit: the highest bit in which the positions differ.
    Groups are aligned position blocks, so a group's first slot is computable: series start + (pos >> b+1 << b+1).
    After the last bit the slots are in position order again, i.e. slot s holds row s. Each slot carries
    (count so far << bits) | position, so that one scatter per bit moves both.
    """
    n = len(order)
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


# --------------------------------------------------------------------------- state: rank blocks


def _block_start(v: np.ndarray) -> np.ndarray:
    """Whether each (normalised, finite) value starts a rank block: the top _BLOCK_BITS bits of its bits, folded
    (high half into low) and multiplied by an odd constant (Fibonacci hashing: the top bits of the product depend on
    every bit), are zero."""
    x = np.ascontiguousarray(v, dtype=np.float64).view(np.uint64)
    h = x >> np.uint64(32)
    h ^= x
    h *= np.uint64(0x9E3779B97F4A7C15)
    h >>= np.uint64(64 - _BLOCK_BITS)
    return h == 0


def _rank_blocks(distinct: np.ndarray, counts: np.ndarray, first: np.ndarray) -> dict:
    """The rank blocks of `distinct` values (normalised, ascending within each series, whose first value `first`
    marks) read `counts` times each: a block starts at a series' first value and at each value _block_start picks.
    The columns of internal.extremes_ranks but the series', and "start": the index of each block's first value."""
    start = _block_start(distinct)
    start |= first
    starts = np.flatnonzero(start)
    offsets = np.append(starts, len(distinct))
    readings = np.add.reduceat(counts, starts, dtype=np.int64) if len(starts) else np.zeros(0, np.int64)
    ties = np.maximum.reduceat(counts, starts) > 1 if len(starts) else np.zeros(0, bool)
    return {"start": starts, "lo": distinct[starts], "hi": distinct[offsets[1:] - 1], "readings": readings,
            "sorted_values": _blobs(distinct, offsets, "<f8"), "counts": _blobs(counts, offsets, "<i4", ties)}


def _blobs(values: np.ndarray, offsets: np.ndarray, dtype: str, valid: np.ndarray | None = None) -> pa.Array:
    """values[offsets[i]:offsets[i+1]] as BLOBs of `dtype` (NULL where `valid` is False), without copying."""
    values = np.ascontiguousarray(values, dtype=dtype)
    mask = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
    offsets = np.asarray(offsets, np.int64) * np.dtype(dtype).itemsize
    return pa.Array.from_buffers(pa.large_binary(), len(offsets) - 1,
                                 [mask, pa.py_buffer(offsets), pa.py_buffer(values)], null_count=-1)


# --------------------------------------------------------------------------- incremental update


def horizon(latest: date | None) -> date | None:
    """The earliest `since` an update may start from, for a warehouse whose latest reading is dated `latest`: the
    frontier keeps what stopped being current after it (warehouse.update recomputes at most MAX_INCREMENTAL_DAYS
    before its as-of date, which is at or after `latest`)."""
    return None if latest is None else latest - timedelta(days=MAX_INCREMENTAL_DAYS)


def update(con: duckdb.DuckDBPyConnection, since: date) -> int:
    """Incremental marts.extremes (warehouse.update): replace its rows dated after `since` with those of the readings
    of marts.indicators dated after `since`, and bring the state tables (module docstring) up to date; returns the
    rows inserted. Reads the new readings, the rows it deletes and the state of the series with a new or a removed
    reading only (of their rank blocks, the scalar columns, and the values of the blocks their values fall in);
    computes vectorised over those series.

    Raises NotIncremental where the state cannot show the result (`since` before the horizon the frontier was
    kept for, or a latest reading earlier than before): warehouse.update then leaves nothing behind. One
    transaction: one commit (one WAL sync) instead of one per statement."""
    con.begin()
    try:
        rows = _update(con, since)
        con.commit()
    except BaseException:
        con.rollback()
        raise
    finally:  # after the transaction (in a failed one DuckDB refuses even this)
        for view in _VIEWS:
            with contextlib.suppress(duckdb.Error):
                con.unregister(view)
    return rows


_VIEWS = ("extremes_affected", "extremes_fresh", "extremes_new", "extremes_frontier_rows", "extremes_blocks")

# The finite readings dated after $since, by series and date (the order the update works in).
NEW_SQL = """
select indicator, subject, date, value
from marts.indicators
where date > $since and value is not null and isfinite(value)
order by indicator, subject, date
"""


def _update(con: duckdb.DuckDBPyConnection, since: date) -> int:
    new = con.execute(NEW_SQL, {"since": since}).fetchnumpy()
    removed = con.execute("delete from marts.extremes where date > $since returning indicator, subject, value",
                          {"since": since}).fetchnumpy()
    # the series with a new or a removed reading, numbered 0..k-1 (sid): only their state is read and written
    new_keys = list(zip(new["indicator"].tolist(), new["subject"].tolist(), strict=True))
    removed_keys = list(zip(removed["indicator"].tolist(), removed["subject"].tolist(), strict=True))
    keys = sorted(set(new_keys) | set(removed_keys))
    if not keys:  # nothing dated after `since`, before or now: nothing changes
        return 0
    sid = {key: i for i, key in enumerate(keys)}
    new_sid = np.array([sid[k] for k in new_keys], np.int64)
    removed_sid = np.array([sid[k] for k in removed_keys], np.int64)
    order = np.argsort(new_sid, kind="stable")  # by series (SQL sorted the names already), then date
    new = {name: np.asarray(column)[order] for name, column in new.items()}
    new_sid = new_sid[order]
    con.register("extremes_affected", pa.table({"sid": np.arange(len(keys), dtype=np.int64),
                                                "indicator": pa.array([k[0] for k in keys], pa.string()),
                                                "subject": pa.array([k[1] for k in keys], pa.string())}))
    latest, others = con.execute(
        "select max(f.date), max(f.date) filter (where a.sid is null) from internal.extremes_frontier as f"
        " left join extremes_affected as a using (indicator, subject)").fetchall()[0]
    if latest is not None and since < horizon(latest):
        raise NotIncremental(f"marts.extremes' state goes back to {horizon(latest)}, not to {since}")
    starts = dict(con.execute("select a.sid, s.history_start from internal.extremes_series as s"
                              " inner join extremes_affected as a using (indicator, subject)").fetchall())
    frontier = con.execute(
        "select a.sid, f.side = 'low' as low, f.date, f.value, f.until from internal.extremes_frontier as f"
        " inner join extremes_affected as a using (indicator, subject) order by a.sid, low, f.date").fetchnumpy()
    blocks = con.execute(
        "select a.sid, r.lo, r.readings, r.rowid from internal.extremes_ranks as r"
        " inner join extremes_affected as a using (indicator, subject) order by a.sid, r.lo").fetchnumpy()

    day, value = _days(new["date"]), np.asarray(new["value"], np.float64)
    n_earlier, n_at_or_below = _update_ranks(con, keys, new_sid, value + 0.0, removed_sid,  # -0.0 is 0.0
                                             np.asarray(removed["value"], np.float64) + 0.0, blocks)
    cut = (since - _EPOCH).days
    series_new = np.searchsorted(new_sid, np.arange(len(keys) + 1))  # new readings of series i: [i], [i + 1]
    stored = np.array([(d - _EPOCH).days if d is not None and d <= since else _NULL
                       for d in (starts.get(i) for i in range(len(keys)))], np.int32)
    first_new = np.where(series_new[1:] > series_new[:-1], np.append(day, _NULL)[series_new[:-1]], _NULL)
    history_start = np.where(stored != _NULL, stored, first_new)
    fresh = np.flatnonzero((stored == _NULL) & (first_new != _NULL))  # series whose history now starts anew

    frontier = {"sid": frontier["sid"], "low": frontier["low"], "day": _days(frontier["date"]),
                "value": np.asarray(frontier["value"], np.float64), "until": _days(frontier["until"])}
    highest, lowest, rows = _update_frontier(frontier, cut, new_sid, day, value, len(keys))
    newest = max([others] if others is not None else [], default=None)
    if len(rows["day"]):  # the latest reading is always a current frontier row
        mine = _EPOCH + timedelta(days=int(rows["day"].max()))
        newest = mine if newest is None else max(newest, mine)
    if latest is not None and (newest is None or newest < latest):
        raise NotIncremental(f"the latest reading moved back from {latest} to {newest}: marts.extremes' state no"
                             " longer reaches back far enough")
    cutoff = horizon(newest)
    keep = (rows["until"] == _NULL) | (rows["until"] > (_NULL if cutoff is None else (cutoff - _EPOCH).days))
    con.execute("delete from internal.extremes_frontier as f where f.until <= $cutoff or exists (select 1 from"
                " extremes_affected as a where a.indicator = f.indicator and a.subject = f.subject)",
                {"cutoff": cutoff})
    if keep.any():
        con.register("extremes_frontier_rows", pa.table({
            "sid": rows["sid"][keep], "side": pa.array(np.where(rows["low"][keep], "low", "high"), pa.string()),
            "date": _dates(rows["day"][keep]), "value": rows["value"][keep], "until": _dates(rows["until"][keep])}))
        con.execute("insert into internal.extremes_frontier by name select a.indicator, a.subject, r.side, r.date,"
                    " r.value, r.until from extremes_frontier_rows as r inner join extremes_affected as a using (sid)")
    if any(d > since for d in starts.values()):  # series whose readings all went: their history_start goes
        con.execute("delete from internal.extremes_series where history_start > $since", {"since": since})
    if len(fresh):
        con.register("extremes_fresh", pa.table({"sid": fresh, "history_start": _dates(history_start[fresh])}))
        con.execute("insert into internal.extremes_series by name select a.indicator, a.subject, f.history_start"
                    " from extremes_fresh as f inner join extremes_affected as a using (sid)")
    if not len(day):
        return 0
    con.register("extremes_new", pa.table({
        "date": _dates(day),
        "indicator": pa.array(new["indicator"], pa.string()),
        "subject": pa.array(new["subject"], pa.string()),
        "value": value,
        "history_start": _dates(history_start[new_sid]),
        "highest_since": _dates(highest),
        "lowest_since": _dates(lowest),
        "is_record_high": (n_earlier > 0) & (highest == _NULL),
        "is_record_low": (n_earlier > 0) & (lowest == _NULL),
        "pct_rank": (n_at_or_below + 1) / (n_earlier + 1),  # as the engine: integers divided in double precision
    }))
    return scalar(con, "insert into marts.extremes by name select * from extremes_new")


def _search(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, x: np.ndarray, right: bool) -> np.ndarray:
    """For each query i: np.searchsorted(values[lo[i]:hi[i]], x[i], side) + lo[i] (each segment ascending), by a
    binary search vectorised over the queries."""
    lo, hi = np.array(lo, np.int64), np.array(hi, np.int64)
    while True:
        open_ = lo < hi
        if not open_.any():
            return lo
        mid = (lo + hi) // 2
        at = values[np.minimum(mid, len(values) - 1)] if len(values) else np.zeros(len(mid))
        up = open_ & ((at <= x) if right else (at < x))
        lo = np.where(up, mid + 1, lo)
        hi = np.where(open_ & ~up, mid, hi)


def _update_frontier(frontier: dict, cut: int, new_sid, day, value, k: int):
    """Both sides' frontiers of the series 0..k-1 (their stored rows `frontier`: sid, low, day, value, until; by
    series, side, date) rolled back to day `cut` (`since`: rows dated after it go, those a removed reading had
    stopped are current again) and advanced by the new readings (new_sid, day, value: by series and date). Returns
    each new reading's highest_since and lowest_since (day numbers, _NULL: none) and the rows after the update (sid,
    low, day, value, until) before the horizon's pruning. The build's frontier is this, from the one as of the
    horizon (_frontier_rows).

    A side's current rows have strictly decreasing "keys" (value for 'high', -value for 'low'; at or beyond = key
    >=) in date order, so a new reading's since-date among them is a binary search; so is the first new reading to
    stop one (the running maximum of the new keys). Series with several new readings also compare those among
    themselves."""
    f_group = 2 * np.asarray(frontier["sid"], np.int64) + np.asarray(frontier["low"], np.int64)
    f_day, f_value, f_until = frontier["day"], frontier["value"], frontier["until"]
    kept = f_day <= cut
    f_group, f_day, f_value, f_until = f_group[kept], f_day[kept], f_value[kept], f_until[kept]
    f_until = np.where(f_until > cut, _NULL, f_until)
    live = f_until == _NULL
    l_group, l_day, l_value = f_group[live], f_day[live], f_value[live]
    groups = np.searchsorted(l_group, np.arange(2 * k + 1))  # current rows of group g: [g], [g + 1]
    series_new = np.searchsorted(new_sid, np.arange(k + 1))
    several = np.flatnonzero(np.diff(series_new) > 1)
    out_rows = {"sid": [f_group[~live] // 2], "low": [f_group[~live] % 2 == 1], "day": [f_day[~live]],
                "value": [f_value[~live]], "until": [f_until[~live]]}
    since = []
    for low, sign in ((0, 1.0), (1, -1.0)):
        g = 2 * new_sid + low
        key, l_key = sign * value, sign * l_value
        # since-date among the current rows: the last of the group whose key is >= (keys decrease: -key ascends)
        reach = _search(-l_key, groups[g], groups[g + 1], -key, right=True)
        found = np.where(reach > groups[g], l_day[np.maximum(reach - 1, 0)] if len(l_day) else _NULL, _NULL)
        # until of the current rows: the first new reading of the series whose key (running max) is >= theirs
        running = key.copy()
        c_until = np.full(len(key), _NULL, np.int32)  # of the new readings, among the later new readings
        for s in several:
            a, b = series_new[s], series_new[s + 1]
            np.maximum.accumulate(key[a:b], out=running[a:b])
            d, w = day[a:b], key[a:b]
            earlier = (d[None, :] < d[:, None]) & (w[None, :] >= w[:, None])
            found[a:b] = np.maximum(found[a:b], np.where(earlier, d[None, :], _NULL).max(axis=1))
            later = np.where((d[None, :] > d[:, None]) & (w[None, :] >= w[:, None]), d[None, :], np.iinfo(np.int32).max)
            first = later.min(axis=1)
            c_until[a:b] = np.where(first == np.iinfo(np.int32).max, _NULL, first)
        since.append(found.astype(np.int32))
        own = np.flatnonzero(l_group % 2 == low)
        sids = l_group[own] // 2
        hit = _search(running, series_new[sids], series_new[sids + 1], l_key[own], right=False)
        l_until = np.where(hit < series_new[sids + 1], day[np.minimum(hit, len(day) - 1)] if len(day) else _NULL,
                           _NULL).astype(np.int32)
        side = np.full(len(own) + len(day), low == 1)
        for name, part in (("sid", [sids, new_sid]), ("low", [side]), ("day", [l_day[own], day]),
                           ("value", [l_value[own], value]), ("until", [l_until, c_until])):
            out_rows[name] += part
    rows = {name: np.concatenate(parts) for name, parts in out_rows.items()}
    return since[0], since[1], rows


def _update_ranks(con, keys, new_sid, value, removed_sid, gone, blocks) -> tuple[np.ndarray, np.ndarray]:
    """Update internal.extremes_ranks of the series `keys`: remove the (normalised) values `gone` of the readings
    dated after `since` (series removed_sid) and add the new readings' `value`s (series new_sid, by series and
    date); return, for each new reading, the readings of its series before it and those of them at or below its
    value. `blocks`: the series' blocks (sid, lo, readings, rowid), by series and lo."""
    k = len(keys)
    b_sid, lo = np.asarray(blocks["sid"], np.int64), np.asarray(blocks["lo"], np.float64)
    b_n, b_row = np.asarray(blocks["readings"], np.int64), np.asarray(blocks["rowid"], np.int64)
    own = np.searchsorted(b_sid, np.arange(k + 1))  # blocks of series i: [i], [i + 1]
    before = np.concatenate(([0], np.cumsum(b_n)))  # readings in the blocks before each (all series)

    def block_of(sids, x):  # the block each value falls in: the last starting at or below it, else the first
        at = _search(lo, own[sids], own[sids + 1], x, right=True) - 1
        return np.where(own[sids + 1] > own[sids], np.maximum(at, own[sids]), -1)

    new_block, gone_block = block_of(new_sid, value), block_of(removed_sid, gone)
    if np.any(gone_block < 0):
        raise RuntimeError("internal.extremes_ranks lacks readings that marts.extremes holds")
    merge = gone_block[gone_block > own[removed_sid]] - 1  # a block whose first value goes may merge into that
    touched = np.unique(np.concatenate((new_block[new_block >= 0], gone_block, merge)))
    values, counts = _fetch_blocks(con, b_row[touched])
    sizes = np.array([len(v) for v in values], np.int64)
    elements = np.concatenate(([0], np.cumsum(sizes)))  # first element of each touched block
    sorted_values = np.concatenate(values + [np.empty(0)])
    tally = np.concatenate(counts + [np.empty(0, np.int64)])
    e_sid = np.repeat(b_sid[touched], sizes)
    mine = np.searchsorted(e_sid, np.arange(k + 1))  # elements of series i: [i], [i + 1]
    total = np.concatenate(([0], np.cumsum(tally)))

    # readings before each new one, and those <= it: the stored ones (the blocks before its block, then its block's
    # values <= it), less the removed ones, plus the earlier new ones
    order = np.lexsort((gone, removed_sid))
    gone, removed_sid = gone[order], removed_sid[order]
    dropped = np.searchsorted(removed_sid, np.arange(k + 1))
    series_new = np.searchsorted(new_sid, np.arange(k + 1))
    at = _search(sorted_values, mine[new_sid], mine[new_sid + 1], value, right=True)
    has = new_block >= 0
    stored = np.zeros(len(value), np.int64)
    block = new_block[has]
    stored[has] = (before[block] - before[own[new_sid[has]]] + total[at[has]]
                   - total[elements[np.searchsorted(touched, block)]])
    stored -= _search(gone, dropped[new_sid], dropped[new_sid + 1], value, right=True) - dropped[new_sid]
    for s in np.flatnonzero(np.diff(series_new) > 1):
        a, b = series_new[s], series_new[s + 1]
        stored[a:b] += np.tril(value[None, a:b] <= value[a:b, None], -1).sum(axis=1)
    readings = before[own[1:]] - before[own[:-1]] - np.diff(dropped)
    n_earlier = readings[new_sid] + np.arange(len(value)) - series_new[new_sid]

    # the touched blocks' values after: removed ones counted down, new ones counted up or inserted
    where = _search(sorted_values, mine[removed_sid], mine[removed_sid + 1], gone, right=False)
    if np.any(where >= mine[removed_sid + 1]) or np.any(sorted_values[np.minimum(where, len(tally) - 1)] != gone):
        raise RuntimeError("internal.extremes_ranks lacks readings that marts.extremes holds")
    np.subtract.at(tally, where, 1)
    if np.any(tally < 0):
        raise RuntimeError("internal.extremes_ranks lacks readings that marts.extremes holds")
    there = (at > mine[new_sid]) & (sorted_values[np.maximum(at - 1, 0)] == value) if len(tally) else at < 0
    np.add.at(tally, at[there] - 1, 1)
    fresh = np.flatnonzero(~there)
    fresh = fresh[np.lexsort((value[fresh], new_sid[fresh], at[fresh]))]  # by position, series, value
    repeat = np.zeros(len(fresh), bool)
    repeat[1:] = (new_sid[fresh][1:] == new_sid[fresh][:-1]) & (value[fresh][1:] == value[fresh][:-1])
    heads = fresh[~repeat]
    times = np.diff(np.append(np.flatnonzero(~repeat), len(fresh)))
    sorted_values = np.insert(sorted_values, at[heads], value[heads])
    tally = np.insert(tally, at[heads], times)
    e_sid = np.insert(e_sid, at[heads], new_sid[heads])
    live = tally > 0
    sorted_values, tally, e_sid = sorted_values[live], tally[live], e_sid[live]
    first = np.r_[True, e_sid[1:] != e_sid[:-1]] if len(e_sid) else np.zeros(0, bool)
    # the touched blocks of a series begin at its first value or at a block start that stays: cut them afresh
    written = _rank_blocks(sorted_values, tally, first)
    written["sid"] = e_sid[written.pop("start")]
    _write_blocks(con, b_row[touched], written)
    return n_earlier, stored


def _days(dates) -> np.ndarray:
    """Day numbers (since 1970-01-01) of a fetched DATE column (fetchnumpy masks NULLs), _NULL for NULL."""
    null = np.ma.getmaskarray(dates)
    data = np.ma.getdata(dates)
    if data.dtype == object:
        days = np.array([_NULL if d is None else (d - _EPOCH).days for d in data.tolist()], np.int32)
    else:
        days = data.astype("datetime64[D]").astype(np.int32)
    days[null] = _NULL
    return days


def _dates(days: np.ndarray) -> pa.Array:
    """date32 of day numbers, NULL where _NULL."""
    days = np.ascontiguousarray(days, np.int32)
    valid = pa.py_buffer(np.packbits(days != _NULL, bitorder="little"))
    return pa.Array.from_buffers(pa.date32(), len(days), [valid, pa.py_buffer(days)], null_count=-1)


def _fetch_blocks(con: duckdb.DuckDBPyConnection, rowids: np.ndarray) -> tuple[list, list]:
    """The distinct values and counts of the blocks at `rowids`, in that order. Read by row id: DuckDB then reads the
    BLOBs of those rows only (joined on the key columns, it read the BLOBs of every row: the whole history)."""
    if not len(rowids):
        return [], []
    rows = {r: (v, c) for r, v, c in con.execute(
        "select rowid, sorted_values, counts from internal.extremes_ranks"
        " where rowid between $first and $last and rowid in (select unnest($rows::bigint[]))",
        {"rows": rowids.tolist(), "first": int(rowids.min()), "last": int(rowids.max())}).fetchall()}
    if len(rows) != len(rowids):
        raise RuntimeError("internal.extremes_ranks changed while it was being read")
    values = [np.frombuffer(rows[r][0], "<f8") for r in rowids.tolist()]
    counts = [np.ones(len(v), np.int64) if rows[r][1] is None else np.frombuffer(rows[r][1], "<i4").astype(np.int64)
              for v, r in zip(values, rowids.tolist(), strict=True)]
    return values, counts


def _write_blocks(con: duckdb.DuckDBPyConnection, drop: np.ndarray, blocks: dict) -> None:
    """Delete the blocks at the row ids `drop`, insert `blocks` (_rank_blocks' columns and sid)."""
    if len(drop):
        con.execute("delete from internal.extremes_ranks where rowid in (select unnest($rows::bigint[]))",
                    {"rows": drop.tolist()})
    if not len(blocks["lo"]):
        return
    con.register("extremes_blocks", pa.table(blocks))
    con.execute("insert into internal.extremes_ranks by name select a.indicator, a.subject, b.lo, b.hi, b.readings,"
                " b.sorted_values, b.counts from extremes_blocks as b inner join extremes_affected as a using (sid)")



# --------------------------------------------------------------------------- full build


def build(con: duckdb.DuckDBPyConnection, params: dict) -> int:
    """Build marts.extremes and the update's state tables (internal.*) from marts.indicators; returns the rows of
    marts.extremes.

    Series are independent, so beyond _PART_READINGS readings the engine runs in parts of whole series (whole
    indicators, or an indicator's subjects split by hash), each through the same SQL models in a scratch
    catalog whose `marts.indicators` is a view of that part: memory stays bounded (the engine holds ~100 bytes per
    reading at its peak) however many readings there are, and time stays O(n log L). What the next update reads
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
                    for table, columns in STATE_TABLES.items():
                        con.execute(f"create or replace table {home}.{table} ({columns})")
                con.execute(f"use {_SCRATCH if len(parts) > 1 else home}")
                try:
                    rows += _build_part(con, params, home, horizon(latest), create=n == 0)
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


def _frontier_rows(series: np.ndarray, day: np.ndarray, value: np.ndarray, cutoff: int) -> dict:
    """internal.extremes_frontier's rows for readings sorted by (series, date): the frontier as of day `cutoff`
    (the horizon; a reading is on it if strictly beyond every later one up to then: a running extreme from the end)
    advanced by the readings after it, as an update does (_update_frontier): its rows are exactly those current or
    stopped after the horizon. Columns series_id, low, day, value, until (day numbers, _NULL: NULL)."""
    if not len(series):
        return {"series_id": series, "low": np.zeros(0, bool), "day": day, "value": value,
                "until": np.zeros(0, np.int32)}
    starts = np.flatnonzero(np.r_[True, series[1:] != series[:-1]])
    ends = np.r_[starts[1:], len(series)]
    early = starts + np.add.reduceat((day <= cutoff).astype(np.int64), starts)  # rows [start, early): up to cutoff
    held = []  # per side: rows of the frontier as of the cutoff
    for low in (False, True):
        keep = np.zeros(len(series), bool)
        running = np.minimum.accumulate if low else np.maximum.accumulate
        beyond = np.less if low else np.greater
        for a, b in zip(starts.tolist(), early.tolist(), strict=True):
            if b > a:  # a reading is on it if strictly beyond the running extreme of those after it
                back = value[b - 1:a - 1 if a else None:-1]  # the series up to the cutoff, latest first
                mask = keep[b - 1:a - 1 if a else None:-1]
                mask[0] = True
                beyond(back[1:], running(back)[:-1], out=mask[1:])
        held.append(np.flatnonzero(keep))
    sid = np.repeat(np.arange(len(starts)), ends - starts)
    rows = np.concatenate(held)
    stored = {"sid": sid[rows], "low": np.repeat([False, True], [len(h) for h in held]), "day": day[rows],
              "value": value[rows], "until": np.full(len(rows), _NULL, np.int32)}
    order = np.lexsort((stored["day"], stored["low"], stored["sid"]))
    stored = {name: column[order] for name, column in stored.items()}
    after = day > cutoff
    _, _, out = _update_frontier(stored, cutoff, sid[after], day[after], value[after], len(starts))
    return {"series_id": series[starts][out["sid"]], "low": out["low"], "day": out["day"], "value": out["value"],
            "until": out["until"]}


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

    frontier = _frontier_rows(series, day, value, _NULL if cutoff is None else (cutoff - _EPOCH).days)
    con.register(FRONTIER_VIEW, pa.table({
        "series_id": frontier["series_id"], "side": pa.array(np.where(frontier["low"], "low", "high"), pa.string()),
        "date": _dates(frontier["day"]), "value": frontier["value"], "until": _dates(frontier["until"])}))

    ranks = [pa.table(b) for b in ext.blocks]
    if not ranks:  # no readings: the columns, empty
        empty = _rank_blocks(np.empty(0), np.empty(0, np.int64), np.empty(0, bool))
        del empty["start"]
        ranks = [pa.table({**empty, "series_id": series, "hot": np.empty(0, bool)})]
    con.register(RANKS_VIEW, pa.concat_tables(ranks))
    return len(value)
