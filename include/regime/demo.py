"""`make demo`: run the whole pipeline through Airflow on the mirror and print what it produced."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from regime import answers, freshness, state, words
from regime.config import Settings, get_settings
from regime.datasets import ALL, CFTC_TFF, ETF_NAV, INDEX_PRICES, OPTIONS_VOLUME, Dataset
from regime.mailcatcher import MailCatcher
from regime.sql import connect_readonly, table_counts

DAG_ID = "regime_daily"
# run first, as the scheduler runs it in its own weekly DAG: regime_daily ingests the four session sources but not
# Cboe's put/call archive (docs/operations.md, "DAGs and schedules"), which the bundled sample holds too
ARCHIVE_DAG_ID = "ingest_options_putcall"
_TASK = re.compile(r"\[DAG TEST\] (starting|end task) task_id=(\S+)")


class DemoError(Exception):
    """The demo cannot start: the message says why (a malformed mirror file: its name, and its line if known)."""


@dataclass(frozen=True)
class MirrorSeries:
    """One headline series as the mirror's files hold it: its dates (release dates for CFTC)."""

    dataset: Dataset
    name: str
    dates: frozenset[date]

    @property
    def label(self) -> str:
        return f"{self.dataset.name} {self.name}"


@dataclass(frozen=True)
class AsOfChoice:
    as_of: date
    limited_by: tuple[str, ...]  # per dataset, the series without a row on the next session some series has
    later: tuple[str, ...]  # series with rows after the as-of date: "index_prices RUT: 1 row after it, up to ..."
    missing: tuple[str, ...]  # configured headline series with no file or no row in the mirror
    series: tuple[MirrorSeries, ...]


def _mirror_files(settings: Settings):
    """(dataset, series, folder, file name, parse) of every mirror file the ingests would read, as they read it."""
    from regime.calendar import is_session
    from regime.sources import cboe, cftc, etf, occ

    for symbol in settings.indexes:
        yield INDEX_PRICES, symbol, "cboe", cboe.file_name(symbol), \
            lambda data, where, s=symbol: {s: cboe.parse(data, s, where)["date"]}
    for year in sorted(int(m.group(1)) for p in (settings.mirror_dir / "cftc").glob("*.zip")
                       if (m := re.fullmatch(r"fut_fin_txt_(\d{4})\.zip", p.name))):
        def parse_cftc(data, where):
            frame = cftc.parse_zip(data, where, markets=settings.cftc_markets)
            return {code: rows["release_date"] for code, rows in frame.groupby("market_code")}

        yield CFTC_TFF, None, "cftc", cftc.file_name(year), parse_cftc
    for ticker in settings.etf_tickers:
        layout = etf.locate(settings.mirror_dir, ticker).layout  # the issuer's file, else the SSGA layout
        yield ETF_NAV, ticker, etf.folder(ticker, layout), etf.file_name(ticker, layout), \
            lambda data, where, t=ticker: {t: etf.parse(data, where, t)["date"]}
    folder = settings.mirror_dir / occ.FOLDER
    days = sorted(date.fromisoformat(p.name) for p in folder.glob("*")
                  if p.is_dir() and re.fullmatch(r"\d{4}-\d{2}-\d{2}", p.name))
    for day in (d for d in days if is_session(d)):
        for underlying in settings.watchlist:
            if (folder / occ.file_name(underlying, day)).is_file():  # a day folder without the file: no row that day
                yield OPTIONS_VOLUME, underlying, occ.FOLDER, occ.file_name(underlying, day), \
                    lambda data, where, u=underlying, d=day: _occ_dates(data, where, u, d)


def _occ_dates(data: bytes, where: str, underlying: str, day: date) -> dict:
    from regime.sources import occ

    try:
        return {underlying: occ.parse(data, where, underlying, day)["date"]}
    except (occ.NoTradingData, occ.NotYetPublished):
        return {}


def mirror_series(settings: Settings) -> list[MirrorSeries]:
    """Every configured headline series (freshness.expected) with its dates in the mirror, read by the sources'
    parsers as the ingests read them; DemoError naming the file (and line) of a file they refuse."""
    from regime.sources.errors import SourceError, SourceMissing
    from regime.sources.fetch import fetch_mirror

    dates: dict[tuple[str, str], set[date]] = {}
    for dataset, _name, folder, name, parse in _mirror_files(settings):
        try:
            fetched = fetch_mirror(settings.mirror_dir, folder, name, dataset.name)
            found = parse(fetched.data, fetched.location)
        except SourceMissing:
            continue
        except SourceError as exc:
            raise DemoError(f"cannot choose the as-of date: {exc.location}: {exc.problem}") from None
        for series, values in found.items():
            dates.setdefault((dataset.name, series), set()).update(values)
    return [MirrorSeries(dataset, name, frozenset(dates.get((dataset.name, name), ())))
            for dataset in ALL for name in freshness.expected(settings, dataset)]


def _released_within(series: MirrorSeries, day: date) -> bool:
    return any(day - timedelta(days=freshness.CFTC_FRESH_DAYS) <= d <= day for d in series.dates)


def _grouped(series: list[MirrorSeries]) -> tuple[str, ...]:
    """'index_prices SPX, NDX' per dataset, in the order of `series`."""
    names: dict[str, list[str]] = {}
    for s in series:
        names.setdefault(s.dataset.name, []).append(s.name)
    return tuple(f"{dataset} {', '.join(found)}" for dataset, found in names.items())


def choose_as_of(settings: Settings) -> AsOfChoice:
    """The demo's default as-of date: the last NYSE session on which every headline series of the mirror has a
    row (a CFTC market: a release within freshness.CFTC_FRESH_DAYS days). A row dated after the others does not
    move it; a series with no file or no row at all is left out (and named in `missing`)."""
    from regime.calendar import is_session

    series = mirror_series(settings)
    present = [s for s in series if s.dates]
    daily = [s for s in present if s.dataset.time_column != "release_date"]
    weekly = [s for s in present if s.dataset.time_column == "release_date"]
    if not daily:
        raise DemoError(f"cannot choose the as-of date: no Cboe, OCC or ETF file of the headline series in "
                        f"{settings.mirror_dir}")
    shared = sorted(d for d in frozenset.intersection(*(s.dates for s in daily))
                    if is_session(d) and all(_released_within(s, d) for s in weekly))
    if not shared:
        raise DemoError(f"cannot choose the as-of date: no NYSE session on which every headline series in "
                        f"{settings.mirror_dir} has a row; set REGIME_AS_OF")
    as_of = shared[-1]
    after = sorted(d for s in daily for d in s.dates if d > as_of and is_session(d))
    limited = ()
    if after:
        limited = _grouped([s for s in daily if after[0] not in s.dates]
                           + [s for s in weekly if not _released_within(s, after[0])])
    later = []
    for s in daily:  # a CFTC release after the as-of date is the usual case (Tuesday's report, out on Friday)
        rows = sorted(d for d in s.dates if d > as_of)
        if rows:
            later.append(f"{s.label}: {len(rows)} {'row' if len(rows) == 1 else 'rows'} after it, up to {rows[-1]}")
    return AsOfChoice(as_of, limited, tuple(later), tuple(s.label for s in series if not s.dates), tuple(series))


def mirror_problems(settings: Settings, choice: AsOfChoice, as_of: date) -> list[str]:
    """The headline series missing from the mirror or stale on `as_of` (freshness's limits, on the mirror's files)."""
    found: dict[Dataset, list[freshness.Series]] = {dataset: [] for dataset in ALL}
    for s in choice.series:
        last = max((d for d in s.dates if d <= as_of), default=None)
        if last is not None:
            found[s.dataset].append(freshness.Series(s.dataset.name, s.name, last))
    lines = freshness.problems_of(settings, as_of, found, where=f"the mirror ({settings.mirror_dir})")
    absent = {}
    for s in choice.series:
        if found[s.dataset] and not any(x.name == s.name for x in found[s.dataset]):
            absent.setdefault(s.dataset.name, []).append(s.name)
    return [f"{name} {', '.join(names)}: no data on or before {as_of} in the mirror"
            for name, names in absent.items()] + lines


def warning_block(title: str, lines: list[str]) -> str:
    """A framed block that stands out in the demo's output."""
    body = [title, *[f"- {line}" for line in lines]]
    width = min(max(len(line) for line in body), 116)
    rule = "!" * (width + 4)
    return "\n".join([rule, *[f"! {line:<{width}} !" for line in body], rule])


def live_as_of(today: date | None = None) -> date:
    """Live mode's default as-of date: the last NYSE session before today in New York (its files are out)."""
    from zoneinfo import ZoneInfo

    from regime.calendar import previous_session

    today = today or datetime.now(ZoneInfo("America/New_York")).date()
    return previous_session(today - timedelta(days=1))


def live_problems(settings: Settings, as_of: date) -> list[str]:
    """Live mode, before the run: ingest every dataset as of `as_of` (the tasks' code; the run's ingests then skip
    or refetch the same files) and return the headline series missing or stale in the lake."""
    from regime import pipeline
    from regime.datasets import ALL as datasets

    for dataset in datasets:
        pipeline.ingest(dataset.name, as_of, settings)
    return freshness.problems(settings, as_of) + freshness.missing(settings, as_of)


def run_dag(dag_id: str, as_of: date, env: dict, log_path: Path) -> int:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(Path(sys.executable).with_name("airflow")), "dags", "test", dag_id, as_of.isoformat()]
    print(f"$ {' '.join(cmd[1:])}   (full log: {log_path})", flush=True)
    started = time.monotonic()
    with log_path.open("w") as log, subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                                     stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            log.write(line)
            step = _TASK.search(line)
            if step:
                verb = "running " if step.group(1) == "starting" else "finished"
                print(f"  [{time.monotonic() - started:5.1f}s] {verb} {step.group(2)}", flush=True)
            elif line.lstrip().startswith(("BLOCKING", "regime.", "airflow.sdk.exceptions.AirflowFailException")):
                print("  " + line.rstrip()[:400], flush=True)
        code = proc.wait()
    print(f"airflow dags test {dag_id} finished in {time.monotonic() - started:.1f}s with exit code {code}")
    return code


def summary(settings: Settings, as_of: date) -> None:
    con = connect_readonly(settings.warehouse_path)
    try:
        print(f"\nWarehouse: {settings.warehouse_path}")
        print("  query it with: .venv/bin/regime sql \"select * from marts.indicators limit 5\"  (read-only)")
        for table, count in table_counts(con).items():
            print(f"  {table:<24} {count:>8} rows")
        rows = con.execute(
            "select date, indicator, subject, value from marts.indicators where value is not null and "
            "date = (select max(date) from marts.indicators where date <= $as_of) order by indicator, subject",
            {"as_of": as_of},
        ).fetchall()
        heads = answers.headlines(con, as_of)
        print(f"\nHeadlines of {as_of}:" if heads else f"\nNo headlines on {as_of}: nothing historic that day.")
        for headline in heads:
            print(f"  {headline}")
        print(f"\nLatest readings ({rows[0][0] if rows else as_of}):")
        for _d, indicator, subject, value in rows:
            print(f"  {words.reading_name(indicator, subject):<72} {words.value_text(indicator, value):>24}")
    finally:
        con.close()
    alerts = state.frames(settings.state_dir)["alerts"]
    print("\nAlerts:")
    if alerts.empty:
        print("  none")
    for a in alerts.itertuples():
        print(f"  [{a.state}] {a.reading_date} {a.message} (attempts: {a.attempts}, sent: {a.sent_at})")
    docs = settings.data_dir / "validation-docs" / "index.html"
    if docs.exists():
        print(f"\nValidation report (Great Expectations Data Docs): {docs}")
    report = settings.data_dir / "reports" / f"{as_of.isoformat()}.html"
    if report.exists():
        print(f"Regime report with charts: {report}")


def prepare(settings: Settings, requested: str | None) -> tuple[date, list[str]]:
    """The run's as-of date and the headline series missing or stale on it, printing how the date was chosen.
    DemoError when the date cannot be chosen (a malformed file, a bad REGIME_AS_OF) or, live, the data is stale."""
    from regime.ingest import IngestError

    try:
        as_of = date.fromisoformat(requested) if requested else None
    except ValueError:
        raise DemoError(f"REGIME_AS_OF={requested!r} is not a date (YYYY-MM-DD)") from None
    if settings.source == "live":
        as_of = as_of or live_as_of()
        print(f"as of {as_of}: {'REGIME_AS_OF' if requested else 'the last NYSE session before today'}; fetching "
              "every source before the run to check that no headline series is missing or stale", flush=True)
        try:
            found = live_problems(settings, as_of)
        except IngestError as exc:
            raise DemoError(f"live ingest as of {as_of} failed, nothing was published:\n{exc}") from None
        if found:
            print(warning_block(f"BLOCKED: headline data for {as_of} is missing or stale; nothing was published",
                                found))
            raise DemoError(f"stale or missing headline data for {as_of} (above); nothing was published")
        return as_of, []
    choice = choose_as_of(settings)
    if as_of is None:
        as_of = choice.as_of
        print(f"as of {as_of}: the last NYSE session on which every headline series has a row "
              "(set REGIME_AS_OF to choose another)")
    else:
        print(f"as of {as_of}: REGIME_AS_OF (the last session every headline series shares: {choice.as_of})")
    if choice.limited_by:
        print(f"  limited by: {'; '.join(choice.limited_by)} (no row on the next session some series has)")
    for line in choice.later:
        print(f"  later rows, ignored: {line}")
    return as_of, mirror_problems(settings, choice, as_of)


def main() -> int:
    settings = get_settings()
    print(f"Regime monitor demo: source={settings.source} mirror={settings.mirror_dir}", flush=True)
    try:
        as_of, found = prepare(settings, os.environ.get("REGIME_AS_OF"))
    except DemoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    warning = warning_block(f"WARNING: headline series missing or stale on {as_of}; its readings are not current",
                            found) if found else None
    if warning:
        print(warning, flush=True)
    print(f"data dir: {settings.data_dir}")
    env = dict(os.environ)
    catcher = None
    if settings.smtp_conn_id == "smtp_default" and "AIRFLOW_CONN_SMTP_DEFAULT" not in env:
        mail_dir = settings.data_dir / "demo-mail"
        catcher = MailCatcher(mail_dir)
        catcher.start()
        env["AIRFLOW_CONN_SMTP_DEFAULT"] = catcher.connection_uri_json()
        print(f"mail: a local SMTP catcher on 127.0.0.1:{catcher.port} keeps messages in {mail_dir}")
    try:
        logs = settings.data_dir / "logs"
        archive = run_dag(ARCHIVE_DAG_ID, as_of, env, logs / f"demo-{as_of.isoformat()}-{ARCHIVE_DAG_ID}.log")
        if archive:  # as in production: the session's build goes on with the archive the lake holds (if any)
            print(f"{ARCHIVE_DAG_ID} failed (its log names the file and the problem): {DAG_ID} runs without it")
        code = run_dag(DAG_ID, as_of, env, logs / f"demo-{as_of.isoformat()}.log") or archive
        if settings.warehouse_path.exists():
            summary(settings, as_of)
        if catcher is not None:
            for msg in catcher.messages:
                print(f"\nMail received by the catcher: {msg['Subject']!r} to {msg['To']}")
    finally:
        if catcher is not None:
            catcher.stop()
    if warning:
        print("\n" + warning)
    return code


if __name__ == "__main__":
    sys.exit(main())
