"""How current the lake is for a session: the newest date of every series of a dataset on or before the as-of date,
and the runs that must refuse stale data.

A run that means "the latest session" (a scheduled ingest, the build its ingests trigger, a manual run without an
`as_of`) fails with StaleData, at once and with the operators' failure mail, when a series ends more than the limit
before its as-of date: REGIME_FRESHNESS_SESSIONS NYSE sessions (default 3) for the daily datasets, CFTC_FRESH_DAYS
calendar days of its release date for the weekly CFTC report. A run given an explicit `as_of` replays that date
deliberately: there the same finding stays a warning of the validation gate (docs/operations.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from regime.config import Settings
from regime.datasets import ALL, Dataset

CFTC_FRESH_DAYS = 10  # a weekly report, released Fridays (Mondays in holiday weeks): the latest is at most 10 days old


class StaleData(RuntimeError):
    """A run meant for the latest session found data that ends too long before it; nothing was published."""


@dataclass(frozen=True)
class Series:
    dataset: str
    name: str  # the partition value: RUT, IWM, 239742, ...
    last: date  # its newest date (release date for CFTC) on or before the as-of date


def latest(settings: Settings, dataset: Dataset, as_of: date) -> list[Series]:
    """Each series of `dataset` in the lake (REGIME_DATA_DIR's or REGIME_LAKE_URI's bucket: regime.lake_store) with its
    newest date on or before `as_of` (none: not in the lake)."""
    import duckdb

    from regime import lake_store

    if not lake_store.has_data(settings, dataset):
        return []
    con = duckdb.connect()
    try:
        lake_store.register(con, settings)
        rows = con.execute(
            f"select {dataset.partition}::varchar, max({dataset.time_column}) "
            "from read_parquet($glob, hive_partitioning = true, hive_types_autocast = false) "
            f"where {dataset.time_column} <= $as_of group by all order by 1",
            {"glob": lake_store.glob(settings, dataset), "as_of": as_of}).fetchall()
    finally:
        con.close()
    return [Series(dataset.name, name, last) for name, last in rows if last is not None]


def oldest_allowed(settings: Settings, dataset: Dataset, as_of: date) -> date:
    """The oldest date a series of `dataset` may end on and still be fresh as of `as_of`."""
    if dataset.time_column == "release_date":
        return as_of - timedelta(days=CFTC_FRESH_DAYS)
    from regime.calendar import sessions_until

    sessions = sessions_until(as_of, settings.freshness_sessions + 1)
    return sessions[0]


def limit_text(settings: Settings, dataset: Dataset) -> str:
    if dataset.time_column == "release_date":
        return f"a release within {CFTC_FRESH_DAYS} days"
    return f"at most {settings.freshness_sessions} sessions behind, REGIME_FRESHNESS_SESSIONS"


def problems(settings: Settings, as_of: date, datasets: tuple[Dataset, ...] = ALL) -> list[str]:
    """One line per dataset the lake does not hold, and per dataset and end date of the series that end too long
    before `as_of`: 'index_prices RUT, SPX end 2024-07-17, before 2024-07-18 (at most 3 sessions behind, ...)'."""
    return problems_of(settings, as_of, {dataset: latest(settings, dataset, as_of) for dataset in datasets})


def problems_of(settings: Settings, as_of: date, found_series: dict[Dataset, list[Series]],
                where: str = "the lake") -> list[str]:
    """`problems` for series found elsewhere than in the lake (e.g. the demo's reading of the mirror's files):
    `found_series` maps each dataset to its series with their newest date on or before `as_of`."""
    found = []
    for dataset, series in found_series.items():
        if dataset.archive:  # Cboe's put/call volume ended in 2019: its age is no problem, nor its absence
            continue
        if not series:
            found.append(f"{dataset.name}: no data on or before {as_of} in {where}")
            continue
        floor = oldest_allowed(settings, dataset, as_of)
        stale: dict[date, list[str]] = {}
        for s in series:
            if s.last < floor:
                stale.setdefault(s.last, []).append(s.name)
        found += [f"{dataset.name} {', '.join(names)} end{'s' if len(names) == 1 else ''} {last}, before {floor} "
                  f"({limit_text(settings, dataset)})" for last, names in sorted(stale.items())]
    return found


def require_fresh(settings: Settings, as_of: date, datasets: tuple[Dataset, ...] = ALL) -> None:
    """Raise StaleData naming every stale series (see the module's docstring for who calls this)."""
    found = problems(settings, as_of, datasets)
    if found:
        raise StaleData(f"data for {as_of} is stale, nothing was published: " + "; ".join(found[:12])
                        + (f"; and {len(found) - 12} more" if len(found) > 12 else "")
                        + ". Run a past date with an explicit as_of (docs/operations.md) or fix the source.")


def expected(settings: Settings, dataset: Dataset) -> tuple[str, ...]:
    """The series of `dataset` the headline readings need (the configured ones): the Cboe indexes, the OCC
    watchlist, the CFTC markets, the ETF tickers."""
    return {"index_prices": settings.indexes, "options_volume": settings.watchlist,
            "cftc_tff": settings.cftc_markets, "etf_nav": settings.etf_tickers}.get(dataset.name, ())


def missing(settings: Settings, as_of: date, datasets: tuple[Dataset, ...] = ALL) -> list[str]:
    """One line per dataset whose configured series (`expected`) have no row on or before `as_of` in the lake
    (problems() checks only the series the lake holds): 'etf_nav IWM, IJR: no data on or before 2024-07-17'."""
    found = []
    for dataset in datasets:
        have = {s.name for s in latest(settings, dataset, as_of)}
        absent = [name for name in expected(settings, dataset) if name not in have]
        if absent and have:  # a dataset with no series at all is one line of problems()
            found.append(f"{dataset.name} {', '.join(absent)}: no data on or before {as_of} in the lake")
    return found


def covers(settings: Settings, dataset: Dataset, as_of: date) -> bool:
    """Whether the lake holds `dataset` for the session `as_of` itself (some series dated `as_of`)."""
    return any(s.last == as_of for s in latest(settings, dataset, as_of))
