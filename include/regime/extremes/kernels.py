"""The extremes engine's numpy kernels: record flags, "highest/lowest since" rows and expanding percentile ranks of
rows sorted by (series, date).

Everything is O(n log L), L = the longest series, in batches of whole series that fit in cache, computed on several
threads (numpy releases the GIL):

- "latest earlier row with value >= v" (previous greater-or-equal element): binary lifting over a sparse table of
  window maxima, log2(L) vectorised passes over the rows the previous row does not answer;
- "readings up to this one with value <= v" (expanding rank): a wavelet-style split on the bits of the position,
  log2(L) vectorised stable partitions of each series' rows sorted by value.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from regime.extremes import state

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
    blocks: list  # compute(..., blocks=True): internal.extremes_ranks' rows per batch (rank_blocks + series_id, hot)


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
            out.blocks[number] = state.series_blocks(series[lo:hi], v, order, st, ln)
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
