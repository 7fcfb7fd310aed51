"""The session's real Airflow stack (tests/e2e/stack.py), its mail catcher and data dir, and the stack's logs in the
report of a failed test.

The stack is started once, by the first e2e test that asks for it, and stopped after the last test of this package
(package scope: it does not idle through the rest of the suite);
its REGIME_* settings (data dir, a private copy of the sample mirror that a test may break and restore, mirror
source, recipients) and the operators' Variable are fixed when its processes start. Its metrics (start times, each
run's time, peak memory of all its processes) go to `<stack root>/metrics.json` and into the terminal summary."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import SAMPLE_MIRROR

from .stack import AirflowStack

_STACK: dict[str, AirflowStack] = {}


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
    mirror = root / "mirror"
    shutil.copytree(SAMPLE_MIRROR, mirror)
    regime_env = {
        "REGIME_DATA_DIR": str(root / "data"),
        "REGIME_MIRROR_DIR": str(mirror),
        "REGIME_SOURCE": "mirror",
        "REGIME_ALERT_TO": "analyst@example.test",
    }
    airflow = AirflowStack(root, e2e_mail, regime_env)
    _STACK["current"] = airflow
    with airflow:
        yield airflow
    print(f"\ne2e stack metrics ({airflow.root / 'metrics.json'}):\n{json.dumps(airflow.metrics, indent=2)}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed e2e test (or a stack that did not start) carries the tails of the stack's logs in its report."""
    report = yield
    airflow = _STACK.get("current")
    if report.failed and airflow is not None:
        try:
            report.sections.append(("airflow stack logs", airflow.log_tails()))
        except Exception as exc:  # never hide the failure itself
            report.sections.append(("airflow stack logs", f"could not read the logs: {exc!r}"))
    return report


def pytest_terminal_summary(terminalreporter):
    """One line per measurement (the whole JSON is in metrics.json)."""
    airflow = _STACK.get("current")
    if airflow is None or not airflow.metrics.get("start"):
        return
    m = airflow.metrics
    terminalreporter.write_sep("-", f"e2e stack metrics: {airflow.root / 'metrics.json'}")
    terminalreporter.write_line(f"start (s): {json.dumps(m['start'])}")
    for name, run in m["runs"].items():
        terminalreporter.write_line(f"run {name}: {run['state']}, trigger to end {run['trigger_to_end_s']} s (start "
                                    f"to end {run['start_to_end_s']} s), tasks (s): {json.dumps(run['tasks_s'])}")
    terminalreporter.write_line(f"memory peak: {json.dumps(m.get('memory_peak'))}")
    if m.get("stop"):
        terminalreporter.write_line(f"stop: {json.dumps(m['stop'])}")
