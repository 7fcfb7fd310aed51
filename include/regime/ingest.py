"""Ingest: obtain each file (mirror or live), land the raw bytes, parse, and upsert canonical Parquet.

All files of a source are parsed before anything canonical is written: one malformed file fails the whole
ingest (its bytes quarantined) and leaves the canonical lake as it was.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date

from regime import lake
from regime.config import Settings
from regime.sources import cboe
from regime.sources.errors import SourceError, SourceMissing
from regime.sources.fetch import Fetched, fetch_http, fetch_mirror

log = logging.getLogger(__name__)


class IngestError(RuntimeError):
    """One or more upstream files were unusable; the message names each file and its problem."""


@dataclass
class IngestResult:
    dataset: str
    as_of: date
    written: dict[str, str] = field(default_factory=dict)  # subject -> canonical parquet path
    rows: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    def as_xcom(self) -> dict:
        return {"dataset": self.dataset, "as_of": self.as_of.isoformat(), "written": self.written,
                "rows": self.rows, "missing": self.missing}


def obtain(settings: Settings, folder: str, name: str, url: str, source: str) -> Fetched:
    if settings.source == "mirror":
        return fetch_mirror(settings.mirror_dir, folder, name, source)
    return fetch_http(url, name, source, timeout=settings.http_timeout)


def ingest_cboe(settings: Settings, as_of: date) -> IngestResult:
    result = IngestResult(dataset="index_prices", as_of=as_of)
    parsed, errors = {}, []
    for symbol in settings.indexes:
        name = cboe.file_name(symbol)
        try:
            fetched = obtain(settings, "cboe", name, cboe.url(symbol), cboe.SOURCE)
        except SourceMissing as exc:
            log.warning("skipping %s: %s", symbol, exc)
            result.missing.append(symbol)
            continue
        except SourceError as exc:
            errors.append(str(exc))
            continue
        lake.land_raw(settings.raw_dir, cboe.SOURCE, as_of, name, fetched.data, fetched.location,
                      fetched.fetched_at)
        try:
            parsed[symbol] = cboe.parse(fetched.data, symbol, fetched.location)
        except SourceError as exc:
            where = lake.quarantine(settings.quarantine_dir, cboe.SOURCE, as_of, name, fetched.data, str(exc))
            errors.append(f"{exc} (bytes kept in {where})")
    if errors:
        raise IngestError("Cboe ingest failed; nothing was written to the lake:\n  " + "\n  ".join(errors))
    if not parsed:
        raise IngestError(f"Cboe ingest found none of {list(settings.indexes)} in {settings.source} source")

    for symbol, frame in parsed.items():
        known = frame[frame["date"] <= as_of]
        path = lake.partition_path(settings.lake_dir, "index_prices", "symbol", symbol)
        result.rows[symbol] = lake.upsert_partition(path, known, on=["date"])
        result.written[symbol] = str(path)
        log.info("%s: %d rows in the lake (%d in this file up to %s)", symbol, result.rows[symbol],
                 len(known), as_of)
    return result
