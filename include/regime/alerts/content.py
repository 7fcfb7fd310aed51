"""What an alert mail says about each alert, in words and units (regime.words), from the published warehouse.

Each alert of the outbox becomes one `Item` on its own: an alert that cannot be put into words (a reading gone from
the warehouse, a bug in a phrasing) is returned as a failure with its error instead, and the others still go out.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from regime import answers, words
from regime.alerts import rules


@dataclass(frozen=True)
class Item:
    """One alert, as the mail shows it; every field is text."""

    key: str
    date: str
    reading: str  # 'Russell 2000 z-score vs its 50-day average'
    value: str  # '+4.42σ'
    standing: str  # 'the highest on record (history since 1987-11-18)'
    percentile: str  # '100th percentile' ('' when it does not apply)
    previous: str  # 'previous record +3.72σ on 2023-06-07' ('' when there is none)
    rule: str  # 'zscore_threshold'
    fires: str  # the rule's condition and threshold in words


def item(con: duckdb.DuckDBPyConnection, alert: dict, settings) -> Item:
    """The mail's view of one outbox row (regime.alerts.outbox.pending)."""
    fires = rules.fires_when(alert["rule"], settings)
    if alert["indicator"] == "regime_label":
        return Item(alert["alert_key"], alert["reading_date"], "Regime label", alert["subject"], alert["message"],
                    "", "", alert["rule"], fires)
    day = words.as_date(alert["reading_date"])
    found = answers.readings_on(con, day, alert["indicator"], alert["subject"])
    if not found:
        raise LookupError(f"no {alert['subject']} {alert['indicator']} reading on {day} in the published warehouse")
    reading = found[0]
    previous = answers.previous_extreme(con, reading)
    return Item(
        key=alert["alert_key"],
        date=day.isoformat(),
        reading=words.reading_name(reading.indicator, reading.subject),
        value=words.value_text(reading.indicator, reading.value),
        standing=words.since_phrase(reading),
        percentile="" if reading.is_first else words.percentile(reading.pct_rank),
        previous="" if previous is None else words.previous_text(reading.indicator, reading, previous),
        rule=alert["rule"],
        fires=fires,
    )


def items(con: duckdb.DuckDBPyConnection, alerts: list[dict], settings) -> tuple[list[Item], dict[str, str]]:
    """(the alerts in words, {alert_key: error} of those that could not be)."""
    done, failed = [], {}
    for alert in alerts:
        try:
            done.append(item(con, alert, settings))
        except Exception as exc:  # noqa: BLE001 (one alert's problem must not stop the others)
            failed[alert["alert_key"]] = f"{exc.__class__.__name__}: {exc}"
    return done, failed
