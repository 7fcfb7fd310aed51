"""Object storage: a location (`s3://bucket/prefix` or a local folder), its filesystem built from the environment only,
atomic object writes, listing and sweeping, and DuckDB reading Parquet from a bucket. The published warehouse in a
bucket (REGIME_PUBLISH_URI, `regime --warehouse s3://…`) is regime.remote_warehouse, built on this.

Credentials come from the environment only: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN),
AWS_ENDPOINT_URL (an S3-compatible server; AWS_ENDPOINT_URL_S3 wins over it), AWS_REGION (or AWS_DEFAULT_REGION;
default us-east-1), or, with REGIME_S3_CONN_ID, an Airflow connection (login: key id, password: secret key; extra:
endpoint_url, region_name, aws_session_token). Their values are never logged nor put in an error message (errors of
the S3 client are scrubbed of them).

An object is written under a temporary key in its own folder, `.<name>.<UTC time>.<random>.tmp`, then copied to its
final key (S3 has no rename; a local folder renames) and the temporary key deleted: a reader listing the folder skips
the temporary keys (is_temp) and never sees a half-written final object; sweep_temp removes the ones a killed writer
left once they are older than an hour.

The lake in a bucket: `<prefix>/lake/<dataset>/<key>=<value>/data.parquet` (lake_glob), read by DuckDB through
register_filesystem.

DuckDB's `httpfs` extension is not used: it does not come from a pip package for DuckDB 2.0.1 and extensions cannot
be downloaded at run time here. DuckDB's Python client reads through an fsspec filesystem registered on the connection
instead (register_filesystem): pyarrow's S3 client wrapped by fsspec's ArrowFSWrapper.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import duckdb
    import pyarrow.fs as pafs

log = logging.getLogger(__name__)

CHUNK = 8 * 2**20  # bytes per read while uploading or downloading (pyarrow's S3 multipart part is 10 MiB)
STALE_TEMP = timedelta(hours=1)  # a temporary key older than this is a killed writer's: sweep_temp removes it
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")  # S3's bucket naming rules (3-63 characters)
_KEY_PART = re.compile(r"[A-Za-z0-9!_.*'()=+,@-]+")  # the "safe characters" of S3 object keys
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<stamp>\d{8}T\d{6}Z)\.[0-9a-f]{8}\.tmp$")


def file_sha256(path: Path) -> str:
    """The SHA-256 of a local file, hex (what a manifest records and a bucket's object is compared with)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class ObjectStoreError(RuntimeError):
    """A location, a credential setting, an object or a published build cannot be used as asked."""


class LocationError(ObjectStoreError, ValueError):
    """A location is not `s3://bucket/prefix` or a local folder."""


@dataclass(frozen=True)
class Location:
    """Where objects go: a bucket and a key prefix (`s3://bucket/prefix`), or a local folder."""

    bucket: str | None
    prefix: str  # the key prefix in the bucket, without leading or trailing '/' ('' for the bucket's root)
    folder: Path | None = None

    @property
    def is_s3(self) -> bool:
        return self.bucket is not None

    @property
    def uri(self) -> str:
        if self.bucket is None:
            return str(self.folder)
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def path(self, *parts: str) -> str:
        """The filesystem path (pyarrow's: `bucket/prefix/parts` or `/folder/parts`) of `parts` under the location."""
        root = str(self.folder) if self.bucket is None else f"{self.bucket}/{self.prefix}".rstrip("/")
        return "/".join([root, *(p.strip("/") for p in parts if p)])

    def uri_of(self, *parts: str) -> str:
        """What a user sees for `parts` under the location: `s3://bucket/prefix/parts` or a local path."""
        return self.path(*parts) if self.bucket is None else "s3://" + self.path(*parts)


def parse_location(value: str) -> Location:
    """`s3://bucket/prefix` (prefix optional) or a local folder (a path, or `file:///path`). A clear LocationError
    otherwise; the value is not repeated when it may hold credentials (`s3://key:secret@bucket`)."""
    text = (value or "").strip()
    if not text:
        raise LocationError("an empty location: expected s3://bucket/prefix or a local folder")
    if text.startswith("file://"):
        text = text.removeprefix("file://")
    elif "://" in text:
        parts = urlsplit(text)
        if parts.scheme not in ("s3", "s3a"):
            raise LocationError(f"unsupported location scheme {parts.scheme!r}: expected s3://bucket/prefix or a "
                                "local folder")
        if "@" in parts.netloc:
            raise LocationError("an s3:// location holds credentials (user:secret@bucket): give them in the "
                                "environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or an Airflow connection")
        if parts.query or parts.fragment:
            raise LocationError(f"{text}: an s3:// location has no query or fragment")
        bucket = parts.netloc
        if not _BUCKET.fullmatch(bucket) or ".." in bucket:
            raise LocationError(f"{text}: {bucket!r} is not a valid bucket name (3-63 lower-case letters, digits, "
                                "'.' and '-')")
        keys = [p for p in parts.path.split("/") if p]
        bad = [p for p in keys if p in (".", "..") or not _KEY_PART.fullmatch(p)]
        if bad:
            raise LocationError(f"{text}: {bad[0]!r} is not a usable key prefix part (letters, digits and "
                                "!_.*'()=+,@- only; no '.' or '..')")
        return Location(bucket=bucket, prefix="/".join(keys))
    return Location(bucket=None, prefix="", folder=Path(text).expanduser().resolve())


# --- credentials and the filesystem -------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Credentials:
    """The S3 client's settings; repr() and str() never show the secrets."""

    key_id: str | None
    secret: str | None = None
    token: str | None = None
    endpoint: str | None = None  # host[:port]
    scheme: str = "https"
    region: str = "us-east-1"

    def __repr__(self) -> str:
        return f"_Credentials(endpoint={self.endpoint!r}, scheme={self.scheme!r}, region={self.region!r})"

    __str__ = __repr__

    def secrets(self) -> list[str]:
        return [s for s in (self.key_id, self.secret, self.token) if s]


def _endpoint(value: str, where: str) -> tuple[str, str]:
    """(host[:port], scheme) of an endpoint URL; the value is not repeated in errors (it may hold a password)."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ObjectStoreError(f"{where}: expected an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ObjectStoreError(f"{where} holds credentials (user:secret@host): give them as AWS_ACCESS_KEY_ID and "
                               "AWS_SECRET_ACCESS_KEY")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ObjectStoreError(f"{where}: expected scheme://host[:port] only (no path or query)")
    return parts.netloc, parts.scheme


def credentials(env: Mapping[str, str] | None = None) -> _Credentials:
    """The S3 settings from the environment (or the Airflow connection REGIME_S3_CONN_ID names): see the module."""
    env = os.environ if env is None else env
    key_id, secret = env.get("AWS_ACCESS_KEY_ID") or None, env.get("AWS_SECRET_ACCESS_KEY") or None
    token = env.get("AWS_SESSION_TOKEN") or None
    endpoint_url = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
    where = "AWS_ENDPOINT_URL_S3" if env.get("AWS_ENDPOINT_URL_S3") else "AWS_ENDPOINT_URL"
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
    conn_id = (env.get("REGIME_S3_CONN_ID") or "").strip()
    if conn_id:
        key_id, secret, token, endpoint_url, region, where = _from_connection(conn_id, endpoint_url, region, where)
    if bool(key_id) != bool(secret):
        raise ObjectStoreError("S3 credentials: give both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or an Airflow "
                               "connection's login and password through REGIME_S3_CONN_ID), not one of them")
    if not key_id:
        raise ObjectStoreError("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
                               "REGIME_S3_CONN_ID to an Airflow connection (login: key id, password: secret key)")
    endpoint, scheme = _endpoint(endpoint_url, where) if endpoint_url else (None, "https")
    return _Credentials(key_id=key_id, secret=secret, token=token, endpoint=endpoint, scheme=scheme,
                        region=region or "us-east-1")


def _from_connection(conn_id: str, endpoint_url: str | None, region: str | None, where: str) -> tuple:
    """key id, secret, token, endpoint URL, region and the endpoint's origin from an Airflow connection (under
    Airflow: its secrets backend, AIRFLOW_CONN_* variables or the metadata DB); the environment fills what it lacks."""
    try:
        from airflow.sdk import Connection
    except ImportError:
        raise ObjectStoreError(f"REGIME_S3_CONN_ID={conn_id!r} needs Airflow installed") from None
    try:
        conn = Connection.get(conn_id)
    except Exception as exc:  # AirflowNotFoundException and the secrets backends' own errors
        raise ObjectStoreError(f"REGIME_S3_CONN_ID: cannot read the Airflow connection {conn_id!r} "
                               f"({exc.__class__.__name__})") from None
    extra = conn.extra_dejson or {}
    if extra.get("endpoint_url"):
        endpoint_url, where = extra["endpoint_url"], f"the endpoint_url of the Airflow connection {conn_id!r}"
    return (conn.login or None, conn.password or None, extra.get("aws_session_token") or None, endpoint_url,
            extra.get("region_name") or region, where)


def filesystem(location: Location, env: Mapping[str, str] | None = None) -> pafs.FileSystem:
    """pyarrow's filesystem of `location`: S3 (credentials from the environment) or the local one."""
    import pyarrow.fs as pafs

    if not location.is_s3:
        return pafs.LocalFileSystem()
    return _s3(credentials(env))


def _s3(creds: _Credentials) -> pafs.S3FileSystem:
    import pyarrow.fs as pafs

    fs = pafs.S3FileSystem(access_key=creds.key_id, secret_key=creds.secret, session_token=creds.token,
                           region=creds.region, endpoint_override=creds.endpoint, scheme=creds.scheme,
                           connect_timeout=10, request_timeout=60)
    _SECRETS.update(creds.secrets())
    return fs


_SECRETS: set[str] = set()  # the credential values of the S3 filesystems made: scrubbed from every error message


def _scrub(text: str) -> str:
    for value in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(value, "***")
    return text


@contextmanager
def store_errors(what: str) -> Iterator[None]:
    """The S3 client's errors (OSError, pyarrow's ArrowException) as ObjectStoreError naming `what`, scrubbed of the
    credentials; not chained, so that no traceback repeats the original message."""
    import pyarrow as pa

    try:
        yield
    except FileNotFoundError:
        raise
    except (OSError, pa.ArrowException) as exc:
        first = _scrub(str(exc)).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise ObjectStoreError(f"{what}: {first}") from None


# --- atomic writes, listing, sweeping -----------------------------------------------------------------------------

def is_temp(name: str) -> bool:
    """True for a temporary key of an atomic write (`.<name>.<time>.<random>.tmp`): readers skip them."""
    base = name.rstrip("/").rsplit("/", 1)[-1]
    return base.startswith(".") and base.endswith(".tmp")


def temp_key(final: str, now: datetime | None = None) -> str:
    """A temporary key beside `final`: `.<name>.<UTC time>.<8 hex>.tmp`."""
    folder, _, name = final.rpartition("/")
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{folder}/.{name}.{stamp}.{secrets.token_hex(4)}.tmp"


# S3's CopyObject, which moving a temporary key to its final key is, refuses a source over 5 GiB (put_atomic)
COPY_LIMIT = 5 * 2**30


def put_atomic(fs: pafs.FileSystem, final: str, source: IO[bytes] | bytes,
               progress: Callable[[int], None] | None = None, *, unreachable: bool = False) -> tuple[str, int]:
    """Write `source` (bytes or a binary file object) as the object `final` (a filesystem path): upload to a temporary
    key in the same folder, copy it to `final`, delete the temporary key. Returns (sha256, size) of what was written;
    `progress(bytes so far)` is called after each chunk. On any error the temporary key is deleted (a killed process
    leaves it for sweep_temp) and `final` is as it was.

    S3 cannot copy an object over COPY_LIMIT (5 GiB). `unreachable=True` is the caller's word that no reader reaches
    `final` until something written after it names it (a build's own key, named by the manifest written last) and that
    no object is there: then an S3 object over COPY_LIMIT, or of a size the source cannot tell, is uploaded straight to
    `final`. An S3 multipart upload shows no object until it is completed, so a kill leaves none there (only the
    incomplete upload, which the bucket's AbortIncompleteMultipartUpload lifecycle rule removes). pyarrow's output
    stream completes the upload whenever it is closed, also on an exception or when dropped (it has no abort:
    apache/arrow#40502), so on any error the object at `final` is deleted. Without `unreachable`, an S3 object known
    to be over COPY_LIMIT is refused before anything is uploaded."""
    import io

    stream = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    length = None  # the bytes left in the source, if it can tell (a file, bytes): not a pipe or a socket
    if getattr(stream, "seekable", lambda: False)():
        here = stream.tell()
        length = stream.seek(0, io.SEEK_END) - here
        stream.seek(here)
    s3 = fs.type_name == "s3"
    direct = s3 and unreachable and (length is None or length > COPY_LIMIT)
    if s3 and not direct and length is not None and length > COPY_LIMIT:
        raise ObjectStoreError(f"cannot write {final}: {length} bytes, over the {COPY_LIMIT} bytes S3 can copy from a "
                               "temporary key (only a key no reader reaches until it is named can take it directly)")
    target = final if direct else temp_key(final)
    digest, size = hashlib.sha256(), 0
    if fs.type_name == "local":
        fs.create_dir(final.rpartition("/")[0], recursive=True)
    try:
        with store_errors(f"cannot write {final}"):
            with fs.open_output_stream(target) as out:
                while chunk := stream.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    if progress is not None:
                        progress(size)
            written = fs.get_file_info(target)
            if written.size != size:
                raise ObjectStoreError(f"cannot write {final}: {written.size} bytes arrived of {size}")
            if not direct:
                fs.move(target, final)  # S3: copy, then delete the temporary key; a local folder: rename
    except BaseException:
        with suppress(Exception):
            fs.delete_file(target)  # the temporary key, or what pyarrow completed at `final` (direct)
        raise
    if direct:
        log.info("uploaded %s straight to its key (%d bytes, over the %d S3 copies)", final, size, COPY_LIMIT)
    return digest.hexdigest(), size


def read_bytes(fs: pafs.FileSystem, path: str, limit: int = 2**20) -> bytes | None:
    """The content of a small object (a manifest); None if there is none."""
    with store_errors(f"cannot read {path}"):
        try:
            with fs.open_input_stream(path) as stream:
                data = stream.read(limit + 1)
        except FileNotFoundError:
            return None
    if len(data) > limit:
        raise ObjectStoreError(f"{path} is larger than {limit} bytes: not a manifest")
    return data


def list_objects(fs: pafs.FileSystem, folder: str) -> list[pafs.FileInfo]:
    """The objects under `folder` (recursively), without temporary keys; [] if there is none."""
    import pyarrow.fs as pafs

    with store_errors(f"cannot list {folder}"):
        infos = fs.get_file_info(pafs.FileSelector(folder, recursive=True, allow_not_found=True))
    return [i for i in infos if i.type == pafs.FileType.File and not any(is_temp(p) for p in i.path.split("/"))]


def sweep_temp(fs: pafs.FileSystem, folder: str, older_than: timedelta = STALE_TEMP,
               now: datetime | None = None) -> list[str]:
    """Delete the temporary keys under `folder` that killed writers left: those whose time (in their name) is older
    than `older_than` (a live writer's are younger). Returns the keys deleted."""
    import pyarrow.fs as pafs

    now = now or datetime.now(UTC)
    with store_errors(f"cannot list {folder}"):
        infos = fs.get_file_info(pafs.FileSelector(folder, recursive=True, allow_not_found=True))
    removed = []
    for info in infos:
        match = _TEMP.match(info.base_name)
        if info.type != pafs.FileType.File or not match:
            continue
        stamp = datetime.strptime(match["stamp"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        if now - stamp >= older_than:
            with suppress(FileNotFoundError), store_errors(f"cannot delete {info.path}"):
                fs.delete_file(info.path)
            removed.append(info.path)
    if removed:
        log.warning("removed %d abandoned temporary object(s), e.g. %s", len(removed), removed[0])
    return removed


# --- DuckDB reading Parquet from a bucket -------------------------------------------------------------------------

def register_filesystem(con: duckdb.DuckDBPyConnection, fs: pafs.FileSystem) -> None:
    """Let `con` read `s3://bucket/key` paths (read_parquet with globs and hive partitioning) through `fs`, with no
    httpfs extension: fsspec's wrapper of pyarrow's S3 filesystem, registered on the connection."""
    from fsspec.implementations.arrow import ArrowFSWrapper

    class _S3(ArrowFSWrapper):
        protocol = ("s3", "s3a")

    con.register_filesystem(_S3(fs))


def lake_glob(location: Location, dataset: str) -> str:
    """The read_parquet path of a dataset of the lake at `location` (a staging model's `$<dataset>_glob`)."""
    return location.uri_of("lake", dataset, "*", "data.parquet")
