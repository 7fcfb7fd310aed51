"""The publishing gate: run every suite on a staging warehouse; only a build that passes every
blocking (critical) expectation may be published. Results go to GX Data Docs and to the state store."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pandas as pd

from regime import state
from regime.validation import (
    cftc_tff,
    etf_nav,
    extremes,
    headlines,
    indicators,
    options_volume,
    prices,
    regime_daily,
    revisions,
)
from regime.validation.context import RunContext
from regime.validation.plausibility import EXCEPTIONS_FILE, load_exceptions
from regime.warehouse import bind, connect

log = logging.getLogger(__name__)

SUITES = (prices, options_volume, cftc_tff, etf_nav, indicators, extremes, regime_daily, headlines, revisions)


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
        lines = [f"validation as of {self.as_of}: {len(self.results)} expectations, "
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


def _context(docs_dir: Path):
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.variables.data_docs_sites = {}
    context.add_data_docs_site("regime", {
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    })
    return context


def _sample(result: dict) -> list:
    values = result.get("partial_unexpected_list") or []
    if not values and "observed_value" in result:
        values = [result["observed_value"]]
    return [str(v) for v in values[:5]]


def run_suites(con: duckdb.DuckDBPyConnection, run: RunContext, docs_dir: Path, suites=SUITES) -> GateReport:
    import great_expectations as gx

    context = _context(docs_dir)
    source = context.data_sources.add_pandas("warehouse")
    definitions = []
    frames = {}
    report = GateReport(as_of=run.as_of)
    for suite_module in suites:
        try:
            frame = con.execute(suite_module.QUERY, bind(suite_module.QUERY, run.sql_params())).df()
            prepare = getattr(suite_module, "prepare", None)
            frames[suite_module.NAME] = prepare(frame, run) if prepare else frame
        except duckdb.Error as exc:  # a table or column missing: nothing else can be checked
            report.results.append(CheckResult(
                dataset=suite_module.NAME, expectation="the dataset can be read with its expected columns",
                severity="critical", success=False, unexpected_count=None,
                sample=[str(exc).splitlines()[0]], note="schema"))
            continue
        batch_definition = source.add_dataframe_asset(name=suite_module.NAME).add_batch_definition_whole_dataframe(
            "run")
        suite = context.suites.add(gx.ExpectationSuite(name=suite_module.NAME,
                                                       expectations=suite_module.expectations(run)))
        definitions.append(context.validation_definitions.add(
            gx.ValidationDefinition(name=suite_module.NAME, data=batch_definition, suite=suite)))

    for definition in definitions:
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=f"{definition.name}-{run.as_of}", validation_definitions=[definition], result_format="SUMMARY"))
        outcome = checkpoint.run(batch_parameters={"dataframe": frames[definition.name]},
                                 run_id=None)
        for validation in outcome.run_results.values():
            for r in validation.results:
                config = r.expectation_config
                raised = (r.exception_info or {}).get("raised_exception", False)
                report.results.append(CheckResult(
                    dataset=definition.name,
                    expectation=_describe(config),
                    severity=getattr(config.severity, "value", str(config.severity)),
                    success=bool(r.success) and not raised,
                    unexpected_count=r.result.get("unexpected_count"),
                    sample=_sample(r.result) if not raised else [r.exception_info.get("exception_message")],
                    note=str(config.notes or ""),
                ))
    # Data Docs once for every suite (an UpdateDataDocsAction per checkpoint re-rendered the whole site each time:
    # half of the gate's time, docs/performance.md)
    context.build_data_docs()
    index = docs_dir / "index.html"
    report.docs_url = index.as_uri() if index.exists() else None
    return report


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
                   gap_tolerance_sessions: int = 2, suites=SUITES, exceptions: Path = EXCEPTIONS_FILE) -> GateReport:
    """Validate a staging warehouse; record the outcome; raise ValidationFailed if anything blocks.

    `published` (the last published warehouse) gives the row-count floors (none when lake rows were removed since
    it was built: removed_since_published) and the history each price series must match; `exceptions` is the
    reviewed exception list (plausibility.load_exceptions raises when it is unusable)."""
    floors = previous_rows(published, as_of, suites)
    if floors and (removed := removed_since_published(published, state_dir)):
        log.warning("%d lake row(s) removed since the published build (meta.revisions): no row-count floors", removed)
        floors = {}
    run = RunContext(as_of=as_of, freshness_sessions=freshness_sessions, gap_tolerance_sessions=gap_tolerance_sessions,
                     previous_rows=floors, published=published,
                     exceptions=load_exceptions(exceptions))
    con = connect(staging, read_only=True)
    try:
        report = run_suites(con, run, docs_dir, suites)
    finally:
        con.close()
    record(state_dir, report)
    log.info("%s", report.summary())
    if not report.passed:
        raise ValidationFailed(report)
    return report
