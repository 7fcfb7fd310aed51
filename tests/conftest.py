"""Shared fixtures: an isolated data dir and mirror per test, a real Airflow home with a migrated SQLite
metadata DB per session (per pytest-xdist worker: each worker has its own temporary folder), and a real SMTP server
on 127.0.0.1 (a free port per server). Also the suite's own rules:

- tiers: a test marked `e2e`, `airflow` or `reference` is `slow` too; `make test-fast` runs `-m "not slow"`, `make test`
  everything (README, "Tests");
- pytest-xdist: which tests share a worker (`work_unit`): the e2e package is one unit, so one worker runs it in its
  order and at most one Airflow stack runs at a time; modules whose module-scoped fixture builds a warehouse are one
  unit each, so it is built once; every other test is a unit of its own;
- the run's order (`longest_first`): the costliest work units first (the e2e package, the DAG runs through Airflow,
  then the other slow tests), each module's tests together and in their order, so that the two workers finish
  together;
- the bundled sample ingested (`ingested_sample`) and published (`published_run`): made once per session (per
  worker) and copied, or only read, by every test that starts from it;
- in CI (CI=true) a missing ../shared/reference-data is an error, not a skip;
- the last lines of the report name what was skipped (and deselected), and why."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
SAMPLE_MIRROR = PROJECT / "include" / "sample" / "mirror"
REFERENCE = PROJECT.parent / "shared" / "reference-data"
REFERENCE_MIRROR = REFERENCE / "mirror"
SAMPLE_LAST = date(2024, 7, 17)
SAMPLE_DATASETS = ("index_prices", "options_volume", "cftc_tff", "etf_nav")
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def requires_reference(*parts: str):
    path = REFERENCE.joinpath(*parts)
    return pytest.mark.skipif(not path.exists(), reason=f"reference data not present at {path}")


@pytest.fixture
def mirror(tmp_path) -> Path:
    """A private copy of the bundled sample mirror that a test may break."""
    target = tmp_path / "mirror"
    shutil.copytree(SAMPLE_MIRROR, target)
    return target


@pytest.fixture
def regime_env(tmp_path, mirror, monkeypatch) -> dict:
    """REGIME_* settings for one test: its own data dir and mirror."""
    env = {
        "REGIME_DATA_DIR": str(tmp_path / "data"),
        "REGIME_MIRROR_DIR": str(mirror),
        "REGIME_SOURCE": "mirror",
        "REGIME_ALERT_TO": "analyst@example.test",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def settings(regime_env):
    from regime.config import get_settings

    return get_settings()


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory) -> dict:
    """A real Airflow home with a migrated SQLite metadata DB, shared by the session's DAG runs."""
    home = tmp_path_factory.mktemp("airflow-home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__EMAIL__FROM_EMAIL": "regime-monitor@localhost",
    }
    done = subprocess.run([AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return env


def started_moto_server():
    """A real S3-compatible server on 127.0.0.1 (moto_server, tests/s3.py), not yet entered; the test is skipped
    without the program (in CI: failed)."""
    from s3 import MotoServer, moto_server_program

    if moto_server_program() is None:
        missing = "moto_server not found (`make s3server` installs it; REGIME_TEST_MOTO_SERVER names another)"
        if in_ci():
            pytest.fail(f"CI is set: {missing}")
        pytest.skip(missing)
    return MotoServer()


@pytest.fixture(scope="session")
def moto():
    """A real S3-compatible server on 127.0.0.1 (moto_server, tests/s3.py) for the session; skipped without one."""
    with started_moto_server() as server:
        yield server


@pytest.fixture
def s3(moto, monkeypatch):
    """The server's AWS_* variables set, no REGIME_S3_CONN_ID, and a new bucket: its s3:// location."""
    import uuid

    from regime.objectstore import parse_location

    for key, value in moto.env.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "REGIME_S3_CONN_ID"):
        monkeypatch.delenv(key, raising=False)
    bucket = moto.make_bucket(f"regime-{uuid.uuid4().hex[:12]}")
    return parse_location(f"s3://{bucket}/team/regime")


@pytest.fixture
def smtp():
    from regime.mailcatcher import MailCatcher

    with MailCatcher() as catcher:
        yield catcher


_INGESTED: dict[date, Path] = {}   # as_of -> the data dir ingested_sample made in this process
_PUBLISHED: dict[date, tuple] = {}   # as_of -> (settings, summary) of the run published_run made in this process


@contextlib.contextmanager
def _sample_settings(root: Path):
    """Settings on the bundled sample mirror, with a data dir under `root` and every other REGIME_* at its default
    (whatever the test that asks first has set)."""
    from regime.config import get_settings

    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("REGIME_")]:
            mp.delenv(key)
        mp.setenv("REGIME_DATA_DIR", str(root / "data"))
        mp.setenv("REGIME_MIRROR_DIR", str(SAMPLE_MIRROR))
        yield get_settings()


def ingested_sample(tmp_path_factory, as_of: date = SAMPLE_LAST) -> Path:
    """The data dir of the bundled sample's four datasets ingested as of `as_of` (lake, raw landing, state), nothing
    built: once per session (per xdist worker), never changed. Copy it (`ingested`) before changing anything."""
    if as_of not in _INGESTED:
        from regime import pipeline

        with _sample_settings(tmp_path_factory.mktemp(f"sample-ingested-{as_of}")) as settings:
            for name in SAMPLE_DATASETS:
                pipeline.ingest(name, as_of, settings)
        _INGESTED[as_of] = settings.data_dir
    return _INGESTED[as_of]


def published_run(tmp_path_factory, as_of: date = SAMPLE_LAST) -> tuple:
    """The bundled sample ingested (4 datasets), built, validated and published as of `as_of`, with the run's
    report: once per session (per xdist worker). Returns the run's settings (its data dir) and the summary of
    build_validate_publish. Shared and never changed: read it, or copy its data dir (`published`, or
    shutil.copytree) before changing anything."""
    if as_of not in _PUBLISHED:
        from regime import pipeline

        with _sample_settings(tmp_path_factory.mktemp(f"sample-published-{as_of}")) as settings:
            for name in SAMPLE_DATASETS:
                pipeline.ingest(name, as_of, settings)
            summary = pipeline.build_validate_publish(as_of, settings)
            pipeline.report(as_of, settings)
        _PUBLISHED[as_of] = (settings, summary)
    return _PUBLISHED[as_of]


def published_sample(tmp_path_factory, as_of: date = SAMPLE_LAST) -> Path:
    """The data dir of published_run: copy it before changing anything."""
    return published_run(tmp_path_factory, as_of)[0].data_dir


@pytest.fixture(scope="session")
def sample_template(tmp_path_factory) -> Path:
    """The published sample as of its last session (published_sample): each test copies it with `published`."""
    return published_sample(tmp_path_factory)


@pytest.fixture
def ingested(tmp_path_factory, regime_env, settings):
    """A private copy of the sample ingested as of its last session (ingested_sample: lake, raw landing, state,
    nothing built) for one test: its settings."""
    shutil.copytree(ingested_sample(tmp_path_factory), settings.data_dir)
    return settings


@pytest.fixture
def published(sample_template, regime_env, settings):
    """A private copy of the published sample's data dir (lake, warehouse, report, alert outbox) for one test."""
    shutil.copytree(sample_template, settings.data_dir)
    return settings


@pytest.fixture
def smtp_conn(monkeypatch, smtp):
    """The SMTP server of `smtp` as the Airflow connection the pipeline mails through."""
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp.connection_uri_json())
    return smtp


@pytest.fixture
def run_dag(airflow_home, regime_env, smtp):
    """Run a DAG through Airflow (`airflow dags test`) with this test's settings and SMTP server."""

    def run(as_of: date, dag_id: str = "regime_daily", extra_env: dict | None = None):
        env = {**airflow_home, **regime_env, "AIRFLOW_CONN_SMTP_DEFAULT": smtp.connection_uri_json(),
               **(extra_env or {})}
        return subprocess.run([AIRFLOW, "dags", "test", dag_id, as_of.isoformat()], env=env,
                              capture_output=True, text=True, timeout=600)

    return run


def killed_once_it_says(line: str, *command: str) -> None:
    """Run `command` with this Python (and this test's import path) until it prints `line`, then SIGKILL it: a
    process killed at a point of its own choosing."""
    import signal

    child = subprocess.Popen([sys.executable, *command], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert child.stdout.readline().strip() == line
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)


def file_digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): file_digest(p) for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------ the suite's own rules
SLOW_MARKS = ("e2e", "airflow", "reference")   # each implies `slow`: left out of `make test-fast`
# pytest-xdist work units that must stay whole (see work_unit): a path prefix (relative to the rootdir) -> its group
SHARED_WORKER = {
    "tests/e2e/": "e2e",   # one stack at a time (each is ~10 processes and 3 GB), package-scoped `stack` set up once
}
# modules whose module-scoped fixture builds a warehouse: one work unit each, so that it is built once, not on both
# (test_lake_bucket's `runs`, two whole sample runs with moto_server, 100-160 s: seen set up on two of three workers)
WHOLE_MODULES = {
    "tests/test_analogs_reference.py",
    "tests/test_lake_bucket.py",
    "tests/test_cli.py",
    "tests/test_analysts_doc.py",
    "tests/test_report.py",
    "tests/test_putcall.py",
    "tests/test_reference_acceptance.py",
    "tests/test_reference_sources.py",
}
# the expected cost of a test by its first mark found here (else 1), for ordering the run: see longest_first
COST = (("e2e", 1000), ("airflow", 100), ("reference", 30), ("slow", 10))
_worker_summaries: list[tuple[str, list[str]]] = []   # (worker id, lines) sent by the xdist workers
_deselected: dict[str, int] = {}   # "here": deselected in this process; a worker id: as that worker reported


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def pytest_configure(config):
    # in the controller (or a run without xdist) only: a worker need not say it again
    if in_ci() and not REFERENCE.is_dir() and not hasattr(config, "workerinput"):
        raise pytest.UsageError(
            f"CI is set but the reference data is missing: {REFERENCE} does not exist. CI runs the reference tests "
            "(marker `reference`) instead of skipping them: lay ../shared beside the clone, or unset CI to skip them.")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(items):
    for item in items:
        if not item.get_closest_marker("slow") and any(item.get_closest_marker(m) for m in SLOW_MARKS):
            item.add_marker(pytest.mark.slow)
    longest_first(items)


def _cost(item) -> int:
    """A test's expected cost, from its marks: the order of magnitude only."""
    return next((cost for mark, cost in COST if item.get_closest_marker(mark)), 1)


def _scope(nodeid: str) -> str:
    """What must stay together in the run's order: a SHARED_WORKER group, else the test's module (its module-scoped
    fixtures are then set up once per worker)."""
    path = nodeid.split("::", 1)[0]
    return next((group for prefix, group in SHARED_WORKER.items() if path.startswith(prefix)), path)


def longest_first(items: list) -> None:
    """Order the tests (in place) by the expected cost of their scope, the costliest first; a scope keeps its tests
    together and in their order (the sort is stable). pytest-xdist hands the work units out in this order, so the
    long ones (the e2e package, the DAG runs, the whole modules) start early, and what is left for the end is short
    tests that keep both workers busy until the last one, instead of one long unit that leaves the other idle.
    A scope's cost: that of its costliest work unit (a test, or a whole module), then its total."""
    units: dict[str, int] = {}
    for item in items:
        unit = work_unit(item.nodeid)
        units[unit] = units.get(unit, 0) + _cost(item)
    largest: dict[str, int] = {}
    total: dict[str, int] = {}
    for item in items:
        scope = _scope(item.nodeid)
        largest[scope] = max(largest.get(scope, 0), units[work_unit(item.nodeid)])
        total[scope] = total.get(scope, 0) + _cost(item)
    items.sort(key=lambda item: (-largest[_scope(item.nodeid)], -total[_scope(item.nodeid)]))


def work_unit(nodeid: str) -> str:
    """The pytest-xdist work unit of a test: tests of one unit run on one worker, in collection order. A path
    prefix in SHARED_WORKER groups its tests; a module in WHOLE_MODULES is one unit; any other test is its own."""
    path = nodeid.split("::", 1)[0]
    for prefix, group in SHARED_WORKER.items():
        if path.startswith(prefix):
            return group
    if path in WHOLE_MODULES:
        return path
    return nodeid


def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's `load`/`loadgroup` scheduling with the units of `work_unit`, in collection order (longest_first
    put the costliest units first: the e2e package, the DAG runs). xdist's own `loadgroup` reads `xdist_group` marks
    through a node-id suffix that pytest 9.2 no longer lets it set (Node.nodeid is derived from Node._id): so the
    groups are named here, by path, where the controller sees only node ids."""
    if config.getvalue("dist") not in ("load", "loadgroup"):
        return None
    from xdist.scheduler import LoadScopeScheduling

    class WorkUnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False
    return WorkUnitScheduling(config, log)


def pytest_deselected(items):
    _deselected["here"] = _deselected.get("here", 0) + len(items)


def pytest_sessionfinish(session):
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:   # an xdist worker: what it deselected, for the controller's summary
        workeroutput["deselected"] = _deselected.get("here", 0)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """An xdist worker's summary lines (the e2e stacks' metrics, tests/e2e/conftest.py) and deselected count, for
    the controller's summary."""
    output = getattr(node, "workeroutput", {})
    if output.get("summary_lines"):
        _worker_summaries.append((node.gateway.id, output["summary_lines"]))
    if "deselected" in output:
        _deselected[node.gateway.id] = output["deselected"]


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return reason.removeprefix("Skipped: ")


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: after pytest's short test summary, before its last line
def pytest_terminal_summary(terminalreporter, config):
    try:
        return (yield)
    finally:
        for worker, lines in _worker_summaries:
            for line in lines:
                if line.startswith("-- "):
                    terminalreporter.write_sep("-", f"{line[3:]} (worker {worker})")
                else:
                    terminalreporter.write_line(line)
        skipped = [r for r in terminalreporter.stats.get("skipped", []) if r.when in ("setup", "call")]
        reasons: dict[str, int] = {}
        for report in skipped:
            reason = _skip_reason(report)
            reasons[reason] = reasons.get(reason, 0) + 1
        # every xdist worker collects (and deselects) the whole suite: one worker's count is the run's
        workers = [n for key, n in _deselected.items() if key != "here"]
        deselected = len(terminalreporter.stats.get("deselected", [])) or max(workers, default=0)
        text = f"skipped {len(skipped)}"
        if skipped:
            text += ": " + "; ".join(f"{n} × {reason}" for reason, n in
                                     sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))
        if deselected:
            how = f" by -m {config.option.markexpr!r}" if config.option.markexpr else ""
            text += f" | deselected {deselected}{how}"
        terminalreporter.write_sep("=", text, yellow=bool(skipped or deselected), green=not (skipped or deselected))
