"""Where and how `make ui` runs Airflow: the settings read from the environment and AIRFLOW_HOME/airflow.cfg,
the port, the users' passwords and the environment the services are started with.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import secrets
import socket
import sqlite3
import sys
from dataclasses import dataclass
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


class UiError(Exception):
    """A problem the operator can fix; the message says how."""


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
