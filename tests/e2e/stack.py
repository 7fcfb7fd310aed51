"""A real Airflow stack for the end-to-end tests, started and stopped by the tests themselves.

PostgreSQL (Debian's package) is the metadata DB; `airflow api-server`, `scheduler`, `dag-processor` and `triggerer`
run as separate processes with the LocalExecutor, or with the CeleryExecutor: then a `redis-server` (Debian's package)
is the broker, the same PostgreSQL the result backend, and `airflow celery worker`s (two by default) run the tasks.
Everything listens on 127.0.0.1 only, on free ports. Each process
is started in its own session (process group = its pid), its stdout and stderr go to `<root>/logs/<name>.log`, and
it is stopped by its process id: SIGTERM to its group, SIGKILL after a timeout, and any descendant that left the
group (Airflow puts each task process in a group of its own) is ended by its pid too. Should pytest itself be killed
(no teardown), each started process gets SIGTERM from the kernel (`setpriv --pdeathsig`), and the next session
removes the PostgreSQL folder left in /tmp. The processes are regime.processes's `Service`s, stopped by its
`stop_services`, as `make ui`'s are.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

from regime.processes import Service, stop_services, tail

PROJECT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
AIRFLOW = str(VENV_BIN / "airflow")
FINISHED = {"success", "failed"}
# the Airflow services, each a separate process started as `airflow <args>` (the compose file's services run the same
# commands; tests/test_compose.py checks): the api-server's host and port are added when it starts
SERVICE_COMMANDS = {
    "api-server": ["api-server", "--workers", "1"],
    "scheduler": ["scheduler", "--skip-serve-logs"],   # the log server binds 0.0.0.0
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
    # CeleryExecutor only: its name and concurrency are added when it starts
    "celery-worker": ["celery", "worker", "--skip-serve-logs"],   # the log server binds 0.0.0.0:8793
}
CELERY_ONLY = ("celery-worker",)
# a Celery worker's log line for each task it runs (airflow.providers.celery.executors.celery_executor_utils):
# "[<celery task id>] Executing workload in Celery: ... ti=TaskInstanceDTO(id=UUID('<ti id>'), task_id='…', …"
_EXECUTING = re.compile(r"\[(?P<celery_id>[0-9a-f-]{36})\] Executing workload in Celery: .*?ti=\w+\("
                        r"id=UUID\('(?P<ti_id>[0-9a-f-]{36})'\), task_id='(?P<task_id>[^']+)', "
                        r"dag_id='(?P<dag_id>[^']+)', run_id='(?P<run_id>[^']+)', try_number=(?P<try_number>\d+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, check: Callable[[], object], timeout: float, interval: float = 0.5,
               alive: Callable[[], None] | None = None):
    """Poll `check` until it returns something truthy; `alive` raises when a process it depends on died."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        if alive is not None:
            alive()
        try:
            result = check()
            if result:
                return result
        except (requests.RequestException, OSError, ValueError, KeyError) as exc:
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s" + (f" (last error: {last_error!r})" if last_error else ""))


def _routine(line: str) -> bool:
    """An api-server access-log line of a successful request: left out of the tails shown on failure."""
    return "[http.access]" in line and " status_code=2" in line


class MemorySampler(threading.Thread):
    """Samples, every `interval` seconds, the summed RSS and PSS of the process trees of `services`."""

    def __init__(self, services: Callable[[], list[Service]], interval: float = 1.0):
        super().__init__(name="e2e-memory-sampler", daemon=True)
        self.services = services
        self.interval = interval
        self.halt = threading.Event()
        self.peak = {"rss_mb": 0.0, "pss_mb": 0.0, "processes": 0, "by_service_rss_mb": {}}
        self.samples = 0

    def sample(self) -> None:
        import psutil

        rss = pss = 0
        count = 0
        for s in self.services():
            svc_rss = 0
            for p in s.tree():
                try:
                    info = p.memory_full_info()
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
                svc_rss += info.rss
                pss += getattr(info, "pss", info.rss)
                count += 1
            rss += svc_rss
            by = self.peak["by_service_rss_mb"]
            by[s.name] = max(by.get(s.name, 0.0), round(svc_rss / 2**20, 1))
        self.samples += 1
        self.peak["rss_mb"] = max(self.peak["rss_mb"], round(rss / 2**20, 1))
        self.peak["pss_mb"] = max(self.peak["pss_mb"], round(pss / 2**20, 1))
        self.peak["processes"] = max(self.peak["processes"], count)

    def run(self) -> None:
        while not self.halt.wait(self.interval):
            with contextlib.suppress(Exception):
                self.sample()

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=10)


class Postgres:
    """A throw-away PostgreSQL server from Debian's package. initdb refuses root: as root, the server runs as the
    `postgres` user (`runuser`), else as the current user, in a temporary folder under /tmp that user owns;
    `postgres` listens on 127.0.0.1:<port> (and a socket in that folder only), trust authentication for 127.0.0.1
    (tests only), durability off (fsync) for speed. Its log goes to `log`."""

    def __init__(self, log: Path, user: str = "airflow", db: str = "airflow"):
        self.log = log
        self.user = user
        self.db = db
        self.port = 0
        self.folder: Path | None = None
        self.service: Service | None = None

    @staticmethod
    def bindir() -> Path:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
        if not found:
            raise RuntimeError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): `make postgres` "
                               "installs Debian's package")
        return Path(found[-1]).parent

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{self.db}"

    @staticmethod
    def as_owner(*cmd: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else list(cmd)

    def _as_postgres(self, *cmd: str, timeout: float = 120) -> None:
        done = subprocess.run(self.as_owner(*cmd), cwd=self.folder, capture_output=True, text=True, timeout=timeout)
        with open(self.log, "a") as out:
            out.write(f"$ {' '.join(cmd)}\n{done.stdout}{done.stderr}")
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}: {done.stdout}{done.stderr}")

    @staticmethod
    def sweep(older_than_s: float = 3600) -> None:
        """Remove the folders of servers left behind by a killed test session: older than an hour and no live
        postmaster (its pid, line 1 of postmaster.pid)."""
        import psutil

        for folder in Path("/tmp").glob("regime-e2e-pg-*"):
            try:
                if time.time() - folder.stat().st_mtime < older_than_s:
                    continue
                pidfile = folder / "data" / "postmaster.pid"
                if pidfile.exists() and psutil.pid_exists(int(pidfile.read_text().split()[0])):
                    continue
            except (OSError, ValueError, IndexError):
                continue
            shutil.rmtree(folder, ignore_errors=True)

    def start(self, timeout: float = 60) -> None:
        bindir = self.bindir()
        self.sweep()
        # not under pytest's folders (0700, root's): the server's user must reach it; a short path for the socket
        self.folder = Path(tempfile.mkdtemp(prefix="regime-e2e-pg-", dir="/tmp" if Path("/tmp").is_dir() else None))
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        data = self.folder / "data"
        self._as_postgres(str(bindir / "initdb"), "-D", str(data), "-U", self.user, "-A", "trust", "-E", "UTF8",
                          "--no-locale", "--no-sync", "--no-instructions")
        hba = data / "pg_hba.conf"
        hba.write_text("# generated by tests/e2e: trust on 127.0.0.1 and the private socket, tests only\n"
                       "local all all trust\nhost all all 127.0.0.1/32 trust\n")
        if os.geteuid() == 0:
            shutil.chown(hba, "postgres", "postgres")
        self.port = free_port()
        self.service = Service("postgres", self.as_owner(
            str(bindir / "postgres"), "-D", str(data),
            "-c", "listen_addresses=127.0.0.1", "-p", str(self.port), "-k", str(self.folder),
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "max_connections=200", "-c", "log_min_messages=warning"),
            self.log, stop_signal=signal.SIGINT)  # SIGINT: fast shutdown (SIGTERM waits for clients)
        self.service.start(env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"}, cwd=self.folder)
        wait_until("PostgreSQL accepts connections", lambda: subprocess.run(
            [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]).returncode == 0,
            timeout, interval=0.2, alive=self.service.check_alive)
        done = subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user,
                               self.db], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"createdb: {done.stdout}{done.stderr}")

    def stop(self) -> None:
        if self.service is not None:
            stop_services([self.service], timeout=30)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


class Redis:
    """A throw-away Redis server from Debian's package, the Celery broker: on 127.0.0.1:<port>, no persistence (no
    RDB snapshots, no append-only file), its working folder `folder`. Its log goes to `log`."""

    BINARY = "/usr/bin/redis-server"

    def __init__(self, log: Path, folder: Path):
        self.log = log
        self.folder = folder
        self.port = 0
        self.service: Service | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=2)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def start(self, timeout: float = 30) -> None:
        if not Path(self.BINARY).exists():
            raise RuntimeError(f"Redis is not installed (no {self.BINARY}): `make redis` installs Debian's package")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.service = Service("redis", [self.BINARY, "--bind", "127.0.0.1", "--port", str(self.port),
                                         "--save", "", "--appendonly", "no", "--dir", str(self.folder),
                                         "--daemonize", "no", "--loglevel", "warning"], self.log)
        self.service.start(env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"}, cwd=self.folder)
        wait_until("Redis answers PING", self.ping, timeout, interval=0.2, alive=self.service.check_alive)

    def stop(self) -> None:
        if self.service is not None:
            stop_services([self.service], timeout=30)


class AirflowStack:
    """PostgreSQL + api-server + scheduler + dag-processor + triggerer, configured through one environment `env`
    (also the environment of `airflow(...)` CLI calls), with the REGIME_* settings of the runs in it.

    `root` holds AIRFLOW_HOME (`root/airflow`, task logs under `logs/`), the services' logs (`root/logs`) and
    `metrics.json`; `mail` is the MailCatcher that `smtp_default` points at.

    `executor="CeleryExecutor"` adds Redis (the broker) and `workers` Celery workers of `worker_concurrency` slots
    each, named `worker<i>@<host>`, each a separate process logging to `root/logs/celery-worker-<i>.log`."""

    DAGS = ("regime_daily", "regime_transform", "ingest_index_prices", "ingest_options_volume", "ingest_cftc_tff",
            "ingest_etf_nav", "ingest_options_putcall")

    def __init__(self, root: Path, mail, regime_env: dict, extra_env: dict | None = None, parallelism: int = 4,
                 executor: str = "LocalExecutor", workers: int = 2, worker_concurrency: int = 2):
        if executor not in ("LocalExecutor", "CeleryExecutor"):
            raise ValueError(f"executor: LocalExecutor or CeleryExecutor, not {executor!r}")
        self.root = root
        self.home = root / "airflow"
        self.logs = root / "logs"
        self.mail = mail
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.postgres = Postgres(self.logs / "postgres.log")
        self.port = 0
        self.user = "e2e-admin"  # an admin of the SimpleAuthManager (AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS)
        self.password = secrets.token_urlsafe(16)  # random per session, written to the stack's passwords file
        self.regime_env = regime_env
        self.extra_env = extra_env or {}
        self.parallelism = parallelism
        self.executor = executor
        self.celery = executor == "CeleryExecutor"
        self.workers = workers if self.celery else 0
        self.worker_concurrency = worker_concurrency
        self.redis = Redis(self.logs / "redis.log", root / "redis") if self.celery else None
        self.services: list[Service] = []
        self.env: dict = {}
        self.token: str | None = None
        self.metrics: dict = {"start": {}, "runs": {}}
        self.sampler = MemorySampler(self.all_services)

    # ----------------------------------------------------------------------------------------------- start / stop
    def all_services(self) -> list[Service]:
        """Every started process: Airflow's, the Celery workers, Redis and PostgreSQL."""
        backing = [self.redis.service if self.redis else None, self.postgres.service]
        return [*self.services, *(s for s in backing if s is not None)]

    @property
    def worker_names(self) -> list[str]:
        """The Celery workers' node names (`--celery-hostname`), in the order they were started."""
        return [f"worker{i}@{socket.gethostname()}" for i in range(1, self.workers + 1)]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return Path(self.regime_env["REGIME_DATA_DIR"])

    @property
    def mirror(self) -> Path:
        """The mirror the runs read (a private copy: a test may break a file, and must restore it)."""
        return Path(self.regime_env["REGIME_MIRROR_DIR"])

    def mails_to(self, address: str, since: int = 0) -> list:
        """The messages the mail catcher received for `address`, from the `since`-th on."""
        return [m for m in self.mail.messages[since:] if address in str(m["To"])]

    def _environment(self) -> dict:
        # none of the session's AWS_* settings: a stack with its lake in a bucket gets its credentials from
        # `extra_env` only (an Airflow connection), as operators give them
        inherited = {k: v for k, v in os.environ.items()
                     if not k.startswith(("AIRFLOW", "REGIME_", "PYTEST_", "AWS_"))}
        (self.home / "passwords.json").write_text(json.dumps({self.user: self.password}))
        return {
            **inherited,
            "PATH": f"{VENV_BIN}{os.pathsep}{inherited.get('PATH', '/usr/bin:/bin')}",
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.postgres.url,
            "AIRFLOW__CORE__EXECUTOR": self.executor,
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
            # a task whose worker died is failed (and mailed) after 30 s instead of 300 (tasks heartbeat every 5 s)
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.user}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__EMAIL__FROM_EMAIL": "Regime monitor <regime-monitor@localhost>",
            "AIRFLOW_CONN_SMTP_DEFAULT": self.mail.connection_uri_json(),
            "AIRFLOW_VAR_REGIME_OPERATOR_TO": "operators@example.test",
            **self._celery_environment(),
            **self.regime_env,
            **self.extra_env,
        }

    def _celery_environment(self) -> dict:
        if not self.celery:
            return {}
        return {
            "AIRFLOW__CELERY__BROKER_URL": self.redis.url,
            # the task states, in the metadata DB's PostgreSQL (Celery's tables celery_taskmeta, celery_tasksetmeta)
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{self.postgres.url}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
        }

    def start(self, timeout: float = 240) -> None:
        t0 = time.monotonic()
        self.sampler.start()
        self.postgres.start()
        self.metrics["start"]["postgres_s"] = round(time.monotonic() - t0, 1)
        if self.redis is not None:
            t = time.monotonic()
            self.redis.start()
            self.metrics["start"]["redis_s"] = round(time.monotonic() - t, 1)

        self.port = free_port()
        self.env = self._environment()
        t = time.monotonic()
        done = self.airflow("db", "migrate", timeout=300)
        (self.logs / "db-migrate.log").write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            raise RuntimeError(f"airflow db migrate exited {done.returncode}:\n"
                               f"{tail(self.logs / 'db-migrate.log', 60)}")
        self.metrics["start"]["db_migrate_s"] = round(time.monotonic() - t, 1)
        # the pools of one slot of the writer tasks, as `make airflow-init` and compose's airflow-init create them (a
        # task in a pool that does not exist is never scheduled): imported while the services start (~10 s of CLI
        # start-up saved), done before start() returns and a test triggers anything
        from regime.orchestration import POOLS_FILE

        with open(self.logs / "pools-import.log", "wb") as out:
            pools = subprocess.Popen([AIRFLOW, "pools", "import", str(POOLS_FILE)], env=self.env, cwd=self.home,
                                     stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        t = time.monotonic()
        for name, args in SERVICE_COMMANDS.items():
            if name in CELERY_ONLY:
                continue
            if name == "api-server":
                args = [*args, "--host", "127.0.0.1", "--port", str(self.port)]
            service = Service(name, [AIRFLOW, *args], self.logs / f"{name}.log")
            self.services.append(service)
            service.start(self.env, cwd=self.home)
        for i, node in enumerate(self.worker_names, start=1):
            args = [*SERVICE_COMMANDS["celery-worker"], "--celery-hostname", node,
                    "--concurrency", str(self.worker_concurrency)]
            service = Service(f"celery-worker-{i}", [AIRFLOW, *args], self.logs / f"celery-worker-{i}.log")
            self.services.append(service)
            service.start(self.env, cwd=self.home)

        deadline = t + timeout

        def left() -> float:
            return max(1.0, deadline - time.monotonic())

        wait_until("the api-server answers", lambda: requests.get(
            f"{self.base_url}/api/v2/monitor/health", timeout=5).status_code == 200, left(), alive=self.check_alive)
        self.metrics["start"]["api_up_after_spawn_s"] = round(time.monotonic() - t, 1)
        self.token = self._token()
        wait_until("scheduler, dag-processor and triggerer heartbeat", self._all_healthy, left(),
                   alive=self.check_alive)
        self.metrics["start"]["healthy_after_spawn_s"] = round(time.monotonic() - t, 1)
        if self.celery:
            wait_until(f"the Celery workers {self.worker_names} answer a ping",
                       lambda: set(self.worker_names) <= self.celery_ping(), left(), interval=1,
                       alive=self.check_alive)
            self.metrics["start"]["workers_ready_after_spawn_s"] = round(time.monotonic() - t, 1)
        wait_until(f"the DAGs {self.DAGS} are parsed", lambda: set(self.DAGS) <= self.dag_ids(), left(),
                   interval=1, alive=self.check_alive)
        self.metrics["start"]["dags_parsed_after_spawn_s"] = round(time.monotonic() - t, 1)
        if pools.wait(timeout=left()) != 0:
            raise RuntimeError(f"airflow pools import exited {pools.returncode}:\n"
                               f"{tail(self.logs / 'pools-import.log', 60)}")
        self.metrics["start"]["pools_imported_after_spawn_s"] = round(time.monotonic() - t, 1)
        self.metrics["start"]["total_s"] = round(time.monotonic() - t0, 1)
        self.write_metrics()

    def _token(self) -> str:
        response = requests.post(f"{self.base_url}/auth/token", json={"username": self.user,
                                                                       "password": self.password}, timeout=30)
        assert response.status_code == 201, f"POST /auth/token: {response.status_code} {response.text}"
        return response.json()["access_token"]

    def _all_healthy(self) -> bool:
        health = requests.get(f"{self.base_url}/api/v2/monitor/health", timeout=5).json()
        return all(health.get(k, {}).get("status") == "healthy"
                   for k in ("metadatabase", "scheduler", "dag_processor", "triggerer"))

    def celery_ping(self) -> set[str]:
        """The node names of the Celery workers that answer a ping through the broker within 2 s."""
        from celery import Celery

        app = Celery("regime-e2e-ping", broker=self.redis.url)
        try:
            return {name for reply in app.control.ping(timeout=2.0) or [] for name in reply}
        finally:
            app.close()

    def celery_executions(self, run_id: str | None = None) -> list[dict]:
        """What each Celery worker ran, from its log: worker (node name), celery_id, ti_id, task_id, dag_id,
        run_id, try_number; of `run_id` only if given."""
        found = []
        for i, node in enumerate(self.worker_names, start=1):
            log = self.logs / f"celery-worker-{i}.log"
            for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
                if (m := _EXECUTING.search(line)) and run_id in (None, m["run_id"]):
                    found.append({"worker": node, **m.groupdict(), "try_number": int(m["try_number"])})
        return found

    def sql(self, query: str, *params) -> list[tuple]:
        """Rows of a query on the metadata DB (read only: for assertions)."""
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=self.postgres.port, user=self.postgres.user,
                               dbname=self.postgres.db)
        try:
            con.set_session(readonly=True, autocommit=True)
            with con.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchall()
        finally:
            con.close()

    def check_alive(self) -> None:
        for service in self.all_services():
            service.check_alive()

    def stop(self) -> None:
        """Airflow's processes and the Celery workers first (together), then Redis, then PostgreSQL; then the
        final metrics."""
        with contextlib.suppress(Exception):
            self.sampler.sample()
        self.sampler.stop()
        stop_services(self.services, timeout=30)
        if self.redis is not None:
            self.redis.stop()
        self.postgres.stop()
        self.metrics["stop"] = {s.name: s.stopped for s in self.all_services()}
        self.write_metrics()

    def __enter__(self) -> AirflowStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------------------ the REST API
    def api(self, method: str, path: str, expect: int | tuple = (200,), **kwargs) -> dict:
        """A call to the public REST API (`/api/v2/...`) with the admin's token; fails unless the status is in
        `expect`."""
        expect = (expect,) if isinstance(expect, int) else expect
        response = requests.request(method, f"{self.base_url}/api/v2/{path.lstrip('/')}",
                                    headers={"Authorization": f"Bearer {self.token}"}, timeout=30, **kwargs)
        assert response.status_code in expect, f"{method} {path}: {response.status_code} {response.text[:2000]}"
        return response.json() if response.content else {}

    def dag_ids(self) -> set[str]:
        return {d["dag_id"] for d in self.api("GET", "dags", params={"limit": 100})["dags"]}

    def unpause(self, dag_id: str) -> None:
        dag = self.api("PATCH", f"dags/{dag_id}", json={"is_paused": False})
        assert dag["is_paused"] is False

    def trigger(self, dag_id: str, conf: dict) -> str:
        """A manual run through the REST API (no logical date); its run id."""
        run = self.api("POST", f"dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf}, expect=200)
        return run["dag_run_id"]

    def trigger_cli(self, dag_id: str, conf: dict) -> str:
        """A manual run through `airflow dags trigger` (in the stack's environment); its run id."""
        done = self.airflow("dags", "trigger", dag_id, "--conf", json.dumps(conf), "--output", "json")
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        rows = next(json.loads(line) for line in reversed(done.stdout.splitlines()) if line.startswith("["))
        return rows[0]["dag_run_id"]

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 480) -> dict:
        """Wait (bounded) until the run ended; the run as the API gives it, with `wall_s` from the call."""
        t0 = time.monotonic()
        run = wait_until(f"{dag_id} run {run_id} ends", lambda: (r := self.run(dag_id, run_id))["state"] in FINISHED
                         and r, timeout, interval=2, alive=self.check_alive)
        run["wall_s"] = round(time.monotonic() - t0, 1)
        return run

    def describe(self, dag_id: str, run_id: str, log_lines: int = 40) -> str:
        """The run's tasks and states and the end of each unsuccessful task's log: for assertion messages."""
        lines = []
        for ti in self.task_instances(dag_id, run_id):
            lines.append(f"{ti['task_id']}: {ti['state']} (try {ti['try_number']})")
            if ti["state"] != "success":
                for path in sorted(self.task_log_files(dag_id, run_id, ti["task_id"])):
                    lines.append(f"--- {path}\n{tail(path, log_lines)}")
        return "\n".join(lines)

    def task_log_files(self, dag_id: str, run_id: str | None = None, task_id: str | None = None) -> list[Path]:
        folder = self.home / "logs" / f"dag_id={dag_id}"
        pattern = f"run_id={run_id or '*'}/task_id={task_id or '*'}/**/*.log"
        return [p for p in folder.glob(pattern) if p.is_file()]

    # ------------------------------------------------------------------------------------------------- the rest
    def airflow(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """The `airflow` CLI in the stack's environment (metadata DB, settings, REGIME_*)."""
        return subprocess.run([AIRFLOW, *args], env=self.env, cwd=self.home, capture_output=True, text=True,
                              timeout=timeout)

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)

    def listening(self) -> list[tuple[str, str, int]]:
        """(service, address, port) of every listening TCP socket of the stack's processes."""
        import psutil

        found = []
        for service in self.all_services():
            for proc in service.tree():
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    for c in proc.net_connections(kind="inet"):
                        if c.status == psutil.CONN_LISTEN:
                            found.append((service.name, c.laddr.ip, c.laddr.port))
        return sorted(set(found))

    def write_metrics(self) -> Path:
        self.metrics["memory_peak"] = self.sampler.peak
        self.metrics["memory_samples"] = self.sampler.samples
        path = self.root / "metrics.json"
        path.write_text(json.dumps(self.metrics, indent=2, default=str) + "\n")
        return path

    def log_files(self) -> list[Path]:
        """Every log the stack wrote: its services' (`logs/`) and its tasks' (AIRFLOW_HOME's `logs/`)."""
        return sorted(p for folder in (self.logs, self.home / "logs") for p in folder.rglob("*") if p.is_file())

    def log_tails(self, lines: int = 60) -> str:
        """The end of every service's log, then of the most recent task logs: printed when a test fails."""
        parts = [f"stack folder (kept): {self.root}"]
        for log in sorted(self.logs.glob("*.log")):
            parts.append(f"===== {log.name} (last {lines} lines; without 2xx access lines)\n"
                         f"{tail(log, lines, skip=_routine)}")
        task_logs = sorted((self.home / "logs").glob("dag_id=*/**/*.log"), key=lambda p: p.stat().st_mtime)
        for log in task_logs[-4:]:
            parts.append(f"===== task log {log.relative_to(self.home)}\n{tail(log, lines)}")
        return "\n".join(parts)
