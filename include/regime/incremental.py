"""What an incremental update shares with the models it recomputes: how far back it may go (MAX_INCREMENTAL_DAYS),
how it refuses (NotIncremental), and from which date a look-back over sessions reads (history_from).

regime.warehouse.update drives the update; regime.readings, regime.lake_changes, regime.extremes and regime.analogs
take these from here, not from it.
"""

from __future__ import annotations

from datetime import date, timedelta

import duckdb

from regime.indicators import SESSIONS
from regime.sql import FULL, WarehouseError, scalar

MAX_INCREMENTAL_DAYS = 31  # `update` recomputes at most this many calendar days; more is a full rebuild


class NotIncremental(WarehouseError):
    """`update` cannot show that its result would equal a full rebuild (nothing was written): build in full."""


def history_from(con: duckdb.DuckDBPyConnection, kind: str, lookback: int, since: date) -> date:
    """A date early enough for readings after `since` that look back `lookback` sessions of kind `kind` (SESSIONS):
    every series with a session after `since` keeps at least `lookback` of its sessions up to `since` on or after
    it, or all of them. Found by probing back from `since` (2 calendar days per session, then 4x further each time):
    only the dates near `since` are counted, plus one look at older rows of series that are short of sessions."""
    sessions = SESSIONS[kind]
    days = 2 * lookback + 14
    while days < (since - FULL).days:
        probe = since - timedelta(days=days)
        params = {"since": since, "probe": probe, "n": lookback}
        short = [row[0] for row in con.execute(
            f"with sessions as ({sessions}),"
            " new as (select distinct series from sessions where date > $since),"
            " recent as (select series, count(*) as n from sessions where date >= $probe and date <= $since"
            " group by series)"
            " select new.series from new left join recent using (series) where coalesce(recent.n, 0) < $n",
            params).fetchall()]
        if not short or not scalar(
                con, f"with sessions as ({sessions}) select count(*) from sessions"
                     " where date < $probe and list_contains($short, series)", {"probe": probe, "short": short}):
            return probe
        days *= 4
    return FULL
