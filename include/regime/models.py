"""The warehouse's models and their build order: every SQL file of include/sql/{staging,intermediate,marts}, what
each reads, and the declared Python steps between them, ordered so that a model comes after everything it reads.

A model is one file: include/sql/<schema>/<name>.sql makes the table <schema>.<name>. What it reads is not declared
by hand: it is every schema-qualified table its `from` and `join` clauses name (`marts.prices`, `staging.etf_nav`,
`intermediate.etf_flows_5d`), taken from DuckDB's own parse of the file (json_serialize_sql: comments, string
literals and CTE names are not references). Adding a model is adding its file; the order follows (graphlib).

Some tables are computed partly in Python (marts.indicators from the registry's SQL, marts.extremes by its engine,
marts.forward_returns and marts.episodes by regime.analogs): they are declared as Steps, each with the tables it
makes and the SQL files it runs (whose references are what it reads), and take their place in the same order. The
SQL files a step runs are not models of their own.

Errors name the files: a reference to a table no model or step makes, two makers of one table, and a cycle.
Running the models is regime.warehouse's job (a full build in this order; an update in the same order).
"""

from __future__ import annotations

import functools
import graphlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from regime import sql as sqlmod
from regime.sql import WarehouseError

FOLDERS = ("staging", "intermediate", "marts")  # each folder is the schema of the tables its files make


class ModelError(WarehouseError):
    """The SQL models cannot be ordered: an unknown reference, a table made twice, a cycle, SQL that does not parse."""


@dataclass(frozen=True)
class Step:
    """Tables computed partly in Python, declared: `makes` (the first is its name), the SQL files it runs (relative
    to the SQL directory; a glob such as `marts/extremes*.sql` is allowed) and what it reads besides what those files
    read."""

    makes: tuple[str, ...]
    files: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.makes[0]


@dataclass(frozen=True)
class Model:
    """One node of the build: a SQL model (`path`: its file) or a declared step (`step`)."""

    name: str  # schema.table
    reads: frozenset[str]
    path: str | None = None  # relative to the SQL directory
    step: Step | None = field(default=None, compare=False)

    @property
    def schema(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def where(self) -> str:
        """The files that define it, for error messages."""
        if self.path is not None:
            return self.path
        files = ", ".join(self.step.files) if self.step and self.step.files else "no SQL file"
        return f"step {self.name} ({files})"


@functools.lru_cache(maxsize=512)
def references(sql: str) -> frozenset[str]:
    """The schema-qualified tables (`schema.table`, lower case) that `sql` reads in its `from` and `join` clauses,
    by DuckDB's parser. Unqualified names (CTEs) are not references. Raises ModelError if DuckDB cannot parse it."""
    with duckdb.connect() as con:
        tree = json.loads(con.execute("select json_serialize_sql($sql)", {"sql": sql}).fetchone()[0])
    if tree.get("error"):
        raise ModelError(tree.get("error_message") or "the SQL does not parse")
    found: set[str] = set()
    pending: list = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if node.get("type") == "BASE_TABLE" and node.get("schema_name"):
                found.add(f"{node['schema_name']}.{node['table_name']}".lower())
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return frozenset(found)


def file_references(relpath: str, sql_dir: Path | None = None) -> frozenset[str]:
    """references() of the SQL file `relpath`; a file that does not parse is named in the error."""
    path = (sql_dir or sqlmod.SQL_DIR) / relpath
    try:
        return references(path.read_text())
    except ModelError as exc:
        raise ModelError(f"{relpath}: {exc}") from None


def discover(steps: Iterable[Step] = (), sql_dir: Path | None = None) -> dict[str, Model]:
    """{table: Model} of every SQL file of FOLDERS in `sql_dir` (default: the package's include/sql) and of
    `steps`; a file a step runs is part of that step, not a model."""
    root = sql_dir or sqlmod.SQL_DIR
    steps = tuple(steps)
    owned: dict[str, Step] = {}
    for step in steps:
        for pattern in step.files:
            matches = sorted(str(p.relative_to(root)) for p in root.glob(pattern))
            if not matches:
                raise ModelError(f"step {step.name} runs {pattern}, which is not in {root}")
            for relpath in matches:
                if relpath in owned:
                    raise ModelError(f"{relpath} is run by two steps: {owned[relpath].name} and {step.name}")
                owned[relpath] = step
    models: dict[str, Model] = {}

    def add(model: Model, names: Iterable[str]) -> None:
        for name in names:
            if name in models:
                raise ModelError(f"{name} is made twice: by {models[name].where} and by {model.where}")
            models[name] = model

    for folder in FOLDERS:
        for path in sorted((root / folder).glob("*.sql")):
            relpath = f"{folder}/{path.name}"
            if relpath not in owned:
                name = f"{folder}.{path.stem}"
                add(Model(name, file_references(relpath, root), relpath), [name])
    for step in steps:
        reads = set(step.reads)
        for relpath, owner in owned.items():
            if owner is step:
                reads |= file_references(relpath, root)
        add(Model(step.name, frozenset(reads - set(step.makes)), step=step), step.makes)
    return models


def order(models: dict[str, Model]) -> list[Model]:
    """Each model once, after every model it reads (ties: by name). ModelError on a reference that no model makes
    (naming the file and the table), on a warehouse model that reads an intermediate model (those exist only while
    the indicators are computed) and on a cycle (naming the files in it)."""
    graph: dict[str, set[str]] = {}
    for model in models.values():
        deps = set()
        for ref in sorted(model.reads):
            if ref not in models:
                raise ModelError(f"{model.where} reads {ref}, which no model makes (no include/sql/"
                                 f"{ref.replace('.', '/', 1)}.sql and no step)")
            if models[ref].schema == "intermediate" and model.schema != "intermediate" and model.step is None:
                raise ModelError(f"{model.where} reads {ref}: intermediate models are inputs of indicators only")
            deps.add(models[ref].name)
        graph[model.name] = deps
    sorter = graphlib.TopologicalSorter(graph)
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = exc.args[1]
        raise ModelError("models read each other in a cycle: "
                         + " -> ".join(f"{models[name].where} ({name})" for name in cycle)) from None
    ordered: list[Model] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        ordered += [models[name] for name in ready]
        sorter.done(*ready)
    return ordered


def plan(steps: Iterable[Step] = (), sql_dir: Path | None = None) -> list[Model]:
    """Every model of `sql_dir` and every step, in build order (discover, then order)."""
    return order(discover(steps, sql_dir))
