"""What happened next: forward returns, episodes beyond a threshold, and the past episodes like today's (analogs).

Configuration, in one place (this module; docs/indicators.md#episodes-and-forward-returns):

- FORWARD_HORIZONS, FORWARD_INDEXES, FORWARD_PAIRS: what marts.forward_returns holds (include/sql/marts/
  forward_returns.sql). marts.episodes names its forward-return columns after the horizons (index_fwd_5d, …).
- EPISODE_RULES: the thresholds of marts.episodes (include/sql/marts/episodes.sql).
- ANALOG_INDEX, ANALOG_PAIR: whose forward returns an episode of a subject that is neither a price index nor a pair
  carries.

The build (regime.warehouse) calls `build` and `update`; the `regime analogs` command (regime.cli), the report's
"What happened next" section and the alert mail's summary line read the tables through `find` and `paths`, and say
them with regime.words.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import date

import duckdb

from regime.incremental import history_from
from regime.indicators import REGISTRY
from regime.sql import FULL, bind, read_sql, scalar

FORWARD_HORIZONS: tuple[int, ...] = (5, 20, 60)  # sessions; episodes.sql has one column per horizon
FORWARD_INDEXES: tuple[str, ...] = ("RUT", "SPX", "NDX", "DJX")
FORWARD_PAIRS: tuple[tuple[str, str], ...] = (("RUT", "SPX"), ("RUT", "NDX"))  # small minus large
ANALOG_INDEX = "RUT"
ANALOG_PAIR = "RUT/SPX"
MIN_EPISODES = 5  # fewer earlier episodes than this: the summary comes with a caveat


@dataclass(frozen=True)
class Rule:
    """One threshold of marts.episodes: `kind` 'level' (the value beyond `threshold`), 'percentile' (the reading's
    pct_rank in its history to date beyond `threshold`) or 'record' (a record high / low; no threshold); `side`
    'high' (at or above) or 'low' (at or below); `subject` None: every subject of the indicator."""

    indicator: str
    subject: str | None
    kind: str
    threshold: float | None
    side: str


def _levels(indicator: str, subjects: tuple[str, ...], levels: tuple[float, ...]) -> list[Rule]:
    return [Rule(indicator, s, "level", sign * level, side)
            for s in subjects for level in levels for sign, side in ((1.0, "high"), (-1.0, "low"))]


EPISODE_RULES: tuple[Rule, ...] = (
    # |zscore_50d| >= 2, 3, 3.5 of the price indexes, each side
    *_levels("zscore_50d", FORWARD_INDEXES, (2.0, 3.0, 3.5)),
    # rel_ret_5d beyond its 1st / 99th percentile (in its history to date: point in time)
    *(Rule("rel_ret_5d", f"{a}/{b}", "percentile", p, side)
      for a, b in FORWARD_PAIRS for p, side in ((0.99, "high"), (0.01, "low"))),
    # record highs / lows of the headline indicators, every subject
    *(Rule(i.name, None, "record", None, side) for i in REGISTRY if i.headline for side in ("high", "low")),
)


def params() -> dict:
    """The SQL parameters of forward_returns.sql and episodes.sql."""
    return {
        "forward_horizons": list(FORWARD_HORIZONS),
        "forward_indexes": list(FORWARD_INDEXES),
        "forward_small": [a for a, _ in FORWARD_PAIRS],
        "forward_large": [b for _, b in FORWARD_PAIRS],
        "analog_index": ANALOG_INDEX,
        "analog_pair": ANALOG_PAIR,
        "episode_indicators": [r.indicator for r in EPISODE_RULES],
        "episode_subjects": [r.subject for r in EPISODE_RULES],
        "episode_kinds": [r.kind for r in EPISODE_RULES],
        "episode_thresholds": [r.threshold for r in EPISODE_RULES],
        "episode_sides": [r.side for r in EPISODE_RULES],
    }


# ---------------------------------------------------------------- building


def build(con: duckdb.DuckDBPyConnection, build_params: dict) -> int:
    """marts.forward_returns and marts.episodes of a full build (after marts.extremes); returns their rows."""
    values = {**build_params, **params(), "since": FULL, "history_from": FULL, "episodes_from": FULL}
    sql = read_sql("marts/forward_returns.sql")
    con.execute(f"create or replace table marts.forward_returns as {sql} order by end_date, subject, horizon, date",
                bind(sql, values))
    sql = read_sql("marts/episodes.sql")
    con.execute(f"create or replace table marts.episodes as {sql}", bind(sql, values))
    return scalar(con, "select (select count(*) from marts.forward_returns) + (select count(*) from marts.episodes)")


def update(con: duckdb.DuckDBPyConnection, build_params: dict, since: date) -> int:
    """Bring marts.forward_returns and marts.episodes of a copied warehouse up to date (after marts.extremes):
    the forward returns ending after `since` are deleted and computed again from 60 sessions before it (the rest
    depend only on closes up to `since`); the episodes that can change are computed again (`episodes_from`).
    Returns the rows written."""
    start = history_from(con, "index", max(FORWARD_HORIZONS), since)
    values = {**build_params, **params(), "since": since, "history_from": start}
    con.execute("delete from marts.forward_returns where end_date > $since", {"since": since})
    sql = read_sql("marts/forward_returns.sql")
    written = scalar(con, f"insert into marts.forward_returns {sql} order by end_date, subject, horizon, date",
                     bind(sql, values))
    cut = episodes_from(con, start)
    con.execute("delete from marts.episodes where end_date >= $cut", {"cut": cut})
    sql = read_sql("marts/episodes.sql")
    written += scalar(con, f"insert into marts.episodes {sql} order by indicator, subject, kind, threshold, side, "
                      "start_date", bind(sql, {**values, "episodes_from": cut}))
    return written


def episodes_from(con: duckdb.DuckDBPyConnection, start: date) -> date:
    """The date from which an update recomputes marts.episodes: no episode ends on or after it unless it also starts
    on or after it. `start` (60 index sessions before the update's `since`) covers the episodes whose forward returns
    may have become known and those that may go on (readings up to `since` do not change in an update); an episode
    spanning it moves the cut to its start, until none does. The reading before the cut is then beyond no rule
    that the reading on it is beyond, so the recomputed episodes start where a full build's do."""
    cut = start
    while True:
        earlier = con.execute("select min(start_date) from marts.episodes where end_date >= $cut and start_date < $cut",
                              {"cut": cut}).fetchone()[0]
        if earlier is None:
            return cut
        cut = earlier


# ---------------------------------------------------------------- reading: the analogs of a day


@dataclass(frozen=True)
class Episode:
    """A row of marts.episodes, with its forward returns as known on the day asked about ({horizon: value or
    None}: None where the return ends after that day, or the history ends before)."""

    start_date: date
    end_date: date
    sessions: int
    peak_date: date
    peak_value: float
    index_returns: dict[int, float | None]
    pair_returns: dict[int, float | None]


@dataclass(frozen=True)
class Analogs:
    """The episode a reading belongs to on `day` and the earlier episodes of the same series, threshold and side."""

    indicator: str
    subject: str
    kind: str
    threshold: float | None
    side: str
    day: date
    value: float  # the reading on `day`
    current: Episode  # the episode `day` belongs to (as known on `day`: its end and peak up to `day`)
    earlier: list[Episode] = field(default_factory=list)
    index: str = ANALOG_INDEX  # whose forward returns index_returns are
    pair: str = ANALOG_PAIR  # whose small-minus-large returns pair_returns are

    def values(self, which: str, horizon: int) -> list[tuple[date, float]]:
        """(start date, return) of the earlier episodes whose `which` ('index' or 'pair') return over `horizon`
        sessions is known."""
        out = []
        for episode in self.earlier:
            value = (episode.index_returns if which == "index" else episode.pair_returns).get(horizon)
            if value is not None:
                out.append((episode.start_date, value))
        return out


@dataclass(frozen=True)
class Summary:
    """count, median, share negative, best and worst of the known returns of one series over one horizon."""

    which: str
    subject: str
    horizon: int
    count: int
    median: float | None
    negative: int
    best: tuple[date, float] | None
    worst: tuple[date, float] | None


def summarize(found: Analogs, which: str, horizon: int) -> Summary:
    values = found.values(which, horizon)
    subject = found.index if which == "index" else found.pair
    if not values:
        return Summary(which, subject, horizon, 0, None, 0, None, None)
    return Summary(which, subject, horizon, len(values), statistics.median(v for _, v in values),
                   sum(1 for _, v in values if v < 0), max(values, key=lambda x: x[1]),
                   min(values, key=lambda x: x[1]))


class NoEpisode(LookupError):
    """The reading is not beyond any configured threshold (or not beyond the one asked for) on that day."""


def thresholds(con: duckdb.DuckDBPyConnection, indicator: str, subject: str) -> list[tuple[str, float | None, str]]:
    """(kind, threshold, side) of the episodes marts.episodes holds for the series."""
    return con.execute(
        "select distinct kind, threshold, side from marts.episodes where indicator = $i and subject = $s"
        " order by kind, threshold, side", {"i": indicator, "s": subject}).fetchall()


def current_episodes(con: duckdb.DuckDBPyConnection, indicator: str, subject: str, day: date) -> list[tuple]:
    """(kind, threshold, side, start_date) of every episode of the series that `day` belongs to."""
    return con.execute(
        "select kind, threshold, side, start_date from marts.episodes where indicator = $i and subject = $s"
        " and start_date <= $day and end_date >= $day", {"i": indicator, "s": subject, "day": day}).fetchall()


def choose(current: list[tuple], threshold: float | None) -> tuple | None:
    """Which of the day's episodes to compare with: at `threshold` (a level given as a magnitude matches either
    side; a percentile as configured) if given, else the strictest: the largest |level|, then a percentile, then a
    record."""
    if threshold is not None:
        hits = [c for c in current if c[1] is not None
                and (c[1] == threshold or (c[0] == "level" and abs(c[1]) == abs(threshold) and threshold > 0))]
        return hits[0] if hits else None
    order = {"level": 0, "percentile": 1, "record": 2}
    ranked = sorted(current, key=lambda c: (order.get(c[0], 9), -abs(c[1]) if c[1] is not None else 0))
    return ranked[0] if ranked else None


def find(con: duckdb.DuckDBPyConnection, indicator: str, subject: str, day: date,
         threshold: float | None = None) -> Analogs:
    """The analogs of the reading of `indicator` `subject` on `day`: the earlier episodes (started before the
    day's own) at the same threshold and side, each with its forward returns as known on `day` (a return ending
    after `day` is None: the warehouse may hold it, but it was not known then). NoEpisode when the reading is not
    beyond the threshold (or any configured threshold)."""
    chosen = choose(current_episodes(con, indicator, subject, day), threshold)
    if chosen is None:
        raise NoEpisode(f"{subject} {indicator} on {day}")
    kind, level, side, start = chosen
    rows = con.execute(
        "select start_date, end_date, sessions, peak_date, peak_value, fwd_index, fwd_pair from marts.episodes"
        " where indicator = $i and subject = $s and kind = $k and threshold is not distinct from $t and side = $side"
        " and start_date <= $start order by start_date",
        {"i": indicator, "s": subject, "k": kind, "t": level, "side": side, "start": start}).fetchall()
    index, pair = rows[-1][5], rows[-1][6]
    known = _known_returns(con, [r[0] for r in rows], index, pair, day)
    earlier = [Episode(s, e, n, pd_, pv, known.get((s, index), {}), known.get((s, pair), {}))
               for s, e, n, pd_, pv, _, _ in rows[:-1]]
    value, sessions, peak_date, peak_value = _so_far(con, indicator, subject, start, day, side)
    current = Episode(start, day, sessions, peak_date, peak_value, {}, {})
    return Analogs(indicator, subject, kind, level, side, day, value, current, earlier, index, pair)


def _known_returns(con, starts: list[date], index: str, pair: str, day: date) -> dict:
    rows = con.execute(
        "select date, subject, horizon, value from marts.forward_returns where list_contains($starts, date)"
        " and subject in ($index, $pair) and end_date <= $day",
        {"starts": starts, "index": index, "pair": pair, "day": day}).fetchall()
    known: dict[tuple[date, str], dict[int, float | None]] = {}
    for start, subject, horizon, value in rows:
        known.setdefault((start, subject), {})[horizon] = value
    return known


def _so_far(con, indicator: str, subject: str, start: date, day: date, side: str) -> tuple:
    """(the reading on `day`, readings from `start` to `day`, date and value of the peak so far)."""
    order = "desc" if side == "high" else "asc"
    rows = con.execute(
        f"select date, value, count(*) over () from marts.indicators where indicator = $i and subject = $s"
        f" and date between $start and $day order by value {order}, date",
        {"i": indicator, "s": subject, "start": start, "day": day}).fetchall()
    today = next(v for d, v, _ in rows if d == day)
    return today, rows[0][2], rows[0][0], rows[0][1]


def paths(con: duckdb.DuckDBPyConnection, found: Analogs, sessions: int | None = None) -> dict[date, list[float]]:
    """{episode start: the index's close / its close on the start date - 1, for the start session and the next
    `sessions` (default: the longest horizon) up to found.day} of every earlier episode, and of the current one
    (so far)."""
    sessions = max(FORWARD_HORIZONS) if sessions is None else sessions
    starts = [e.start_date for e in found.earlier] + [found.current.start_date]
    rows = con.execute(
        """
        with closes as (
            select date, close, row_number() over (order by date) as n
            from marts.prices where symbol = $index and close is not null and date <= $day
        ),
        starts as (select date, n, close from closes where list_contains($starts, date))
        select s.date, c.n - s.n as k, c.close / nullif(s.close, 0) - 1 as value
        from starts as s inner join closes as c on c.n between s.n and s.n + $sessions
        order by s.date, k
        """, {"index": found.index, "day": found.day, "starts": starts, "sessions": sessions}).fetchall()
    out: dict[date, list[float]] = {}
    for start, _, value in rows:
        out.setdefault(start, []).append(value)
    return out


def latest_reading_date(con: duckdb.DuckDBPyConnection, indicator: str, subject: str, as_of: date) -> date | None:
    rows = con.execute("select max(date) from marts.indicators where indicator = $i and subject = $s"
                       " and date <= $d and value is not null", {"i": indicator, "s": subject, "d": as_of}).fetchall()
    return rows[0][0]



# The readings whose analogs the report shows, in order of preference: the first that is in an episode on the day.
LEADING: tuple[tuple[str, str], ...] = (
    ("zscore_50d", "RUT"), ("rel_ret_5d", "RUT/SPX"), ("rel_ret_5d", "RUT/NDX"), ("zscore_50d", "SPX"),
    ("zscore_50d", "NDX"), ("zscore_50d", "DJX"),
)


def leading(con: duckdb.DuckDBPyConnection, day: date,
            candidates: tuple[tuple[str, str], ...] = LEADING) -> Analogs | None:
    """The analogs of the first of `candidates` whose reading on `day` is in an episode (None: none is)."""
    for indicator, subject in candidates:
        try:
            return find(con, indicator, subject, day)
        except NoEpisode:
            continue
    return None
