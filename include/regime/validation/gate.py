"""The publishing gate: run every suite on a staging warehouse; only a build that passes every
blocking (critical) expectation may be published. Results go to GX Data Docs and to the state store."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pandas as pd

from regime import state
from regime.sql import FULL, bind, connect
from regime.validation import (
    analogs,
    cftc_tff,
    etf_nav,
    extremes,
    headlines,
    indicators,
    options_putcall,
    options_volume,
    prices,
    regime_daily,
    revisions,
)
from regime.validation.context import RunContext
from regime.validation.plausibility import EXCEPTIONS_FILE, load_exceptions
from regime.validation.scope import (
    SPECS,
    Scope,
    context_from,
    invariant_expectations,
    invariants_sql,
    read_scope,
    scoped_query,
)

log = logging.getLogger(__name__)

# what GX returns per expectation (docs/performance.md, "The validation gate"): the unexpected count and up to 20
# unexpected values, what the report, the alert mail and the Data Docs show of a failure
RESULT_FORMAT = "BASIC"

SUITES = (prices, options_volume, cftc_tff, etf_nav, options_putcall, indicators, extremes, regime_daily, headlines,
          revisions, *analogs.SUITES)


@dataclass
class CheckResult:
    dataset: str
    expectation: str
    severity: str
    success: bool
    unexpected_count: int | None
    sample: list
    note: str = ""

    def line(self) -> str:
        where = f" ({self.note})" if self.note else ""
        return (f"{self.dataset}: {self.expectation}{where}: {self.unexpected_count} unexpected rows, "
                f"e.g. {self.sample[:5]}")


@dataclass
class GateReport:
    as_of: date
    results: list[CheckResult] = field(default_factory=list)
    docs_url: str | None = None
    scope: str = "every row (full build)"
    rows: int = 0  # rows handed to GX (the suites' frames)
    phases: list[tuple[str, float, float]] = field(default_factory=list)  # (step, start, end), time.time()

    @property
    def blocking_failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.success and r.severity == "critical"]

    @property
    def warnings(self) -> list[CheckResult]:
        return [r for r in self.results if not r.success and r.severity != "critical"]

    @property
    def passed(self) -> bool:
        return not self.blocking_failures

    def summary(self) -> str:
        lines = [f"validation as of {self.as_of} of {self.scope}: {len(self.results)} expectations, "
                 f"{len(self.blocking_failures)} blocking failures, {len(self.warnings)} warnings"]
        lines += [f"  BLOCKING {r.line()}" for r in self.blocking_failures]
        lines += [f"  warning  {r.line()}" for r in self.warnings]
        if self.docs_url:
            lines.append(f"  Data Docs: {self.docs_url}")
        return "\n".join(lines)


class ValidationFailed(RuntimeError):
    def __init__(self, report: GateReport):
        self.report = report
        super().__init__(report.summary())


# Data Docs keep the pages of the last DOCS_RUNS_KEPT gates: each gate stores its validation results as JSON under
# `<docs dir>/results`, renders only its own pages, drops the results of older gates (GX's index build then removes
# their pages) and lists the rest in the index, which reads every result it lists: ~1.5 ms each, so the Data Docs'
# cost is bounded by the kept gates, not by how many ran (docs/validation.md)
RESULTS_DIR = "results"
DOCS_RUNS_KEPT = 7


def _context(docs_dir: Path):
    """An ephemeral GX context (suites, definitions and the data source in memory, made afresh for each gate) whose
    validation results store is the JSON files under `docs_dir/results`, with the Data Docs site in `docs_dir`."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
                               progress_bars=ProgressBarsConfig(globally=False))
    config.stores["gate_results"] = {"class_name": "ValidationResultsStore", "store_backend": {
        "class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir / RESULTS_DIR)}}
    config.validation_results_store_name = "gate_results"
    config.data_docs_sites = {"regime": {
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }}
    return gx.get_context(mode="ephemeral", project_config=config)


def _sample(result: dict) -> list:
    values = result.get("partial_unexpected_list") or []
    if not values and "observed_value" in result:
        values = [result["observed_value"]]
    return [str(v) for v in values[:5]]


def _read(con: duckdb.DuckDBPyConnection, suite_module, run: RunContext, scope: Scope):
    """The frame GX validates for one suite, the one-row whole-table invariants frame (None: none) and the rows
    validated. A full build: every row, or for a suite with a SUSPECT predicate (the largest tables) the rows that
    may fail a row-level expectation, with the invariants. An update: the rows dated after `since` (their context
    rows read but left out), with the invariants; a suite with a SUSPECT predicate and no date to scope by
    (episodes) is narrowed over the whole table as in a full build."""
    spec = SPECS.get(suite_module.NAME)
    prepare = getattr(suite_module, "prepare", None)
    suspect = getattr(suite_module, "SUSPECT", None)
    if suspect is not None and (scope.full or spec is None):  # every row, narrowed by DuckDB (suite's SUSPECT)
        sql = f"select * from ({suite_module.QUERY}) where {suspect}"
        frame = scope.suspect_rows(con, sql, suite_module, run)  # with the suite's `prepare`
        if spec is None:  # only row-level expectations: the frame holds every row that fails one
            return frame, None, con.execute(f"select count(*) from {suite_module.TABLE}").fetchall()[0][0]
        sql = invariants_sql(suite_module.TABLE, spec)
        invariants = con.execute(sql, bind(sql, {**run.sql_params(), "since": FULL})).df()
        return frame, invariants, int(invariants["rows"].iloc[0])
    table = suite_module.TABLE
    sql = None if scope.full or spec is None else scoped_query(suite_module.QUERY, table, spec)
    if sql is None:  # every row (a full build; a suite an update cannot scope)
        frame = con.execute(suite_module.QUERY, bind(suite_module.QUERY, run.sql_params())).df()
        frame = prepare(frame, run) if prepare else frame
        return frame, None, len(frame)
    params = {**run.sql_params(), "context_from": context_from(con, table, spec, scope.since)}
    frame = con.execute(sql, bind(sql, params)).df()
    frame = prepare(frame, run) if prepare else frame
    frame = frame[pd.to_datetime(frame[spec.date]) > pd.Timestamp(scope.since)].reset_index(drop=True)
    sql = invariants_sql(table, spec)
    invariants = con.execute(sql, bind(sql, {**run.sql_params(), "since": scope.since})).df()
    return frame, invariants, len(frame)


def _checking(run: RunContext, frame: pd.DataFrame) -> RunContext:
    """The run context for a suite's frame: a frame with dates (`date_iso`) checks them against the NYSE's weekday
    closures from its first date on (RunContext.closures_checked)."""
    if "date_iso" not in frame.columns:
        return run
    first = frame["date_iso"].dropna().min()
    return run.checking_from(date.fromisoformat(first) if isinstance(first, str) else None)


def _split(expectations: list) -> tuple[list, int | None]:
    """An update's row-level expectations and its row-count floor: the table-level ones (row count, the date
    column's maximum) are checked on the whole-table invariants frame instead."""
    import great_expectations.expectations as gxe

    floor = next((e.min_value for e in expectations if isinstance(e, gxe.ExpectTableRowCountToBeBetween)), None)
    rows = [e for e in expectations
            if not isinstance(e, (gxe.ExpectTableRowCountToBeBetween, gxe.ExpectColumnMaxToBeBetween))]
    return rows, floor


def run_suites(con: duckdb.DuckDBPyConnection, run: RunContext, docs_dir: Path, suites=SUITES,
               scope: Scope | None = None) -> GateReport:
    """Validate `suites` on the warehouse `con` in `scope` (default: read from its meta.build_method: an update's
    changed rows plus whole-table invariants, or every row of a full build)."""
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    scope = read_scope(con) if scope is None else scope
    if not scope.full:
        run = replace(run, published_since=scope.since)
    report = GateReport(as_of=run.as_of, scope=scope.describe())
    clock = time.time()
    context = _context(docs_dir)
    # one dataframe asset and batch definition for every frame (each definition runs on its own frame, passed as a
    # batch parameter): an asset or batch definition added re-serializes the context's whole configuration, so one
    # per frame cost 2 x 17 serializations of a growing configuration (0.15 CPU s per gate)
    batch_definition = context.data_sources.add_pandas("regime").add_dataframe_asset(name="warehouse") \
        .add_batch_definition_whole_dataframe("frame")
    report.phases.append(("gx context", clock, clock := time.time()))
    definitions = []  # (definition, dataset, frame)
    for suite_module in suites:
        try:
            frame, invariants, rows = _read(con, suite_module, run, scope)
        except duckdb.Error as exc:  # a table or column missing: nothing else can be checked
            report.results.append(CheckResult(
                dataset=suite_module.NAME, expectation="the dataset can be read with its expected columns",
                severity="critical", success=False, unexpected_count=None,
                sample=[str(exc).splitlines()[0]], note="schema"))
            continue
        expectations = suite_module.expectations(_checking(run, frame))
        report.rows += rows
        parts = [(suite_module.NAME, expectations, frame)]
        if invariants is not None:
            rows, floor = _split(expectations)
            parts = [(suite_module.NAME, rows, frame),
                     (f"{suite_module.NAME} (whole table)", invariant_expectations(suite_module.NAME, run, floor),
                      invariants)]
        for name, checks, data in parts:
            suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=checks))
            definition = context.validation_definitions.add(
                gx.ValidationDefinition(name=name, data=batch_definition, suite=suite))
            definitions.append((definition, suite_module.NAME, data))
    report.phases.append(("read and prepare", clock, clock := time.time()))

    # one run for the gate's definitions: its pages sit together in the Data Docs (validations/<suite>/<as-of>/<time>)
    run_id = RunIdentifier(run_name=run.as_of.isoformat(), run_time=datetime.now(UTC))
    for definition, dataset, frame in definitions:
        # each definition run on its own frame and its result stored for the Data Docs (a Checkpoint per frame was
        # ~7 % of a profiled gate); BASIC: the unexpected count and up to 20 unexpected values (the Data Docs'
        # "Sampled Unexpected Values" table), without SUMMARY's value counts and row positions (1.4-1.9 CPU s at 1x)
        validation = definition.run(batch_parameters={"dataframe": frame}, result_format=RESULT_FORMAT, run_id=run_id)
        for r in validation.results:
            config = r.expectation_config
            raised = (r.exception_info or {}).get("raised_exception", False)
            report.results.append(CheckResult(
                dataset=dataset,
                expectation=_describe(config),
                severity=getattr(config.severity, "value", str(config.severity)),
                success=bool(r.success) and not raised,
                unexpected_count=r.result.get("unexpected_count"),
                sample=_sample(r.result) if not raised else [r.exception_info.get("exception_message")],
                note=str(config.notes or ""),
            ))
    report.phases.append(("validate (GX)", clock, clock := time.time()))
    # Data Docs once per gate (an UpdateDataDocsAction per checkpoint re-rendered the whole site each time: half of
    # the gate's time, docs/performance.md), rendering this gate's pages only (the suites' and its results'; the
    # pages of earlier gates stay) and the index
    mine = _keep_recent_runs(context.validation_results_store, run_id)
    suites_run = [ExpectationSuiteIdentifier(definition.suite.name) for definition, _, _ in definitions]
    context.build_data_docs(resource_identifiers=[*mine, *suites_run])
    _remove_empty_folders(docs_dir / RESULTS_DIR, docs_dir / "validations")  # the dropped gates' <suite>/<as-of>/...
    index = docs_dir / "index.html"
    report.docs_url = index.as_uri() if index.exists() else None
    report.phases.append(("Data Docs", clock, time.time()))
    return report


def _keep_recent_runs(store, run_id) -> list:
    """Remove the stored results of all but the last DOCS_RUNS_KEPT gates (`run_id`'s among them); return the keys
    of `run_id`'s results."""
    keys = store.list_keys()
    runs = sorted({key.run_id for key in keys}, key=lambda r: r.run_time, reverse=True)
    kept = set(runs[:DOCS_RUNS_KEPT]) | {run_id}
    for key in keys:
        if key.run_id not in kept:
            store.remove_key(key)
    return [key for key in keys if key.run_id == run_id]


def _remove_empty_folders(*roots: Path) -> None:
    """Remove the folders under `roots` left empty (deepest first) once GX removed a dropped gate's results and
    pages, which it does file by file."""
    for root in roots:
        for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            if not any(folder.iterdir()):
                folder.rmdir()


_SHOWN = ("column", "column_A", "column_B", "column_list", "column_set", "min_value", "max_value")


def _describe(config) -> str:
    """`expect_x(column=close, min_value=0)` and the row filter, short enough for a log line or a mail."""
    kwargs = config.kwargs
    args = ", ".join(f"{k}={kwargs[k]}" for k in _SHOWN if kwargs.get(k) is not None)
    condition = kwargs.get("row_condition")
    if isinstance(condition, dict):
        condition = condition.get("pass_through_filter")
    where = f" where {condition}" if condition else ""
    return f"{config.type}({args}){where}"


def record(state_dir: Path, report: GateReport) -> None:
    run_at = datetime.now(UTC).isoformat(timespec="seconds")
    with state.connect(state_dir) as con:
        con.executemany(
            "insert into validation_runs values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(run_at, report.as_of.isoformat(), r.dataset, r.expectation, r.severity, int(r.success),
              r.unexpected_count, json.dumps(r.sample), report.docs_url) for r in report.results],
        )


def previous_rows(published: Path | None, as_of: date, suites=SUITES) -> dict[str, int]:
    """Rows of each suite's table in the published warehouse, when it was built as of this date or earlier (a
    rebuild as of an earlier date legitimately holds fewer rows)."""
    if published is None or not published.exists():
        return {}
    con = connect(published, read_only=True)
    try:
        built = con.execute("select max(as_of) from meta.build_info").fetchall()[0][0]
        if built is None or built > as_of:
            return {}
        tables = {f"{s}.{t}" for s, t in con.execute("select schema_name, table_name from duckdb_tables()").fetchall()}
        return {m.NAME: con.execute(f"select count(*) from {m.TABLE}").fetchall()[0][0]
                for m in suites if m.TABLE in tables}
    except duckdb.Error:
        return {}
    finally:
        con.close()


def removed_since_published(published: Path | None, state_dir: Path) -> int:
    """Lake rows removed (meta.revisions kind `removed`: a corrected full-history file, `regime-lake remove`) after
    the published warehouse was built: then it may legitimately hold more rows than the next build."""
    if published is None or not published.exists():
        return 0
    con = connect(published, read_only=True)
    try:
        built = con.execute("select max(built_at) from meta.build_info").fetchall()[0][0]
    except duckdb.Error:
        return 0
    finally:
        con.close()
    removed = state.frames(state_dir)["revisions"].query("kind == 'removed'")
    if built is None or removed.empty:
        return 0
    return int((pd.to_datetime(removed["recorded_at"], utc=True) >= pd.Timestamp(built)).sum())


def validate_build(staging: Path, as_of: date, docs_dir: Path, state_dir: Path,
                   freshness_sessions: int = 3, published: Path | None = None,
                   gap_tolerance_sessions: int = 2, suites=SUITES, exceptions: Path = EXCEPTIONS_FILE,
                   memory_limit: str | None = None) -> GateReport:
    """Validate a staging warehouse; record the outcome; raise ValidationFailed if anything blocks.

    `published` (the last published warehouse) gives the row-count floors (none when lake rows were removed since
    it was built: removed_since_published) and the history each price series must match; `exceptions` is the
    reviewed exception list (plausibility.load_exceptions raises when it is unusable); `memory_limit` bounds DuckDB's
    buffer pool as in a build (Settings.duckdb_memory_limit: the panel's full-build gate peaked at 3.5 GB without it,
    1.4 GB with it, docs/performance.md)."""
    floors = previous_rows(published, as_of, suites)
    if floors and (removed := removed_since_published(published, state_dir)):
        log.warning("%d lake row(s) removed since the published build (meta.revisions): no row-count floors", removed)
        floors = {}
    run = RunContext(as_of=as_of, freshness_sessions=freshness_sessions, gap_tolerance_sessions=gap_tolerance_sessions,
                     previous_rows=floors, published=published,
                     exceptions=load_exceptions(exceptions))
    con = connect(staging, read_only=True, memory_limit=memory_limit)
    try:
        report = run_suites(con, run, docs_dir, suites)
    finally:
        con.close()
    record(state_dir, report)
    log.info("%s", report.summary())
    if not report.passed:
        raise ValidationFailed(report)
    return report
