"""Alert mails end to end: every rule through a real SMTP server on 127.0.0.1 on a day it fires, the mail rendered
in headless Chromium at desktop and phone width, and an outbox that never jams (one alert that cannot be composed
never holds back the others)."""

from __future__ import annotations

import base64
import re
import shutil
from datetime import date
from email.message import EmailMessage

import pytest
from test_report import chromium, needs_chromium

from conftest import REFERENCE_MIRROR, SAMPLE_LAST, requires_reference
from regime import pipeline, state
from regime.alerts import outbox, rules
from regime.config import get_settings

DATASETS = ("index_prices", "options_volume", "cftc_tff", "etf_nav")
CODES = ("zscore_50d", "rel_ret_5d", "etf_flow_5d_pct_spread", "call_volume_5d", "net_pct_oi", "small-large",
         "RUT/SPX", "regime_label")
RAW_FLOAT = re.compile(r"(?<![\d,])\d+\.\d{3,}(?!\d)")  # 4.3612…, 0.063 (a fraction shown raw)


def _publish(settings, day: date) -> None:
    for name in DATASETS:
        pipeline.ingest(name, day, settings)
    pipeline.build_validate_publish(day, settings)


def _states(settings) -> dict[str, tuple[str, int]]:
    frame = state.frames(settings.state_dir)["alerts"]
    return {row.rule + ":" + row.subject: (row.state, row.attempts) for row in frame.itertuples()}


def _text(msg: EmailMessage) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()


# --- the jam -------------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_label_change_then_more_alerts_all_go_out(settings, smtp_conn):
    """The sample's regime label changes on 2024-07-12 (a label_change alert, which has no value) while RUT is
    beyond 3σ: both are mailed, nothing stays pending, and the next day's new alerts go out too."""
    first = date(2024, 7, 12)
    _publish(settings, first)
    result = pipeline.alert(first, settings)
    assert result["sent"] == 2
    text = _text(smtp_conn.messages[0])
    assert "Regime changed from 'stretched' to 'small-cap squeeze'" in text
    assert "Russell 2000 z-score vs its 50-day average: +4.50\u03c3 on 2024-07-12" in text
    assert _states(settings) == {"label_change:small-cap squeeze": ("sent", 1), "zscore_threshold:RUT": ("sent", 1)}

    _publish(settings, SAMPLE_LAST)
    later = pipeline.alert(SAMPLE_LAST, settings)
    assert later["sent"] == 1 and len(smtp_conn.messages) == 2
    assert outbox.pending(settings.state_dir) == []
    assert _states(settings)["record:small-large"] == ("sent", 1)


@pytest.mark.slow
def test_an_alert_that_cannot_be_composed_is_failed_and_named_and_the_others_go_out(published, smtp_conn):
    """An outbox row whose reading the published warehouse does not hold (here: a subject that does not exist)
    cannot be put into words: it is marked failed with its error, the error names it, the other alerts are mailed."""
    ghost = rules.Alert("record", SAMPLE_LAST, "zscore_50d", "NOPE", 9.9, SAMPLE_LAST, "a reading that is not there")
    outbox.enqueue(published.state_dir, SAMPLE_LAST, [ghost])
    with pytest.raises(pipeline.AlertsNotComposed, match=r"record:zscore_50d:NOPE:2024-07-17: LookupError: no NOPE"):
        pipeline.alert(SAMPLE_LAST, published)
    assert len(smtp_conn.messages) == 1 and "NOPE" not in _text(smtp_conn.messages[0])
    states = _states(published)
    assert states.pop("record:NOPE") == ("failed", 1)
    assert set(states.values()) == {("sent", 1)} and len(states) == 2
    [left] = outbox.pending(published.state_dir)
    assert left["alert_key"] == ghost.key and left["last_error"].startswith("LookupError: no NOPE zscore_50d")


# --- every rule, through SMTP and Chromium -------------------------------------------------------------------------

RULE_DAYS = [
    # rule, as-of day on which it fires on the sample, settings, what the mail says of it
    ("zscore_threshold", date(2024, 7, 12), {},
     "Russell 2000 z-score vs its 50-day average: +4.36\u03c3 on 2024-07-17\n"
     "   the highest since 2024-07-12 (5 days); 99.9th percentile; last higher +4.50\u03c3 on 2024-07-12"),
    ("label_change", date(2024, 7, 12), {},
     "Regime label: small-cap squeeze on 2024-07-12\n   Regime changed from 'stretched' to 'small-cap squeeze'"),
    ("record", SAMPLE_LAST, {},
     "Small-cap minus large-cap ETFs, 5-day flow spread: +6.30 pp on 2024-07-17\n   the highest on record (history "
     "since 2019-01-09); 100th percentile; previous record +4.71 pp on 2024-07-16"),
    ("long_since", SAMPLE_LAST, {"REGIME_SINCE_YEARS": "1"},
     "Russell 2000 vs S&P 500, 5-day relative return: +10.6 pp on 2024-07-17\n   the highest since 2020-05-19 "
     "(4 years); 99.9th percentile; last higher +11.9 pp on 2020-05-19"),
]


def _as_page(msg: EmailMessage, path, measure: bool = False):
    """The HTML part as a mail client shows it: inline images (cid:) from their parts. With `measure`, a script
    writes the page's width and the window's into the title, to compare after layout."""
    html = msg.get_body(preferencelist=("html",)).get_content()
    for part in msg.walk():
        if part.get("Content-ID"):
            data = base64.b64encode(part.get_content()).decode()
            html = html.replace(f"cid:{part['Content-ID'][1:-1]}", f"data:{part.get_content_type()};base64,{data}")
    if measure:
        html = html.replace("</body>", "<script>document.title = document.documentElement.scrollWidth + 'x' + "
                                       "window.innerWidth;</script></body>")
    path.write_text(html, encoding="utf-8")
    return path


@needs_chromium
@pytest.mark.parametrize(("rule", "day", "env", "said"), RULE_DAYS, ids=[r[0] for r in RULE_DAYS])
@pytest.mark.slow
def test_every_rule_is_mailed_and_renders_at_desktop_and_phone_width(published, smtp_conn, monkeypatch, tmp_path,
                                                                      rule, day, env, said):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = pipeline.alert(day, get_settings())
    assert result["sent"] >= 1 and outbox.pending(published.state_dir) == []
    [msg] = smtp_conn.messages
    assert msg["Subject"] == result["subject"]  # as composed: no space doubled where a header was folded
    text = _text(msg).replace("\r\n", "\n")
    assert f"(rule {rule})" in text and said in text
    assert rules.fires_when(rule, get_settings()) in text

    for width in (1280, 390):
        page = _as_page(msg, tmp_path / f"mail-{width}.html", measure=True)
        dom = chromium(page, tmp_path, "--dump-dom", f"--window-size={width},900",
                       "--run-all-compositor-stages-before-draw", "--virtual-time-budget=2000").stdout
        scroll, inner = map(int, re.search(r"<title>(\d+)x(\d+)</title>", dom).groups())
        assert scroll <= inner, f"the mail is {scroll}px wide in a {inner}px window"
        shot = tmp_path / f"mail-{width}.png"
        chromium(_as_page(msg, tmp_path / f"shot-{width}.html"), tmp_path, f"--screenshot={shot}",
                 f"--window-size={width},1400")
        assert shot.stat().st_size > 10_000  # a rendered page with the chart, not a blank one
        shutil.copy(shot, published.data_dir / f"mail-{rule}-{width}.png")


@needs_chromium
@pytest.mark.slow
def test_the_samples_mail_shows_names_and_units_not_codes_and_raw_floats(published, smtp_conn, tmp_path):
    pipeline.alert(SAMPLE_LAST, published)
    [msg] = smtp_conn.messages
    headline = msg["Subject"].removeprefix("Regime alert: ").rsplit(" (+", 1)[0]
    dom = chromium(_as_page(msg, tmp_path / "mail.html"), tmp_path, "--dump-dom").stdout
    body = re.sub(r"<[^>]+>", " ", re.sub(r"<(style|script)\b.*?</\1>", " ", dom, flags=re.DOTALL))
    seen = re.sub(r"\s+", " ", body.replace("&amp;", "&"))
    assert headline in seen  # the subject is the day's headline, and the mail opens with it
    for code in CODES:
        assert code not in seen and code not in _text(msg), code
    assert not RAW_FLOAT.findall(seen) and not RAW_FLOAT.findall(_text(msg))
    for shown in ("+4.36\u03c3", "+6.30 pp", "percentile", "previous record", "\u00b13\u03c3", "REGIME_ZSCORE_ALERT"):
        assert shown in seen, shown
    attachments = [part for part in msg.iter_attachments() if part.get_filename()]
    assert [part.get_filename() for part in attachments] == ["regime-report-2024-07-17.html"]
    assert attachments[0].get_content().startswith("<!DOCTYPE html>")


# --- the article's days on the real record --------------------------------------------------------------------------

@pytest.mark.reference
@requires_reference("mirror", "cboe", "RUT_History.csv")
def test_the_demo_as_of_a_label_change_on_the_reference_mirror_mails(run_dag, settings, smtp):
    """`REGIME_AS_OF=2024-07-12 make demo` on the real record: the label changes that day; the run (through Airflow)
    succeeds and mails every alert."""
    done = run_dag(date(2024, 7, 12), extra_env={"REGIME_MIRROR_DIR": str(REFERENCE_MIRROR)})
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert len(smtp.messages) == 1
    assert "Regime changed from" in _text(smtp.messages[0])
    assert outbox.pending(settings.state_dir) == []


def test_a_long_subject_with_sigma_arrives_as_composed(smtp_conn, regime_env):
    """Folded before an encoded word ('+3.01σ,'), Python's default policy doubled a space in the subject (seen on the
    reference mirror as of 2024-07-12); the mail keeps its headers unfolded up to 998 characters."""
    from regime.alerts import mail
    from regime.alerts.content import Item

    item = Item("k", "2024-07-12", "Russell 2000 z-score vs its 50-day average", "+3.01\u03c3",
                "the highest since 2023-06-08 (1 year)", "99th percentile", "", "zscore_threshold",
                "beyond \u00b13\u03c3")
    msg = mail.compose([item, item], [], "2024-07-12", "regime-monitor@localhost", ["analyst@example.test"])
    assert msg["Subject"] == ("Regime alert: Russell 2000 z-score vs its 50-day average +3.01\u03c3, the highest since "
                              "2023-06-08 (1 year) (+1 more)")
    mail.send(msg, "smtp_default")
    [received] = smtp_conn.messages
    assert received["Subject"] == msg["Subject"]
    assert "\u03c3" in _text(received) and "+3.01\u03c3" in received.get_body(("html",)).get_content()


def test_every_rule_has_a_mail_test():
    """A rule added to regime.alerts.rules without a day on which the mail test above sees it fire fails here."""
    assert sorted(rule for rule, *_ in RULE_DAYS) == sorted(rule.name for rule in rules.RULES)


@pytest.mark.slow
def test_through_airflow_a_stuck_alert_fails_the_task_and_the_operators_mail_names_it(run_dag, settings, smtp):
    """`airflow dags test regime_daily` with an alert in the outbox that cannot be composed: the day's alerts are
    mailed, send_alerts fails without retrying, and the failure mail to the operators names the stuck alert. Both
    mails go through the connection REGIME_SMTP_CONN_ID names (smtp_default leads nowhere here)."""
    ghost = rules.Alert("record", SAMPLE_LAST, "zscore_50d", "NOPE", 9.9, SAMPLE_LAST, "a reading that is not there")
    outbox.enqueue(settings.state_dir, SAMPLE_LAST, [ghost])
    nowhere = ('{"conn_type": "smtp", "host": "127.0.0.1", "port": 9, "extra": {"disable_ssl": true,'
               ' "disable_tls": true}}')
    done = run_dag(SAMPLE_LAST, extra_env={"AIRFLOW_VAR_REGIME_OPERATOR_TO": "ops@example.test",
                                           "REGIME_SMTP_CONN_ID": "regime_mail",
                                           "AIRFLOW_CONN_REGIME_MAIL": smtp.connection_uri_json(),
                                           "AIRFLOW_CONN_SMTP_DEFAULT": nowhere})
    assert done.returncode != 0
    alert_mails = [m for m in smtp.messages if m["To"] == "analyst@example.test"]
    failure_mails = [m for m in smtp.messages if m["To"] == "ops@example.test"]
    assert len(alert_mails) == 1 and "NOPE" not in _text(alert_mails[0])
    assert [m["Subject"].split(" (run ")[0] for m in failure_mails] == ["[regime] regime_daily.send_alerts failed"]
    body = failure_mails[0].get_body(("html",)).get_content()
    assert "record:zscore_50d:NOPE:2024-07-17: LookupError: no NOPE zscore_50d reading on 2024-07-17" in body
    assert "try 1" in body  # not retried: a retry cannot put it into words
    assert "as of 2024-07-17 (logical date)" in body
    assert _states(settings)["record:NOPE"][0] == "failed"
