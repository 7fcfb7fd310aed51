"""Rendering one alert mail (plain text, HTML and an inline chart) and sending it through the Airflow
SMTP connection. Credentials live only in that connection."""

from __future__ import annotations

import html
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid


def subject_line(alerts: list[dict]) -> str:
    lead = alerts[0]["message"]
    more = f" (+{len(alerts) - 1} more)" if len(alerts) > 1 else ""
    return f"Regime alert: {lead}{more}"


def compose(alerts: list[dict], sender: str, recipients: list[str], chart_png: bytes | None,
            as_of: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject_line(alerts)
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="regime.local")

    lines = [f"Regime monitor, run as of {as_of}: {len(alerts)} extreme reading(s).", ""]
    for a in alerts:
        lines.append(f"- {a['reading_date']}  {a['indicator']:<12} {a['subject']:<8} {a['value']:>8.2f}  "
                     f"{a['message']}")
    lines += ["", "The chart of the leading reading is attached to the HTML version of this mail."]
    msg.set_content("\n".join(lines))

    rows = "".join(
        f"<tr><td>{html.escape(a['reading_date'])}</td><td>{html.escape(a['indicator'])}</td>"
        f"<td>{html.escape(a['subject'])}</td><td style='text-align:right'>{a['value']:.2f}</td>"
        f"<td>{html.escape(a['message'])}</td></tr>"
        for a in alerts
    )
    chart_cid = make_msgid(domain="regime.local")
    chart_tag = (f"<p><img src='cid:{chart_cid[1:-1]}' alt='chart of the leading reading' width='800'></p>"
                 if chart_png else "")
    body = (
        "<html><body style='font-family:sans-serif'>"
        f"<h2>{html.escape(subject_line(alerts))}</h2>"
        f"<p>Run as of {html.escape(as_of)}: {len(alerts)} extreme reading(s).</p>"
        "<table border='1' cellpadding='4' cellspacing='0' style='border-collapse:collapse'>"
        "<tr><th>Date</th><th>Indicator</th><th>Subject</th><th>Value</th><th>What it means</th></tr>"
        f"{rows}</table>{chart_tag}</body></html>"
    )
    msg.add_alternative(body, subtype="html")
    if chart_png:
        msg.get_payload()[1].add_related(chart_png, maintype="image", subtype="png", cid=chart_cid,
                                         filename="chart.png")
    return msg


RETRY_PAUSE = 2.0  # seconds before offering the mail again to recipients the server deferred (4xx)
RETRIES = 3


def send(msg: EmailMessage, conn_id: str) -> None:
    """Send through the Airflow SMTP connection `conn_id` (host, port, TLS and login come from there).

    smtplib raises only when every recipient is refused; when some are, it returns them and the mail would count
    as sent although they never got it. Recipients deferred with a 4xx reply are offered the mail again (RETRIES
    times, RETRY_PAUSE apart; the others are not mailed twice). Anyone still refused then raises
    SMTPRecipientsRefused naming them, so the alerts stay in the outbox and go out with the next run."""
    import smtplib

    from airflow.providers.smtp.hooks.smtp import SmtpHook

    with SmtpHook(smtp_conn_id=conn_id) as hook:
        if not msg["From"] and hook.from_email:
            msg["From"] = hook.from_email
        # the hook owns the logged-in client; it builds only HTML-only messages itself
        refused = hook._smtp_client.send_message(msg)
        for _ in range(RETRIES):
            deferred = [rcpt for rcpt, (code, _) in refused.items() if 400 <= code < 500]
            if not deferred:
                break
            time.sleep(RETRY_PAUSE)
            try:
                again = hook._smtp_client.send_message(msg, to_addrs=deferred)
            except smtplib.SMTPRecipientsRefused as exc:
                again = exc.recipients
            refused = {**{r: e for r, e in refused.items() if r not in deferred}, **again}
    if refused:
        raise smtplib.SMTPRecipientsRefused(refused)


def sender(conn_id: str) -> str:
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    try:
        hook = SmtpHook(smtp_conn_id=conn_id)
        hook.smtp_connection = hook.get_connection(conn_id)
        return hook.from_email or "regime-monitor@localhost"
    except Exception:
        return "regime-monitor@localhost"
