"""Shared fixtures: an isolated data dir and mirror per test, a real Airflow home with a migrated SQLite
metadata DB per session (per pytest-xdist worker: each worker has its own temporary folder), and a real SMTP server
on 127.0.0.1 (a free port per server). Also the suite's own rules:

- tiers: a test marked `e2e`, `airflow` or `reference` is `slow` too; `make test-fast` runs `-m "not slow"`, `make test`
  everything (README, "Tests");
- pytest-xdist: which tests share a worker (`work_unit`): the e2e package is one unit, so one worker runs it in its
  order and at most one Airflow stack runs at a time; modules whose module-scoped fixture builds a warehouse are one
  unit each, so it is built once; every other test is a unit of its own;
- in CI (CI=true) a missing ../shared/reference-data is an error, not a skip;
- the last lines of the report name what was skipped (and deselected), and why."""

from __future__ import annotations

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


@pytest.fixture
def smtp():
    from regime.mailcatcher import MailCatcher

    with MailCatcher() as catcher:
        yield catcher


@pytest.fixture(scope="session")
def sample_template(tmp_path_factory):
    """The bundled sample ingested, built, validated and published as of its last session, with the run's report,
    once per session (per xdist worker): never changed, each test copies it with `published`."""
    from regime import pipeline
    from regime.config import get_settings

    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("REGIME_")]:  # the defaults, whichever test asks first
            mp.delenv(key)
        mp.setenv("REGIME_DATA_DIR", str(tmp_path_factory.mktemp("sample-published") / "data"))
        mp.setenv("REGIME_MIRROR_DIR", str(SAMPLE_MIRROR))
        settings = get_settings()
        for name in ("index_prices", "options_volume", "cftc_tff", "etf_nav"):
            pipeline.ingest(name, SAMPLE_LAST, settings)
        pipeline.build_validate_publish(SAMPLE_LAST, settings)
        pipeline.report(SAMPLE_LAST, settings)
    return settings.data_dir


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
WHOLE_MODULES = {
    "tests/test_cli.py",
    "tests/test_analysts_doc.py",
    "tests/test_report.py",
    "tests/test_validation_gate.py",
    "tests/test_reference_acceptance.py",
    "tests/test_reference_sources.py",
}
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
    """pytest-xdist's `load`/`loadgroup` scheduling with the units of `work_unit`, in collection order (the e2e
    package, the longest unit, is collected first). xdist's own `loadgroup` reads `xdist_group` marks through a
    node-id suffix that pytest 9.2 no longer lets it set (Node.nodeid is derived from Node._id): so the groups are
    named here, by path, where the controller sees only node ids."""
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
