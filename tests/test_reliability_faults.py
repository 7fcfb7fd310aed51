"""Upstream and SMTP faults, through local servers on 127.0.0.1: slow answers, connection resets, 429 with
Retry-After, a body cut short; an SMTP server refusing (421, 451) and then accepting, or not answering in time.
Nothing is lost, nothing is mailed twice, and every failure says clearly what happened.

Also covered elsewhere: HTTP 403/503 and a timeout through the ingest (tests/test_ingest_sources.py::
test_live_failures_end_in_a_clear_error_with_nothing_written), 429 then 200 (test_429_with_retry_after_...), the
SMTP server down then back (tests/test_alerts.py::test_smtp_down_keeps_the_alert_pending_until_it_is_back)."""

from __future__ import annotations

import email
import email.policy
import json
import smtplib
import socket
import threading
import time

import pytest

from conftest import SAMPLE_LAST, SAMPLE_MIRROR
from regime import pipeline, state
from regime.config import get_settings
from regime.mailcatcher import MailCatcher
from regime.sources import cboe, fetch
from regime.sources.errors import SourceError
from upstream import Upstream, live_upstream, path_of

GOOD = (SAMPLE_MIRROR / "cboe" / "RUT_History.csv").read_bytes()


@pytest.fixture
def live_rut(monkeypatch, regime_env):
    """Live mode, RUT only, against a local upstream; a 1 s timeout."""
    with live_upstream(monkeypatch, REGIME_INDEXES="RUT", REGIME_HTTP_TIMEOUT="1") as up:
        yield up, path_of(cboe.url("RUT")), get_settings()


class _ResetThenServe:
    """A route for tests/upstream.py: the first `resets` requests are cut (connection closed, no answer), then
    `body` is served."""

    def __init__(self, resets: int, body: bytes):
        self.left, self.body, self.delay, self.served = resets, body, 0.0, 0

    @property
    def reset(self) -> bool:
        self.left -= 1
        return self.left >= 0

    def next(self):
        self.served += 1
        return 200, self.body, {}


# ------------------------------------------------------------------------------------------------ HTTP


def test_a_slow_answer_within_the_timeout_succeeds(live_rut):
    up, path, settings = live_rut
    up.route(path, GOOD, delay=0.4)
    result = pipeline.ingest("index_prices", SAMPLE_LAST, settings)
    assert result["rows"] == {"RUT": 1394}
    assert [p for p, _ in up.requests] == [path]  # one request, no retry


@pytest.mark.slow
def test_a_slow_answer_beyond_the_timeout_is_retried_then_fails_clearly():
    with Upstream() as up:
        url = up.route("/slow.csv", GOOD, delay=0.6)
        started = time.monotonic()
        with pytest.raises(SourceError) as err:
            fetch.fetch_http(url, "slow.csv", "cboe", timeout=0.2, attempts=3)
        elapsed = time.monotonic() - started
    assert str(err.value) == f"cboe: {url}: gave up after 3 attempts: ReadTimeout: " + str(err.value).split(
        "ReadTimeout: ", 1)[1]
    assert len(up.requests) == 3
    assert 3 * 0.2 + 0.5 + 1.0 <= elapsed < 10  # three timeouts and the backoff between them (0.5 s, 1 s)


@pytest.mark.slow
def test_connection_resets_are_retried_and_the_file_lands(live_rut):
    up, path, settings = live_rut
    up.routes[path] = _ResetThenServe(2, GOOD)
    result = pipeline.ingest("index_prices", SAMPLE_LAST, settings)
    assert result["rows"] == {"RUT": 1394}
    assert [p for p, _ in up.requests].count(path) == 3
    assert (settings.raw_dir / "cboe" / f"as_of={SAMPLE_LAST}" / "RUT_History.csv").read_bytes() == GOOD


@pytest.mark.slow
def test_connection_resets_every_time_fail_clearly_with_nothing_written(live_rut):
    from regime.ingest import IngestError

    up, path, settings = live_rut
    up.route(path, reset=True)
    with pytest.raises(IngestError) as err:
        pipeline.ingest("index_prices", SAMPLE_LAST, settings)
    assert f"cboe: {up.url(path)}: gave up after 4 attempts: ConnectionError" in str(err.value)
    assert [p for p, _ in up.requests].count(path) == 4
    assert not settings.lake_dir.exists() or not any(settings.lake_dir.rglob("*.parquet"))


@pytest.mark.slow
def test_429_retry_after_is_honoured(live_rut):
    up, path, settings = live_rut
    up.route(path, responses=[(429, b"slow down"), (200, GOOD)], headers={"Retry-After": "1.5"})
    started = time.monotonic()
    assert pipeline.ingest("index_prices", SAMPLE_LAST, settings)["rows"] == {"RUT": 1394}
    assert time.monotonic() - started >= 1.5  # waited as told, not the 0.5 s default backoff
    assert [p for p, _ in up.requests].count(path) == 2


def test_429_for_ever_gives_up_after_four_attempts_and_caps_retry_after(monkeypatch):
    monkeypatch.setattr(fetch, "MAX_RETRY_AFTER", 0.2)  # as the 60 s cap, scaled down
    with Upstream() as up:
        url = up.route("/busy.csv", status=429, body=b"busy", headers={"Retry-After": "3600"})
        started = time.monotonic()
        with pytest.raises(SourceError, match=r"gave up after 4 attempts: HTTP 429"):
            fetch.fetch_http(url, "busy.csv", "cboe", timeout=1)
        assert time.monotonic() - started < 5  # 3 waits of 0.2 s, not an hour
    assert len(up.requests) == 4


class _CutBody:
    """A raw HTTP server that announces 100,000 bytes and closes the connection after 40 (a transfer cut short), for
    the first `cuts` requests (every one by default); then it serves GOOD whole."""

    def __init__(self, cuts: int = 10**9):
        self.cuts = cuts

    def __enter__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(10)
        self.base = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.url = f"{self.base}/RUT_History.csv"
        self.count = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                self.count += 1
                if self.count <= self.cuts:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + GOOD[:40])
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(GOOD)
                                 + GOOD)

    def __exit__(self, *exc):
        self.sock.close()


def test_a_body_cut_short_is_retried_then_fails_as_a_source_error():
    with _CutBody() as server, pytest.raises(SourceError, match="gave up after 2 attempts") as err:
        fetch.fetch_http(server.url, "RUT_History.csv", "cboe", timeout=2, attempts=2)
    assert str(err.value).startswith(f"cboe: {server.url}: gave up after 2 attempts: ChunkedEncodingError: ")
    assert server.count == 2


def test_a_body_cut_short_once_is_fetched_again_and_lands_whole(live_rut, monkeypatch):
    with _CutBody(cuts=1) as server:
        monkeypatch.setenv("REGIME_LIVE_BASE_URL", server.base)
        settings = get_settings()
        assert pipeline.ingest("index_prices", SAMPLE_LAST, settings)["rows"] == {"RUT": 1394}
    assert server.count == 2
    assert (settings.raw_dir / "cboe" / f"as_of={SAMPLE_LAST}" / "RUT_History.csv").read_bytes() == GOOD


@pytest.mark.slow
def test_a_body_cut_short_every_time_fails_the_ingest_clearly_with_nothing_written(live_rut, monkeypatch):
    from regime.ingest import IngestError

    _, path, _ = live_rut
    with _CutBody() as server:
        monkeypatch.setenv("REGIME_LIVE_BASE_URL", server.base)
        settings = get_settings()
        with pytest.raises(IngestError) as err:
            pipeline.ingest("index_prices", SAMPLE_LAST, settings)
    assert f"cboe: {server.base}{path}: gave up after 4 attempts: ChunkedEncodingError" in str(err.value)
    assert server.count == 4
    assert not any(settings.lake_dir.rglob("*.parquet")) and not any(settings.raw_dir.rglob("RUT_History.csv"))


def test_a_body_that_does_not_decompress_is_retried_then_fails_as_a_source_error():
    with Upstream() as up:
        url = up.route("/RUT_History.csv", b"not gzip at all", headers={"Content-Encoding": "gzip"})
        with pytest.raises(SourceError) as err:
            fetch.fetch_http(url, "RUT_History.csv", "cboe", timeout=2, attempts=2)
    assert str(err.value).startswith(f"cboe: {url}: gave up after 2 attempts: ContentDecodingError: ")
    assert len(up.requests) == 2


def test_a_redirect_loop_fails_at_once_as_a_source_error():
    with Upstream() as up:
        url = up.route("/RUT_History.csv", status=302, headers={"Location": "/RUT_History.csv"})
        with pytest.raises(SourceError, match=r"^cboe: .*: TooManyRedirects: Exceeded 30 redirects"):
            fetch.fetch_http(url, "RUT_History.csv", "cboe", timeout=2, attempts=3)
    assert len(up.requests) == 31  # followed 30 times, then given up, not retried


def test_an_error_answer_says_what_the_upstream_said():
    """A 404 or 400 body in plain text or JSON (e.g. Yahoo's 'No data found, symbol may be delisted') is quoted,
    on one line and cut short (160 characters at most, a run without spaces to 80); an HTML error page is not."""
    from regime.sources.errors import SourceMissing

    said = b'{"chart":{"result":null,\n "error":{"code":"Not Found","description":"No data found, symbol may be ' \
           b'delisted"}}}' + b" " * 500
    with Upstream() as up:
        missing = up.route("/x.json", said, status=404)
        bad = up.route("/y.json", b"x" * 400, status=400)
        html = up.route("/z.json", b"<html><body>Bad Request</body></html>", status=400)
        with pytest.raises(SourceMissing, match=r"HTTP 404 not found: \{\"chart\":\{\"result\":null, \"error\".*"
                                                r"symbol may be delisted\"\}\}\}$"):
            fetch.fetch_http(missing, "x.json", "yahoo", timeout=2)
        with pytest.raises(SourceError, match=r"HTTP 400: x{80}\.\.\.$"):
            fetch.fetch_http(bad, "y.json", "yahoo", timeout=2)
        with pytest.raises(SourceError, match=r"HTTP 400$"):
            fetch.fetch_http(html, "z.json", "yahoo", timeout=2)


# ------------------------------------------------------------------------------------------------ SMTP


class FlakySMTP:
    """aiosmtpd on 127.0.0.1 answering from a script: each entry is used by one mail transaction, e.g.
    'rcpt 421 ...' (refuse at RCPT TO), 'data 451 ...' (refuse the message), 'refuse b@x 451 ...' (refuse one
    recipient, accept the others); when the script is used up every mail is accepted."""

    def __init__(self, script: list[str]):
        self.script = list(script)
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        self.transactions = 0
        self.lock = threading.Lock()

    def _step(self) -> str:
        return self.script[0] if self.script else ""

    async def handle_MAIL(self, server, session, envelope, address, options):  # noqa: N802 (aiosmtpd's hook)
        with self.lock:
            self.transactions += 1
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
        step = self._step()
        if step.startswith("rcpt "):
            self.script.pop(0)
            return step.removeprefix("rcpt ")
        if step.startswith("refuse ") and step.split()[1] == address:
            return step.split(maxsplit=2)[2]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        step = self._step()
        if step.startswith(("data ", "refuse ")):
            self.script.pop(0)
        if step.startswith("data "):
            return step.removeprefix("data ")
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), msg))
        return "250 Message accepted for delivery"

    def __enter__(self):
        self.server = MailCatcher(handler=self, timeout=10)
        self.server.start()
        self.uri = self.server.connection_uri_json()
        return self

    def __exit__(self, *exc):
        self.server.stop()


@pytest.fixture
def published(published, monkeypatch):
    """conftest's private copy of the published sample (lake, warehouse, outbox with the alerts of 2024-07-17
    pending), mail retries 0.1 s apart."""
    monkeypatch.setattr("regime.alerts.mail.RETRY_PAUSE", 0.1)
    return published


def _outbox(settings) -> list[tuple]:
    frame = state.frames(settings.state_dir)["alerts"].sort_values("alert_key")
    return list(frame[["alert_key", "state", "attempts"]].itertuples(index=False, name=None))


@pytest.mark.slow
def test_smtp_refusing_then_accepting_loses_nothing_and_mails_once(published, monkeypatch):
    script = ["rcpt 421 4.3.2 Service not available, closing transmission channel",
              "data 451 4.3.0 Temporary failure, try again later"]
    with FlakySMTP(script) as server:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", server.uri)
        for attempt, code in ((1, "421"), (2, "451")):
            with pytest.raises(smtplib.SMTPException, match=code):
                pipeline.alert(SAMPLE_LAST, published)
            outbox = _outbox(published)
            assert outbox and {(s, n) for _, s, n in outbox} == {("failed", attempt)}
            errors = state.frames(published.state_dir)["alerts"]["last_error"]
            assert errors.str.contains(code).all()
        assert server.messages == []

        sent = pipeline.alert(SAMPLE_LAST, published)
        assert sent["sent"] == len(outbox)
        assert {(s, n) for _, s, n in _outbox(published)} == {("sent", 3)}
        for _ in range(2):  # later runs: nothing pending, nothing mailed again
            assert pipeline.alert(SAMPLE_LAST, published)["sent"] == 0
        assert server.transactions == 3
    [(recipients, msg)] = server.messages
    assert recipients == ["analyst@example.test"]
    text = msg.get_body(preferencelist=("plain",)).get_content()
    from regime import words

    for alert in state.frames(published.state_dir)["alerts"].itertuples():  # every alert is in the one mail
        assert f"{words.reading_name(alert.indicator, alert.subject)}: " in text


@pytest.mark.slow
def test_a_recipient_refused_for_a_while_still_gets_the_mail_once(published, monkeypatch):
    monkeypatch.setenv("REGIME_ALERT_TO", "analyst@example.test,desk@example.test")
    settings = get_settings()
    with FlakySMTP(["refuse desk@example.test 451 4.2.2 Mailbox busy"]) as server:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", server.uri)
        result = pipeline.alert(SAMPLE_LAST, settings)
        assert result["sent"] > 0
        assert pipeline.alert(SAMPLE_LAST, settings)["sent"] == 0
    delivered = sorted(r for recipients, _ in server.messages for r in recipients)
    assert delivered == ["analyst@example.test", "desk@example.test"]  # each once: nobody lost, nobody twice
    assert {s for _, s, _ in _outbox(settings)} == {"sent"}


@pytest.mark.slow
def test_a_recipient_refused_for_good_keeps_the_alert_failed_and_says_who(published, monkeypatch):
    monkeypatch.setenv("REGIME_ALERT_TO", "analyst@example.test,nobody@example.test")
    settings = get_settings()
    script = ["refuse nobody@example.test 550 5.1.1 No such user"] * 5
    with FlakySMTP(script) as server:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", server.uri)
        with pytest.raises(smtplib.SMTPRecipientsRefused, match="nobody@example.test"):
            pipeline.alert(SAMPLE_LAST, settings)
    frame = state.frames(settings.state_dir)["alerts"]
    assert set(frame["state"]) == {"failed"}
    assert frame["last_error"].str.contains("nobody@example.test").all()
    assert frame["last_error"].str.contains("550").all()


class SilentSMTP:
    """A TCP server on 127.0.0.1 that accepts connections and then: never says a word (stall='greeting'), or
    answers like an SMTP server until the end of the message's data and never again (stall='data'), or answers
    everything, each answer `pause` seconds late (stall=None)."""

    def __init__(self, stall: str | None, pause: float = 0.0):
        self.stall, self.pause = stall, pause
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.stopping = threading.Event()
        self.uri = json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": self.port,
                               "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 30,
                                         "from_email": "regime-monitor@localhost"}})

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(conn)
            if self.stall != "greeting":
                threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _say(self, conn: socket.socket, line: str) -> None:
        time.sleep(self.pause)
        conn.sendall(line.encode() + b"\r\n")

    def _answer(self, conn: socket.socket) -> None:
        try:
            self._say(conn, "220 127.0.0.1 ESMTP")
            data = False
            for line in conn.makefile("rb"):
                if data:
                    if line == b".\r\n":
                        data = False
                        if self.stall == "data":
                            return  # the whole message arrived: no answer, ever
                        self._say(conn, "250 accepted")
                    continue
                verb = line[:4].upper()
                if verb == b"DATA":
                    data = True
                    self._say(conn, "354 go ahead")
                elif verb == b"QUIT":
                    self._say(conn, "221 bye")
                    return
                else:
                    self._say(conn, "250 OK")
        except OSError:
            return

    def __enter__(self):
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(5)
        self.listener.close()
        for conn in self.connections:
            conn.close()


def _timed_out_then_mailed_once(published, monkeypatch, server, match: str) -> float:
    """pipeline.alert against `server` fails with SmtpTimeout matching `match`, leaving every alert failed with the
    timeout as its error; then, against a working server, they are mailed once. Returns the failed run's seconds."""
    from regime.alerts.mail import SmtpTimeout

    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", server.uri)
    started = time.monotonic()
    with pytest.raises(SmtpTimeout, match=match):
        pipeline.alert(SAMPLE_LAST, published)
    took = time.monotonic() - started
    assert len(server.connections) == 1  # one try, not the provider's six
    frame = state.frames(published.state_dir)["alerts"]
    assert set(frame["state"]) == {"failed"} and set(frame["attempts"]) == {1}
    assert frame["last_error"].str.startswith("SmtpTimeout: SMTP server 127.0.0.1:").all()
    assert frame["last_error"].str.contains(match).all()
    with MailCatcher() as up:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", up.connection_uri_json())
        assert pipeline.alert(SAMPLE_LAST, published)["sent"] == len(frame)
        assert pipeline.alert(SAMPLE_LAST, published)["sent"] == 0
        assert len(up.messages) == 1
    assert {(s, n) for _, s, n in _outbox(published)} == {("sent", 2)}
    return took


@pytest.mark.slow
def test_an_smtp_server_that_never_greets_times_out_connecting_and_loses_nothing(published, monkeypatch):
    """It accepts the connection and says nothing: before, each run waited 6 x 30 s (the provider's retries) and
    then said "Unable to connect"; now one wait of REGIME_SMTP_CONNECT_TIMEOUT and a message that says so."""
    monkeypatch.setenv("REGIME_SMTP_CONNECT_TIMEOUT", "1")
    with SilentSMTP("greeting") as server:
        took = _timed_out_then_mailed_once(
            published, monkeypatch, server,
            rf"127\.0\.0\.1:{server.port} timed out waiting for its greeting: no answer within 1 s "
            r"\(REGIME_SMTP_CONNECT_TIMEOUT\)")
    assert 0.9 < took < 20


@pytest.mark.slow
def test_an_smtp_server_silent_after_the_message_times_out_sending(published, monkeypatch):
    """It takes the whole message and never answers: the send deadline ends the run, the alerts stay failed (the
    mail may have arrived: the next run mails them again rather than lose them)."""
    monkeypatch.setenv("REGIME_SMTP_SEND_TIMEOUT", "1")
    with SilentSMTP("data") as server:
        took = _timed_out_then_mailed_once(
            published, monkeypatch, server,
            rf"127\.0\.0\.1:{server.port} timed out sending the mail: no answer within 1 s "
            r"\(REGIME_SMTP_SEND_TIMEOUT\)")
    assert 0.9 < took < 20


@pytest.mark.slow
def test_an_smtp_server_answering_each_line_slowly_is_cut_off_by_the_send_deadline(published, monkeypatch):
    """Every answer comes 0.4 s late, well within the per-operation timeout, but a transaction of five commands
    (EHLO, MAIL, RCPT, DATA, the data) takes 2 s: beyond the 1 s send deadline, so it times out."""
    monkeypatch.setenv("REGIME_SMTP_SEND_TIMEOUT", "1")
    with SilentSMTP(None, pause=0.4) as server:
        took = _timed_out_then_mailed_once(
            published, monkeypatch, server,
            rf"127\.0\.0\.1:{server.port} timed out sending the mail: no answer within 1 s "
            r"\(REGIME_SMTP_SEND_TIMEOUT\)")
    assert 0.9 < took < 20
