"""The alert rules, in one place. Each rule is a SQL file under include/sql/alerts/ returning the readings that
fire it (date, indicator, subject, value, episode_start, and for readings their record flags and since-dates),
and a function that words a hit. Thresholds come from the settings (REGIME_ZSCORE_ALERT, REGIME_SINCE_YEARS)
and the indicator registry (headline indicators, REGIME_RULES["record_min_days"]).

| rule | fires when | episode (mailed once) |
|---|---|---|
| zscore_threshold | the latest abs(zscore_50d) of an index >= REGIME_ZSCORE_ALERT (3) | consecutive extreme sessions |
| record | a headline indicator sets a record high or low (series >= 1 year old) | consecutive records, one side |
| long_since | a headline reading is the highest/lowest in more than REGIME_SINCE_YEARS (10) years | the since-date |
| label_change | the regime label of the latest session differs from the session before | that session |

A reading that fires several rules is mailed once, under the first rule in this order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import duckdb

from regime import words
from regime.sql import bind, read_sql

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


def _reading(row: dict, settings) -> str:
    """'Russell 2000 z-score vs its 50-day average +4.42σ, the highest on record (history since 1987-11-18)'."""
    return (f"{words.reading_name(row['indicator'], row['subject'])} "
            f"{words.value_text(row['indicator'], row['value'])}, {words.since_phrase(row)}")


def _label(row: dict, settings) -> str:
    return f"Regime changed from '{row['previous_label']}' to '{row['subject']}'"


@dataclass(frozen=True)
class Rule:
    name: str
    sql: str
    words: Any  # (row, settings) -> the alert's one-line message
    fires: Any  # (settings) -> when it fires, with its threshold, in words (shown in the mail)


RULES: tuple[Rule, ...] = (
    Rule("zscore_threshold", "alerts/zscore_threshold.sql", _reading,
         lambda s: f"an index's z-score vs its 50-day average beyond \u00b1{s.zscore_alert:g}\u03c3"
                   " (REGIME_ZSCORE_ALERT)"),
    Rule("record", "alerts/record.sql", _reading,
         lambda s: "a headline reading beyond every earlier one of its series (a record; series at least "
                   f"{_record_min_days()} days old)"),
    Rule("long_since", "alerts/long_since.sql", _reading,
         lambda s: f"a headline reading the highest or lowest in more than {s.since_years:g} "
                   f"year{'' if s.since_years == 1 else 's'} (REGIME_SINCE_YEARS)"),
    Rule("label_change", "alerts/label_change.sql", _label,
         lambda s: "the regime label of the latest session differs from the session before"),
)
BY_NAME = {rule.name: rule for rule in RULES}


def _record_min_days() -> int:
    from regime.indicators import REGIME_RULES

    return int(REGIME_RULES["record_min_days"])


def fires_when(rule: str, settings) -> str:
    """The rule's condition and threshold in words ('an index's z-score … beyond ±3σ (REGIME_ZSCORE_ALERT)')."""
    return BY_NAME[rule].fires(settings) if rule in BY_NAME else rule


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
