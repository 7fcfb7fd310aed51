"""Rendering the alert mail (plain text, HTML with the chart of the leading reading, the run's report attached) and
sending it through the Airflow SMTP connection. Credentials live only in that connection. What each alert says
comes from regime.alerts.content (in words and units, regime.words); the subject is the day's headline."""

from __future__ import annotations

import email.policy
import html
import smtplib
import socket
import threading
import time
from contextlib import contextmanager, suppress
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from regime.alerts.content import Item

SUBJECT_MAX = 200  # characters of the subject line (a headline is ~130)
REPORT_MAX_BYTES = 10 * 1024 * 1024  # the run's HTML report is attached up to this size


def subject_line(headlines: list[str], items: list[Item]) -> str:
    """The day's first headline; without one (nothing historic that day), the lead alert's reading in words."""
    if headlines:
        lead = headlines[0]
    else:
        first = items[0]
        lead = f"{first.reading} {first.value}" + (f", {first.standing}" if first.standing else "")
    more = len(items) - 1
    text = f"Regime alert: {lead}" + (f" (+{more} more)" if more > 0 else "")
    return text if len(text) <= SUBJECT_MAX else text[: SUBJECT_MAX - 1] + "\u2026"


def _context(item: Item) -> str:
    return "; ".join(part for part in (item.standing, item.percentile, item.previous) if part)


def plain_text(items: list[Item], headlines: list[str], as_of: str, report_name: str | None) -> str:
    lines = [*headlines, ""] if headlines else []
    lines += [f"Regime monitor, run as of {as_of}: {_count(items)}.", ""]
    for n, item in enumerate(items, 1):
        lines += [f"{n}. {item.reading}: {item.value} on {item.date}"]
        if _context(item):
            lines += [f"   {_context(item)}"]
        if item.analogs:
            lines += [f"   {item.analogs}"]
        lines += [f"   fired: {item.fires} (rule {item.rule})", ""]
    lines += ["The chart of the leading reading is in the HTML version of this mail."]
    if report_name:
        lines += [f"The run's full report is attached ({report_name}): open it in a browser."]
    return "\n".join(lines) + "\n"


def _count(items: list[Item]) -> str:
    return f"{len(items)} new extreme reading{'' if len(items) == 1 else 's'}"


def html_body(items: list[Item], headlines: list[str], as_of: str, chart_cid: str | None,
              report_name: str | None) -> str:
    e = html.escape
    cell = "padding:8px 10px;border-bottom:1px solid #e0e0e0;vertical-align:top"
    rows = "".join(
        f"<tr><td style='{cell}'><b>{e(item.reading)}</b><br>{e(_context(item))}<br>"
        + (f"{e(item.analogs)}<br>" if item.analogs else "") +
        f"<span style='color:#5f6368;font-size:12px'>{e(item.date)} &middot; fired: {e(item.fires)}</span></td>"
        f"<td style='{cell};text-align:right;white-space:nowrap;font-weight:bold;font-size:16px'>{e(item.value)}</td>"
        "</tr>"
        for item in items
    )
    heads = ""
    if headlines:
        heads = f"<h1 style='font-size:20px;line-height:1.3;margin:0 0 8px'>{e(headlines[0])}</h1>"
        heads += "".join(f"<p style='font-size:15px;margin:0 0 6px'>{e(h)}</p>" for h in headlines[1:])
    chart = (f"<p><img src='cid:{chart_cid}' alt='chart of the leading reading' "
             "style='width:100%;max-width:800px;height:auto;border:0'></p>" if chart_cid else "")
    report = (f"<p>The run's full report is attached: <b>{e(report_name)}</b> (open it in a browser).</p>"
              if report_name else "")
    th = "text-align:left;padding:8px 10px;border-bottom:2px solid #202124;font-size:13px"
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'></head>"
        "<body style='margin:0;padding:16px;font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;"
        "color:#202124;background:#ffffff'><div style='max-width:820px;margin:0 auto'>"
        f"{heads}<p style='color:#5f6368;margin:8px 0 16px'>Regime monitor, run as of {e(as_of)}: "
        f"{e(_count(items))}.</p>"
        "<table role='presentation' style='width:100%;border-collapse:collapse;font-size:14px'>"
        f"<thead><tr><th style='{th}'>Reading, where it stands in its history, the rule that fired</th>"
        f"<th style='{th};text-align:right'>Value</th></tr></thead><tbody>{rows}</tbody></table>"
        f"{chart}{report}"
        "<p style='color:#5f6368;font-size:12px;margin-top:24px'>Each extreme is mailed once per episode. "
        "Rules, thresholds and how to change them: docs/alerts.md.</p>"
        "</div></body></html>"
    )


def compose(items: list[Item], headlines: list[str], as_of: str, sender: str, recipients: list[str],
            chart_png: bytes | None = None, report: Path | None = None) -> EmailMessage:
    """The alert mail: a plain-text part, an HTML part with the chart of the leading reading inline, and the run's
    HTML report attached (when given and at most REPORT_MAX_BYTES)."""
    if report is not None and (not report.is_file() or report.stat().st_size > REPORT_MAX_BYTES):
        report = None
    report_name = f"regime-report-{as_of}.html" if report is not None else None
    msg = EmailMessage()
    msg["Subject"] = subject_line(headlines, items)
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="regime.local")
    msg.set_content(plain_text(items, headlines, as_of, report_name))
    chart_cid = make_msgid(domain="regime.local") if chart_png else None
    msg.add_alternative(html_body(items, headlines, as_of, chart_cid[1:-1] if chart_cid else None, report_name),
                        subtype="html")
    if chart_png:
        msg.get_payload()[1].add_related(chart_png, maintype="image", subtype="png", cid=chart_cid,
                                         filename="chart.png")
    if report is not None:
        msg.add_attachment(report.read_bytes(), maintype="text", subtype="html", filename=report_name)
    # The parts are encoded by now; sent with the default policy, a subject folded just before an encoded word
    # ('+4.42σ') reads with a doubled space once unfolded. Headers up to RFC 5322's 998 characters are not folded.
    msg.policy = email.policy.default.clone(max_line_length=998)
    return msg


RETRY_PAUSE = 2.0  # seconds before offering the mail again to recipients the server deferred (4xx)
RETRIES = 3


def _connection(conn_id: str):
    """The SmtpHook of `conn_id` with its connection loaded: host, port, TLS, login and timeout through the hook's
    public properties."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    hook = SmtpHook(smtp_conn_id=conn_id)
    hook.smtp_connection = hook.get_connection(conn_id)
    return hook


class SmtpTimeout(smtplib.SMTPException):
    """The SMTP server did not answer in time: which server, in which phase, after how long and which setting."""

    def __init__(self, host: str, port: int, phase: str, seconds: float, setting: str):
        self.host, self.port, self.phase, self.seconds = host, port, phase, seconds
        super().__init__(f"SMTP server {host}:{port} timed out {phase}: no answer within {seconds:g} s ({setting})")


class _Deadline:
    """The SMTP client's socket is shut down `seconds` from now, unless the phase ended before: a blocked read or
    write then returns at once, so the phase ends within its deadline however the server trickles its answers.
    (smtplib's own timeout applies to each socket operation: a server answering every 29 s keeps it waiting.)"""

    def __init__(self, client, seconds: float):
        self.client = client
        self.expired = threading.Event()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def _expire(self) -> None:
        self.expired.set()
        sock = self.client.sock
        if sock is not None:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()


@contextmanager
def _phase(client, host: str, port: int, what, seconds: float, setting: str):
    """Run one phase of the SMTP conversation within `seconds`; a socket timeout or the deadline raises SmtpTimeout
    naming the server and the phase (`what()`: the phase in words, asked when it expires)."""
    client.timeout = seconds
    if client.sock is not None:
        client.sock.settimeout(seconds)
    with _Deadline(client, seconds) as deadline:
        try:
            yield
        except (OSError, ValueError) as exc:  # ValueError: an SSL socket shut down under a read
            # smtplib words a read that timed out "Connection unexpectedly closed: timed out"
            if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError) or deadline.expired.is_set():
                phase = what()  # before closing: it may ask whether the socket is open
                client.close()
                raise SmtpTimeout(host, port, phase, seconds, setting) from exc
            raise


class _Connects:
    """Remembers that the TCP connection was made: smtplib closes the socket of a greeting that timed out before it
    raises, so the socket cannot tell."""

    tcp_up = False

    def _get_socket(self, host, port, timeout):
        sock = super()._get_socket(host, port, timeout)
        self.tcp_up = True
        return sock


class _SMTP(_Connects, smtplib.SMTP):
    pass


class _SMTPSSL(_Connects, smtplib.SMTP_SSL):
    pass


def _client(hook, connect_timeout: float):
    """An smtplib client logged in as the connection says: SMTP over SSL (`disable_ssl` false, the provider's
    default), else plain SMTP upgraded by STARTTLS (`disable_tls` false); a login when the connection has one.
    smtplib itself, not the hook's send_email_smtp: that builds HTML-only messages, ignores refused recipients and
    retries a server that does not answer `retry_limit` times (5: six times the timeout before it says so).

    Connecting (TCP, the server's greeting, then STARTTLS and the login when the connection has them) takes at most
    `connect_timeout` seconds in all, else SmtpTimeout says where it stopped."""
    import ssl

    context = ssl.create_default_context()
    host, port = hook.host, hook.port
    client = _SMTPSSL(timeout=connect_timeout, context=context) if hook.use_ssl else _SMTP(timeout=connect_timeout)
    client._host = host  # the name TLS checks the certificate against; smtplib sets it only when it connects at once
    step = ["connecting"]

    def where() -> str:
        if step[0] == "connecting":
            return "waiting for its greeting" if client.tcp_up else "connecting"
        return step[0]

    try:
        with _phase(client, host, port, where, connect_timeout, "REGIME_SMTP_CONNECT_TIMEOUT"):
            client.connect(host, port)
            if not hook.use_ssl and hook.smtp_starttls:
                step[0] = "in STARTTLS"
                client.starttls(context=context)
            if hook.smtp_user and hook.smtp_password:
                step[0] = "logging in"
                client.login(hook.smtp_user, hook.smtp_password)
    except BaseException:
        client.close()
        raise
    return client


def send(msg: EmailMessage, conn_id: str, connect_timeout: float | None = None,
         send_timeout: float | None = None) -> None:
    """Send through the Airflow SMTP connection `conn_id` (host, port, TLS and login come from there).

    smtplib raises only when every recipient is refused; when some are, it returns them and the mail would count
    as sent although they never got it. Recipients deferred with a 4xx reply are offered the mail again (RETRIES
    times, RETRY_PAUSE apart; the others are not mailed twice). Anyone still refused then raises
    SMTPRecipientsRefused naming them, so the alerts stay in the outbox and go out with the next run.

    Connecting takes at most `connect_timeout` seconds (REGIME_SMTP_CONNECT_TIMEOUT), sending the mail once
    connected at most `send_timeout` (REGIME_SMTP_SEND_TIMEOUT, the retries included); beyond either, SmtpTimeout
    says "timed out" with the server and the phase. The QUIT after an accepted mail is not waited for beyond that:
    the mail counts as sent."""
    if connect_timeout is None or send_timeout is None:
        from regime.config import get_settings

        settings = get_settings()
        connect_timeout = connect_timeout or settings.smtp_connect_timeout
        send_timeout = send_timeout or settings.smtp_send_timeout
    hook = _connection(conn_id)
    if not msg["From"] and hook.from_email:
        msg["From"] = hook.from_email
    client = _client(hook, connect_timeout)
    try:
        with _phase(client, hook.host, hook.port, lambda: "sending the mail", send_timeout,
                    "REGIME_SMTP_SEND_TIMEOUT"):
            refused = client.send_message(msg)
            for _ in range(RETRIES):
                deferred = [rcpt for rcpt, (code, _) in refused.items() if 400 <= code < 500]
                if not deferred:
                    break
                time.sleep(RETRY_PAUSE)
                try:
                    again = client.send_message(msg, to_addrs=deferred)
                except smtplib.SMTPRecipientsRefused as exc:
                    again = exc.recipients
                refused = {**{r: e for r, e in refused.items() if r not in deferred}, **again}
            with suppress(OSError, ValueError):  # the server accepted the mail already
                client.quit()
    finally:
        client.close()
    if refused:
        raise smtplib.SMTPRecipientsRefused(refused)


def sender(conn_id: str) -> str:
    try:
        return _connection(conn_id).from_email or "regime-monitor@localhost"
    except Exception:
        return "regime-monitor@localhost"
