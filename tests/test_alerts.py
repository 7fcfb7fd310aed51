"""Alerts through a real SMTP server on 127.0.0.1, with the Airflow SMTP connection."""

from datetime import date

import pytest

from conftest import SAMPLE_LAST
from regime import pipeline, state
from regime.ingest import ingest_cboe


@pytest.fixture
def published(settings):
    ingest_cboe(settings, SAMPLE_LAST)
    staging = pipeline.build(SAMPLE_LAST, settings)
    pipeline.validate(staging, SAMPLE_LAST, settings)
    pipeline.publish(staging, settings)
    return settings


@pytest.fixture
def smtp_conn(monkeypatch, smtp):
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp.connection_uri_json())
    return smtp


def test_extreme_zscore_sends_one_mail_with_text_html_and_chart(published, smtp_conn):
    result = pipeline.alert(SAMPLE_LAST, published)
    assert result["sent"] == 1
    [msg] = smtp_conn.messages
    assert msg["To"] == "analyst@example.test"
    assert msg["Subject"] == "Regime alert: RUT 4.4\u03c3 above its 50-day average"
    text = msg.get_body(preferencelist=("plain",)).get_content()
    html = msg.get_body(preferencelist=("html",)).get_content()
    assert "2024-07-17" in text and "RUT" in text and "4.36" in text
    assert "<table" in html and "cid:" in html
    images = [part for part in msg.walk() if part.get_content_type() == "image/png"]
    assert len(images) == 1 and images[0].get_content()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_same_episode_is_not_mailed_twice(published, smtp_conn):
    pipeline.alert(SAMPLE_LAST, published)
    again = pipeline.alert(SAMPLE_LAST, published)
    assert again == {"found": 1, "new": 0, "sent": 0}
    assert len(smtp_conn.messages) == 1
    alerts = state.frames(published.state_dir)["alerts"]
    assert alerts[["subject", "state", "attempts"]].values.tolist() == [["RUT", "sent", 1]]


def test_smtp_down_keeps_the_alert_pending_until_it_is_back(published, monkeypatch, smtp):
    from regime.mailcatcher import MailCatcher

    down = MailCatcher()
    down._port = smtp.port
    smtp.stop()  # nothing listens on this port now
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", down.connection_uri_json())
    with pytest.raises(Exception):  # noqa: B017 (connection refused, wrapped by the hook)
        pipeline.alert(SAMPLE_LAST, published)
    alerts = state.frames(published.state_dir)["alerts"]
    assert alerts[["state", "attempts"]].values.tolist() == [["failed", 1]]
    assert "Error" in alerts["last_error"].iloc[0] or "refused" in alerts["last_error"].iloc[0].lower()

    with MailCatcher() as up:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", up.connection_uri_json())
        result = pipeline.alert(date(2024, 7, 17), published)
        assert result["sent"] == 1 and len(up.messages) == 1
    alerts = state.frames(published.state_dir)["alerts"]
    assert alerts[["state", "attempts"]].values.tolist() == [["sent", 2]]


def test_no_mail_when_nothing_is_extreme(published, smtp_conn, monkeypatch):
    monkeypatch.setenv("REGIME_ZSCORE_ALERT", "5")
    from regime.config import get_settings

    assert pipeline.alert(SAMPLE_LAST, get_settings()) == {"found": 0, "new": 0, "sent": 0}
    assert smtp_conn.messages == []
