"""What an alert mail says about each alert, in words and units (regime.words), from the published warehouse.

Each alert of the outbox becomes one `Item` on its own: an alert that cannot be put into words (a reading gone from
the warehouse, a bug in a phrasing) is returned as a failure with its error instead, and the others still go out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import duckdb

from regime import answers, readonly, words
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
    analogs: str = ""  # the leading alert only: what followed the earlier episodes like it, in one line ('': none)


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


def analogs_line(con: duckdb.DuckDBPyConnection, alert: dict, settings) -> str:
    """What followed the earlier episodes like the alert's reading (regime.analogs: for the z-score rule at its
    threshold, REGIME_ZSCORE_ALERT, when marts.episodes has it; else at the strictest threshold the reading is
    beyond), in one line: the index over the 20 sessions after their start, with the caveat when there are few; ''
    when the reading is in no episode, has no earlier one, or the warehouse has no marts.episodes."""
    from regime import analogs

    if alert["indicator"] == "regime_label" or not readonly.has_table(con, "marts", "episodes"):
        return ""
    day = words.as_date(alert["reading_date"])
    tries = [settings.zscore_alert, None] if alert["rule"] == "zscore_threshold" else [None]
    found = None
    for threshold in tries:
        try:
            found = analogs.find(con, alert["indicator"], alert["subject"], day, threshold)
            break
        except analogs.NoEpisode:
            continue
    if found is None:
        return ""
    if not found.earlier:
        return ""
    s = analogs.summarize(found, "index", 20)
    what = words.threshold_text(found.indicator, found.kind, found.threshold, found.side)
    line = f"What happened next ({what}): " + words.analog_summary(s.subject, 20, s.count, s.median, s.negative,
                                                                   s.best, s.worst)
    caveat = words.analog_caveat(len(found.earlier), analogs.MIN_EPISODES)
    return f"{line}. {caveat}" if caveat else line


def items(con: duckdb.DuckDBPyConnection, alerts: list[dict], settings) -> tuple[list[Item], dict[str, str]]:
    """(the alerts in words, {alert_key: error} of those that could not be). The leading one (the first put into
    words) carries its analogs line when it has analogs."""
    done, failed = [], {}
    for alert in alerts:
        try:
            found = item(con, alert, settings)
            if not done:
                found = replace(found, analogs=analogs_line(con, alert, settings))
            done.append(found)
        except Exception as exc:  # noqa: BLE001 (one alert's problem must not stop the others)
            failed[alert["alert_key"]] = f"{exc.__class__.__name__}: {exc}"
    return done, failed
