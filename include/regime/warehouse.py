"""Building the warehouse: a full build of every model into a new staging file (build), or an update of a copy of the
published one (update), each with its build record (meta.build_info, meta.build_method, meta.lake_writes).

`build` computes every model from the lake; `update` copies the published warehouse and recomputes only what is
dated after the last date on which the lake still holds exactly what that warehouse was built from, with the same
result (tests/test_incremental.py; when each runs: docs/performance.md). Both run the models in the order
regime.models derives from what each reads; STEPS declares the tables computed partly in Python and what runs them.
Neither publishes: regime.publisher swaps a validated build in.

Elsewhere: the SQL plumbing (regime.sql), marts.indicators and its intermediate models (regime.readings), what changed
in the lake since a build (regime.lake_changes), what an update shares with the models it recomputes
(regime.incremental).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import duckdb

from regime import datasets, lake_store, state
from regime import sql as sqlmod
from regime.config import Settings
from regime.incremental import MAX_INCREMENTAL_DAYS, NotIncremental
from regime.indicators import REGISTRY
from regime.lake_changes import lake_journals, refresh_staging
from regime.models import Model, Step, plan
from regime.publisher import discard, in_use, staging_connection
from regime.readings import build_indicators, update_indicators
from regime.sql import FULL, bind, connect, parameters, read_sql, run_model, scalar

log = logging.getLogger(__name__)

SCHEMAS = ("staging", "marts", "meta")
# Marts that are a projection of staging, row for row, by this date column (a row dated d depends only on staging
# rows dated up to d): an update replaces their rows dated after `since`; logged with the staging step.
DATED = {"marts.prices": "date"}


class Computed(NamedTuple):
    """A step computed partly in Python: what it makes and runs (regime.models.Step), its name in the build log,
    and its full build (con, params) and update (con, params, since) returning the rows written."""

    step: Step
    label: str
    build: Callable[[duckdb.DuckDBPyConnection, dict], int]
    update: Callable[[duckdb.DuckDBPyConnection, dict, date], int]


def _build_extremes(con: duckdb.DuckDBPyConnection, params: dict) -> int:
    from regime.extremes.build import build

    return build(con, params)


def _update_extremes(con: duckdb.DuckDBPyConnection, params: dict, since: date) -> int:
    from regime.extremes.update import update

    return update(con, since)


def _build_analogs(con: duckdb.DuckDBPyConnection, params: dict) -> int:
    from regime import analogs

    return analogs.build(con, params)


def _update_analogs(con: duckdb.DuckDBPyConnection, params: dict, since: date) -> int:
    from regime import analogs

    return analogs.update(con, params, since)


# Every table not made by a SQL model of its own, by the step that computes it. Each step's place in the build
# follows from what the SQL files it runs read, like a model's; the files it runs are not models of their own.
# marts.indicators: each registry indicator's SQL (the intermediate models they read are built with them, in memory);
# marts.extremes and its state (schema internal): the extremes engine between marts/extremes*.sql (regime.extremes);
# marts.forward_returns and marts.episodes: their SQL with the thresholds of regime.analogs.
STEPS = (
    Computed(Step(("marts.indicators",), tuple(dict.fromkeys(i.sql for i in REGISTRY))),
             "indicators", build_indicators, update_indicators),
    Computed(Step(("marts.extremes", "internal.extremes_frontier", "internal.extremes_ranks",
                   "internal.extremes_series"), ("marts/extremes*.sql",)),
             "extremes", _build_extremes, _update_extremes),
    Computed(Step(("marts.forward_returns", "marts.episodes"), ("marts/forward_returns.sql", "marts/episodes.sql")),
             "analogs", _build_analogs, _update_analogs),
)


def build_plan() -> list[Model]:
    """Every model of include/sql and every step of STEPS, in build order (regime.models.plan)."""
    return plan(c.step for c in STEPS)


def _computed(model: Model) -> Computed:
    return next(c for c in STEPS if c.step.name == model.name)


def _label(model: Model) -> tuple[str, str]:
    """(step, tables) of a model in the build log (benchmarks/run.py sums the seconds by step)."""
    if model.step is not None:
        return _computed(model).label, ", ".join(t for t in model.step.makes if t.startswith("marts."))
    if model.schema == "staging" or model.name in DATED:
        return "staging", model.name
    return model.name.split(".", 1)[1], model.name


def register_words(con: duckdb.DuckDBPyConnection) -> None:
    """Register the Python scalar functions that marts.headlines (include/sql/marts/headlines.sql) calls on `con`:
    regime_subject_kind(indicator, subject) (regime.words.subject_kind: 'index', 'volatility index', 'underlying',
    'ETF' or NULL) and regime_headline(kind, side, indicator, subject, value, date, since, history_start, grp)
    (regime.words.headline: the sentence). NULL arguments reach Python as None (null_handling 'special': `since` and
    `grp` are NULL for most kinds, and subject_kind returns None); both are pure functions (no side effects)."""
    from regime import words

    for name in ("regime_subject_kind", "regime_headline"):
        with contextlib.suppress(duckdb.InvalidInputException):  # registered before on this connection
            con.remove_function(name)
    con.create_function("regime_subject_kind", words.subject_kind, ["VARCHAR", "VARCHAR"], "VARCHAR",
                        null_handling="special", side_effects=False)
    con.create_function("regime_headline", words.headline,
                        ["VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR", "DOUBLE", "DATE", "DATE", "DATE", "VARCHAR"],
                        "VARCHAR", null_handling="special", side_effects=False)


def lake_params(settings: Settings, as_of: date, con: duckdb.DuckDBPyConnection) -> dict:
    """Parameters every model may use: the as-of date, where each dataset's Parquet files are (REGIME_LAKE_URI's
    bucket: read through `con`, regime.lake_store; an empty typed file for a dataset not held yet), the groups."""
    params = {"as_of": as_of, "small_caps": list(settings.small_caps), "large_caps": list(settings.large_caps),
              "history_from": FULL}
    lake_store.register(con, settings)
    for dataset in datasets.ALL:
        if not (has_data := lake_store.has_data(settings, dataset)):
            log.warning("the lake holds no %s yet: staging.%s will be empty", dataset.name, dataset.name)
        params[f"{dataset.name}_glob"] = (lake_store.glob(settings, dataset) if has_data
                                          else str(dataset.empty_file(settings.build_dir)))
    return params


def copy_state(con: duckdb.DuckDBPyConnection, state_dir: Path) -> None:
    """Copy the pipeline's state (alerts, validation runs) into meta.* of a build."""
    for name, frame in state.frames(state_dir).items():
        con.register("state_frame", frame)
        con.execute(f"create or replace table meta.{name} as select * from state_frame")
        con.unregister("state_frame")


def build(settings: Settings, as_of: date) -> Path:
    """Build every model into a new staging file and return its path (nothing is published), in build_plan()'s
    order: a SQL model is materialised as its table with `$since` and `$history_from` at FULL (staging models too,
    so that the published file is a self-contained snapshot of what the lake held on the as-of date), a step by its
    build; intermediate models are built by the indicators step that reads them. Each step is logged with its rows
    and seconds (as `extra` step/table/rows/seconds on the log record: benchmarks/run.py reads them)."""
    from regime.indicators import REGIME_RULES

    models = build_plan()
    settings.build_dir.mkdir(parents=True, exist_ok=True)
    target = settings.build_dir / f"warehouse-{as_of.isoformat()}-{uuid.uuid4().hex[:8]}.duckdb"
    journals = lake_journals(settings)  # before the lake is read: a write during the build is seen next time
    with staging_connection(target, settings.duckdb_memory_limit) as con:
        params = {**REGIME_RULES, **lake_params(settings, as_of, con), "since": FULL}
        started = clock = time.perf_counter()
        for schema in SCHEMAS:
            con.execute(f"create schema if not exists {schema}")
        copy_state(con, settings.state_dir)
        register_words(con)
        clock = _done("meta", "meta.*", None, clock)
        for model in models:
            if model.schema == "intermediate":
                continue
            step, tables = _label(model)
            if model.step is not None:
                rows = _computed(model).build(con, params)
            else:
                con.execute(f"create schema if not exists {model.schema}")
                rows = run_model(con, model.name, model.path, params)
            clock = _done(step, tables, rows, clock)
        _finish(con, settings, as_of, None, fingerprint(settings), journals)
        clock = _done("checkpoint", "meta.build_info", None, clock)
        _done("total", f"full build as of {as_of}", None, started)
    return target


def update(settings: Settings, as_of: date, previous: Path, spare: Path | None = None) -> Path:
    """Build as of `as_of` by updating a copy of the warehouse `previous` (the published one) and return the new
    staging file's path, with the same content as build(settings, as_of) would give (meta.build_info.built_at and
    meta.build_method aside).

    Raises NotIncremental, leaving nothing behind, unless `previous` was built by this code (meta.build_method's
    fingerprint: SQL, registry, engine, library versions, ETF groups), from the same source and origin, as of
    `as_of` or earlier. The lake is then compared with `previous` (lake_changes.refresh_staging): `since` is the last
    date up to which every staging table is unchanged, at most the previous as-of date, and at most
    MAX_INCREMENTAL_DAYS before `as_of`. Every row dated after `since` is recomputed, model by model in build_plan()'s
    order: the staging tables by refresh_staging; a DATED mart by replacing its rows dated after `since`; a step by
    its update (indicators from their look-back rows only, marts.extremes from its state tables, the forward returns
    ending after `since` and the episodes that can change: regime.analogs.update); a SQL model that binds `$since`
    (marts.regime_daily, marts.headlines) selects its rows dated after it, which replace those of its `date` column;
    any other SQL model is recomputed whole. Every row dated up to `since` is kept: it depends only on lake rows
    dated up to `since`.

    `spare` (pipeline.build passes publisher.spare_path(settings)): the file published before `previous`, which
    publisher.publish keeps. Where it passes the same checks, is within MAX_INCREMENTAL_DAYS of `as_of`, has no other
    name and no reader has it open, it is updated instead of a copy of `previous` (taken: renamed to the staging
    name, so a failed update never leaves a half-updated spare): no copy of the whole file, whose writing and
    flushing grew with the history. It is one publication older, so its update recomputes one more day.
    """
    from regime.indicators import REGIME_RULES

    started = time.perf_counter()
    models = build_plan()
    wanted = {"source": settings.source, "origin": _origin(settings), "fingerprint": fingerprint(settings)}
    built = _updatable(previous, as_of, wanted)
    base = previous
    if spare is not None and spare.exists():
        try:
            spare_built = _updatable(spare, as_of, wanted)
            if (as_of - spare_built["as_of"]).days > MAX_INCREMENTAL_DAYS:
                raise NotIncremental(f"it is as of {spare_built['as_of']}, too old")
            if spare.stat().st_nlink != 1:  # e.g. a publish killed between linking it and replacing the file
                raise NotIncremental("it is also another path (the published file?): updating it would change that")
            if in_use(spare):
                raise NotIncremental("a reader has it open")
            base, built = spare, spare_built
        except NotIncremental as exc:
            log.info("the spare %s is not used: %s", spare, exc)
    clock = _done("check", previous.name, None, started)
    settings.build_dir.mkdir(parents=True, exist_ok=True)
    target = settings.build_dir / f"warehouse-{as_of.isoformat()}-{uuid.uuid4().hex[:8]}.duckdb"
    try:
        if base == spare:
            os.replace(spare, target)
            clock = _done("copy", f"{spare.name} (taken, not copied)", None, clock)
        else:
            shutil.copyfile(previous, target)
            clock = _done("copy", previous.name, None, clock)
    except Exception:
        discard(target)
        raise
    with staging_connection(target, settings.duckdb_memory_limit) as con:
        journals = lake_journals(settings)
        params = {**REGIME_RULES, **lake_params(settings, as_of, con)}
        copy_state(con, settings.state_dir)
        register_words(con)
        clock = _done("meta", "meta.*", None, clock)
        staging = [m for m in models if m.schema == "staging"]
        since, checked = refresh_staging(con, params, built["as_of"], journals, staging)
        if (as_of - since).days > MAX_INCREMENTAL_DAYS:
            raise NotIncremental(f"the lake differs from the published warehouse from {since + timedelta(days=1)} on,"
                                 f" more than {MAX_INCREMENTAL_DAYS} days before {as_of}")
        clock = _done("staging", "staging.*", None, clock)
        for model in models:
            if model.schema in ("staging", "intermediate"):
                continue
            step, tables = _label(model)
            clock = _done(step, tables, _update_model(con, model, params, since), clock)
        _finish(con, settings, as_of, since, wanted["fingerprint"], journals, checked)
        clock = _done("checkpoint", "meta.build_info", None, clock)
        _done("total", f"update from {built['as_of']} to {as_of}, recomputed after {since}", None, started)
    return target


def _update_model(con: duckdb.DuckDBPyConnection, model: Model, params: dict, since: date) -> int:
    """Bring one model of a copied warehouse up to date from `since` (update's rules); returns the rows written."""
    if model.step is not None:
        return _computed(model).update(con, params, since)
    sql = read_sql(model.path)
    if model.name in DATED:
        column = DATED[model.name]
        con.execute(f"delete from {model.name} where {column} > $since", {"since": since})
        return scalar(con, f"insert into {model.name} select * from ({sql}) where {column} > $since",
                      {**bind(sql, params), "since": since})
    if "since" in parameters(sql):
        con.execute(f"delete from {model.name} where date > $since", {"since": since})
        return scalar(con, f"insert into {model.name} {sql}", bind(sql, {**params, "since": since}))
    con.execute(f"create schema if not exists {model.schema}")
    return run_model(con, model.name, model.path, {**params, "since": FULL})


def _updatable(path: Path, as_of: date, wanted: dict) -> dict:
    """The build record of the warehouse at `path` if `update` may start from it; NotIncremental says why not."""
    built = previous_build(path)
    if built is None:
        raise NotIncremental(f"{path} has no build record (meta.build_info, meta.build_method) to update from")
    if built["as_of"] > as_of:
        raise NotIncremental(f"the warehouse {path.name} is as of {built['as_of']}, after {as_of}")
    for key, value in wanted.items():
        if built[key] != value:
            raise NotIncremental(f"the warehouse {path.name} was built with another {key} ({built[key]!r})")
    return built


def _origin(settings: Settings) -> str:
    return str(settings.mirror_dir) if settings.source == "mirror" else "live"


def _done(step: str, what: str, rows: int | None, since: float) -> float:
    """Log a finished step ("<tables>: <rows> rows in <seconds> s (<step>)") with its duration, also as
    `extra` step/table/rows/seconds on the record; return the time it finished."""
    now = time.perf_counter()
    count = "" if rows is None else f": {rows} rows"
    log.info("%s%s in %.3f s (%s)", what, count, now - since, step,
             extra={"step": step, "table": what, "rows": rows, "seconds": now - since})
    return now


def _finish(con: duckdb.DuckDBPyConnection, settings: Settings, as_of: date, since: date | None,
            fingerprint_: str, journals: dict[str, dict[str, list[dict] | None]], checked: str | None = None) -> None:
    """meta.build_info, meta.build_method (how this file was made), meta.lake_writes (the lake it was made from),
    then a checkpoint."""
    con.execute(
        "create or replace table meta.build_info as select $as_of::date as as_of,"
        " $built_at::timestamptz as built_at, $source as source, $origin as origin",
        {"as_of": as_of, "built_at": datetime.now(UTC), "source": settings.source, "origin": _origin(settings)},
    )
    con.execute(
        "create or replace table meta.build_method as select $method as method, $since::date as recomputed_after,"
        " $fingerprint as fingerprint, $checked as lake_check",
        {"method": "full" if since is None else "incremental", "since": since, "fingerprint": fingerprint_,
         "checked": checked},
    )
    writes = [(name, partition, journal[-1].get("id") if journal else None)
              for name, files in journals.items() for partition, journal in files.items()]
    con.execute("create or replace table meta.lake_writes (dataset varchar not null, partition varchar not null,"
                " write_id varchar)")
    if writes:
        con.executemany("insert into meta.lake_writes values (?, ?, ?)", writes)
    con.execute("checkpoint")


def previous_build(path: Path) -> dict | None:
    """as_of, source, origin and fingerprint of the warehouse at `path`; None without them."""
    if not path.exists():
        return None
    try:
        con = connect(path, read_only=True)
    except duckdb.Error:
        return None
    try:
        info = con.execute("select as_of, source, origin from meta.build_info").fetchall()
        method = con.execute("select fingerprint from meta.build_method").fetchall()
    except duckdb.Error:
        return None
    finally:
        con.close()
    if len(info) != 1 or len(method) != 1:
        return None
    (as_of, source, origin), (fingerprint_,) = info[0], method[0]
    return {"as_of": as_of, "source": source, "origin": origin, "fingerprint": fingerprint_}


def fingerprint(settings: Settings) -> str:
    """What a build's content depends on besides the lake and the state: the build's SQL files, the code that runs
    them, the rule parameters, the ETF groups and the library versions. `update` needs the previous build's to be
    the same: after a deploy that changes any of them the next build is a full one."""
    import numpy
    import pyarrow

    from regime import analogs, extremes, incremental, indicators, lake_changes, models, readings, words
    from regime.indicators import REGIME_RULES

    digest = hashlib.sha256()
    for folder in ("staging", "marts", "intermediate", "indicators"):
        for path in sorted((sqlmod.SQL_DIR / folder).rglob("*.sql")):
            digest.update(f"{path.relative_to(sqlmod.SQL_DIR)}\0".encode() + path.read_bytes())
    # words: headlines; analogs: its thresholds; sql and incremental: how models are bound and how far back they read;
    # models, readings and lake_changes: their order, the indicators' intermediate models, how staging is refreshed
    for module in (datasets, indicators, words, analogs, sqlmod, incremental, models, readings, lake_changes):
        digest.update(Path(module.__file__).read_bytes())
    for path in sorted(Path(extremes.__file__).parent.glob("*.py")):  # the extremes package's modules
        digest.update(path.read_bytes())
    digest.update(Path(__file__).read_bytes())
    digest.update(json.dumps({
        "rules": REGIME_RULES, "small_caps": list(settings.small_caps), "large_caps": list(settings.large_caps),
        "duckdb": duckdb.__version__, "numpy": numpy.__version__, "pyarrow": pyarrow.__version__,
    }, sort_keys=True, default=str).encode())
    return digest.hexdigest()
