"""Alert rules and mails, through a real SMTP server on 127.0.0.1 and the Airflow SMTP connection."""

from datetime import date

import duckdb
import pytest

from conftest import SAMPLE_LAST
from regime import pipeline, state
from regime.alerts import rules
from regime.config import get_settings

# the subject: the day's first headline (marts.headlines)
LEAD = ("Small-cap minus large-cap ETFs, 5-day flow spread at +6.30 pp: the highest on record "
        "(history since 2019-01-09)")


def _evaluate(settings, day):
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        return {(a.rule, a.subject): a.message for a in rules.evaluate(con, day, settings)}
    finally:
        con.close()


@pytest.mark.slow
def test_one_mail_lists_every_new_extreme_with_text_html_and_chart(published, smtp_conn):
    result = pipeline.alert(SAMPLE_LAST, published)
    assert result["sent"] == 2
    [msg] = smtp_conn.messages
    assert msg["To"] == "analyst@example.test"
    assert msg["Subject"] == f"Regime alert: {LEAD} (+1 more)"
    text = msg.get_body(preferencelist=("plain",)).get_content()
    html = msg.get_body(preferencelist=("html",)).get_content()
    assert LEAD in text and "Russell 2000 z-score vs its 50-day average: +4.36\u03c3 on 2024-07-17" in text
    assert "Small-cap minus large-cap ETFs, 5-day flow spread: +6.30 pp on 2024-07-17" in text
    assert "<table" in html and "cid:" in html and "the highest on record" in html
    images = [part for part in msg.walk() if part.get_content_type() == "image/png"]
    assert len(images) == 1 and images[0].get_content()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_rules_and_their_wording(published, monkeypatch):
    on_12th = _evaluate(published, date(2024, 7, 12))
    assert on_12th[("zscore_threshold", "RUT")] == \
        "Russell 2000 z-score vs its 50-day average +4.50\u03c3, the highest on record (history since 2019-03-14)"
    assert on_12th[("label_change", "small-cap squeeze")] == \
        "Regime changed from 'stretched' to 'small-cap squeeze'"
    assert _evaluate(published, date(2024, 7, 9)) == {}  # a quiet day: nothing fires
    monkeypatch.setenv("REGIME_SINCE_YEARS", "1")
    assert _evaluate(get_settings(), date(2024, 7, 17))[("long_since", "RUT/SPX")] == \
        "Russell 2000 vs S&P 500, 5-day relative return +10.6 pp, the highest since 2020-05-19 (4 years)"


@pytest.mark.slow
def test_the_same_episode_is_not_mailed_twice(published, smtp_conn):
    pipeline.alert(SAMPLE_LAST, published)
    again = pipeline.alert(SAMPLE_LAST, published)
    assert again == {"found": 2, "new": 0, "sent": 0}
    later = pipeline.alert(date(2024, 7, 16), published)  # the RUT episode began 2024-07-12: still the same one
    assert later["sent"] == 0
    assert len(smtp_conn.messages) == 1
    alerts = state.frames(published.state_dir)["alerts"].sort_values("rule")
    assert alerts[["rule", "subject", "state", "attempts"]].values.tolist() == [
        ["record", "small-large", "sent", 1], ["zscore_threshold", "RUT", "sent", 1]]


def test_the_published_warehouse_lists_the_runs_alerts(published):
    con = duckdb.connect(str(published.warehouse_path), read_only=True)
    try:
        rows = con.execute("select rule, subject, state from meta.alerts order by rule").fetchall()
    finally:
        con.close()
    assert rows == [("record", "small-large", "pending"), ("zscore_threshold", "RUT", "pending")]


@pytest.mark.slow
def test_smtp_down_keeps_the_alerts_pending_until_it_is_back(published, monkeypatch, smtp):
    from regime.mailcatcher import MailCatcher

    down = MailCatcher()
    down._port = smtp.port
    smtp.stop()  # nothing listens on this port now
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", down.connection_uri_json())
    with pytest.raises(Exception):  # noqa: B017 (connection refused, wrapped by the hook)
        pipeline.alert(SAMPLE_LAST, published)
    alerts = state.frames(published.state_dir)["alerts"]
    assert alerts[["state", "attempts"]].values.tolist() == [["failed", 1], ["failed", 1]]
    assert alerts["last_error"].str.len().gt(0).all()

    with MailCatcher() as up:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", up.connection_uri_json())
        result = pipeline.alert(SAMPLE_LAST, published)
        assert result["sent"] == 2 and len(up.messages) == 1
    alerts = state.frames(published.state_dir)["alerts"]
    assert alerts[["state", "attempts"]].values.tolist() == [["sent", 2], ["sent", 2]]


@pytest.mark.slow
def test_no_mail_when_nothing_is_extreme(settings, smtp_conn):
    quiet = date(2024, 7, 9)
    for name in ("index_prices", "options_volume", "cftc_tff", "etf_nav"):
        pipeline.ingest(name, quiet, settings)
    assert pipeline.build_validate_publish(quiet, settings)["new_alerts"] == 0
    assert pipeline.alert(quiet, settings) == {"found": 0, "new": 0, "sent": 0}
    assert smtp_conn.messages == []


def test_an_unsent_alert_shows_the_latest_reading_of_its_episode(tmp_path):
    """An episode's alert queued on day 1 and still unsent on day 2 (SMTP down) carries day 2's reading; once
    mailed, later readings of the same episode change nothing and are not queued again."""
    from regime.alerts import outbox

    def alert(day, value):
        return rules.Alert("zscore_threshold", day, "zscore_50d", "RUT", value, date(2024, 7, 15),
                           f"RUT {value}\u03c3 above its 50-day average")

    assert outbox.enqueue(tmp_path, date(2024, 7, 16), [alert(date(2024, 7, 16), 4.3)]) == 1
    assert outbox.enqueue(tmp_path, date(2024, 7, 17), [alert(date(2024, 7, 17), 4.4)]) == 0  # not a new alert
    assert outbox.enqueue(tmp_path, date(2024, 7, 16), [alert(date(2024, 7, 16), 4.3)]) == 0  # a rerun of day 1
    [row] = outbox.pending(tmp_path)
    assert (row["reading_date"], row["value"], row["message"], row["as_of"]) == \
        ("2024-07-17", 4.4, "RUT 4.4\u03c3 above its 50-day average", "2024-07-16")  # raised on day 1
    outbox.mark(tmp_path, [row["alert_key"]], ok=True)
    assert outbox.enqueue(tmp_path, date(2024, 7, 18), [alert(date(2024, 7, 18), 4.6)]) == 0
    assert outbox.pending(tmp_path) == []
    [sent] = state.frames(tmp_path)["alerts"].to_dict("records")
    assert (sent["state"], sent["value"]) == ("sent", 4.4)  # what was mailed stays on record


# A hand-made flow-spread series (a fraction: 0.06 reads +6.00 pp): a record high, the next one, then a record low
# the session after, another, then a record high again. (date, value, is_record_high, is_record_low); history since
# 2023-01-02.
SPREAD = [
    (date(2023, 1, 2), 0.0, False, False),  # the first reading
    (date(2023, 6, 1), 0.05, True, False),
    (date(2023, 6, 2), -0.05, False, True),
    (date(2024, 7, 1), 0.01, False, False),  # a plain reading
    (date(2024, 7, 2), 0.06, True, False),  # record high: episode 1
    (date(2024, 7, 3), 0.07, True, False),  # record high again: still episode 1
    (date(2024, 7, 5), -0.08, False, True),  # record low the session after: episode 2
    (date(2024, 7, 8), -0.09, False, True),  # record low again: still episode 2
    (date(2024, 7, 9), 0.08, True, False),  # record high the session after: episode 3
]


def _record_alerts(con, as_of):
    from types import SimpleNamespace

    from regime.sql import bind, read_sql

    rule = rules.BY_NAME["record"]
    sql = read_sql(rule.sql)
    cursor = con.execute(sql, bind(sql, rules.params(SimpleNamespace(zscore_alert=3.0, since_years=10), as_of)))
    columns = [c[0] for c in cursor.description]
    rows = [dict(zip(columns, r, strict=True)) for r in cursor.fetchall()]
    return [rules.Alert("record", r["date"], r["indicator"], r["subject"], r["value"], r["episode_start"],
                        rule.words(r, None)) for r in rows]


def test_a_record_on_the_other_side_is_a_new_episode_and_is_mailed(tmp_path):
    """A record low right after a record high (and a high right after a low) starts a new episode, so it is mailed;
    records on the same side on consecutive readings stay one episode, mailed once. Before, every record reading
    after the plain one of 2024-07-01 belonged to the episode of 2024-07-02: the lows were never mailed."""
    from regime.alerts import outbox

    con = duckdb.connect()
    con.execute("create schema marts; create table marts.extremes (date date, indicator varchar, subject varchar,"
                " value double, history_start date, highest_since date, lowest_since date,"
                " is_record_high boolean, is_record_low boolean, pct_rank double)")
    con.executemany("insert into marts.extremes values (?, 'etf_flow_5d_pct_spread', 'small-large', ?,"
                    " date '2023-01-02', null, null, ?, ?, 0.5)", SPREAD)
    expected = {  # as-of: (the reading's date, its episode's first record, queued as new), worked out by hand
        date(2024, 7, 1): None,
        date(2024, 7, 2): (date(2024, 7, 2), date(2024, 7, 2), 1),
        date(2024, 7, 3): (date(2024, 7, 3), date(2024, 7, 2), 0),
        date(2024, 7, 5): (date(2024, 7, 5), date(2024, 7, 5), 1),
        date(2024, 7, 8): (date(2024, 7, 8), date(2024, 7, 5), 0),
        date(2024, 7, 9): (date(2024, 7, 9), date(2024, 7, 9), 1),
    }
    got = {}
    for as_of in expected:
        found = _record_alerts(con, as_of)
        if not found:
            got[as_of] = None
            continue
        [alert] = found
        got[as_of] = (alert.date, alert.episode_start, outbox.enqueue(tmp_path, as_of, found))
        outbox.mark(tmp_path, [a["alert_key"] for a in outbox.pending(tmp_path)], ok=True)  # mailed that day
    assert got == expected
    sent = state.frames(tmp_path)["alerts"].sort_values("reading_date")
    assert sent[["alert_key", "reading_date", "value", "state"]].values.tolist() == [
        ["record:etf_flow_5d_pct_spread:small-large:2024-07-02", "2024-07-02", 0.06, "sent"],
        ["record:etf_flow_5d_pct_spread:small-large:2024-07-05", "2024-07-05", -0.08, "sent"],
        ["record:etf_flow_5d_pct_spread:small-large:2024-07-09", "2024-07-09", 0.08, "sent"],
    ]
    assert sent["message"].tolist() == [
        "Small-cap minus large-cap ETFs, 5-day flow spread +6.00 pp, the highest on record (history since 2023-01-02)",
        "Small-cap minus large-cap ETFs, 5-day flow spread -8.00 pp, the lowest on record (history since 2023-01-02)",
        "Small-cap minus large-cap ETFs, 5-day flow spread +8.00 pp, the highest on record (history since 2023-01-02)",
    ]
