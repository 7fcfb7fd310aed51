"""One writer without flock (issue #22): every task that writes the warehouse or a dataset's lake runs in an Airflow
pool of one slot, in every DAG, as the scheduler sees it (serialized); the pools are defined once
(include/regime/pools.json, regime.orchestration.POOLS_FILE), Airflow's `pools import` accepts that file, and every
place that starts a scheduler imports it: `make airflow-init` (so `make demo` and `make ui`), docker-compose.yml's
airflow-init, the e2e stack and regime.ui's screenshots. The race itself, two runs on two Celery workers:
tests/e2e/test_celery.py."""

from __future__ import annotations

import ast
import json
import re
import shlex
import subprocess
import sys

import pytest
import yaml

from conftest import AIRFLOW, PROJECT
from regime.orchestration import LAKE, POOLS_FILE, WAREHOUSE_POOL, ingest_pool

POOLS = json.loads(POOLS_FILE.read_text())
# what the writer tasks call (regime.orchestration): the dataset's ingest (lake, raw, quarantine, its journal) or the
# warehouse's build-validate-publish
WRITERS = {"ingest": "dataset", "ingest_session": "dataset", "build_validate_publish": "warehouse"}


def test_the_pools_file_defines_one_slot_per_writer_and_nothing_else():
    assert POOLS_FILE == PROJECT / "include" / "regime" / "pools.json"
    assert set(POOLS) == {WAREHOUSE_POOL, *(ingest_pool(d) for d in LAKE)}
    for name, spec in POOLS.items():
        # the format `airflow pools import` reads; a deferred task holds no slot (no task of ours defers)
        assert spec["slots"] == 1 and spec["include_deferred"] is False, name
        assert isinstance(spec["description"], str) and spec["description"], name


def _pool_keyword(decorator: ast.expr) -> str | None:
    """The `pool=` of a `@task(...)` decorator, as source text; None if it has none."""
    if isinstance(decorator, ast.Call):
        for keyword in decorator.keywords:
            if keyword.arg == "pool":
                return ast.unparse(keyword.value)
    return None


def test_every_task_that_calls_a_writer_names_a_pool_in_the_source():
    """Statically: in dags/ and regime.orchestration, each @task function whose body calls a writer (WRITERS) has a
    `pool=`; and the writers are the only functions of orchestration that call pipeline.ingest or
    pipeline.build_validate_publish."""
    orchestration = ast.parse((PROJECT / "include" / "regime" / "orchestration.py").read_text())
    callers = {node.name for node in ast.walk(orchestration) if isinstance(node, ast.FunctionDef)
               for call in ast.walk(node) if isinstance(call, ast.Call)
               and re.fullmatch(r"pipeline\.(ingest|build_validate_publish)", ast.unparse(call.func))}
    assert callers == set(WRITERS)
    found = {}
    for path in [*sorted((PROJECT / "dags").glob("*.py")), PROJECT / "include" / "regime" / "orchestration.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef):
                continue
            tasks = [d for d in node.decorator_list if ast.unparse(d).startswith("task")]
            calls = {ast.unparse(c.func).rpartition(".")[2] for c in ast.walk(node) if isinstance(c, ast.Call)}
            if tasks and calls & set(WRITERS):
                found[f"{path.name}:{node.name}"] = _pool_keyword(tasks[0])
    assert found == {
        "ingest.py:ingest": "ingest_pool(dataset)",
        **{f"regime_daily.py:ingest_{d}": f"ingest_pool('{d}')"
           for d in ("index_prices", "options_volume", "cftc_tff", "etf_nav")},
        "orchestration.py:build": "WAREHOUSE_POOL",
    }


@pytest.mark.slow  # a DagBag in a subprocess (~10 s); the static check above is the fast tier's
def test_every_dag_s_writer_tasks_run_in_their_pool_as_the_scheduler_sees_them(airflow_home):
    """The DAGs as the dag-processor serializes them for the scheduler: each ingest task in its dataset's pool, each
    build in the warehouse's, every other task in default_pool."""
    code = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization
bag = DagBag(dag_folder=sys.argv[1])
out = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    seen = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    out["dags"][dag_id] = {t.task_id: [t.pool, t.pool_slots] for t in seen.tasks}
print(json.dumps(out))
"""
    done = subprocess.run([sys.executable, "-c", code, str(PROJECT / "dags")], env=airflow_home,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    bag = json.loads(done.stdout.strip().splitlines()[-1])
    assert bag["errors"] == {}
    expected = {}
    for dag_id, tasks in bag["dags"].items():
        for task_id in tasks:
            dataset = task_id.removeprefix("ingest_")
            expected.setdefault(dag_id, {})[task_id] = [
                ingest_pool(dataset) if task_id.startswith("ingest_") else
                WAREHOUSE_POOL if task_id == "build_validate_publish" else "default_pool", 1]
    assert bag["dags"] == expected
    used = {p for tasks in bag["dags"].values() for p, _ in tasks.values()} - {"default_pool"}
    assert used == set(POOLS)  # every pool of the file is used, and no task uses one the file lacks
    assert bag["dags"]["regime_daily"]["build_validate_publish"][0] == \
        bag["dags"]["regime_transform"]["build_validate_publish"][0] == "regime_warehouse"
    assert {d: t[f"ingest_{d.removeprefix('ingest_')}"] for d, t in bag["dags"].items() if d.startswith("ingest_")} \
        == {f"ingest_{d}": [f"regime_ingest_{d}", 1] for d in LAKE}


@pytest.mark.slow  # three Airflow CLI calls (~15 s)
def test_airflow_imports_the_pools_file_as_it_is(airflow_home):
    """`airflow pools import` (what every init runs) accepts the file and creates each pool with its one slot; a second
    import changes nothing (an init runs again on every `make demo` / `make ui`)."""
    for _ in range(2):
        done = subprocess.run([AIRFLOW, "pools", "import", str(POOLS_FILE)], env=airflow_home, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert f"Uploaded {len(POOLS)} pool(s)" in done.stdout
    done = subprocess.run([AIRFLOW, "pools", "list", "--output", "json"], env=airflow_home, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    [listing] = [line for line in done.stdout.splitlines() if line.startswith("[{")]
    created = {p["pool"]: (int(p["slots"]), p["description"]) for p in json.loads(listing) if p["pool"] in POOLS}
    assert created == {name: (1, spec["description"]) for name, spec in POOLS.items()}


def test_every_init_imports_the_one_pools_file_after_migrating():
    # make airflow-init (which make demo and make ui run first): the commands make would run
    done = subprocess.run(["make", "-n", "--no-print-directory", "airflow-init"], cwd=PROJECT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    migrate = next(i for i, line in enumerate(lines) if re.search(r"/airflow db migrate\b", line))
    imports = [i for i, line in enumerate(lines) if "airflow pools import" in line]
    assert len(imports) == 1 and imports[0] > migrate, lines
    assert shlex.split(lines[imports[0]])[1:4] == ["pools", "import", str(POOLS_FILE)]
    # docker-compose.yml's airflow-init: the same file, where the image copies include/
    compose = yaml.safe_load((PROJECT / "docker-compose.yml").read_text())
    script = compose["services"]["airflow-init"]["command"][1].splitlines()
    image_include = next(line.split()[-1] for line in (PROJECT / "Dockerfile").read_text().splitlines()
                         if line.startswith("COPY") and " include " in line)
    in_image = f"{image_include}/{POOLS_FILE.relative_to(PROJECT / 'include')}"
    assert script.index(f"airflow pools import {in_image}") == script.index("airflow db migrate") + 1
    # the e2e stack and regime.ui's screenshots (each migrates a metadata DB of its own, then starts a scheduler)
    for path in (PROJECT / "tests" / "e2e" / "stack.py", PROJECT / "include" / "regime" / "ui" / "screenshots.py"):
        text = path.read_text()
        assert "from regime.orchestration import POOLS_FILE" in text and '"pools", "import", str(POOLS_FILE)' in text
        assert text.index('"db", "migrate"') < text.index('"pools", "import"'), path
