"""The pipeline's steps, one function per task. DAG files only wire these together; each takes plain
values (dates, paths) and returns plain values, so file paths, never DataFrames, cross XCom."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

from regime import lake, lake_store, publisher, warehouse
from regime.config import Settings, get_settings
from regime.incremental import NotIncremental
from regime.sql import connect, connect_readonly

log = logging.getLogger(__name__)
# dataset -> its sources' folders under raw/ and quarantine/ (swept with the dataset's lake folder)
RAW_FOLDERS = lake_store.SOURCES


def sweep_ingest(settings: Settings, dataset: str) -> list[Path]:
    """Remove what a killed earlier ingest of `dataset` may have left half-written (its temporary files in the
    lake, raw and quarantine folders); call it holding the dataset's ingest lock."""
    folders = [settings.lake_dir / dataset]
    for source in RAW_FOLDERS[dataset]:
        folders += [settings.raw_dir / source, settings.quarantine_dir / source]
    return lake.sweep_temp(*folders)


def ingest(dataset: str, as_of: date, settings: Settings | None = None, **options) -> dict:
    """Ingest one canonical dataset (index_prices, options_volume, cftc_tff, etf_nav) as of `as_of`; `options` go to
    its ingester (regime-backfill: options_volume's `days`). With REGIME_LAKE_URI the ingester runs on the local
    working copy, pulled from the bucket before and pushed after (regime.lake_store)."""
    from regime.ingest import INGESTERS
    from regime.locks import exclusive

    settings = settings or get_settings()
    with exclusive(settings.state_dir / f"ingest-{dataset}.lock", f"ingest of {dataset}"):
        sweep_ingest(settings, dataset)
        with lake_store.synced(settings, dataset, as_of):
            result = INGESTERS[dataset](settings, as_of, **options)
    if result.missing:
        log.warning("%s: not available upstream, skipped: %s", dataset, ", ".join(result.missing[:20]))
    return result.as_xcom()


def build(as_of: date, settings: Settings | None = None, incremental: bool = True) -> str:
    """Build a staging warehouse as of `as_of`; return its path. With `incremental` (the default: the DAGs and
    regime-backfill), update the file published before (publisher's spare) or else a copy of the published
    warehouse, when warehouse.update can show that the result equals a full rebuild (same code and source, built as
    of `as_of` or earlier, lake unchanged for earlier dates: see docs/performance.md); otherwise, and with
    incremental=False, rebuild every model from the lake."""
    settings = settings or get_settings()
    if incremental and settings.warehouse_path.exists():
        try:
            return str(warehouse.update(settings, as_of, settings.warehouse_path, publisher.spare_path(settings)))
        except NotIncremental as exc:
            log.info("full rebuild: %s", exc)
    return str(warehouse.build(settings, as_of))


def validate(staging: str, as_of: date, settings: Settings | None = None) -> dict:
    """Run the gate. On failure the staging copy is discarded and the error names every blocking check."""
    from regime.validation.gate import ValidationFailed, validate_build

    settings = settings or get_settings()
    try:
        report = validate_build(Path(staging), as_of, settings.data_dir / "validation-docs",
                                settings.state_dir, settings.freshness_sessions, settings.warehouse_path,
                                settings.gap_tolerance_sessions, memory_limit=settings.duckdb_memory_limit)
    except ValidationFailed:
        publisher.discard(Path(staging))
        raise
    con = connect(staging)
    try:
        new_alerts = queue_alerts(con, as_of, settings)  # so the published meta.alerts lists this run's alerts
        warehouse.copy_state(con, settings.state_dir)
        con.execute("checkpoint")
    finally:
        con.close()
    return {"checks": len(report.results), "warnings": [w.line() for w in report.warnings],
            "docs_url": report.docs_url, "new_alerts": new_alerts}


def publish(staging: str, settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    published = publisher.publish(settings, Path(staging))
    if settings.publish_uri:  # also to a bucket (docs/operations.md, "Object storage"); raises if the upload fails
        from regime import remote_warehouse

        remote_warehouse.publish_warehouse(published, settings.publish_uri)
    return str(published)


def build_validate_publish(as_of: date, settings: Settings | None = None, incremental: bool = True) -> dict:
    """Build a staging copy (incrementally where that gives the same result, see build()), validate it, publish it:
    one writer of the warehouse at a time (a second run waits for the lock). A failed validation raises with the
    summary; the published warehouse stays as it was."""
    from regime.locks import exclusive

    settings = settings or get_settings()
    with exclusive(settings.state_dir / "warehouse.lock", "the warehouse"):
        publisher.sweep_builds(settings)  # staging files of a killed earlier run
        staging = build(as_of, settings, incremental)
        summary = validate(staging, as_of, settings)
        summary["published"] = publish(staging, settings)
    return summary


def queue_alerts(con, as_of: date, settings: Settings) -> int:
    """Evaluate the alert rules on a warehouse and record new alerts as pending in the outbox."""
    from regime.alerts import outbox, rules

    return outbox.enqueue(settings.state_dir, as_of, rules.evaluate(con, as_of, settings))


class AlertsNotComposed(RuntimeError):
    """Some alerts could not be put into a mail (the others were sent); the message names each with its error."""


def alert(as_of: date, settings: Settings | None = None) -> dict:
    """Mail every pending alert in one message (new extremes of the published warehouse are queued first, as
    the build already did); mark them sent only once the SMTP server accepted the mail.

    Each alert is put into words on its own (regime.alerts.content): one that cannot be is marked failed with its
    error, the others are mailed, and then AlertsNotComposed names it (the task fails: operators get a mail). The
    subject is the day's first headline (marts.headlines); the run's report (reports/<as_of>.html), when written
    already, is attached; the chart or report failing leaves them out, never the mail.

    One alert run at a time (state/alerts.lock): a second one waits, then finds the alerts sent and mails nothing.
    Not the warehouse's lock: this reads only the published file (never blocked) and writes only the outbox, so it
    need not wait for a build; a build's queue_alerts only adds rows, which the next run mails."""
    from regime import answers
    from regime.alerts import chart, content, mail, outbox, rules
    from regime.locks import exclusive

    settings = settings or get_settings()
    with exclusive(settings.state_dir / "alerts.lock", "the alert outbox"):
        con = connect_readonly(settings.warehouse_path)
        try:
            found = rules.evaluate(con, as_of, settings)
            new = outbox.enqueue(settings.state_dir, as_of, found)
            waiting = outbox.pending(settings.state_dir)
            items, failed = content.items(con, waiting, settings)
            headlines = answers.headlines(con, as_of)
            png = None
            if items:
                lead = next(a for a in waiting if a["alert_key"] == items[0].key)
                try:
                    png = chart.lead_chart(con, lead["indicator"], lead["subject"], as_of, settings.zscore_alert)
                except Exception:
                    log.exception("the alert chart failed: the mail goes without it")
        finally:
            con.close()
        log.info("alerts: %d found, %d new, %d pending, %d could not be composed", len(found), new, len(waiting),
                 len(failed))
        if failed:
            for key, error in failed.items():
                log.error("alert %s could not be composed: %s", key, error)
            outbox.mark(settings.state_dir, list(failed), ok=False, error=None, errors=failed)
        result = {"found": len(found), "new": new, "sent": 0}
        if items:
            keys = [item.key for item in items]
            msg = mail.compose(items, headlines, as_of.isoformat(), mail.sender(settings.smtp_conn_id),
                               list(settings.alert_to), png, settings.data_dir / "reports" / f"{as_of}.html")
            try:
                mail.send(msg, settings.smtp_conn_id)
            except Exception as exc:
                outbox.mark(settings.state_dir, keys, ok=False, error=f"{exc.__class__.__name__}: {exc}")
                raise
            outbox.mark(settings.state_dir, keys, ok=True)
            log.info("sent %r to %s", msg["Subject"], ", ".join(settings.alert_to))
            result.update(sent=len(keys), subject=msg["Subject"])
    if failed:
        raise AlertsNotComposed(f"{len(failed)} alert(s) could not be composed (kept as failed, retried next run; "
                                f"{result['sent']} sent): " + "; ".join(f"{k}: {v}" for k, v in failed.items()))
    return result


def report(as_of: date, settings: Settings | None = None) -> str:
    """Write the run's static HTML report (charts embedded) next to the warehouse: reports/<as_of>.html."""
    from regime.report import write_report

    settings = settings or get_settings()
    path = write_report(settings, as_of)
    log.info("report written: %s", path)
    return str(path)
