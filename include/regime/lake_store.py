"""The lake in an S3-compatible bucket (REGIME_LAKE_URI=s3://bucket/prefix): `raw/`, `lake/` and `quarantine/` live
under the prefix, with the local lake's promises. Unset (the default), the lake is REGIME_DATA_DIR's folders and
nothing here does anything.

Writing: an ingest of dataset D runs the unchanged ingester (regime.ingest) on a local working copy under
REGIME_DATA_DIR, synced with the bucket around it (`synced`, called by pipeline.ingest under D's ingest lock):

1. sweep: the temporary keys killed writers left in D's folders of the bucket (lake/D, raw/<source>,
   quarantine/<source>: objectstore.sweep_temp, older than objectstore.STALE_TEMP);
2. pull what the ingester reads: D's lake partitions, the as-of date's raw and quarantine partitions of D's sources
   (land_raw's idempotency check: the landed file and its .meta.json) and, for CFTC, every landed zip's .meta.json
   (the years already landed, ingest._cftc_years). An object is downloaded only when its size or time differs from
   what this copy last saw of it (the sync record, `<data dir>/lake-sync/<dataset>.json`: per file the object's size
   and time, the local file's size and mtime, the sha256). A local file the bucket no longer holds is removed if it
   came from the bucket (it has a record), kept otherwise (not pushed yet: a lake from before the switch, a push that
   failed);
3. push: every file of D's local folders that the ingest added or changed (no record, or its size or mtime differs
   from the record, and its sha256 too), raw first (a file before its .meta.json), then quarantine, then the lake
   partitions, each with objectstore.put_atomic (temporary key, copy, delete): a reader never sees a half-written
   partition, and a kill leaves the previous object readable. A file with no record whose object already holds the
   same bytes is recorded, not written. A failed ingest still pushes what it landed (raw, quarantine), as the local
   lake keeps it.

The write journal is in each partition's Parquet metadata (regime.lake), so it travels with the object; a rerun with
the same bytes changes no local file and so writes no object.

Reading: the build (regime.warehouse), its journal check (regime.lake_changes) and the freshness checks
(regime.freshness) read the lake from the bucket itself: `glob` (objectstore.lake_glob), `has_data`, `register`
(DuckDB reads s3:// through objectstore.register_filesystem: no httpfs) and `journals` (Parquet footers only).
`regime-lake` (regime.repair) pulls D's partitions, and `remove` pushes what it rewrote.

One ingest of a dataset at a time, across machines too: the ingest lock is a local flock, so with workers on several
machines the Airflow pool of one slot of the dataset's ingest tasks keeps it (orchestration.ingest_pool). state/, the
build folder and the published warehouse stay local (REGIME_PUBLISH_URI uploads the warehouse: regime.remote_warehouse).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from regime import lake, objectstore
from regime.config import Settings
from regime.datasets import Dataset

if TYPE_CHECKING:
    import duckdb
    import pyarrow.fs as pafs

log = logging.getLogger(__name__)

SYNC_DIR = "lake-sync"  # under REGIME_DATA_DIR: one sync record per dataset
# dataset -> its sources' folders under raw/ and quarantine/ (also pipeline.RAW_FOLDERS: swept with the lake folder)
SOURCES = {"index_prices": ("cboe", "yahoo"), "options_volume": ("occ",), "cftc_tff": ("cftc",),
           "etf_nav": ("etf",), "options_putcall": ("cboe_putcall",)}
# what an ingester reads of raw/ beyond the as-of date's partitions: (folder, file name ending), pulled too
RAW_READS = {"cftc_tff": (("raw/cftc", ".zip.meta.json"),)}
_SIDECARS = (".meta.json", ".error.txt")  # pushed after the file they describe
_ORDER = ("raw", "quarantine", "lake")
PUSH_THREADS = 8  # objects written at a time (each: upload, check, copy, delete, then a look at the object)


@dataclass(frozen=True)
class Bucket:
    """The lake's bucket location and its filesystem."""

    location: objectstore.Location
    fs: pafs.FileSystem

    def path(self, rel: str) -> str:
        return self.location.path(rel)

    def rel(self, path: str) -> str:
        return path.removeprefix(self.location.path() + "/")


def bucket(settings: Settings) -> Bucket | None:
    """The lake's bucket (credentials from the environment or REGIME_S3_CONN_ID), None for the local lake."""
    if not settings.lake_uri:
        return None
    location = objectstore.parse_location(settings.lake_uri)
    return Bucket(location, objectstore.filesystem(location))


# --- reading the lake where it is -----------------------------------------------------------------------------------

def has_data(settings: Settings, dataset: Dataset) -> bool:
    """Whether the lake (the bucket or the local folder) holds a partition of `dataset`."""
    remote = bucket(settings)
    if remote is None:
        return dataset.has_data(settings.lake_dir)
    return any(i.base_name == "data.parquet"
               for i in objectstore.list_objects(remote.fs, remote.path(f"lake/{dataset.name}")))


def glob(settings: Settings, dataset: Dataset) -> str:
    """The read_parquet path of `dataset` (a staging model's `$<dataset>_glob`): s3://… or a local glob."""
    if not settings.lake_uri:
        return dataset.glob(settings.lake_dir)
    return objectstore.lake_glob(objectstore.parse_location(settings.lake_uri), dataset.name)


def register(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """Let `con` read the bucket's lake (`glob`); nothing for the local lake."""
    remote = bucket(settings)
    if remote is not None:
        objectstore.register_filesystem(con, remote.fs)


def journals(settings: Settings, datasets: tuple[Dataset, ...]) -> dict[str, dict[str, list[dict] | None]]:
    """{dataset: {partition directory: its write journal}} of the bucket's lake (lake_changes.lake_journals)."""
    remote = bucket(settings)
    found: dict[str, dict[str, list[dict] | None]] = {}
    for dataset in datasets:
        files = sorted(i.path for i in objectstore.list_objects(remote.fs, remote.path(f"lake/{dataset.name}"))
                       if i.base_name == "data.parquet")
        found[dataset.name] = {}
        for path in files:
            with objectstore.store_errors(f"cannot read {path}"), remote.fs.open_input_file(path) as handle:
                found[dataset.name][path.rsplit("/", 2)[-2]] = lake.read_journal(handle)
    return found


# --- the ingest's working copy --------------------------------------------------------------------------------------

@contextmanager
def synced(settings: Settings, dataset: str, as_of: date | None = None, push: bool = True) -> Iterator[None]:
    """Around an ingest (or a repair) of `dataset` holding its lock: sweep the bucket's temporaries, pull what it
    reads (with `as_of`: also that date's raw and quarantine partitions), then push what it added or changed (also
    when it failed). Nothing for the local lake."""
    remote = bucket(settings)
    if remote is None:
        yield
        return
    sweep(remote, dataset)
    sync = Sync(settings, remote, dataset)
    sync.pull(as_of)
    if not push:
        yield
        return
    try:
        yield
    except Exception:
        try:
            sync.push()
        except Exception:
            log.exception("%s: pushing what the failed ingest landed to %s failed too", dataset, remote.location.uri)
        raise
    sync.push()


def owned(dataset: str) -> list[str]:
    """The folders (relative to the lake's root) an ingest of `dataset` writes and sweeps."""
    return [f"lake/{dataset}", *(f"{top}/{s}" for top in ("raw", "quarantine") for s in SOURCES[dataset])]


def sweep(remote: Bucket, dataset: str) -> list[str]:
    """Delete the temporary keys killed writers left in `dataset`'s folders of the bucket."""
    removed = []
    for folder in owned(dataset):
        removed += objectstore.sweep_temp(remote.fs, remote.path(folder), older_than=objectstore.STALE_TEMP)
    return removed


class Sync:
    """The working copy of one dataset's folders under REGIME_DATA_DIR and its sync record (see the module)."""

    def __init__(self, settings: Settings, remote: Bucket, dataset: str):
        self.root, self.remote, self.dataset = settings.data_dir, remote, dataset
        self.record_path = settings.data_dir / SYNC_DIR / f"{dataset}.json"
        self.records: dict[str, dict] = {}
        if self.record_path.exists():
            try:
                self.records = json.loads(self.record_path.read_text())
            except ValueError:
                log.warning("%s is not valid JSON: the working copy is checked against the bucket anew",
                            self.record_path)
        self.before: dict[str, tuple[int, int]] = {}

    def scopes(self, as_of: date | None) -> list[tuple[str, str]]:
        """(folder, file name ending) of what an ingest reads."""
        scopes = [(f"lake/{self.dataset}", "")]
        if as_of is not None:
            scopes += [(f"{top}/{s}/as_of={as_of.isoformat()}", "") for top in ("raw", "quarantine")
                       for s in SOURCES[self.dataset]]
            scopes += list(RAW_READS.get(self.dataset, ()))
        return scopes

    def pull(self, as_of: date | None) -> int:
        """Download what changed in the bucket since this copy last saw it; returns the objects downloaded."""
        fetched = 0
        try:
            for folder, ending in self.scopes(as_of):
                infos = {self.remote.rel(i.path): i for i in objectstore.list_objects(self.remote.fs,
                                                                                      self.remote.path(folder))
                         if i.path.endswith(ending)}
                for rel, info in sorted(infos.items()):
                    if not self._current(rel, info):
                        self._download(rel, info)
                        fetched += 1
                for path in _files(self.root / folder):
                    rel = path.relative_to(self.root).as_posix()
                    if rel.endswith(ending) and rel not in infos and rel in self.records:
                        path.unlink()  # came from the bucket, which no longer holds it
                        del self.records[rel]
        finally:
            self._save()
        self.before = self._stats()
        log.info("%s: %d object(s) pulled from %s", self.dataset, fetched, self.remote.location.uri)
        return fetched

    def push(self) -> int:
        """Upload every file of the dataset's folders added or changed since the pull; returns the objects written.
        Raw files, then their sidecars, then quarantine, then the lake: each group whole before the next (its
        objects PUSH_THREADS at a time), so that a lake partition in the bucket always has its raw files there."""
        after = self._stats()
        changed = [rel for rel, stat in after.items() if self.before.get(rel) != stat or not self._recorded(rel, stat)]
        listed = self._listing() if any(rel not in self.records for rel in changed) else {}
        groups: dict[tuple[int, bool], list[str]] = {}
        for rel in changed:
            groups.setdefault((_ORDER.index(rel.split("/", 1)[0]), rel.endswith(_SIDECARS)), []).append(rel)
        written = 0
        try:
            with ThreadPoolExecutor(PUSH_THREADS) as pool:
                for group in sorted(groups):
                    written += sum(pool.map(lambda rel: self._push(rel, after[rel], listed.get(rel)),
                                            sorted(groups[group])))
        finally:
            self._save()
        log.info("%s: %d object(s) written to %s", self.dataset, written, self.remote.location.uri)
        return written

    def _push(self, rel: str, stat: tuple[int, int], listed: pafs.FileInfo | None) -> int:
        """Upload one file unless its object holds its bytes already; 1 if written."""
        path = self.root / rel
        digest = objectstore.file_sha256(path)
        record = self.records.get(rel)
        if record and record["sha256"] == digest:  # rewritten with the same bytes
            record["local"] = list(stat)
            return 0
        if record is None and listed is not None and listed.size == stat[0] \
                and _sha256_object(self.remote, rel) == digest:
            self.records[rel] = _record(listed, stat, digest)
            return 0
        with path.open("rb") as source:
            objectstore.put_atomic(self.remote.fs, self.remote.path(rel), source)
        with objectstore.store_errors(f"cannot read {self.remote.path(rel)}"):
            info = self.remote.fs.get_file_info(self.remote.path(rel))
        self.records[rel] = _record(info, stat, digest)
        return 1

    def _listing(self) -> dict[str, pafs.FileInfo]:
        """The bucket's objects in the dataset's folders, by path relative to the lake's root."""
        return {self.remote.rel(i.path): i for folder in owned(self.dataset)
                for i in objectstore.list_objects(self.remote.fs, self.remote.path(folder))}

    def _current(self, rel: str, info: pafs.FileInfo) -> bool:
        """Whether the local copy of `rel` is the object `info` as last seen."""
        record = self.records.get(rel)
        path = self.root / rel
        return (record is not None and record["remote"] == _remote_stat(info) and path.is_file()
                and record["local"] == list(_local_stat(path)))

    def _recorded(self, rel: str, stat: tuple[int, int]) -> bool:
        record = self.records.get(rel)
        return record is not None and record["local"] == list(stat)

    def _download(self, rel: str, info: pafs.FileInfo) -> None:
        digest = hashlib.sha256()
        target = self.root / rel
        with lake.atomic_path(target) as tmp, objectstore.store_errors(f"cannot read {info.path}"), \
                self.remote.fs.open_input_stream(info.path) as source, tmp.open("wb") as out:
            while chunk := source.read(objectstore.CHUNK):
                out.write(chunk)
                digest.update(chunk)
        self.records[rel] = _record(info, _local_stat(target), digest.hexdigest())

    def _stats(self) -> dict[str, tuple[int, int]]:
        found = {}
        for folder in owned(self.dataset):
            for path in _files(self.root / folder):
                found[path.relative_to(self.root).as_posix()] = _local_stat(path)
        return found

    def _save(self) -> None:
        lake.write_bytes_atomic(self.record_path, json.dumps(self.records, sort_keys=True).encode())


def _files(folder: Path) -> list[Path]:
    """The files under `folder`, without the temporary files of atomic writes."""
    if not folder.is_dir():
        return []
    return [p for p in sorted(folder.rglob("*")) if p.is_file() and not objectstore.is_temp(p.name)]


def _record(info: pafs.FileInfo, local: tuple[int, int], digest: str) -> dict:
    return {"remote": _remote_stat(info), "local": list(local), "sha256": digest}


def _remote_stat(info: pafs.FileInfo) -> list:
    """An object's size and time (seconds: a listing and a HEAD request agree to the second)."""
    return [info.size, int(info.mtime.timestamp()) if info.mtime else None]


def _local_stat(path: Path) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns


def _sha256_object(remote: Bucket, rel: str) -> str:
    digest = hashlib.sha256()
    path = remote.path(rel)
    with objectstore.store_errors(f"cannot read {path}"), remote.fs.open_input_stream(path) as s:
        while chunk := s.read(objectstore.CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
