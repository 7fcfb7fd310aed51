"""The incremental update of marts.extremes (from warehouse.update): the rows of the readings dated after `since`,
computed from the state tables (regime.extremes.state) without running the engine, and the state brought up to date.
"""

from __future__ import annotations

import contextlib
from datetime import date, timedelta

import duckdb
import numpy as np
import pyarrow as pa

from regime.extremes import state
from regime.incremental import NotIncremental
from regime.sql import scalar


def update(con: duckdb.DuckDBPyConnection, since: date) -> int:
    """Incremental marts.extremes (warehouse.update): replace its rows dated after `since` with those of the readings
    of marts.indicators dated after `since`, and bring the state tables (regime.extremes.state) up to date; returns the
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
    if latest is not None and since < state.horizon(latest):
        raise NotIncremental(f"marts.extremes' state goes back to {state.horizon(latest)}, not to {since}")
    starts = dict(con.execute("select a.sid, s.history_start from internal.extremes_series as s"
                              " inner join extremes_affected as a using (indicator, subject)").fetchall())
    frontier = con.execute(
        "select a.sid, f.side = 'low' as low, f.date, f.value, f.until from internal.extremes_frontier as f"
        " inner join extremes_affected as a using (indicator, subject) order by a.sid, low, f.date").fetchnumpy()
    blocks = con.execute(
        "select a.sid, r.lo, r.readings, r.rowid from internal.extremes_ranks as r"
        " inner join extremes_affected as a using (indicator, subject) order by a.sid, r.lo").fetchnumpy()

    day, value = state.to_days(new["date"]), np.asarray(new["value"], np.float64)
    n_earlier, n_at_or_below = _update_ranks(con, keys, new_sid, value + 0.0, removed_sid,  # -0.0 is 0.0
                                             np.asarray(removed["value"], np.float64) + 0.0, blocks)
    cut = (since - state.EPOCH).days
    series_new = np.searchsorted(new_sid, np.arange(len(keys) + 1))  # new readings of series i: [i], [i + 1]
    stored = np.array([(d - state.EPOCH).days if d is not None and d <= since else state.NULL
                       for d in (starts.get(i) for i in range(len(keys)))], np.int32)
    first_new = np.where(series_new[1:] > series_new[:-1], np.append(day, state.NULL)[series_new[:-1]], state.NULL)
    history_start = np.where(stored != state.NULL, stored, first_new)
    fresh = np.flatnonzero((stored == state.NULL) & (first_new != state.NULL))  # series whose history now starts anew

    frontier = {"sid": frontier["sid"], "low": frontier["low"], "day": state.to_days(frontier["date"]),
                "value": np.asarray(frontier["value"], np.float64), "until": state.to_days(frontier["until"])}
    highest, lowest, rows = state.update_frontier(frontier, cut, new_sid, day, value, len(keys))
    newest = max([others] if others is not None else [], default=None)
    if len(rows["day"]):  # the latest reading is always a current frontier row
        mine = state.EPOCH + timedelta(days=int(rows["day"].max()))
        newest = mine if newest is None else max(newest, mine)
    if latest is not None and (newest is None or newest < latest):
        raise NotIncremental(f"the latest reading moved back from {latest} to {newest}: marts.extremes' state no"
                             " longer reaches back far enough")
    cutoff = state.horizon(newest)
    keep = (rows["until"] == state.NULL) | (
        rows["until"] > (state.NULL if cutoff is None else (cutoff - state.EPOCH).days))
    con.execute("delete from internal.extremes_frontier as f where f.until <= $cutoff or exists (select 1 from"
                " extremes_affected as a where a.indicator = f.indicator and a.subject = f.subject)",
                {"cutoff": cutoff})
    if keep.any():
        con.register("extremes_frontier_rows", pa.table({
            "sid": rows["sid"][keep], "side": pa.array(np.where(rows["low"][keep], "low", "high"), pa.string()),
            "date": state.to_dates(rows["day"][keep]), "value": rows["value"][keep],
            "until": state.to_dates(rows["until"][keep])}))
        con.execute("insert into internal.extremes_frontier by name select a.indicator, a.subject, r.side, r.date,"
                    " r.value, r.until from extremes_frontier_rows as r inner join extremes_affected as a using (sid)")
    if any(d > since for d in starts.values()):  # series whose readings all went: their history_start goes
        con.execute("delete from internal.extremes_series where history_start > $since", {"since": since})
    if len(fresh):
        con.register("extremes_fresh", pa.table({"sid": fresh, "history_start": state.to_dates(history_start[fresh])}))
        con.execute("insert into internal.extremes_series by name select a.indicator, a.subject, f.history_start"
                    " from extremes_fresh as f inner join extremes_affected as a using (sid)")
    if not len(day):
        return 0
    con.register("extremes_new", pa.table({
        "date": state.to_dates(day),
        "indicator": pa.array(new["indicator"], pa.string()),
        "subject": pa.array(new["subject"], pa.string()),
        "value": value,
        "history_start": state.to_dates(history_start[new_sid]),
        "highest_since": state.to_dates(highest),
        "lowest_since": state.to_dates(lowest),
        "is_record_high": (n_earlier > 0) & (highest == state.NULL),
        "is_record_low": (n_earlier > 0) & (lowest == state.NULL),
        "pct_rank": (n_at_or_below + 1) / (n_earlier + 1),  # as the engine: integers divided in double precision
    }))
    return scalar(con, "insert into marts.extremes by name select * from extremes_new")


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
        at = state.search(lo, own[sids], own[sids + 1], x, right=True) - 1
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
    at = state.search(sorted_values, mine[new_sid], mine[new_sid + 1], value, right=True)
    has = new_block >= 0
    stored = np.zeros(len(value), np.int64)
    block = new_block[has]
    stored[has] = (before[block] - before[own[new_sid[has]]] + total[at[has]]
                   - total[elements[np.searchsorted(touched, block)]])
    stored -= state.search(gone, dropped[new_sid], dropped[new_sid + 1], value, right=True) - dropped[new_sid]
    for s in np.flatnonzero(np.diff(series_new) > 1):
        a, b = series_new[s], series_new[s + 1]
        stored[a:b] += np.tril(value[None, a:b] <= value[a:b, None], -1).sum(axis=1)
    readings = before[own[1:]] - before[own[:-1]] - np.diff(dropped)
    n_earlier = readings[new_sid] + np.arange(len(value)) - series_new[new_sid]

    # the touched blocks' values after: removed ones counted down, new ones counted up or inserted
    where = state.search(sorted_values, mine[removed_sid], mine[removed_sid + 1], gone, right=False)
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
    written = state.rank_blocks(sorted_values, tally, first)
    written["sid"] = e_sid[written.pop("start")]
    _write_blocks(con, b_row[touched], written)
    return n_earlier, stored


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
    """Delete the blocks at the row ids `drop`, insert `blocks` (state.rank_blocks' columns and sid)."""
    if len(drop):
        con.execute("delete from internal.extremes_ranks where rowid in (select unnest($rows::bigint[]))",
                    {"rows": drop.tolist()})
    if not len(blocks["lo"]):
        return
    con.register("extremes_blocks", pa.table(blocks))
    con.execute("insert into internal.extremes_ranks by name select a.indicator, a.subject, b.lo, b.hi, b.readings,"
                " b.sorted_values, b.counts from extremes_blocks as b inner join extremes_affected as a using (sid)")
