"""The incremental state of marts.extremes (schema `internal`, not for analysis; docs/warehouse.md): what an update
carries forward, and the numpy that derives and advances it.

The build (extremes.build) derives three small tables from the engine's arrays and the update (extremes.update)
keeps them current; their content is a function of the readings alone, so a full build and an update give the
same tables:

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

from datetime import date, timedelta

import numpy as np
import pyarrow as pa

from regime.incremental import MAX_INCREMENTAL_DAYS

_BLOCK_BITS = 10  # a rank block holds 2^10 distinct values on average
EPOCH = date(1970, 1, 1)
NULL = np.iinfo(np.int32).min  # a NULL date among day numbers (since EPOCH: negative before 1970)

# The state tables (module docstring). BLOBs uncompressed: DuckDB's default compression made their checkpoint far
# slower for little space (docs/performance.md).
STATE_TABLES = {
    "internal.extremes_series": "indicator varchar not null, subject varchar not null, history_start date not null",
    "internal.extremes_frontier": "indicator varchar not null, subject varchar not null, side varchar not null,"
                                  " date date not null, value double not null, until date",
    "internal.extremes_ranks": "indicator varchar not null, subject varchar not null, lo double not null,"
                               " hi double not null, readings bigint not null,"
                               " sorted_values blob not null using compression uncompressed,"
                               " counts blob using compression uncompressed",
}


def series_blocks(series: np.ndarray, v: np.ndarray, order: np.ndarray, st: np.ndarray, ln: np.ndarray) -> dict:
    """The rank blocks (rank_blocks' columns, series_id, hot) of a batch of whole series: `v` their values, `order`
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
    blocks = rank_blocks(values, counts, first[at])
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


def rank_blocks(distinct: np.ndarray, counts: np.ndarray, first: np.ndarray) -> dict:
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


def horizon(latest: date | None) -> date | None:
    """The earliest `since` an update may start from, for a warehouse whose latest reading is dated `latest`: the
    frontier keeps what stopped being current after it (warehouse.update recomputes at most MAX_INCREMENTAL_DAYS
    before its as-of date, which is at or after `latest`)."""
    return None if latest is None else latest - timedelta(days=MAX_INCREMENTAL_DAYS)


def search(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, x: np.ndarray, right: bool) -> np.ndarray:
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


def update_frontier(frontier: dict, cut: int, new_sid, day, value, k: int):
    """Both sides' frontiers of the series 0..k-1 (their stored rows `frontier`: sid, low, day, value, until; by
    series, side, date) rolled back to day `cut` (`since`: rows dated after it go, those a removed reading had
    stopped are current again) and advanced by the new readings (new_sid, day, value: by series and date). Returns
    each new reading's highest_since and lowest_since (day numbers, NULL: none) and the rows after the update (sid,
    low, day, value, until) before the horizon's pruning. The build's frontier is this, from the one as of the
    horizon (frontier_rows).

    A side's current rows have strictly decreasing "keys" (value for 'high', -value for 'low'; at or beyond = key
    >=) in date order, so a new reading's since-date among them is a binary search; so is the first new reading to
    stop one (the running maximum of the new keys). Series with several new readings also compare those among
    themselves."""
    f_group = 2 * np.asarray(frontier["sid"], np.int64) + np.asarray(frontier["low"], np.int64)
    f_day, f_value, f_until = frontier["day"], frontier["value"], frontier["until"]
    kept = f_day <= cut
    f_group, f_day, f_value, f_until = f_group[kept], f_day[kept], f_value[kept], f_until[kept]
    f_until = np.where(f_until > cut, NULL, f_until)
    live = f_until == NULL
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
        reach = search(-l_key, groups[g], groups[g + 1], -key, right=True)
        found = np.where(reach > groups[g], l_day[np.maximum(reach - 1, 0)] if len(l_day) else NULL, NULL)
        # until of the current rows: the first new reading of the series whose key (running max) is >= theirs
        running = key.copy()
        c_until = np.full(len(key), NULL, np.int32)  # of the new readings, among the later new readings
        for s in several:
            a, b = series_new[s], series_new[s + 1]
            np.maximum.accumulate(key[a:b], out=running[a:b])
            d, w = day[a:b], key[a:b]
            earlier = (d[None, :] < d[:, None]) & (w[None, :] >= w[:, None])
            found[a:b] = np.maximum(found[a:b], np.where(earlier, d[None, :], NULL).max(axis=1))
            later = np.where((d[None, :] > d[:, None]) & (w[None, :] >= w[:, None]), d[None, :], np.iinfo(np.int32).max)
            first = later.min(axis=1)
            c_until[a:b] = np.where(first == np.iinfo(np.int32).max, NULL, first)
        since.append(found.astype(np.int32))
        own = np.flatnonzero(l_group % 2 == low)
        sids = l_group[own] // 2
        hit = search(running, series_new[sids], series_new[sids + 1], l_key[own], right=False)
        l_until = np.where(hit < series_new[sids + 1], day[np.minimum(hit, len(day) - 1)] if len(day) else NULL,
                           NULL).astype(np.int32)
        side = np.full(len(own) + len(day), low == 1)
        for name, part in (("sid", [sids, new_sid]), ("low", [side]), ("day", [l_day[own], day]),
                           ("value", [l_value[own], value]), ("until", [l_until, c_until])):
            out_rows[name] += part
    rows = {name: np.concatenate(parts) for name, parts in out_rows.items()}
    return since[0], since[1], rows


def frontier_rows(series: np.ndarray, day: np.ndarray, value: np.ndarray, cutoff: int) -> dict:
    """internal.extremes_frontier's rows for readings sorted by (series, date): the frontier as of day `cutoff`
    (the horizon; a reading is on it if strictly beyond every later one up to then: a running extreme from the end)
    advanced by the readings after it, as an update does (update_frontier): its rows are exactly those current or
    stopped after the horizon. Columns series_id, low, day, value, until (day numbers, NULL: NULL)."""
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
              "value": value[rows], "until": np.full(len(rows), NULL, np.int32)}
    order = np.lexsort((stored["day"], stored["low"], stored["sid"]))
    stored = {name: column[order] for name, column in stored.items()}
    after = day > cutoff
    _, _, out = update_frontier(stored, cutoff, sid[after], day[after], value[after], len(starts))
    return {"series_id": series[starts][out["sid"]], "low": out["low"], "day": out["day"], "value": out["value"],
            "until": out["until"]}


def to_days(dates) -> np.ndarray:
    """Day numbers (since 1970-01-01) of a fetched DATE column (fetchnumpy masks NULLs), NULL for NULL."""
    null = np.ma.getmaskarray(dates)
    data = np.ma.getdata(dates)
    if data.dtype == object:
        days = np.array([NULL if d is None else (d - EPOCH).days for d in data.tolist()], np.int32)
    else:
        days = data.astype("datetime64[D]").astype(np.int32)
    days[null] = NULL
    return days


def to_dates(days: np.ndarray) -> pa.Array:
    """date32 of day numbers, NULL where NULL."""
    days = np.ascontiguousarray(days, np.int32)
    valid = pa.py_buffer(np.packbits(days != NULL, bitorder="little"))
    return pa.Array.from_buffers(pa.date32(), len(days), [valid, pa.py_buffer(days)], null_count=-1)
