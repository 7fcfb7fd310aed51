"""Security: no secrets in the repository or the logs; every SQL value is a bound parameter (hostile names through
the CLI, the answers functions and the configuration stay data or are refused); file paths from configuration or
upstream cannot leave the data dir.

Covered elsewhere, referenced here: `regime sql` cannot write (tests/test_cli.py::test_sql_refuses_writes,
test_duckdb_refuses_writes_even_past_the_statement_check, test_sql_cannot_touch_files_even_in_a_select); the
compose file has no default password not marked local-only (tests/test_operations.py::
test_compose_file_matches_the_code); zip members named `../evil.txt` (tests/corpus/cftc/path_traversal.zip)."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import socket
import subprocess
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from test_reliability_support import warehouse_digest

from conftest import PROJECT, SAMPLE_LAST
from regime import answers, cli, datasets, lake, pipeline, publisher, readonly, warehouse
from regime.config import ConfigError, get_settings
from regime.sources import cboe
from upstream import Upstream

HOSTILE = "x'; DROP TABLE marts.indicators; --"
# Secrets in text: (what, pattern). Values that are placeholders are allowed (see _placeholder).
_KEYS = r"(?:password|passwd|pwd|secret|secret_key|api_key|access_key|token)"
SECRET_PATTERNS = [
    ("password in a URL", re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:(?P<value>[^@\s/'\"]+)@[\w.-]")),
    ("AWS access key id", re.compile(r"\b(?P<value>(?:AKIA|ASIA)[0-9A-Z]{16})\b")),
    ("AWS secret access key",
     re.compile(r"(?i)aws_secret_access_key[ \t]*[=:][ \t]*['\"]?(?P<value>[A-Za-z0-9/+]{40})")),
    ("private key", re.compile(r"-----BEGIN (?P<value>(?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY)-----")),
    ("GitHub or Slack token", re.compile(r"\b(?P<value>gh[pousr]_[A-Za-z0-9]{36}|xox[abprs]-[A-Za-z0-9-]{10,})")),
    # password = "…" (code), PASSWORD=… (environment), ?password=… (URL), "password": "…" (JSON), password: … (YAML)
    ("password setting", re.compile(rf"(?i)\b{_KEYS}\b[ \t]*=(?!=)[ \t]*(?P<q>[\"'])(?P<value>[^\"'\n]*)(?P=q)")),
    ("password setting",
     re.compile(r"\b[A-Z0-9_]*(?:PASSWORD|PASSWD|SECRET|TOKEN|API_KEY)[A-Z0-9_]*=(?P<value>[^\s\"'&;]+)")),
    ("password setting", re.compile(rf"(?i)[?&]{_KEYS}=(?P<value>[^&\s\"']+)")),
    ("password setting", re.compile(rf"(?i)[\"']{_KEYS}[\"'][ \t]*:[ \t]*[\"'](?P<value>[^\"'\n]*)[\"']")),
    ("password setting", re.compile(r"(?im)^[ \t]*-?[ \t]*[\w.-]*(?:password|passwd|secret|token)[\w.-]*[ \t]*:[ \t]*"
                                    r"(?P<value>[^\s#\"'][^\s#]*)[ \t]*$")),
]


def _placeholder(value: str) -> bool:
    """A value that is not a secret: an environment or template reference, a local-only default, an ellipsis, a
    masked value, an absolute path (where a secret is kept, e.g. a passwords file), or (in code) a dotted name or a
    call."""
    value = value.strip("\"'`")
    return (value.startswith(("$", "{", "<", "%", "…", "...", "***", "/"))
            or value.endswith(("local-only", "local-only}"))
            or value in {"", "null", "None", "none", "password", "secret", "token"}
            or bool(re.fullmatch(r"[A-Za-z_][\w]*(\.[\w]+)+(\(.*)?|[A-Za-z_]\w*\(.*|[A-Z][A-Z0-9_]+", value)))


def find_secrets(text: str) -> list[str]:
    found = []
    for what, pattern in SECRET_PATTERNS:
        for match in pattern.finditer(text):
            if what in ("password in a URL", "password setting") and _placeholder(match.group("value")):
                continue
            found.append(f"{what}: {match.group(0)[:80]!r}")
    return found


def test_the_secret_scanner_finds_what_it_looks_for():
    key = "AKIA" + "Q" * 16
    assert find_secrets(f"AWS_ACCESS_KEY_ID={key}")
    assert find_secrets("smtp://alerts:" + "hunter2" + "@mail.example.com:587")
    assert find_secrets("-----BEGIN " + "RSA PRIVATE KEY-----\nMIIB")
    assert find_secrets('{"password": "' + "s3cr3t-value" + '"}')
    assert find_secrets("ghp_" + "a" * 36)
    assert not find_secrets("postgresql+psycopg2://airflow:${POSTGRES_PASSWORD:-airflow-local-only}@postgres/airflow")
    assert not find_secrets('"password": "…"')
    assert not find_secrets("password=settings.password")
    assert not find_secrets("    AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE: /opt/airflow/auth/passwords.json")
    assert find_secrets("    SMTP_PASSWORD: hunter2-" + "x")


@pytest.mark.slow
def test_no_secrets_in_the_repository():
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=PROJECT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    scanned, problems = 0, []
    for name in filter(None, listed):
        path = PROJECT / name
        if not path.is_file() or path.stat().st_size > 5_000_000:
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:  # binary: workbooks, zips, Parquet
            continue
        scanned += 1
        problems += [f"{name}: {p}" for p in find_secrets(data.decode("utf-8", "replace"))]
    assert scanned > 100
    assert problems == []


@pytest.mark.skipif(not list((PROJECT / "data" / "logs").glob("*.log")), reason="no demo log (run make demo)")
def test_no_secrets_in_the_demo_log():
    for log in (PROJECT / "data" / "logs").glob("*.log"):
        assert find_secrets(log.read_text(errors="replace")) == [], log


# ------------------------------------------------------------------------------------------------ a run's log

CREDENTIAL = "Sm7p-" + "pa55w0rd-for-the-log-test"  # built so that this file holds no secret-looking literal


class _AuthSMTP:
    def __init__(self):
        self.logins = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook)
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        self.logins.append(auth_data.login)
        return AuthResult(success=auth_data.password == CREDENTIAL.encode())


@pytest.mark.slow
def test_no_secret_in_a_runs_logs_state_or_files(published, monkeypatch, caplog, capfd):
    """A live ingest that retries (URLs logged) and an alert mailed through an SMTP server that wants a login:
    the SMTP password is in the Airflow connection only, and nowhere in the logs, the outbox or the data dir."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    handler = _AuthSMTP()
    controller = Controller(handler, hostname="127.0.0.1", port=port, authenticator=handler.authenticate,
                            auth_require_tls=False)
    controller.start()
    caplog.set_level(logging.DEBUG)
    try:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "port": port, "login": "regime", "password": CREDENTIAL,
            "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 10, "retry_limit": 0,
                      "from_email": "regime-monitor@localhost"}}))
        with Upstream() as up:
            path = cboe.url("RUT").split("cdn.cboe.com", 1)[1]
            good = (published.mirror_dir / "cboe" / "RUT_History.csv").read_bytes()
            up.route(path, responses=[(503, b""), (200, good)])
            monkeypatch.setenv("REGIME_SOURCE", "live")
            monkeypatch.setenv("REGIME_INDEXES", "RUT")
            monkeypatch.setenv("REGIME_LIVE_BASE_URL", up.url(""))
            settings = get_settings()
            pipeline.ingest("index_prices", SAMPLE_LAST, settings)
        assert pipeline.alert(SAMPLE_LAST, settings)["sent"] > 0
        assert handler.logins == [b"regime"]  # it did log in, with the password
    finally:
        controller.stop()
    out, err = capfd.readouterr()
    logs = caplog.text + out + err
    assert "retrying" in logs and "sent" in logs.lower()  # the log is there, and it says things
    assert CREDENTIAL not in logs
    assert find_secrets(logs) == []
    for path in published.data_dir.rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert CREDENTIAL.encode() not in path.read_bytes(), path


def test_credentials_in_the_live_base_url_are_refused_without_echoing_them(monkeypatch):
    monkeypatch.setenv("REGIME_LIVE_BASE_URL", "https://proxy-user:" + CREDENTIAL + "@proxy.example.com/")
    with pytest.raises(ConfigError, match="holds credentials") as err:
        get_settings()
    assert CREDENTIAL not in str(err.value)
    monkeypatch.setenv("REGIME_LIVE_BASE_URL", "file:///etc")
    with pytest.raises(ConfigError, match="http:// or https://"):
        get_settings()


# ------------------------------------------------------------------------------------------------ bound parameters


@pytest.mark.slow
def test_hostile_names_through_the_cli_and_answers_are_data(published, capsys):
    path = published.warehouse_path
    before = warehouse_digest(path)
    for argv in (["since", "zscore_50d", HOSTILE], ["history", "zscore_50d", HOSTILE, "--csv"],
                 ["since", HOSTILE, "RUT"], ["history", HOSTILE, "RUT"], ["latest", "--date", HOSTILE]):
        assert cli.main(argv) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.startswith("regime: ") and err.count("\n") == 1, (argv, err)
    con = readonly.open_warehouse(path)
    try:
        for call in (lambda: answers.since(con, "zscore_50d", HOSTILE), lambda: answers.history(con, HOSTILE, "RUT"),
                     lambda: answers.latest_date(con, HOSTILE, HOSTILE)):
            with pytest.raises(readonly.AnswerError):
                call()
        assert answers.readings_on(con, SAMPLE_LAST, HOSTILE, HOSTILE) == []
        assert answers.nearest_dates(con, SAMPLE_LAST, HOSTILE, HOSTILE) == (None, None)
        assert readonly.has_table(con, "marts", HOSTILE) is False
    finally:
        con.close()
    assert warehouse_digest(path) == before  # the table is still there, unchanged


@pytest.mark.parametrize(("query", "answered"), [
    ("select * from glob('/etc/*')", False),
    ("select * from read_text('/etc/hostname')", False),
    ("select size from read_blob('{data}/state/state.sqlite')", False),
    ("select * from read_csv('{data}/lake/index_prices/symbol=RUT/data.parquet')", False),
    ("select size from read_blob('{data}/warehouse.duckdb')", True),  # the warehouse's own bytes: DuckDB allows it
    ("call pragma_version()", False),
    ("detach warehouse", False),
    ("use memory", False),
    ("select * from duckdb_secrets()", False),  # not even the (empty) secret store is read
])
@pytest.mark.slow
def test_regime_sql_on_the_real_warehouse_reads_nothing_else(published, capsys, query, answered):
    """What tests/test_cli.py does not try: file-reading table functions on the data dir, CALL, DETACH, USE."""
    before = warehouse_digest(published.warehouse_path)
    code = cli.main(["sql", query.format(data=published.data_dir)])
    out, err = capsys.readouterr()
    if answered:
        assert code == 0 and err == ""
    else:
        assert code == 2 and out == "" and (" is refused: " in err or "Permission Error" in err), err
    assert warehouse_digest(published.warehouse_path) == before


@pytest.mark.parametrize("variable", ["REGIME_WATCHLIST", "REGIME_ETF_TICKERS", "REGIME_INDEXES", "REGIME_SMALL_CAPS",
                                      "REGIME_LARGE_CAPS", "REGIME_CFTC_MARKETS"])
@pytest.mark.parametrize("value", [HOSTILE, "IWM,../../etc", "IWM,O'NEIL", "A/B", "..", "IWM,A B", "IWM;X"])
def test_hostile_symbols_in_the_configuration_are_refused_clearly(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=f"^{variable}: .* is not a valid symbol"):
        get_settings()


def test_configured_symbols_are_checked_and_kept_apart(monkeypatch):
    monkeypatch.setenv("REGIME_WATCHLIST", " iwm, SPY ,brk.b,^vix,IWM")
    monkeypatch.setenv("REGIME_CFTC_MARKETS", "13874a,090741")
    settings = get_settings()
    assert settings.watchlist == ("IWM", "SPY", "BRK.B", "^VIX")  # upper-cased, each once
    assert settings.cftc_markets == ("13874A", "090741")


@pytest.mark.slow
def test_a_hostile_group_member_reaching_sql_is_only_a_value(published):
    """Even past the configuration check, the ETF groups reach SQL as bound list parameters."""
    settings = dataclasses.replace(published, small_caps=("IWM", HOSTILE), large_caps=(HOSTILE, "SPY"))
    staging = warehouse.build(settings, SAMPLE_LAST)
    try:
        con = duckdb.connect(str(staging), read_only=True)
        try:
            assert con.execute("select count(*) from marts.indicators").fetchall()[0][0] > 0
        finally:
            con.close()
    finally:
        publisher.discard(staging)


# ------------------------------------------------------------------------------------------------ file paths


@pytest.mark.parametrize("value", ["../x", "..", ".", "a/b", "a\\b", "/etc", "", ".hidden", "x=y", "RUT\x00",
                                   "../../etc/passwd", "a" * 65])
def test_partition_values_cannot_leave_their_dataset(tmp_path, value):
    with pytest.raises(ValueError, match="refusing partition value"):
        lake.partition_path(tmp_path, "index_prices", "symbol", value)
    with pytest.raises(ValueError, match="refusing partition value"):
        datasets.INDEX_PRICES.partition_path(tmp_path, value)
    frame = pd.DataFrame({"date": [date(2024, 7, 16)], "symbol": [value], "open": [1.0], "high": [1.0], "low": [1.0],
                          "close": [1.0]})
    with pytest.raises(ValueError, match="refusing partition value"):
        datasets.INDEX_PRICES.write(tmp_path / "lake", frame)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("value", ["RUT", "^VIX", "BRK.B", "13874A", "ES+1", "VTWO", "a-b_c"])
def test_ordinary_partition_values_are_accepted(tmp_path, value):
    assert lake.partition_path(tmp_path, "d", "k", value) == tmp_path / "d" / f"k={value}" / "data.parquet"


@pytest.mark.parametrize("name", ["../evil.txt", "../../etc/cron.d/x", "/etc/passwd", "a/../../b"])
def test_raw_and_quarantine_names_cannot_leave_their_folder(tmp_path, name):
    for write in (lambda: lake.land_raw(tmp_path / "raw", "cboe", SAMPLE_LAST, name, b"x", "test"),
                  lambda: lake.quarantine(tmp_path / "quarantine", "cboe", SAMPLE_LAST, name, b"x", "test")):
        with pytest.raises(ValueError, match="outside"):
            write()
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_a_hostile_watchlist_past_the_configuration_writes_nothing_outside(published, tmp_path):
    """OCC file names are built from the watchlist (`<day>/<SYMBOL>.csv`): with `../..` in a symbol the landing
    refuses it as a partition value before any file is read, and nothing is written outside the data dir."""
    from regime.ingest import ingest_occ

    settings = dataclasses.replace(published, watchlist=("../../ESCAPE",))
    bait = settings.mirror_dir / "occ" / "ESCAPE.csv"  # what the name reaches in the mirror
    bait.write_bytes(b"quantity,underlying,symbol,actype,porc,exchange,actdate\n")
    before = {p for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match="refusing partition value '../../ESCAPE'"):
        ingest_occ(settings, SAMPLE_LAST, days=[date(2024, 7, 16)])
    new = {p for p in tmp_path.rglob("*") if p.is_file()} - before
    assert all(p.is_relative_to(settings.data_dir) for p in new), new
    assert not any("ESCAPE" in p.name for p in new)


def test_every_path_the_pipeline_writes_stays_in_the_data_dir(published):
    """The lake, raw, quarantine, build and state folders are all under REGIME_DATA_DIR, and a full run left no
    file or link pointing out of it."""
    root = published.data_dir.resolve()
    for folder in (published.lake_dir, published.raw_dir, published.quarantine_dir, published.build_dir,
                   published.state_dir, published.warehouse_path):
        assert Path(folder).resolve().is_relative_to(root)
    assert not [p for p in root.rglob("*") if p.is_symlink()]
