"""Shared fixtures: an isolated data dir and mirror per test, a real Airflow home with a migrated SQLite
metadata DB per session, and a real SMTP server on 127.0.0.1."""

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


@pytest.fixture(scope="module")
def sample_template(tmp_path_factory):
    """The bundled sample ingested, built, validated and published as of its last session, with the run's report,
    once per module: copy it with `published`."""
    from regime import pipeline
    from regime.config import get_settings

    mp = pytest.MonkeyPatch()
    mp.setenv("REGIME_DATA_DIR", str(tmp_path_factory.mktemp("sample-published") / "data"))
    mp.setenv("REGIME_MIRROR_DIR", str(SAMPLE_MIRROR))
    settings = get_settings()
    for name in ("index_prices", "options_volume", "cftc_tff", "etf_nav"):
        pipeline.ingest(name, SAMPLE_LAST, settings)
    pipeline.build_validate_publish(SAMPLE_LAST, settings)
    pipeline.report(SAMPLE_LAST, settings)
    mp.undo()
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
