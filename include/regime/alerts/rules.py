"""Alert rules: each is a SQL file under include/sql/alerts/ returning
(date, indicator, subject, value, episode_start), plus the words that describe a hit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb

from regime.warehouse import bind, read_sql


@dataclass(frozen=True)
class Alert:
    rule: str
    date: date
    indicator: str
    subject: str
    value: float
    episode_start: date
    message: str

    @property
    def key(self) -> str:
        return f"{self.rule}:{self.indicator}:{self.subject}:{self.episode_start.isoformat()}"


def describe_zscore(subject: str, value: float) -> str:
    side = "above" if value > 0 else "below"
    return f"{subject} {abs(value):.1f}\u03c3 {side} its 50-day average"


def zscore_threshold(con: duckdb.DuckDBPyConnection, as_of: date, threshold: float) -> list[Alert]:
    sql = read_sql("alerts/zscore_threshold.sql")
    rows = con.execute(sql, bind(sql, {"as_of": as_of, "threshold": threshold})).fetchall()
    return [
        Alert("zscore_threshold", d, indicator, subject, value, start,
              f"{describe_zscore(subject, value)} (threshold \u00b1{threshold:g}\u03c3)")
        for d, indicator, subject, value, start in rows
    ]
