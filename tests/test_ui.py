"""`make ui` (regime.ui): Airflow's UI on a migrated SQLite metadata DB, started the way `make ui` starts it (the
module, as a process of its own). The password it prints logs in, the REST API then lists the project's six DAGs,
the UI and its login page answer with HTML, everything listens on 127.0.0.1 only, a second UI on the same Airflow
home is refused, and Ctrl-C (SIGINT to the process) ends every process it started. Its errors say what to do."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests

from regime.ui import config as ui_config
from regime.ui import screenshots

pytestmark = pytest.mark.airflow

DAG_IDS = {"regime_daily", "regime_transform", "ingest_index_prices", "ingest_options_volume", "ingest_cftc_tff",
           "ingest_etf_nav", "ingest_options_putcall"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Launched:
    """`python -m regime.ui` in its own session, its output read line by line in a thread."""

    def __init__(self, env: dict, port: int):
        self.proc = subprocess.Popen([sys.executable, "-m", "regime.ui"], env={**env, "REGIME_UI_PORT": str(port)},
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def until(self, pattern: str, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            self.seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        raise AssertionError(f"{pattern!r} not printed within {timeout:.0f} s; output:\n{''.join(self.seen)}")

    def rest(self, timeout: float) -> str:
        self.proc.wait(timeout=timeout)
        time.sleep(0.2)
        while True:
            try:
                line = self.lines.get(timeout=2)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
        return "".join(self.seen)

    def tree(self) -> list[psutil.Process]:
        root = psutil.Process(self.proc.pid)
        return [root, *root.children(recursive=True)]

    def kill(self) -> None:
        """Last resort after a failed test: SIGKILL to everything it started."""
        if self.proc.poll() is None:
            for p in self.tree():
                with contextlib.suppress(psutil.NoSuchProcess):
                    p.kill()
            self.proc.wait(timeout=10)


def alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_make_ui_logs_in_lists_the_dags_and_stops_everything_on_ctrl_c(airflow_home):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    http = requests.Session()
    http.trust_env = False  # loopback: never through a proxy
    launched = Launched(airflow_home, port)
    try:
        url = launched.until(r"Airflow UI: (\S+)", timeout=240).group(1)
        user = launched.until(r"user:\s+(\S+)", timeout=5).group(1)
        password = launched.until(r"password:\s+(\S+)", timeout=5).group(1)
        stored = launched.until(r"kept in (\S+)", timeout=5).group(1)
        launched.until(r"Stop: Ctrl-C", timeout=5)
        assert url == base
        assert user == "admin"
        # the printed password is the one the SimpleAuthManager reads, in a file only its owner can read
        assert json.loads(Path(stored).read_text())["admin"] == password
        assert stat.S_IMODE(os.stat(stored).st_mode) == 0o600

        assert http.post(f"{base}/auth/token", json={"username": "admin", "password": password + "x"},
                         timeout=30).status_code == 401
        assert http.get(f"{base}/api/v2/dags", timeout=30).status_code == 401
        answer = http.post(f"{base}/auth/token", json={"username": "admin", "password": password}, timeout=30)
        assert answer.status_code == 201, answer.text
        auth = {"Authorization": f"Bearer {answer.json()['access_token']}"}

        listed: set[str] = set()
        deadline = time.monotonic() + 120
        while not listed >= DAG_IDS and time.monotonic() < deadline:  # the dag-processor parses them first
            time.sleep(1)
            dags = http.get(f"{base}/api/v2/dags?limit=100", headers=auth, timeout=30)
            assert dags.status_code == 200, dags.text
            listed = {d["dag_id"] for d in dags.json()["dags"]}
        assert listed == DAG_IDS

        health = http.get(f"{base}/api/v2/monitor/health", timeout=30).json()
        components = ui_config.COMPONENTS
        assert {name: health[name]["status"] for name in components} == dict.fromkeys(components, "healthy")

        page = http.get(f"{base}/", timeout=30)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "<title>Airflow</title>" in page.text and '<div id="root"' in page.text
        assert '<base href="/"' in page.text  # the React app's links and API calls: this server's root
        script = re.search(r'src="\./(static/assets/[^"]+\.js)"', page.text).group(1)
        js = http.get(f"{base}/{script}", timeout=30)
        assert js.status_code == 200 and "javascript" in js.headers["content-type"] and len(js.content) > 100_000
        login = http.get(f"{base}/auth/login", timeout=30)
        assert login.status_code == 200 and login.headers["content-type"].startswith("text/html")
        assert "./auth/static/assets/" in login.text

        tree = launched.tree()
        names = " ".join(" ".join(p.cmdline()) for p in tree)
        for part in ("api_server", "scheduler", "dag-processor", "triggerer"):
            assert part in names
        listening = {(c.laddr.ip, c.laddr.port) for p in tree for c in p.net_connections("tcp")
                     if c.status == psutil.CONN_LISTEN}
        assert (("127.0.0.1", port) in listening) and {ip for ip, _ in listening} == {"127.0.0.1"}, listening

        # one UI per Airflow home: a second one is refused before it starts anything
        second = subprocess.run([sys.executable, "-m", "regime.ui"],
                                env={**airflow_home, "REGIME_UI_PORT": str(free_port())},
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 2
        assert "already runs on" in second.stderr and f"pid {launched.proc.pid}" in second.stderr

        tree = launched.tree()  # everything it started, just before Ctrl-C
        assert len(tree) >= 5
        launched.proc.send_signal(signal.SIGINT)
        output = launched.rest(timeout=60)
        assert launched.proc.returncode == 0, output
        stopped = re.search(r"Stopped (\d+) processes in [\d.]+ s", output)
        assert stopped and int(stopped.group(1)) >= 4, output
        assert "killed after" not in output  # SIGTERM to the groups was enough
        time.sleep(1)
        left = [f"{p.pid} {' '.join(p.cmdline())[:80]}" for p in tree if alive(p)]
        assert left == []
        ui_config.check_port(port)  # and the port is free again for the next `make ui`
    finally:
        launched.kill()


def test_port_in_use_says_which_and_how_to_pick_another(airflow_home):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        t0 = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "regime.ui"], env={**airflow_home, "REGIME_UI_PORT": str(port)},
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"port {port} on 127.0.0.1 is not free" in done.stderr
    assert f"pid {os.getpid()}" in done.stderr  # who holds it
    other = int(re.search(r"make ui REGIME_UI_PORT=(\d+)", done.stderr).group(1))
    assert other != port
    assert time.monotonic() - t0 < 30  # nothing was started
    assert "Starting Airflow" not in done.stdout


def test_an_uninitialised_airflow_home_says_to_run_airflow_init(tmp_path, airflow_home):
    env = {**airflow_home, "AIRFLOW_HOME": str(tmp_path / "nowhere")}
    done = subprocess.run([sys.executable, "-m", "regime.ui"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "make airflow-init" in done.stderr and "no airflow.cfg" in done.stderr

    (tmp_path / "nowhere").mkdir()
    (tmp_path / "nowhere" / "airflow.cfg").write_text("[core]\n")
    done = subprocess.run([sys.executable, "-m", "regime.ui"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "airflow.db does not exist" in done.stderr and "make airflow-init" in done.stderr


def test_a_bad_port_says_what_a_port_is(airflow_home):
    done = subprocess.run([sys.executable, "-m", "regime.ui"], env={**airflow_home, "REGIME_UI_PORT": "80a"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "REGIME_UI_PORT='80a' is not a TCP port" in done.stderr


def test_the_password_is_generated_once_and_kept(tmp_path):
    env = {"AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer"}
    config = ui_config.load_config(env, port=free_port())
    assert config.login_file == tmp_path / "simple_auth_manager_passwords.json.generated"  # Airflow's default
    first = ui_config.ensure_passwords(config)
    assert set(first) == {"admin", "viewer"} and all(len(p) >= 16 for p in first.values())
    assert first["admin"] != first["viewer"]
    assert ui_config.ensure_passwords(config) == first  # the same on the next start
    assert json.loads(config.login_file.read_text()) == first
    assert stat.S_IMODE(config.login_file.stat().st_mode) == 0o600


def test_the_operations_guide_shows_every_screenshot_of_the_ui():
    """docs/operations.md embeds each docs/img/ui-*.png (made by `python -m regime.ui --screenshots docs/img`), and
    each is a 1280 x 900 PNG."""
    docs = Path(__file__).resolve().parents[1] / "docs"
    embedded = set(re.findall(r"\]\(img/(ui-[\w-]+\.png)\)", (docs / "operations.md").read_text()))
    files = {p.name for p in (docs / "img").glob("ui-*.png")}
    assert embedded == files and len(files) >= 4
    for name in files:
        head = (docs / "img" / name).read_bytes()[:24]
        assert head[:8] == b"\x89PNG\r\n\x1a\n"
        size = (int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"))
        assert size == (screenshots.WIDTH, screenshots.HEIGHT)


def test_a_password_set_before_is_kept_and_its_file_made_private(tmp_path):
    stored = tmp_path / "simple_auth_manager_passwords.json.generated"
    stored.write_text('{"admin": "chosen-by-the-operator"}\n')
    stored.chmod(0o644)
    config = ui_config.load_config({"AIRFLOW_HOME": str(tmp_path)}, port=free_port())
    assert ui_config.ensure_passwords(config) == {"admin": "chosen-by-the-operator"}
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600


def test_the_screenshots_run_as_of_the_sample_s_last_session():
    from conftest import SAMPLE_LAST, SAMPLE_MIRROR

    assert screenshots.mirror_last_session(SAMPLE_MIRROR) == SAMPLE_LAST
