"""The published warehouse in a bucket (or a folder), on top of regime.objectstore: the upload of a validated build,
then of the manifest naming it (last), and the analysts' reader that downloads the build the manifest names into a
local cache.

    REGIME_PUBLISH_URI=s3://bucket/prefix     the pipeline's publish step also uploads the warehouse (pipeline.publish)
    regime --warehouse s3://bucket/prefix …   the CLI reads the latest build published there (warehouse_path)

The bucket holds:

    <prefix>/warehouse/<build id>/warehouse.duckdb   one per build, `<as-of>_<built at, UTC>_<sha256[:12]>`
    <prefix>/warehouse/manifest.json                 the latest build: written last, so a reader never sees a build
                                                     half uploaded; the builds it lists in `history` are kept

A build's key is its own and unreachable until the manifest names it, so a build over S3's copy limit (5 GiB,
objectstore.COPY_LIMIT) is uploaded straight to it rather than through a temporary key (objectstore.put_atomic).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

from regime.objectstore import (
    CHUNK,
    STALE_TEMP,
    Location,
    ObjectStoreError,
    file_sha256,
    filesystem,
    parse_location,
    put_atomic,
    read_bytes,
    store_errors,
    sweep_temp,
)

if TYPE_CHECKING:
    import pyarrow.fs as pafs

log = logging.getLogger(__name__)

KEEP_BUILDS = 3  # builds kept in the bucket: the manifest's and the two before it (a reader may be downloading one)
KEEP_CACHED = 3  # builds kept in a reader's cache: the one just read and the two read last before it
MANIFEST = "warehouse/manifest.json"
MANIFEST_FORMAT = 1
_BUILD_ID = re.compile(r"\d{4}-\d{2}-\d{2}_\d{8}T\d{6}Z_[0-9a-f]{12}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def build_record(path: Path) -> dict:
    """What the manifest says of the warehouse file at `path`: as_of and built_at (its meta.build_info), sha256, size
    and the build id made of them."""
    import duckdb

    from regime.sql import connect

    try:
        con = connect(path, read_only=True)
        try:
            rows = con.execute("select as_of, built_at, source from meta.build_info").fetchall()
        finally:
            con.close()
    except duckdb.Error as exc:
        raise ObjectStoreError(f"{path} is not a published warehouse (no meta.build_info): "
                               f"{str(exc).splitlines()[0]}") from None
    if len(rows) != 1:
        raise ObjectStoreError(f"{path}: meta.build_info has {len(rows)} rows, expected 1")
    as_of, built_at, source = rows[0]
    built_at = built_at.astimezone(UTC)
    sha = file_sha256(path)
    return {"build_id": f"{as_of.isoformat()}_{built_at:%Y%m%dT%H%M%SZ}_{sha[:12]}", "as_of": as_of.isoformat(),
            "built_at": built_at.isoformat(), "source": source, "sha256": sha, "size": path.stat().st_size}


def read_manifest(fs: pafs.FileSystem, location: Location) -> dict | None:
    """The manifest of the latest published build, checked; None when nothing was published there."""
    data = read_bytes(fs, location.path(MANIFEST))
    if data is None:
        return None
    where = location.uri_of(MANIFEST)
    try:
        manifest = json.loads(data)
    except ValueError:
        raise ObjectStoreError(f"{where} is not JSON") from None
    if not isinstance(manifest, dict):
        raise ObjectStoreError(f"{where}: expected a JSON object")
    problems = [name for name, ok in (
        ("format", manifest.get("format") == MANIFEST_FORMAT),
        ("build_id", isinstance(manifest.get("build_id"), str) and _BUILD_ID.fullmatch(manifest["build_id"])),
        ("sha256", isinstance(manifest.get("sha256"), str) and _SHA256.fullmatch(manifest["sha256"])),
        ("size", isinstance(manifest.get("size"), int) and manifest["size"] > 0),
        ("as_of", isinstance(manifest.get("as_of"), str) and _is_date(manifest["as_of"])),
        ("key", manifest.get("key") == _build_key(manifest.get("build_id", ""))),
    ) if not ok]
    if problems:
        raise ObjectStoreError(f"{where}: missing or invalid {', '.join(problems)}")
    return manifest


def _is_date(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _build_key(build_id: str) -> str:
    return f"warehouse/{build_id}/warehouse.duckdb"


def publish_warehouse(path: Path, location: Location | str, fs: pafs.FileSystem | None = None,
                      keep: int = KEEP_BUILDS, progress: Callable[[int], None] | None = None) -> dict:
    """Upload the published (validated) warehouse file at `path` to `location` as
    `warehouse/<build id>/warehouse.duckdb`, then write `warehouse/manifest.json` naming it (last: until then readers
    get the previous build), then delete the builds the manifest no longer lists (it keeps `keep`). Returns the
    manifest. A rerun with the same file uploads nothing. A failure or a kill before the manifest is written leaves
    the previous manifest and build as they were."""
    location = parse_location(location) if isinstance(location, str) else location
    fs = fs or filesystem(location)
    record = build_record(path)
    previous = read_manifest(fs, location)
    key = _build_key(record["build_id"])
    if previous and previous["sha256"] == record["sha256"] and _size(fs, location.path(previous["key"])) == \
            record["size"]:
        log.info("build %s is already the published one at %s", record["build_id"], location.uri)
        return previous
    # the build's own key, which no reader reaches until the manifest names it: a build over S3's copy limit (5 GiB)
    # goes straight there (put_atomic); not when the manifest already names this key (a damaged copy re-uploaded)
    with path.open("rb") as source:
        sha, size = put_atomic(fs, location.path(key), source, progress,
                               unreachable=previous is None or previous["key"] != key)
    if (sha, size) != (record["sha256"], record["size"]):
        raise ObjectStoreError(f"{path} changed while it was uploaded: nothing published")
    earlier = [previous["build_id"], *previous.get("history", [])] if previous else []
    history = list(dict.fromkeys([record["build_id"], *(b for b in earlier if isinstance(b, str)
                                                        and _BUILD_ID.fullmatch(b))]))
    manifest = {"format": MANIFEST_FORMAT, **record, "key": key, "uploaded_at": datetime.now(UTC).isoformat(),
                "history": history[:max(keep, 1)]}
    put_atomic(fs, location.path(MANIFEST), json.dumps(manifest, indent=1).encode())
    log.info("uploaded build %s (%s, %d bytes) to %s", record["build_id"], record["sha256"][:12], record["size"],
             location.uri_of(key))
    _prune(fs, location, set(manifest["history"]))
    sweep_temp(fs, location.path("warehouse"))
    return manifest


def _size(fs: pafs.FileSystem, path: str) -> int | None:
    import pyarrow.fs as pafs

    with store_errors(f"cannot read {path}"):
        info = fs.get_file_info(path)
    return info.size if info.type == pafs.FileType.File else None


def _missing(fs: pafs.FileSystem, bucket: str) -> bool:
    import pyarrow.fs as pafs

    with store_errors(f"cannot read the bucket {bucket!r}"):
        return fs.get_file_info(bucket).type == pafs.FileType.NotFound


def _prune(fs: pafs.FileSystem, location: Location, kept: set[str]) -> None:
    """Delete the build folders under warehouse/ that the manifest does not list (only folders named like a build)."""
    import pyarrow.fs as pafs

    folder = location.path("warehouse")
    with store_errors(f"cannot list {folder}"):
        infos = fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
    for info in infos:
        if info.type == pafs.FileType.Directory and _BUILD_ID.fullmatch(info.base_name) \
                and info.base_name not in kept:
            with store_errors(f"cannot delete {info.path}"):
                fs.delete_dir(info.path)
            log.info("deleted the old build %s", location.uri_of("warehouse", info.base_name))


@dataclass(frozen=True)
class Fetched:
    """A published build in the local cache."""

    path: Path
    manifest: dict
    line: str  # "reading build <as-of> (<sha256[:12]>) from s3://…"


def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """REGIME_CACHE_DIR, else $XDG_CACHE_HOME/regime, else ~/.cache/regime."""
    env = os.environ if env is None else env
    if env.get("REGIME_CACHE_DIR"):
        return Path(env["REGIME_CACHE_DIR"]).expanduser()
    return Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "regime"


def fetch_latest(location: Location | str, cache_dir: Path | None = None,
                 fs: pafs.FileSystem | None = None) -> Fetched:
    """The latest build published at `location`, as a local file: read the manifest, reuse the cached copy when its
    sha256 matches, else download the build into the cache (temporary file, sha256 and size checked, then renamed).
    Cached files are named by their sha256 (`<cache>/builds/<sha256>.duckdb`); the cache keeps the KEEP_CACHED builds
    read last (prune_cache)."""
    location = parse_location(location) if isinstance(location, str) else location
    fs = fs or filesystem(location)
    cache = (cache_dir or default_cache_dir()) / "builds"
    for attempt in (1, 2):  # the build named may be pruned by a publish between reading the manifest and downloading
        manifest = read_manifest(fs, location)
        if manifest is None:
            if location.is_s3 and _missing(fs, location.bucket):
                raise ObjectStoreError(f"the bucket {location.bucket!r} does not exist (or these credentials cannot "
                                       "see it)")
            raise ObjectStoreError(f"no published build at {location.uri} ({location.uri_of(MANIFEST)} does not "
                                   "exist): the pipeline uploads one with REGIME_PUBLISH_URI set")
        target = cache / f"{manifest['sha256']}.duckdb"
        line = (f"reading build {manifest['as_of']} ({manifest['sha256'][:12]}) from "
                f"{location.uri_of(manifest['key'])}")
        if target.is_file() and target.stat().st_size == manifest["size"] and \
                file_sha256(target) == manifest["sha256"]:
            with suppress(OSError):  # read now: its time orders the cache (prune_cache); a cache it may not write
                os.utime(target)     # is read as it is
        else:
            try:
                _download(fs, location.path(manifest["key"]), target, manifest)
            except FileNotFoundError:
                if attempt == 2:
                    raise ObjectStoreError(f"{location.uri_of(manifest['key'])}, named by the manifest, does not "
                                           "exist") from None
                continue
        prune_cache(cache, target)
        return Fetched(target, manifest, line)
    raise AssertionError("unreachable")


_CACHED = re.compile(r"[0-9a-f]{64}\.duckdb")  # a cached build: <sha256>.duckdb
_PARTIAL_SUFFIX = ".tmp"
# a download in progress (_download): .<cached build's name>.<pid>.<mkstemp's random part>.tmp, beside it
_PARTIAL = re.compile(rf"\.{_CACHED.pattern}\.\d+\..*{re.escape(_PARTIAL_SUFFIX)}")


def prune_cache(cache: Path, current: Path, keep: int = KEEP_CACHED) -> list[Path]:
    """Delete from the cache folder `cache` the builds beyond the `keep` read last (by file time: a download, or
    fetch_latest reusing a copy, sets it; `current`, the one being read, is kept whatever its time), and the partial
    downloads older than STALE_TEMP (a killed reader's: one in progress is younger). Only files named as fetch_latest
    names them are touched. A reader that has a deleted build open keeps reading it (the file goes when it closes).
    Returns what was deleted; a file it cannot delete is logged and left."""
    now = datetime.now(UTC).timestamp()
    builds, deleted = [], []
    for path in cache.iterdir() if cache.is_dir() else []:
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:  # deleted meanwhile by another reader's prune
            continue
        if _CACHED.fullmatch(path.name) and path != current:
            builds.append((mtime, path))
        elif _PARTIAL.fullmatch(path.name) and now - mtime > STALE_TEMP.total_seconds():
            deleted.append(path)
    deleted += [path for _mtime, path in sorted(builds, reverse=True)[max(keep - 1, 0):]]
    removed = []
    for path in deleted:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:  # tidying the cache never fails a read
            log.warning("cannot remove %s from the warehouse cache: %s", path, exc)
            continue
        removed.append(path)
        log.info("removed %s from the warehouse cache", path.name)
    return removed


def _download(fs: pafs.FileSystem, source: str, target: Path, manifest: dict) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=_PARTIAL_SUFFIX,
                                dir=target.parent)
    tmp_path = Path(tmp)
    try:
        digest, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out, store_errors(f"cannot download {source}"), \
                fs.open_input_stream(source) as stream:
            while chunk := stream.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        if (digest.hexdigest(), size) != (manifest["sha256"], manifest["size"]):
            raise ObjectStoreError(f"{source} does not match its manifest (sha256 {digest.hexdigest()[:12]}, "
                                   f"{size} bytes; expected {manifest['sha256'][:12]}, {manifest['size']} bytes)")
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def warehouse_path(value: str | Path, out: IO[str] | None = None) -> Path:
    """The local warehouse file for `regime --warehouse VALUE`: a path as given, or for `s3://…` the latest build
    published there (fetch_latest), saying which one on `out` (stderr by default)."""
    import sys

    if isinstance(value, Path) or "://" not in value:
        return Path(value)
    fetched = fetch_latest(value)
    print(fetched.line, file=out or sys.stderr)
    return fetched.path
