"""The Airflow services of `make ui` as processes (regime.processes: each started in a process group of its own,
stopped by SIGTERM, then SIGKILL to every descendant), their health through the REST API, and the local mail catcher
that stands in for a missing SMTP connection.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

from regime import PROJECT_DIR
from regime.processes import Service, stop_services
from regime.ui.config import (
    AIRFLOW,
    COMPONENTS,
    HOST,
    SERVICES,
    Config,
    UiError,
    check_initialised,
    check_port,
    ensure_passwords,
    service_environment,
)

STOP_TIMEOUT = 30.0
START_TIMEOUT = 180.0
# loopback requests never go through a proxy the environment may name
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def memory(services: list[Service]) -> dict:
    """The processes of `services` and their descendants now: count, summed RSS and PSS in MiB."""
    import psutil

    count = rss = pss = 0
    for s in services:
        for p in s.tree():
            try:
                info = p.memory_full_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            count += 1
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
    return {"processes": count, "rss_mib": round(rss / 2**20), "pss_mib": round(pss / 2**20)}


def http_json(url: str, method: str = "GET", body: dict | None = None, token: str | None = None,
              timeout: float = 30) -> tuple[int, object]:
    """(status, parsed JSON or None) of a request to the api-server; status 0 when it did not answer (not up yet,
    or slower than `timeout`: SQLite serialises the writers, a busy scheduler can hold up a request)."""
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with HTTP.open(request, timeout=timeout) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, payload = exc.code, exc.read()
    except OSError:  # refused, reset, timed out (URLError is an OSError)
        return 0, None
    try:
        return status, json.loads(payload) if payload else None
    except ValueError:
        return status, None


def health(config: Config, since: float = 0.0) -> dict | None:
    """The api-server's /api/v2/monitor/health as {component: status}, None while it does not answer. A component
    whose latest heartbeat is older than `since` (a time.time()) is "starting": the heartbeat of a process stopped a
    moment ago still counts as healthy for Airflow."""
    status, body = http_json(f"{config.url}/api/v2/monitor/health", timeout=5)
    if status != 200 or not isinstance(body, dict):
        return None
    states = {}
    for name in COMPONENTS:
        part = body.get(name) or {}
        states[name] = part.get("status")
        beat = part.get(f"latest_{name}_heartbeat")
        with contextlib.suppress(TypeError, ValueError):
            if beat and datetime.fromisoformat(beat).timestamp() < since:
                states[name] = "starting"
    return states


# --- the UI -------------------------------------------------------------------------------------------------------

class Ui:
    """The four processes on one AIRFLOW_HOME and port: start(), wait_ready(), then stop()."""

    def __init__(self, config: Config):
        self.config = config
        self.services: list[Service] = []
        self.lock = None
        self.passwords: dict[str, str] = {}
        self.started_at = 0.0
        self.started_wall = 0.0
        self.timings: dict[str, float] = {}
        self.mail = ""  # how the runs' mails are sent, when the banner should say

    def preflight(self) -> None:
        """Everything that can be checked before starting anything, each failure with what to do."""
        config = self.config
        check_initialised(config)
        self._take_lock()
        check_port(config.port)
        if not config.all_admins:
            self.passwords = ensure_passwords(config)

    def _take_lock(self) -> None:
        """One UI per AIRFLOW_HOME: a second scheduler on the same SQLite file would only get in the way."""
        path = self.config.home / "regime-ui.lock"
        lock = open(path, "a+")  # noqa: SIM115 (held open while the UI runs)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            lock.close()
            raise UiError(f"another `make ui` already runs on {self.config.home} ({holder}): use that one, or stop "
                          f"it (Ctrl-C in its terminal)") from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}, {self.config.url}\n")
        lock.flush()
        self.lock = lock

    def start(self) -> None:
        env = service_environment(self.config)
        self.started_at = time.monotonic()
        self.started_wall = time.time()
        for name, args in SERVICES.items():
            if name == "api-server":
                args = [*args, "--host", HOST, "--port", str(self.config.port),
                        "--workers", env.get("AIRFLOW__API__WORKERS", "1")]
            service = Service(name, [AIRFLOW, *args], self.config.logs / f"{name}.log")
            self.services.append(service)
            service.start(env, cwd=self.config.home)

    def check_alive(self) -> None:
        for s in self.services:
            s.check_alive(UiError)

    def wait_ready(self, timeout: float = START_TIMEOUT, progress=None) -> dict:
        """Until the api-server answers and reports the metadata DB, scheduler, dag-processor and triggerer healthy."""
        deadline = time.monotonic() + timeout
        last: dict | None = None
        while time.monotonic() < deadline:
            self.check_alive()
            last = health(self.config, since=self.started_wall)
            if last is not None and "api_up_s" not in self.timings:
                self.timings["api_up_s"] = round(time.monotonic() - self.started_at, 1)
                if progress:
                    progress(f"the api-server answers after {self.timings['api_up_s']} s; waiting for the "
                             f"scheduler, dag-processor and triggerer to report healthy")
            if last and all(v == "healthy" for v in last.values()):
                self.timings["healthy_s"] = round(time.monotonic() - self.started_at, 1)
                return last
            time.sleep(0.5)
        raise UiError(f"not ready within {timeout:.0f} s (health: {last}); the logs are in {self.config.logs}")

    def token(self, user: str | None = None) -> str:
        """A JWT for the REST API, by logging in like the UI does (POST /auth/token)."""
        for _attempt in range(3):
            if self.config.all_admins:
                status, body = http_json(f"{self.config.url}/auth/token")
            else:
                user = user or self.config.users[0][0]
                status, body = http_json(f"{self.config.url}/auth/token", "POST",
                                         {"username": user, "password": self.passwords[user]})
            if status != 0:
                break
        if status != 201:
            raise UiError(f"logging in failed: HTTP {status} {body}")
        return body["access_token"]

    def stop(self) -> dict:
        result = stop_services(self.services, STOP_TIMEOUT)
        if self.lock is not None:
            self.lock.close()
            self.lock = None
        return result

    def banner(self) -> str:
        c = self.config
        line = "=" * 100
        paused = c.env.get("AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION", "True")
        rows = [line, f"Airflow UI: {c.url}", ""]
        if c.all_admins:
            rows.append("  login:       none (AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True: everyone is admin)")
        for name, role in [] if c.all_admins else c.users:
            rows += [f"  user:        {name}   (role {role})",
                     f"  password:    {self.passwords.get(name, '-')}",
                     f"               kept in {c.login_file}"]
        rows += [
            f"  metadata DB: {c.metadata_db}" + ("   (the runs of `make demo` are there)"
                                                  if c.home == PROJECT_DIR / ".airflow" else ""),
            f"  DAGs:        from {c.env['AIRFLOW__CORE__DAGS_FOLDER']}; paused at creation: {paused} (the toggle in "
            f"the DAG list unpauses one)",
            f"  logs:        {c.logs}/<process>.log; task logs under {c.home / 'logs'}",
            *([f"  mail:        {self.mail}"] if self.mail else []),
            "",
            "Stop: Ctrl-C (stops the api-server, scheduler, dag-processor and triggerer)",
            line,
        ]
        return "\n".join(rows)


def _smtp_connection_in_db(config: Config, conn_id: str) -> bool:
    """Whether the metadata DB holds an Airflow connection `conn_id` (e.g. made in the UI: Admin > Connections)."""
    path = config.sqlite_path
    if path is None:
        return True  # not SQLite: assume it is configured there
    try:
        con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=10)
        try:
            return con.execute("select 1 from connection where conn_id = ?", (conn_id,)).fetchone() is not None
        finally:
            con.close()
    except sqlite3.Error:
        return False


def start_mail_catcher(ui: Ui):
    """As `make demo` does: without an SMTP connection (no AIRFLOW_CONN_SMTP_DEFAULT, none in the metadata DB), a
    local SMTP catcher on 127.0.0.1 in this process keeps the runs' mails in <data dir>/demo-mail, so that a run
    triggered from the UI can send its alert. None when an SMTP connection is configured."""
    env = ui.config.env
    conn_id = env.get("REGIME_SMTP_CONN_ID", "smtp_default")
    if f"AIRFLOW_CONN_{conn_id.upper()}" in env or _smtp_connection_in_db(ui.config, conn_id):
        return None
    from regime.mailcatcher import MailCatcher

    folder = Path(env.get("REGIME_DATA_DIR") or PROJECT_DIR / "data").expanduser().resolve() / "demo-mail"
    catcher = MailCatcher(folder)
    catcher.start()
    env[f"AIRFLOW_CONN_{conn_id.upper()}"] = catcher.connection_uri_json()
    ui.mail = f"no SMTP connection `{conn_id}`: a local catcher on 127.0.0.1:{catcher.port} keeps mails in {folder}"
    return catcher
