"""Building the warehouse from include/sql into a staging copy, and publishing it by atomic swap.

Analysts only ever open the published file, read-only. A build writes a new file under build/; only a
validated build replaces `warehouse.duckdb` (os.replace: readers see the old or the new file, never a mix).

Two ways to make that file: `build` computes every model from the lake; `update` copies the published warehouse and
recomputes only what is dated after the last date on which the lake still holds exactly what that warehouse was
built from, with the same result (tests/test_incremental.py; when each runs: docs/performance.md).

The SQL plumbing it runs models with (connect, read_sql, bind, scalar, run_model) is regime.sql; what an update
shares with the models it recomputes (MAX_INCREMENTAL_DAYS, NotIncremental, history_from) is regime.incremental.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb

from regime import SQL_DIR, datasets, state
from regime.config import Settings
from regime.incremental import MAX_INCREMENTAL_DAYS, NotIncremental, history_from
from regime.indicators import REGISTRY, Indicator
from regime.sql import FULL, WarehouseError, bind, connect, read_sql, run_model, scalar, without_comments

log = logging.getLogger(__name__)

SCHEMAS = ("staging", "marts", "meta")
# (table, model file) in build order. Staging models are materialised as tables so that the published
# file is a self-contained snapshot of what the lake held on the as-of date.
MODELS: tuple[tuple[str, str], ...] = (
    *((f"staging.{d.name}", f"staging/{d.name}.sql") for d in datasets.ALL),
    ("marts.prices", "marts/prices.sql"),
)
# Intermediate models (include/sql/intermediate/): inputs that several indicators share, built before them into an
# in-memory database of this name (indicator_queries); an indicator's SQL names one as `intermediate.<model>`.
INTERMEDIATE = "intermediate"
_INTERMEDIATE_REF = re.compile(rf"\b{INTERMEDIATE}\.([a-z_][a-z0-9_]*)")
# The date that places each model's row in time: a row dated d depends only on lake rows dated d or earlier (what
# makes the warehouse point in time, and what lets `update` keep every row dated up to its `since`).
POINT_IN_TIME = {f"staging.{d.name}": d.time_column for d in datasets.ALL}  # marts.prices: `date`
# Staging models whose rows look back on earlier rows of their series (etf_nav's flow: the previous row's shares and
# NAV): (kind of sessions in indicators.SESSIONS, rows). An update recomputes their rows after `since` from that far
# back; the others from `since` on.
STAGING_LOOKBACK = {"staging.etf_nav": ("etf", 1)}


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


def lake_params(settings: Settings, as_of: date) -> dict:
    """Parameters every model may use: the as-of date, where each dataset's Parquet files are (an empty typed
    file for a dataset the lake does not hold yet), and the configured groups."""
    params = {"as_of": as_of, "small_caps": list(settings.small_caps), "large_caps": list(settings.large_caps),
              "history_from": FULL}
    for dataset in datasets.ALL:
        has_data = dataset.has_data(settings.lake_dir)
        if not has_data:
            log.warning("the lake holds no %s yet: staging.%s will be empty", dataset.name, dataset.name)
        params[f"{dataset.name}_glob"] = (dataset.glob(settings.lake_dir) if has_data
                                          else str(dataset.empty_file(settings.build_dir)))
    return params


def build_indicators(con: duckdb.DuckDBPyConnection, params: dict, names: Iterable[str] | None = None) -> int:
    """marts.indicators of a full build. The readings an update may recompute (dated after the horizon, $as_of -
    MAX_INCREMENTAL_DAYS) are computed the way an update does (insert_readings from the horizon, the same values)
    and written after all the others: an update's `delete ... where date > $since` then marks rows in the last row
    groups only (rows of every series in every row group made its checkpoint grow with the history: 0.17 s of
    rewriting at 16x)."""
    # Unique on (date, indicator, subject): each SQL file selects one row per (date, subject), and the gate blocks
    # a build where that fails (ExpectCompoundColumnsToBeUnique). No PRIMARY KEY constraint: maintaining its index
    # cost more than every indicator query together (docs/performance.md).
    con.execute(
        "create or replace table marts.indicators ("
        " date date not null, indicator varchar not null, subject varchar not null, value double)"
    )
    horizon = params["as_of"] - timedelta(days=MAX_INCREMENTAL_DAYS)
    insert_readings(con, params, FULL, names, until=horizon)
    insert_readings(con, params, horizon, names)
    return scalar(con, "select count(*) from marts.indicators")


def insert_readings(con: duckdb.DuckDBPyConnection, params: dict, since: date,
                    names: Iterable[str] | None = None, until: date | None = None) -> int:
    """Insert into marts.indicators every reading dated after `since` (FULL: all) and up to `until` (None: no
    limit), each indicator reading its input from `history_from`; returns the rows inserted."""
    upto = "" if until is None else " where date <= $until"
    inserted = 0
    with contextlib.closing(indicator_queries(con, params, since, names)) as queries:
        for indicator, sql, bound in queries:
            extra = {"indicator": indicator.name} | ({} if until is None else {"until": until})
            rows = con.execute(
                f"insert into marts.indicators select date, $indicator, subject, value from ({sql}){upto}",
                {**bound, **extra},
            ).fetchall()
            inserted += rows[0][0] if rows else 0
    return inserted


def indicator_queries(con: duckdb.DuckDBPyConnection, params: dict, since: date,
                      names: Iterable[str] | None = None) -> Iterator[tuple[Indicator, str, dict]]:
    """Each chosen indicator (registry order) with its SQL and bound parameters for the readings dated after `since`,
    ready to run on `con`. First, the intermediate models the SQL reads (`intermediate.<name>`:
    include/sql/intermediate/<name>.sql) are built with the same parameters into an in-memory database attached as
    `intermediate` (read-write even on a read-only connection), once for the indicators that share them, and
    detached at the end: not part of the warehouse."""
    wanted = None if names is None else set(names)
    chosen = [i for i in REGISTRY if wanted is None or i.name in wanted]
    # one look-back date per kind of sessions, for the longest look-back of that kind (more history is harmless)
    longest: dict[str, int] = {}
    for indicator in chosen:
        if indicator.lookback_sessions:
            longest[indicator.sessions] = max(longest.get(indicator.sessions, 0), indicator.lookback_sessions)
    starts = {kind: history_from(con, kind, n, since) for kind, n in longest.items()} if since != FULL else {}
    built: dict[str, dict] = {}  # intermediate model -> the parameters it was built with
    con.execute(f"attach if not exists ':memory:' as {INTERMEDIATE} (read_write, compress)")
    try:
        for indicator in chosen:
            sql = read_sql(indicator.sql)
            if since == FULL or indicator.lookback_sessions is None:
                start = FULL
            else:
                start = starts[indicator.sessions] if indicator.lookback_sessions else since
            bound = {**params, "since": since, "history_from": start}
            for model in dict.fromkeys(_INTERMEDIATE_REF.findall(without_comments(sql))):
                model_sql = read_sql(f"intermediate/{model}.sql")
                model_params = bind(model_sql, bound)
                if built.get(model) != model_params:
                    t0 = time.perf_counter()
                    con.execute(f"create or replace table {INTERMEDIATE}.{model} as {model_sql}", model_params)
                    built[model] = model_params
                    log.debug("%s.%s built for %s in %.2f s", INTERMEDIATE, model, indicator.name,
                              time.perf_counter() - t0)
            yield indicator, sql, bind(sql, bound)
    finally:
        con.execute(f"detach database if exists {INTERMEDIATE}")


def copy_state(con: duckdb.DuckDBPyConnection, state_dir: Path) -> None:
    """Copy the pipeline's state (alerts, validation runs) into meta.* of a build."""
    for name, frame in state.frames(state_dir).items():
        con.register("state_frame", frame)
        con.execute(f"create or replace table meta.{name} as select * from state_frame")
        con.unregister("state_frame")


def build(settings: Settings, as_of: date) -> Path:
    """Build every model into a new staging file and return its path (nothing is published). Each step is logged
    with its rows and seconds (as `extra` step/table/rows/seconds on the log record: benchmarks/run.py reads them)."""
    from regime import analogs, extremes
    from regime.indicators import REGIME_RULES

    settings.build_dir.mkdir(parents=True, exist_ok=True)
    target = settings.build_dir / f"warehouse-{as_of.isoformat()}-{uuid.uuid4().hex[:8]}.duckdb"
    journals = lake_journals(settings)  # before the lake is read: a write during the build is seen next time
    params = {**REGIME_RULES, **lake_params(settings, as_of)}
    con = connect(target, memory_limit=settings.duckdb_memory_limit)
    try:
        started = clock = time.perf_counter()
        for schema in SCHEMAS:
            con.execute(f"create schema if not exists {schema}")
        copy_state(con, settings.state_dir)
        clock = _done("meta", "meta.*", None, clock)
        for table, relpath in MODELS:
            clock = _done("staging", table, run_model(con, table, relpath, params), clock)
        clock = _done("indicators", "marts.indicators", build_indicators(con, params), clock)
        clock = _done("extremes", "marts.extremes", extremes.build(con, params), clock)
        rows = run_model(con, "marts.regime_daily", "marts/regime_daily.sql", {**params, "since": FULL})
        clock = _done("regime_daily", "marts.regime_daily", rows, clock)
        register_words(con)
        rows = run_model(con, "marts.headlines", "marts/headlines.sql", {**params, "since": FULL})
        clock = _done("headlines", "marts.headlines", rows, clock)
        clock = _done("analogs", "marts.forward_returns, marts.episodes", analogs.build(con, params), clock)
        _finish(con, settings, as_of, None, fingerprint(settings), journals)
        clock = _done("checkpoint", "meta.build_info", None, clock)
        _done("total", f"full build as of {as_of}", None, started)
    except Exception:
        con.close()
        discard(target)
        raise
    con.close()
    return target


def update(settings: Settings, as_of: date, previous: Path, spare: Path | None = None) -> Path:
    """Build as of `as_of` by updating a copy of the warehouse `previous` (the published one) and return the new
    staging file's path, with the same content as build(settings, as_of) would give (meta.build_info.built_at and
    meta.build_method aside).

    Raises NotIncremental, leaving nothing behind, unless `previous` was built by this code (meta.build_method's
    fingerprint: SQL, registry, engine, library versions, ETF groups), from the same source and origin, as of
    `as_of` or earlier. The lake is then compared with `previous` (refresh_staging): `since` is the last date up to
    which every staging table is unchanged, at most the previous as-of date, and at most MAX_INCREMENTAL_DAYS before
    `as_of`. Every row dated after `since` is deleted and recomputed: indicators from their look-back rows only
    (insert_readings), marts.extremes from its state tables (extremes.update), marts.regime_daily for the new
    sessions, marts.headlines for the days after `since`, marts.forward_returns ending after `since` and
    marts.episodes whole (regime.analogs.update). Every row dated up to `since` is kept: it depends only on lake rows
    dated up to `since`.

    `spare` (pipeline.build passes spare_path(settings)): the file published before `previous`, which publish()
    keeps. Where it passes the same checks, is within MAX_INCREMENTAL_DAYS of `as_of`, has no other name and no
    reader has it open, it is updated instead of a copy of `previous` (taken: renamed to the staging name, so a
    failed update never leaves a half-updated spare): no copy of the whole file, whose writing and flushing grew
    with the history. It is one publication older, so its update recomputes one more day.
    """
    from regime import analogs, extremes
    from regime.indicators import REGIME_RULES

    started = time.perf_counter()
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
            if _in_use(spare):
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
        con = connect(target, memory_limit=settings.duckdb_memory_limit)
    except Exception:
        discard(target)
        raise
    try:
        journals = lake_journals(settings)
        params = {**REGIME_RULES, **lake_params(settings, as_of)}
        copy_state(con, settings.state_dir)
        clock = _done("meta", "meta.*", None, clock)
        since, checked = refresh_staging(con, params, built["as_of"], journals)
        if (as_of - since).days > MAX_INCREMENTAL_DAYS:
            raise NotIncremental(f"the lake differs from the published warehouse from {since + timedelta(days=1)} on,"
                                 f" more than {MAX_INCREMENTAL_DAYS} days before {as_of}")
        clock = _done("staging", "staging.*, marts.prices", None, clock)
        con.execute("delete from marts.indicators where date > $since", {"since": since})
        clock = _done("indicators", "marts.indicators", insert_readings(con, params, since), clock)
        clock = _done("extremes", "marts.extremes", extremes.update(con, since), clock)
        con.execute("delete from marts.regime_daily where date > $since", {"since": since})
        sql = read_sql("marts/regime_daily.sql")
        rows = scalar(con, f"insert into marts.regime_daily {sql}", bind(sql, {**params, "since": since}))
        clock = _done("regime_daily", "marts.regime_daily", rows, clock)
        register_words(con)
        con.execute("delete from marts.headlines where date > $since", {"since": since})
        sql = read_sql("marts/headlines.sql")
        rows = scalar(con, f"insert into marts.headlines {sql}", bind(sql, {**params, "since": since}))
        clock = _done("headlines", "marts.headlines", rows, clock)
        clock = _done("analogs", "marts.forward_returns, marts.episodes", analogs.update(con, params, since), clock)
        _finish(con, settings, as_of, since, wanted["fingerprint"], journals, checked)
        clock = _done("checkpoint", "meta.build_info", None, clock)
        _done("total", f"update from {built['as_of']} to {as_of}, recomputed after {since}", None, started)
    except Exception:
        con.close()
        discard(target)
        raise
    con.close()
    return target


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


def spare_path(settings: Settings) -> Path:
    """Where publish() keeps the file it replaced (a hard link: no copy), for the next update to start from."""
    return settings.build_dir / "spare.duckdb"


def _in_use(path: Path) -> bool:
    """Whether another process has the DuckDB file open (DuckDB holds a lock on it, shared when read-only; a POSIX
    lock is per process, so this process's own connections do not count, and it must not have the file open: closing
    the descriptor here would release DuckDB's lock)."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return True
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def lake_journals(settings: Settings) -> dict[str, dict[str, list[dict] | None]]:
    """{dataset: {partition directory: its write journal, None if it has none}} of the lake now (lake.read_journal:
    file footers only)."""
    from regime import lake

    found: dict[str, dict[str, list[dict] | None]] = {}
    for dataset in datasets.ALL:
        root = settings.lake_dir / dataset.name
        files = sorted(root.glob("*/data.parquet")) if root.is_dir() else []
        found[dataset.name] = {path.parent.name: lake.read_journal(path) for path in files}
    return found


def _recorded_writes(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, str | None]] | None:
    """meta.lake_writes of a warehouse: the journal entry each partition file was at when it was built."""
    try:
        rows = con.execute("select dataset, partition, write_id from meta.lake_writes").fetchall()
    except duckdb.CatalogException:
        return None
    recorded: dict[str, dict[str, str | None]] = {}
    for dataset, partition, write_id in rows:
        recorded.setdefault(dataset, {})[partition] = write_id
    return recorded


def journal_changes(recorded: dict[str, str | None],
                    journals: dict[str, list[dict] | None]) -> tuple[bool, date | None]:
    """(known, first_changed) of one dataset since a build that recorded `recorded`: known is False where the
    journals cannot tell (a file without a journal, written by another tool; an entry no longer in it; a file
    gone); first_changed is the earliest date a write since then added or changed (None: nothing)."""
    from regime import lake

    if set(recorded) - set(journals):
        return False, None
    first: date | None = None
    for partition, journal in journals.items():
        if journal is None:
            return False, None
        ids = [entry.get("id") for entry in journal]
        if partition in recorded:
            if recorded[partition] not in ids:
                return False, None
            entries = journal[ids.index(recorded[partition]) + 1:]
        elif len(journal) < lake.JOURNAL_LENGTH:  # a new file, with its whole journal since it was created
            entries = journal
        else:
            return False, None
        for entry in entries:
            changed = entry.get("first_changed")
            if changed:
                day = date.fromisoformat(changed)
                first = day if first is None else min(first, day)
    return True, first


def refresh_staging(con: duckdb.DuckDBPyConnection, params: dict, previous_as_of: date,
                    journals: dict[str, dict[str, list[dict] | None]]) -> tuple[date, str]:
    """Bring the staging tables and marts.prices of a copied warehouse up to what the lake holds as of the run;
    return `since` (the last date up to which none of them changed, at most `previous_as_of`) and how each dataset
    was checked.

    Each lake partition file journals its writes (regime.lake.upsert_partition): with meta.lake_writes, the entry
    each file was at when the copied warehouse was built, the journals tell the earliest date changed since, from
    the files' footers alone. Where they cannot tell (a file written by another tool, or gone), the dataset's
    staging model is recomputed from the whole lake into a temporary table and compared with the copy date by
    date (POINT_IN_TIME): row count and the sum of 64-bit hashes of the rows, every column (a change goes
    unnoticed with a probability of about 2^-64). The first date that differs bounds `since`. Then only the rows
    dated after `since` are replaced, in the staging tables and in marts.prices (a projection of
    staging.index_prices, row for row); they are read from the lake from `since` on (STAGING_LOOKBACK: further
    back), which Parquet row-group statistics keep to the recent end of each file."""
    since = previous_as_of
    recorded = _recorded_writes(con)
    models = [(table, relpath) for table, relpath in MODELS if table.startswith("staging.")]
    how: dict[str, str] = {}
    for table, relpath in models:
        name = table.split(".")[1]
        known, first = (False, None) if recorded is None else journal_changes(recorded.get(name, {}), journals[name])
        how[name] = "journal" if known else "compared"
        if not known:
            first = _compare_with_lake(con, table, relpath, params)
        if first is not None and first <= since:
            log.info("%s differs from the published warehouse from %s on", table, first)
            since = max(FULL, first - timedelta(days=1))
    for table, relpath in models:
        column = POINT_IN_TIME[table]
        if how[table.split(".")[1]] == "journal":
            kind, rows = STAGING_LOOKBACK.get(table, (None, 0))
            start = history_from(con, kind, rows, since) if rows else since + timedelta(days=1)
            sql = read_sql(relpath)
            query = f"create or replace temp table {_fresh(table)} as select * from ({sql}) where {column} > $since"
            con.execute(query, bind(query, {**params, "history_from": start, "since": since}))
        con.execute(f"delete from {table} where {column} > $since", {"since": since})
        con.execute(f"insert into {table} select * from {_fresh(table)} where {column} > $since", {"since": since})
        con.execute(f"drop table {_fresh(table)}")
    sql = read_sql("marts/prices.sql")
    con.execute("delete from marts.prices where date > $since", {"since": since})
    con.execute(f"insert into marts.prices select * from ({sql}) where date > $since",
                {**bind(sql, params), "since": since})
    checked = ", ".join(f"{name}: {way}" for name, way in how.items())
    return since, checked


def _compare_with_lake(con: duckdb.DuckDBPyConnection, table: str, relpath: str, params: dict) -> date | None:
    """Recompute a staging model from the whole lake into a temporary table; the first date it differs from the
    copy on (None: identical)."""
    sql = read_sql(relpath)
    column = POINT_IN_TIME[table]
    con.execute(f"create or replace temp table {_fresh(table)} as {sql}", bind(sql, {**params, "history_from": FULL}))
    return scalar(con, f"""
        with lake as (
            select r.{column} as day, count(*) as n, sum(hash(r)::hugeint) as digest from {_fresh(table)} as r
            group by r.{column}
        ),
        kept as (
            select r.{column} as day, count(*) as n, sum(hash(r)::hugeint) as digest from {table} as r
            group by r.{column}
        )
        select min(day) from lake full join kept using (day)
        where lake.n is distinct from kept.n or lake.digest is distinct from kept.digest""")


def _fresh(table: str) -> str:
    return "temp.main.fresh_" + table.split(".")[-1]


def _origin(settings: Settings) -> str:
    return str(settings.mirror_dir) if settings.source == "mirror" else "live"


def _done(step: str, what: str, rows: int | None, since: float) -> float:
    """Log a finished step (e.g. "marts.indicators: 49098 rows in 0.692 s (indicators)") with its duration, also as
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

    from regime import analogs, extremes, incremental, indicators, sql, words
    from regime.indicators import REGIME_RULES

    digest = hashlib.sha256()
    for folder in ("staging", "marts", "intermediate", "indicators"):
        for path in sorted((SQL_DIR / folder).rglob("*.sql")):
            digest.update(f"{path.relative_to(SQL_DIR)}\0".encode() + path.read_bytes())
    # words: headlines; analogs: its thresholds; sql and incremental: how models are bound and how far back they read
    for module in (datasets, extremes, indicators, words, analogs, sql, incremental):
        digest.update(Path(module.__file__).read_bytes())
    digest.update(Path(__file__).read_bytes())
    digest.update(json.dumps({
        "rules": REGIME_RULES, "small_caps": list(settings.small_caps), "large_caps": list(settings.large_caps),
        "duckdb": duckdb.__version__, "numpy": numpy.__version__, "pyarrow": pyarrow.__version__,
    }, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def discard(staging: Path) -> None:
    for path in (staging, staging.with_name(staging.name + ".wal")):
        path.unlink(missing_ok=True)


def publish(settings: Settings, staging: Path) -> Path:
    """Atomically replace the published warehouse with a finished staging file."""
    if not staging.exists():
        raise WarehouseError(f"nothing to publish: {staging} does not exist")
    if staging.with_name(staging.name + ".wal").exists():
        raise WarehouseError(f"{staging} has a pending write-ahead log; it was not closed cleanly")
    target = settings.warehouse_path
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        _keep_spare(settings, target)
    os.replace(staging, target)
    log.info("published %s", target)
    return target


def _keep_spare(settings: Settings, published: Path) -> None:
    """Hard-link the published file as spare_path() before it is replaced (readers that have it open keep reading
    it; update() does not take a spare that is open). Where links are not possible, there is no spare: the next
    update copies."""
    from regime import lake

    spare = spare_path(settings)
    spare.parent.mkdir(parents=True, exist_ok=True)
    try:
        with lake.atomic_path(spare) as link:
            link.unlink()
            os.link(published, link)
    except OSError as exc:
        spare.unlink(missing_ok=True)
        log.warning("no spare of %s kept (%s): the next update copies it", published, exc)


def connect_readonly(path: Path) -> duckdb.DuckDBPyConnection:
    if not path.exists():
        raise WarehouseError(f"no warehouse at {path}: run the pipeline first (make demo)")
    return connect(path, read_only=True)


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    rows = con.execute(
        "select schema_name || '.' || table_name, estimated_size from duckdb_tables() "
        "where database_name = current_database() order by 1"
    ).fetchall()
    return {name: scalar(con, f"select count(*) from {name}") for name, _ in rows}


def sweep_builds(settings: Settings) -> list[Path]:
    """Remove the staging builds (`build/warehouse-*.duckdb`, their `.wal` and `.tmp/` spill folders) and temporary
    files that a killed or crashed run left behind; return what was removed. Call it holding `state/warehouse.lock` (as
    pipeline.build_validate_publish does): then no other build is running. A file some process still has open in
    DuckDB (which locks it) is kept all the same."""
    from regime import lake

    removed: list[Path] = []
    if not settings.build_dir.is_dir():
        return removed
    for path in sorted(settings.build_dir.glob("warehouse-*.duckdb*")):
        spill = path.name.endswith(".duckdb.tmp") and path.is_dir()  # where DuckDB spills beyond its memory limit
        if not spill and (not path.name.endswith((".duckdb", ".duckdb.wal")) or not path.is_file()):
            continue
        database = path.with_name(path.name.removesuffix(".wal").removesuffix(".tmp"))
        if database.exists() and _in_use(database):
            continue
        if spill:
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    if removed:
        log.warning("removed %d abandoned staging file(s), e.g. %s", len(removed), removed[0])
    return removed + lake.sweep_temp(settings.build_dir)
