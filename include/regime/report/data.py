"""Everything the report shows, read once from the published warehouse. Any table may be missing or empty
(another model not built yet, a source without data): the loader then records it and returns empty frames."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import duckdb
import pandas as pd

from regime.report.fmt import Units

log = logging.getLogger(__name__)

EMPTY_READINGS = pd.DataFrame({"date": pd.Series(dtype="datetime64[us]"), "value": pd.Series(dtype="float64")})


def frame(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> pd.DataFrame | None:
    """The query's rows, or None where a table or column it reads does not exist."""
    try:
        return con.execute(sql, params or {}).df()
    except duckdb.Error as exc:
        log.info("report: %s", str(exc).splitlines()[0])
        return None


def _dates(df: pd.DataFrame | None, *columns: str) -> pd.DataFrame | None:
    if df is None:
        return None
    for column in columns:
        if column not in df.columns:
            continue
        if column == "built_at":
            df[column] = pd.to_datetime(df[column], utc=True)
        else:
            df[column] = pd.to_datetime(df[column])
    return df


@dataclass
class ReportData:
    as_of: date
    build_info: dict | None = None
    indicators: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["date", "indicator", "subject", "value"]))
    extremes: pd.DataFrame | None = None  # the latest row on or before as_of of every series
    regime: pd.DataFrame | None = None  # marts.regime_daily up to as_of
    validation: pd.DataFrame | None = None  # meta.validation_runs of as_of
    headlines: list[str] = field(default_factory=list)  # marts.headlines of as_of, in rank order
    analogs: Any = None  # regime.analogs.Analogs of the leading reading in an episode on as_of (None: none)
    analog_paths: dict = field(default_factory=dict)  # regime.analogs.paths of it: {episode start: [returns]}
    missing: list[str] = field(default_factory=list)  # tables that are absent or empty
    units: Units = field(default_factory=Units)
    _series: dict = field(default_factory=dict, repr=False)

    @property
    def as_of_ts(self) -> pd.Timestamp:
        return pd.Timestamp(self.as_of)

    def index(self) -> None:
        self._series = {key: g[["date", "value"]].sort_values("date").reset_index(drop=True)
                        for key, g in self.indicators.groupby(["indicator", "subject"], sort=False)}

    def series(self, indicator: str, subject: str) -> pd.DataFrame:
        """(date, value) of one series up to as_of, in date order; empty if absent."""
        return self._series.get((indicator, subject), EMPTY_READINGS)

    def has(self, indicator: str, subject: str | None = None) -> bool:
        return any(k[0] == indicator and (subject is None or k[1] == subject) for k in self._series)

    def subjects(self, indicator: str) -> list[str]:
        return sorted(k[1] for k in self._series if k[0] == indicator)

    def latest(self, indicator: str, subject: str) -> dict | None:
        """The latest reading on or before as_of, with its extremes columns where marts.extremes has them."""
        if self.extremes is not None and not self.extremes.empty:
            hit = self.extremes[(self.extremes["indicator"] == indicator) & (self.extremes["subject"] == subject)]
            if not hit.empty:
                return hit.iloc[0].to_dict()
        s = self.series(indicator, subject)
        if s.empty:
            return None
        last = s.iloc[-1]
        return {"date": last["date"], "indicator": indicator, "subject": subject, "value": float(last["value"])}

    def records(self) -> pd.DataFrame | None:
        """marts.extremes rows dated as_of that set a record; None if the table is missing."""
        if self.extremes is None:
            return None
        ext = self.extremes
        today = ext[(ext["date"] == self.as_of_ts) & (ext["is_record_high"].fillna(False).astype(bool)
                                                      | ext["is_record_low"].fillna(False).astype(bool))]
        return today.sort_values(["indicator", "subject"]).reset_index(drop=True)

    def regime_today(self) -> dict | None:
        if self.regime is None or self.regime.empty:
            return None
        return self.regime.iloc[-1].to_dict()


def load(con: duckdb.DuckDBPyConnection, as_of: date) -> ReportData:
    data = ReportData(as_of=as_of)
    p = {"as_of": as_of}

    info = _dates(frame(con, "select * from meta.build_info limit 1"), "as_of", "built_at")
    if info is None or info.empty:
        data.missing.append("meta.build_info")
    else:
        data.build_info = info.iloc[0].to_dict()

    ind = _dates(frame(con, "select date, indicator, subject, value from marts.indicators where date <= $as_of"
                            " and value is not null and isfinite(value) order by indicator, subject, date", p),
                 "date")
    if ind is None or ind.empty:
        data.missing.append("marts.indicators")
    else:
        data.indicators = ind
    data.index()

    ext = _dates(frame(con, "select * from marts.extremes where date <= $as_of qualify row_number() over"
                            " (partition by indicator, subject order by date desc) = 1", p),
                 "date", "history_start", "highest_since", "lowest_since")
    if ext is None or ext.empty:
        data.missing.append("marts.extremes")
    else:
        data.extremes = ext

    regime = _dates(frame(con, "select * from marts.regime_daily where date <= $as_of order by date", p), "date")
    if regime is None or regime.empty:
        data.missing.append("marts.regime_daily")
    else:
        data.regime = regime.reset_index(drop=True)

    heads = frame(con, "select headline from marts.headlines where date = $as_of order by rank", p)
    if heads is None:
        data.missing.append("marts.headlines")
    else:
        data.headlines = heads["headline"].tolist()

    _load_analogs(con, data)

    runs = frame(con, "select * from meta.validation_runs where as_of = $as_of", p)
    if runs is not None and not runs.empty and "run_at" in runs.columns:
        data.validation = runs[runs["run_at"] == runs["run_at"].max()].reset_index(drop=True)
    return data


def _load_analogs(con: duckdb.DuckDBPyConnection, data: ReportData) -> None:
    """What happened after the past episodes like the day's (regime.analogs.leading), and their paths; nothing in a
    warehouse without marts.episodes (built before it existed)."""
    from regime import analogs

    try:
        found = analogs.leading(con, data.as_of)
        if found is not None:
            data.analogs, data.analog_paths = found, analogs.paths(con, found)
    except duckdb.Error as exc:
        log.info("report: %s", str(exc).splitlines()[0])
        data.missing.append("marts.episodes")
    except Exception:  # noqa: BLE001 (the report never fails on data: the section then has nothing to compare)
        log.exception("report: could not read the analogs of %s", data.as_of)
