"""The alert rules, in one place. Each rule is a SQL file under include/sql/alerts/ returning the readings that
fire it (date, indicator, subject, value, episode_start, and for readings their record flags and since-dates),
and a function that words a hit. Thresholds come from the settings (REGIME_ZSCORE_ALERT, REGIME_SINCE_YEARS)
and the indicator registry (headline indicators, REGIME_RULES["record_min_days"]).

| rule | fires when | episode (mailed once) |
|---|---|---|
| zscore_threshold | the latest abs(zscore_50d) of an index >= REGIME_ZSCORE_ALERT (3) | consecutive extreme sessions |
| record | a headline indicator sets a record high or low (series >= 1 year old) | consecutive record readings |
| long_since | a headline reading is the highest/lowest in more than REGIME_SINCE_YEARS (10) years | the since-date |
| label_change | the regime label of the latest session differs from the session before | that session |

A reading that fires several rules is mailed once, under the first rule in this order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import duckdb

from regime.warehouse import bind, read_sql

MAX_AGE_DAYS = 10  # a reading older than this (a weekly CFTC release) no longer fires record/long_since


@dataclass(frozen=True)
class Alert:
    rule: str
    date: date
    indicator: str
    subject: str
    value: float | None
    episode_start: date
    message: str

    @property
    def key(self) -> str:
        return f"{self.rule}:{self.indicator}:{self.subject}:{self.episode_start.isoformat()}"


def _since_words(row: dict[str, Any]) -> str:
    if row.get("is_record_high"):
        return "highest on record"
    if row.get("is_record_low"):
        return "lowest on record"
    high, low = row.get("highest_since"), row.get("lowest_since")
    if high is not None and (low is None or high < low):
        return f"highest since {high.isoformat()}"
    if low is not None:
        return f"lowest since {low.isoformat()}"
    return ""


def describe_zscore(subject: str, value: float) -> str:
    side = "above" if value > 0 else "below"
    return f"{subject} {abs(value):.1f}\u03c3 {side} its 50-day average"


def _zscore(row: dict, settings) -> str:
    since = _since_words(row)
    return describe_zscore(row["subject"], row["value"]) + (f" \u2014 {since}" if since else "")


def _reading(row: dict, settings) -> str:
    from regime.report import fmt

    value = fmt.Units().text(row["indicator"], row["value"])
    return (f"{fmt.subject_name(row['subject'])}: {fmt.indicator_name(row['indicator'])} {value} "
            f"\u2014 {_since_words(row)}")


def _label(row: dict, settings) -> str:
    return f"Regime changed from '{row['previous_label']}' to '{row['subject']}'"


@dataclass(frozen=True)
class Rule:
    name: str
    sql: str
    words: Any  # (row, settings) -> str


RULES: tuple[Rule, ...] = (
    Rule("zscore_threshold", "alerts/zscore_threshold.sql", _zscore),
    Rule("record", "alerts/record.sql", _reading),
    Rule("long_since", "alerts/long_since.sql", _reading),
    Rule("label_change", "alerts/label_change.sql", _label),
)


def params(settings, as_of: date) -> dict:
    from regime.indicators import REGIME_RULES

    return {
        "as_of": as_of,
        "threshold": settings.zscore_alert,
        "headline_indicators": list(REGIME_RULES["headline_indicators"]),
        "record_min_days": REGIME_RULES["record_min_days"],
        "since_years": settings.since_years,
        "max_age_days": MAX_AGE_DAYS,
    }


def evaluate(con: duckdb.DuckDBPyConnection, as_of: date, settings) -> list[Alert]:
    """Every rule over a warehouse (a staging copy or the published one), de-duplicated by reading."""
    values = params(settings, as_of)
    seen, alerts = set(), []
    for rule in RULES:
        sql = read_sql(rule.sql)
        cursor = con.execute(sql, bind(sql, values))
        columns = [c[0] for c in cursor.description]
        for record in cursor.fetchall():
            row = dict(zip(columns, record, strict=True))
            reading = (row["date"], row["indicator"], row["subject"])
            if reading in seen:
                continue
            seen.add(reading)
            alerts.append(Alert(rule.name, row["date"], row["indicator"], row["subject"], row["value"],
                                row["episode_start"], rule.words(row, settings)))
    return alerts


def zscore_threshold(con: duckdb.DuckDBPyConnection, as_of: date, threshold: float) -> list[Alert]:
    """The z-score rule alone (kept for callers that only want it)."""
    from types import SimpleNamespace

    settings = SimpleNamespace(zscore_alert=threshold, since_years=10)
    return [a for a in evaluate(con, as_of, settings) if a.rule == "zscore_threshold"]
