"""The screenshot tour of `python -m regime.ui --screenshots DIR`: headless Chromium driven through the DevTools
protocol logs in, opens the DAG list, triggers regime_daily from its form and saves what an operator sees.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path

from regime import PROJECT_DIR
from regime.ui.config import AIRFLOW, UiError, free_port, load_config, service_environment
from regime.ui.services import HTTP, Ui, http_json

DAG_IDS = ("regime_daily", "regime_transform", "ingest_index_prices", "ingest_options_volume", "ingest_cftc_tff",
           "ingest_etf_nav")
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
        with HTTP.open(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
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
        from regime.orchestration import POOLS_FILE  # the writer tasks' pools: without them nothing is scheduled

        done = subprocess.run([AIRFLOW, "pools", "import", str(POOLS_FILE)],
                              env=service_environment(load_config(env, port)), capture_output=True, text=True,
                              timeout=300)
        if done.returncode != 0:
            raise UiError(f"airflow pools import exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
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
