"""The session's real Airflow stacks (tests/e2e/stack.py), their mail catcher and data dirs, and a stack's logs in the
report of a failed test.

`stack` (LocalExecutor) is started once, by the first e2e test that asks for it, and stopped after the last test of
this package (package scope: it does not idle through the rest of the suite). `celery_stack` (CeleryExecutor, Redis,
two Celery workers) lives for one module, test_celery.py, whose tests run first in this package: it is stopped
before `stack` starts, so the two never compete for the machine's cores (nor double its memory).
A stack's REGIME_* settings (data dir, a private copy of the sample mirror that a test may break and restore, mirror
source, recipients) and the operators' Variable are fixed when its processes start. The Celery stack also keeps its
lake (REGIME_LAKE_URI) and publishes (REGIME_PUBLISH_URI) in a bucket of a moto_server of its own (`lake_bucket`),
its credentials given as operators give them: the Airflow connection REGIME_S3_CONN_ID names, defined by an
AIRFLOW_CONN_<ID> variable (JSON) in the services' environment only; the LocalExecutor stack keeps the local lake.
Its metrics (start times, each run's time, peak memory of all its processes) go to `<stack root>/metrics.json` and
into the terminal summary."""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import SAMPLE_MIRROR, started_moto_server

from .stack import AirflowStack

_STACK: dict[str, AirflowStack] = {}   # fixture name -> its stack, once started
FIRST = ("test_celery.py",)            # the modules of this package that run before the others, in this order


def pytest_collection_modifyitems(items):
    """test_celery.py's tests first among this package's (the rest keep their order): its stack is stopped at the end
    of its module, before the package-scoped `stack` is started by the next module. Under pytest-xdist the package is
    one work unit (tests/conftest.py, SHARED_WORKER): one worker runs all of it, in this order, so at most one stack
    runs at a time and `stack` is set up once."""
    here = Path(__file__).parent
    positions = [i for i, item in enumerate(items) if item.path.parent == here]
    ours = [items[i] for i in positions]
    ours.sort(key=lambda item: FIRST.index(item.path.name) if item.path.name in FIRST else len(FIRST))  # stable
    for i, item in zip(positions, ours, strict=True):
        items[i] = item


def _regime_env(root: Path) -> dict:
    """A stack's REGIME_* settings: its own data dir and a private copy of the sample mirror under `root`."""
    mirror = root / "mirror"
    shutil.copytree(SAMPLE_MIRROR, mirror)
    return {
        "REGIME_DATA_DIR": str(root / "data"),
        "REGIME_MIRROR_DIR": str(mirror),
        "REGIME_SOURCE": "mirror",
        "REGIME_ALERT_TO": "analyst@example.test",
    }


@pytest.fixture(scope="package")
def e2e_mail():
    """The SMTP server (127.0.0.1, free port) that the stack's `smtp_default` connection points at."""
    from regime.mailcatcher import MailCatcher

    with MailCatcher() as catcher:
        yield catcher


@pytest.fixture(scope="package")
def stack(tmp_path_factory, e2e_mail):
    """A running Airflow stack on PostgreSQL (see AirflowStack), shared by the e2e tests."""
    root = tmp_path_factory.mktemp("e2e-stack")
    airflow = AirflowStack(root, e2e_mail, _regime_env(root))
    _STACK["stack"] = airflow
    with airflow:
        yield airflow
    print(f"\ne2e stack metrics ({airflow.root / 'metrics.json'}):\n{json.dumps(airflow.metrics, indent=2)}")


@dataclass(frozen=True)
class LakeBucket:
    """The Celery stack's bucket: the moto_server holding it, the lake's and the publish location's s3:// URIs."""

    server: object  # tests/s3.py MotoServer
    bucket: str
    lake_prefix: str
    publish_prefix: str
    conn_id: str = "regime_s3"

    @property
    def lake_uri(self) -> str:
        return f"s3://{self.bucket}/{self.lake_prefix}"

    @property
    def publish_uri(self) -> str:
        return f"s3://{self.bucket}/{self.publish_prefix}"

    def regime_env(self) -> dict:
        return {"REGIME_LAKE_URI": self.lake_uri, "REGIME_PUBLISH_URI": self.publish_uri,
                "REGIME_S3_CONN_ID": self.conn_id}

    def airflow_env(self) -> dict:
        """The connection (login: key id, password: secret key, extra: endpoint_url, region_name) as an
        AIRFLOW_CONN_<ID> variable: the only place the Airflow services get the credentials from."""
        env = self.server.env
        conn = {"conn_type": "aws", "login": env["AWS_ACCESS_KEY_ID"], "password": env["AWS_SECRET_ACCESS_KEY"],
                "extra": {"endpoint_url": self.server.endpoint, "region_name": env["AWS_REGION"]}}
        return {f"AIRFLOW_CONN_{self.conn_id.upper()}": json.dumps(conn)}

    def objects(self, prefix: str) -> dict[str, int]:
        """Key (relative to `prefix`) -> size of every object under `prefix` of the bucket."""
        import pyarrow.fs as pafs

        root = f"{self.bucket}/{prefix}"
        infos = self.server.filesystem().get_file_info(pafs.FileSelector(root, recursive=True,
                                                                         allow_not_found=True))
        return {i.path.removeprefix(root + "/"): i.size for i in infos if i.type == pafs.FileType.File}

    def read(self, key: str) -> bytes:
        with self.server.filesystem().open_input_stream(f"{self.bucket}/{key}") as stream:
            return stream.read()

    def cpu_s(self) -> float:
        """CPU seconds the moto_server process used so far."""
        import psutil

        times = psutil.Process(self.server.process.pid).cpu_times()
        return round(times.user + times.system, 1)


@pytest.fixture(scope="module")
def lake_bucket():
    """A moto_server of its own (tests/s3.py) and an empty bucket in it, for the Celery stack's lake and publish
    location; skipped without moto_server (in CI: failed), like the `moto` fixture."""
    with started_moto_server() as server:
        yield LakeBucket(server, server.make_bucket(f"regime-e2e-{uuid.uuid4().hex[:8]}"), "team/regime",
                         "team/published")


@pytest.fixture(scope="module")
def celery_stack(tmp_path_factory, e2e_mail, lake_bucket):
    """The same stack with the CeleryExecutor: Redis as the broker, PostgreSQL as the result backend and two Celery
    workers (worker1, worker2) of 2 slots each, separate processes; the lake and the publish location in
    `lake_bucket`, credentials through an Airflow connection; for the module that asks for it."""
    root = tmp_path_factory.mktemp("e2e-celery-stack")
    airflow = AirflowStack(root, e2e_mail, {**_regime_env(root), **lake_bucket.regime_env()},
                           extra_env=lake_bucket.airflow_env(), executor="CeleryExecutor", workers=2,
                           worker_concurrency=2)
    _STACK["celery_stack"] = airflow
    with airflow:
        yield airflow
    print(f"\ne2e Celery stack metrics ({airflow.root / 'metrics.json'}):\n{json.dumps(airflow.metrics, indent=2)}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed e2e test (or a stack that did not start) carries the tails of its stack's logs in its report."""
    report = yield
    if not report.failed:
        return report
    for name in getattr(item, "fixturenames", ()):
        airflow = _STACK.get(name)
        if airflow is None:
            continue
        try:
            report.sections.append((f"airflow stack logs ({name})", airflow.log_tails()))
        except Exception as exc:  # never hide the failure itself
            report.sections.append((f"airflow stack logs ({name})", f"could not read the logs: {exc!r}"))
    return report


def _summary_lines() -> list[str]:
    """One line per measurement and stack (the whole JSON is in each stack's metrics.json); a line starting with
    "-- " is a heading."""
    lines = []
    for fixture, airflow in _STACK.items():
        m = airflow.metrics
        if not m.get("start"):
            continue
        lines.append(f"-- e2e {fixture} ({airflow.executor}) metrics: {airflow.root / 'metrics.json'}")
        lines.append(f"start (s): {json.dumps(m['start'])}")
        for name, run in m["runs"].items():
            lines.append(f"run {name}: {run['state']}, trigger to end {run['trigger_to_end_s']} s "
                         f"(start to end {run['start_to_end_s']} s), tasks (s): {json.dumps(run['tasks_s'])}")
        lines.append(f"memory peak: {json.dumps(m.get('memory_peak'))}")
        if m.get("stop"):
            lines.append(f"stop: {json.dumps(m['stop'])}")
    return lines


def pytest_sessionfinish(session):
    """Under pytest-xdist the stacks ran in a worker: their lines go to the controller, which prints them
    (tests/conftest.py, pytest_testnodedown)."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["summary_lines"] = _summary_lines()


def pytest_terminal_summary(terminalreporter):
    for line in _summary_lines():
        if line.startswith("-- "):
            terminalreporter.write_sep("-", line[3:])
        else:
            terminalreporter.write_line(line)
