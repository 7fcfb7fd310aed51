"""`make ui`: Airflow's web UI on a laptop, on the embedded SQLite metadata DB that `make demo` writes its runs to.

    make ui                                   # http://127.0.0.1:8080; another port: make ui REGIME_UI_PORT=8081
    python -m regime.ui --screenshots docs/img   # the screenshots of docs/operations.md (headless Chromium)

One command starts Airflow's api-server (the UI and the REST API), scheduler, dag-processor and triggerer on
AIRFLOW_HOME (the Makefile's `.airflow/`), waits until the api-server answers and reports the other three healthy,
then prints the URL, the user name, its password and the file that keeps it, and how to stop. Ctrl-C (SIGINT),
SIGTERM or SIGHUP stops every process it started.

The four run as separate processes (as in docker-compose.yml), not as `airflow standalone`, because:

- everything must listen on 127.0.0.1 only: standalone's scheduler and triggerer also run a log server on every
  interface (0.0.0.0:8793 and :8794). Here they run with `--skip-serve-logs` (the api-server reads the task logs
  from AIRFLOW_HOME/logs on the same machine) and the api-server is bound to 127.0.0.1;
- stopping must be clean: standalone ends its children with SIGTERM from threads, and a SIGTERM to standalone
  itself leaves dozens of processes behind. Here each process is started in a process group of its own and is
  stopped by its pid: SIGTERM to its group, then, after 30 s, SIGKILL to the group and to every descendant seen
  before (Airflow puts each task's process in a group of its own) that is still alive;
- the password is printed every time (standalone prints a generated password only the first time), and the
  processes' output goes to one log file each (AIRFLOW_HOME/logs/ui/<name>.log) instead of interleaving on the
  terminal.

It is kept light for a laptop: parallelism 4 (AIRFLOW__CORE__PARALLELISM), one api-server worker, one parsing
process. Settings already in the environment win (e.g. AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION from the
Makefile), except the ones that make the processes reach each other on 127.0.0.1:<port>. One UI per AIRFLOW_HOME
(a lock file, AIRFLOW_HOME/regime-ui.lock). Without an SMTP connection, as in `make demo`, a local mail catcher keeps
the mails of the runs triggered from the UI in <data dir>/demo-mail, so that their send_alerts task can succeed.
"""

from __future__ import annotations

import argparse
import base64
import configparser
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from regime import PROJECT_DIR

HOST = "127.0.0.1"
DEFAULT_PORT = 8080
PORT_VARIABLE = "REGIME_UI_PORT"
VENV_BIN = Path(sys.executable).parent
AIRFLOW = str(VENV_BIN / "airflow")
# the processes, each started as `airflow <args>`; the api-server's host, port and workers are added when it starts
SERVICES = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}
# what /api/v2/monitor/health reports on, all "healthy" once the UI is ready
COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
# the Makefile's settings, for `python -m regime.ui` run without it; the environment's values win
DEFAULTS = {
    "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_DIR / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_DIR / "plugins"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
    # light: a laptop runs it next to everything else
    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
    "AIRFLOW__CORE__PARALLELISM": "4",
    "AIRFLOW__API__WORKERS": "1",
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
}
STOP_TIMEOUT = 30.0
START_TIMEOUT = 180.0
DAG_IDS = ("regime_daily", "regime_transform", "ingest_index_prices", "ingest_options_volume", "ingest_cftc_tff",
           "ingest_etf_nav")
# loopback requests never go through a proxy the environment may name
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class UiError(Exception):
    """A problem the operator can fix; the message says how."""


class Stopped(Exception):
    """SIGTERM or SIGHUP arrived: stop like Ctrl-C."""


# --- configuration ------------------------------------------------------------------------------------------------

@dataclass
class Config:
    """Where the UI runs and how one logs in: read from the environment, then AIRFLOW_HOME/airflow.cfg, then
    Airflow's defaults."""

    env: dict
    home: Path
    port: int
    metadata_db: str
    users: list[tuple[str, str]]  # (name, role) of [core] simple_auth_manager_users
    login_file: Path
    all_admins: bool

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def logs(self) -> Path:
        return self.home / "logs" / "ui"

    @property
    def sqlite_path(self) -> Path | None:
        """The file of a SQLite metadata DB (sqlite:////abs/path or sqlite:///rel/path), None for another database."""
        if not self.metadata_db.startswith("sqlite:"):
            return None
        return Path(self.metadata_db.split("://", 1)[-1][1:].split("?", 1)[0])


def _port(value: str | None) -> int:
    if value in (None, ""):
        return DEFAULT_PORT
    try:
        port = int(value)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise UiError(f"{PORT_VARIABLE}={value!r} is not a TCP port: give a number from 1 to 65535, e.g. "
                      f"`make ui {PORT_VARIABLE}=8081`")
    return port


def load_config(environ: dict | None = None, port: int | None = None) -> Config:
    env = dict(os.environ if environ is None else environ)
    env.setdefault("AIRFLOW_HOME", str(PROJECT_DIR / ".airflow"))
    for key, value in DEFAULTS.items():
        env.setdefault(key, value)
    home = Path(env["AIRFLOW_HOME"]).expanduser().resolve()
    cfg = configparser.ConfigParser(interpolation=None)
    with contextlib.suppress(OSError, configparser.Error):
        cfg.read(home / "airflow.cfg")

    def setting(section: str, key: str, default: str) -> str:
        return env.get(f"AIRFLOW__{section.upper()}__{key.upper()}") or cfg.get(section, key, fallback="") or default

    users = []
    for entry in setting("core", "simple_auth_manager_users", "admin:admin").split(","):
        name, _, role = entry.strip().partition(":")
        if name:
            users.append((name, role.split(":")[0] or "admin"))
    return Config(
        env=env, home=home,
        port=port if port is not None else _port(env.get(PORT_VARIABLE)),
        metadata_db=setting("database", "sql_alchemy_conn", f"sqlite:///{home}/airflow.db"),
        users=users,
        login_file=Path(setting("core", "simple_auth_manager_login_file",
                                    str(home / "simple_auth_manager_passwords.json.generated"))).expanduser(),
        all_admins=setting("core", "simple_auth_manager_all_admins", "False").strip().lower() == "true",
    )


def check_initialised(config: Config) -> None:
    """AIRFLOW_HOME holds an airflow.cfg and a migrated metadata DB (what `make airflow-init` makes)."""
    how = "run `make airflow-init` first (it runs `airflow db migrate`), or `make demo` (it also runs a DAG)"
    if not (config.home / "airflow.cfg").is_file():
        raise UiError(f"{config.home} is not an Airflow home yet (no airflow.cfg): {how}")
    path = config.sqlite_path
    if path is None:
        return  # another database: Airflow's own checks apply
    if not path.is_file():
        raise UiError(f"the metadata DB {path} does not exist: {how}")
    try:
        con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=10)
        try:
            version = con.execute("select version_num from alembic_version").fetchone()
            con.execute("select count(*) from dag").fetchone()
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise UiError(f"the metadata DB {path} is not migrated ({exc}): {how}") from exc
    if not version:
        raise UiError(f"the metadata DB {path} is not migrated (no alembic_version): {how}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _listener(port: int) -> str:
    """Who listens on TCP `port`, if this user may know: ' (pid 123: airflow api-server ...)'."""
    with contextlib.suppress(Exception):
        import psutil

        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                cmd = " ".join(" ".join(psutil.Process(conn.pid).cmdline()).split())[:100]
                return f" (pid {conn.pid}: {cmd})"
    return ""


def check_port(port: int) -> None:
    """The api-server can bind 127.0.0.1:`port` (as uvicorn does: SO_REUSEADDR)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
            return
        except OSError as exc:
            error = exc
    other = free_port()
    raise UiError(f"port {port} on {HOST} is not free ({error.strerror}){_listener(port)}: stop what uses it, or "
                  f"pick another port: `make ui {PORT_VARIABLE}={other}` (or `{PORT_VARIABLE}={other} make ui`)")


def ensure_passwords(config: Config) -> dict[str, str]:
    """The password of each user, from the SimpleAuthManager's passwords file; a random one is generated and
    stored there (Airflow's format) for a user without one. The api-server reads the same file; only its owner may
    (mode 0600)."""
    passwords: dict[str, str] = {}
    path = config.login_file
    if path.exists():
        text = path.read_text().strip()
        try:
            passwords = json.loads(text) if text else {}
        except ValueError as exc:
            raise UiError(f"the passwords file {path} is not JSON ({exc}): fix it, or delete it and a new password "
                          f"is generated") from exc
    missing = [name for name, _ in config.users if name not in passwords]
    if missing:
        for name in missing:
            passwords[name] = secrets.token_urlsafe(12)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(passwords) + "\n")
    if path.stat().st_mode & 0o077:  # e.g. made by `airflow standalone` with the umask's 0644
        path.chmod(0o600)
    return {name: passwords[name] for name, _ in config.users}


def service_environment(config: Config) -> dict:
    """The processes' environment: the caller's, the defaults, and what makes them find each other on 127.0.0.1."""
    env = dict(config.env)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env.update({
        "AIRFLOW_HOME": str(config.home),
        "AIRFLOW__API__HOST": HOST,
        "AIRFLOW__API__PORT": str(config.port),
        "AIRFLOW__API__BASE_URL": config.url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{config.url}/execution/",
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{n}:{r}" for n, r in config.users),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(config.login_file),
    })
    env.pop(PORT_VARIABLE, None)
    return env


# --- processes ----------------------------------------------------------------------------------------------------

def _alive(proc) -> bool:
    """Running and not a zombie."""
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return f"({path} does not exist)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class Service:
    """One Airflow process, in a process group of its own (its pgid is its pid), its output in `log`."""

    def __init__(self, name: str, args: list[str], log: Path):
        self.name = name
        self.cmd = [AIRFLOW, *args]
        self.log = log
        self.popen: subprocess.Popen | None = None
        self.stopping = False

    def start(self, env: dict, cwd: Path) -> None:
        # setpriv --pdeathsig (util-linux): should this launcher be killed outright, the process gets SIGTERM
        guard = ["setpriv", "--pdeathsig", "TERM", "--"] if shutil.which("setpriv") else []
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            out.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(self.cmd)}\n".encode())
            out.flush()
            self.popen = subprocess.Popen([*guard, *self.cmd], env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was not started"
        return self.popen.pid

    def check_alive(self) -> None:
        if self.popen is not None and self.popen.poll() is not None and not self.stopping:
            raise UiError(f"the {self.name} (pid {self.pid}) exited with code {self.popen.returncode}; "
                          f"its log {self.log} ends:\n{tail(self.log)}")

    def tree(self) -> list:
        """The process and its descendants (psutil.Process) alive now."""
        import psutil

        if self.popen is None or self.popen.poll() is not None:
            return []
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def signal_group(self, sig: int) -> None:
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)


def stop_services(services: list[Service], timeout: float = STOP_TIMEOUT) -> dict:
    """SIGTERM to each process group, then SIGKILL to the groups and to every descendant seen before that is still
    alive after `timeout` seconds. Returns how many processes there were, the seconds taken and those killed."""
    import psutil

    started = [s for s in services if s.popen is not None]
    trees = {s.name: s.tree() for s in started}
    everyone = [p for tree in trees.values() for p in tree]
    t0 = time.monotonic()
    for s in started:
        s.stopping = True
        s.signal_group(signal.SIGTERM)
    while time.monotonic() < t0 + timeout:
        if all(s.popen.poll() is not None for s in started) and not any(map(_alive, everyone)):
            break
        time.sleep(0.1)
    killed = []
    for s in started:
        if s.popen.poll() is None:
            s.signal_group(signal.SIGKILL)
    for p in everyone:
        if _alive(p):
            with contextlib.suppress(psutil.NoSuchProcess):
                killed.append(f"{p.pid} {' '.join(p.cmdline())[:80]}")
                p.kill()
    psutil.wait_procs(everyone, timeout=10)
    for s in started:
        with contextlib.suppress(subprocess.TimeoutExpired):
            s.popen.wait(timeout=10)
    return {"processes": len(everyone), "seconds": round(time.monotonic() - t0, 1), "killed": killed}


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
        with _HTTP.open(request, timeout=timeout) as response:
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
            service = Service(name, args, self.config.logs / f"{name}.log")
            self.services.append(service)
            service.start(env, cwd=self.config.home)

    def check_alive(self) -> None:
        for s in self.services:
            s.check_alive()

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
        result = stop_services(self.services)
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


def _on_signal(signum, _frame):
    raise Stopped(signal.Signals(signum).name)


def serve(config: Config) -> int:
    """`make ui`: start, print the banner, keep running until Ctrl-C / SIGTERM / SIGHUP, stop everything."""
    ui = Ui(config)
    try:
        ui.preflight()
    except UiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C, even where SIGINT was inherited ignored
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    code = 0
    catcher = None
    print(f"Starting Airflow on {config.home} ({config.url}): api-server, scheduler, dag-processor, triggerer; "
          f"their logs in {config.logs}", flush=True)
    try:
        catcher = start_mail_catcher(ui)
        ui.start()
        ui.wait_ready(progress=lambda text: print(text, flush=True))
        use = memory(ui.services)
        print(f"\nReady in {ui.timings['healthy_s']} s: {use['processes']} processes, {use['pss_mib']} MiB "
              f"(PSS; RSS {use['rss_mib']} MiB)", flush=True)
        print(ui.banner(), flush=True)
        while True:
            ui.check_alive()
            time.sleep(1)
    except (KeyboardInterrupt, Stopped) as exc:
        print(f"\n{'Ctrl-C (SIGINT)' if isinstance(exc, KeyboardInterrupt) else exc}: stopping...", flush=True)
    except UiError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # stopping is bounded (30 s, then SIGKILL): let it finish
        result = ui.stop()
        if catcher is not None:
            catcher.stop()
        killed = f"; killed after {STOP_TIMEOUT:.0f} s: {result['killed']}" if result["killed"] else ""
        print(f"Stopped {result['processes']} processes in {result['seconds']} s{killed}", flush=True)
    return code


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


# --- screenshots --------------------------------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
WIDTH, HEIGHT = 1280, 900
# sets a React-controlled <input>'s value as typing does: the native setter, then the input event React listens to
_FILL = """((selector, value) => {
    const el = document.querySelector(selector);
    if (!el) return null;
    Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set.call(el, value);
    el.dispatchEvent(new Event('input', {bubbles: true}));
    el.dispatchEvent(new Event('change', {bubbles: true}));
    return el.value; })"""


class Browser:
    """Headless Chromium driven through the DevTools protocol (a websocket on 127.0.0.1), one page of WIDTH x HEIGHT
    px, in a temporary profile; its process group is ended on exit."""

    def __init__(self, binary: str = CHROMIUM):
        if not Path(binary).exists():
            raise UiError(f"Chromium is not installed at {binary}: `make chromium` installs Debian's package")
        self.binary = binary
        self.profile = Path(tempfile.mkdtemp(prefix="regime-ui-chromium-"))
        self.proc: subprocess.Popen | None = None
        self.ws = None
        self.closing = contextlib.ExitStack()  # the websocket
        self.next_id = 0

    def __enter__(self) -> Browser:
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        from websockets.sync.client import connect

        self.proc = subprocess.Popen(
            [self.binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-proxy-server",
             "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
             f"--window-size={WIDTH},{HEIGHT}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True)
        active = self.profile / "DevToolsActivePort"  # Chromium writes its port there (--remote-debugging-port=0)
        deadline = time.monotonic() + 30
        while not (active.exists() and len(active.read_text().split()) >= 2):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise UiError("headless Chromium did not open its DevTools port within 30 s")
            time.sleep(0.1)
        port = int(active.read_text().split()[0])
        with _HTTP.open(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            pages = [t for t in json.load(response) if t["type"] == "page"]
        # no domain enabled, so (almost) no events; no keepalive pings: the page may sit idle for minutes
        self.ws = self.closing.enter_context(connect(pages[0]["webSocketDebuggerUrl"], max_size=None,
                                                     max_queue=None, open_timeout=10, ping_interval=None))
        self.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1, mobile=False)

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(Exception):
            self.closing.close()
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        shutil.rmtree(self.profile, ignore_errors=True)

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:  # events arrive in between: skipped
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise UiError(f"Chromium: {method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise UiError(f"Chromium: {expression[:80]!r}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def wait_for(self, expression: str, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.evaluate(expression):
                return
            time.sleep(0.25)
        text = self.evaluate("document.body ? document.body.innerText.slice(0, 400) : ''")
        raise UiError(f"the UI did not show {what} within {timeout:.0f} s; the page says: {text!r}")

    def wait_text(self, *texts: str, timeout: float = 60) -> None:
        checks = " && ".join(f"document.body.innerText.includes({json.dumps(t)})" for t in texts)
        self.wait_for(f"!!document.body && {checks}", " and ".join(map(repr, texts)), timeout)

    def fill(self, selector: str, value: str) -> None:
        if self.evaluate(f"({_FILL})({json.dumps(selector)}, {json.dumps(value)})") != value:
            raise UiError(f"could not fill {selector} with {value!r}")

    def click(self, selector: str, text: str | None = None) -> None:
        """Click the first `selector` element (whose text is `text`, if given)."""
        found = self.evaluate(f"""(() => {{
            const el = [...document.querySelectorAll({json.dumps(selector)})]
                .find(e => {json.dumps(text)} === null || e.innerText.trim() === {json.dumps(text)});
            if (el) el.click();
            return !!el; }})()""")
        if not found:
            raise UiError(f"nothing to click on the page: {selector} {text or ''}")

    def screenshot(self, path: Path, settle: float = 2.0) -> Path:
        time.sleep(settle)  # transitions, late requests, the graph's layout
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path


def wait_for_dags(ui: Ui, token: str, timeout: float = 180) -> None:
    """Until the dag-processor has parsed the project's six DAGs and the REST API lists them."""
    deadline = time.monotonic() + timeout
    while True:
        ui.check_alive()
        status, body = http_json(f"{ui.config.url}/api/v2/dags?limit=100", token=token)
        if status == 200 and set(DAG_IDS) <= {d["dag_id"] for d in body.get("dags", [])}:
            return
        if time.monotonic() > deadline:
            raise UiError(f"the DAGs {DAG_IDS} are not all listed after {timeout:.0f} s: see {ui.config.logs}")
        time.sleep(1)


def wait_for_run(ui: Ui, token: str, as_of: str, dag_id: str = "regime_daily", timeout: float = 900) -> str:
    """The run of `dag_id` whose conf names `as_of`, once it succeeded: its run id."""
    url = f"{ui.config.url}/api/v2/dags/{dag_id}/dagRuns"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ui.check_alive()
        status, body = http_json(f"{url}?order_by=-run_after&limit=20", token=token)
        runs = [r for r in (body or {}).get("dag_runs", []) if (r.get("conf") or {}).get("as_of") == as_of]
        if runs and runs[0]["state"] == "success":
            return runs[0]["dag_run_id"]
        if runs and runs[0]["state"] == "failed":
            run_id = runs[0]["dag_run_id"]
            _, tis = http_json(f"{url}/{urllib.request.quote(run_id, safe='')}/taskInstances", token=token)
            states = {t["task_id"]: t["state"] for t in (tis or {}).get("task_instances", [])}
            raise UiError(f"{dag_id} run {run_id} failed: {states}; task logs under {ui.config.home / 'logs'}")
        time.sleep(2)
    raise UiError(f"no successful {dag_id} run with as_of {as_of} within {timeout:.0f} s")


def take_screenshots(ui: Ui, out_dir: Path, as_of: str) -> list[Path]:
    """What an operator sees, as PNGs of WIDTH x HEIGHT px in `out_dir`: logging in, the home page, the DAG list,
    regime_daily's trigger form with its `as_of` date filled in, the run that form triggers once it succeeded (grid
    and graph) and the asset graph of the warehouse. Drives the UI as a person would: the login form, the Trigger
    button, the form's date field."""
    base = ui.config.url
    user = ui.config.users[0][0]
    token = ui.token(user)
    wait_for_dags(ui, token)
    shots = []
    with Browser() as browser:
        browser.open(f"{base}/auth/login")
        browser.wait_text("Sign into Airflow")
        browser.fill("input[name=username]", user)
        browser.fill("input[name=password]", ui.passwords[user])
        shots.append(browser.screenshot(out_dir / "ui-login.png"))
        browser.click("button", "Sign in")
        browser.wait_text("Welcome", "MetaDatabase", "Scheduler", "Triggerer", "Dag Processor")
        shots.append(browser.screenshot(out_dir / "ui-home.png"))

        browser.open(f"{base}/dags")
        browser.wait_text("6 Dags", *DAG_IDS)
        shots.append(browser.screenshot(out_dir / "ui-dags.png"))

        browser.open(f"{base}/dags/regime_daily")
        browser.wait_text("regime_daily", "Trigger")
        browser.click("button", "Trigger")
        browser.wait_text("Trigger Dag - regime_daily", "As-of date")
        browser.fill("#element_as_of", as_of)
        shots.append(browser.screenshot(out_dir / "ui-trigger.png"))
        browser.click("[role=dialog] button", "Trigger")
        run_id = wait_for_run(ui, token, as_of)

        browser.open(f"{base}/dags/regime_daily/runs/{urllib.request.quote(run_id, safe='')}")
        browser.wait_text("build_validate_publish", "send_alerts", "Success")
        shots.append(browser.screenshot(out_dir / "ui-run-grid.png"))
        browser.click("button[aria-label^='Show Graph']")
        browser.wait_for("document.querySelectorAll('.react-flow__node').length >= 7", "the run's graph")
        shots.append(browser.screenshot(out_dir / "ui-run-graph.png"))

        status, body = http_json(f"{base}/api/v2/assets?name_pattern=regime_warehouse", token=token)
        assets = (body or {}).get("assets", []) if status == 200 else []
        if assets:
            browser.open(f"{base}/assets/{assets[0]['id']}")
            browser.wait_for("document.querySelectorAll('.react-flow__node').length >= 2", "the asset graph")
            shots.append(browser.screenshot(out_dir / "ui-asset-graph.png"))
    return shots


def mirror_last_session(mirror: Path) -> date:
    """The last date every Cboe index file of the mirror has (MM/DD/YYYY, the first column of its last line)."""
    last = []
    for path in sorted((mirror / "cboe").glob("*_History.csv")):
        with contextlib.suppress(ValueError, IndexError, OSError):
            month, day, year = path.read_text(errors="replace").strip().splitlines()[-1].split(",")[0].split("/")
            last.append(date(int(year), int(month), int(day)))
    if not last:
        raise UiError(f"no dated Cboe files in {mirror / 'cboe'}: give the run's date with --as-of YYYY-MM-DD")
    return min(last)


def screenshots(out_dir: Path, as_of: date | None = None) -> int:
    """`python -m regime.ui --screenshots DIR`: in a temporary AIRFLOW_HOME and data dir (removed afterwards, so the
    pictures depend neither on .airflow/ nor on data/): `airflow db migrate`, the UI on a free port, a mail catcher
    for the run's alert, the screenshots: regime_daily triggered from the form on the mirror (the bundled sample
    unless REGIME_MIRROR_DIR names another) as of `as_of`, by default the mirror's last session."""
    from regime.mailcatcher import MailCatcher

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["REGIME_SOURCE"] = "mirror"
    try:
        as_of = (as_of or mirror_last_session(Path(env.get("REGIME_MIRROR_DIR") or PROJECT_DIR / "include" / "sample"
                                                        / "mirror"))).isoformat()
    except UiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="regime-ui-shots-"))
    env.update({"AIRFLOW_HOME": str(root / "airflow"), "REGIME_DATA_DIR": str(root / "data")})
    catcher = MailCatcher(root / "mail")
    catcher.start()
    env["AIRFLOW_CONN_SMTP_DEFAULT"] = catcher.connection_uri_json()
    ui = None
    ok = False
    try:
        port = free_port()
        print(f"airflow db migrate in {root / 'airflow'}", flush=True)
        done = subprocess.run([AIRFLOW, "db", "migrate"], env=service_environment(load_config(env, port)),
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise UiError(f"airflow db migrate exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        ui = Ui(load_config(env, port))
        ui.preflight()
        print(f"starting the UI on {ui.config.url}", flush=True)
        ui.start()
        ui.wait_ready()
        print(f"taking the screenshots (regime_daily triggered from the form as of {as_of})", flush=True)
        for path in take_screenshots(ui, out_dir, as_of):
            print(path, flush=True)
        ok = True
    except UiError as exc:
        print(f"error: {exc}", file=sys.stderr)
    finally:
        if ui is not None:
            ui.stop()
        catcher.stop()
        if ok:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept for a look: {root}", file=sys.stderr)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m regime.ui", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, help=f"the api-server's port on {HOST} (default: ${PORT_VARIABLE} or "
                                                  f"{DEFAULT_PORT})")
    parser.add_argument("--screenshots", type=Path, metavar="DIR",
                        help="save PNGs of what an operator sees to DIR/ui-*.png (a temporary Airflow home on a free "
                             "port, regime_daily run from the trigger form) and stop")
    parser.add_argument("--as-of", type=date.fromisoformat, metavar="YYYY-MM-DD",
                        help="with --screenshots: the date entered in the trigger form (default: the mirror's last "
                             "session)")
    args = parser.parse_args(argv)
    if args.screenshots:
        return screenshots(args.screenshots, args.as_of)
    try:
        config = load_config(port=args.port)
    except UiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return serve(config)


if __name__ == "__main__":
    sys.exit(main())
