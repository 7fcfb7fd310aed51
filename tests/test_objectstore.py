"""Object storage groundwork (issue #22): locations, credentials from the environment only and never logged, atomic
object writes, the published warehouse uploaded to a bucket and read back by an analyst (also after an upload killed
midway), the pipeline's REGIME_PUBLISH_URI hook, `regime --warehouse s3://…`, and DuckDB reading the lake's Parquet
from a bucket without httpfs. Against a real S3-compatible server on 127.0.0.1 (moto_server, tests/s3.py)."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import textwrap
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow.fs as pafs
import pytest

from conftest import SAMPLE_LAST, killed_once_it_says, published_run
from regime import cli, datasets, objectstore, pipeline, remote_warehouse
from regime.config import ConfigError, get_settings
from regime.objectstore import LocationError, ObjectStoreError, parse_location
from regime.sql import FULL, bind, read_sql


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The published sample run: its settings (lake, warehouse)."""
    return published_run(tmp_path_factory)[0]


def other_build(source: Path, target: Path, hours: int = 1) -> Path:
    """A copy of the warehouse at `source` that is another build: built_at moved by `hours`, so its sha256 differs."""
    shutil.copyfile(source, target)
    con = duckdb.connect(str(target))
    con.execute("update meta.build_info set built_at = built_at + to_hours($h)", {"h": hours})
    con.execute("checkpoint")
    con.close()
    return target


def all_files(fs, folder: str) -> set[str]:
    """Every object under `folder`, temporary keys included."""
    infos = fs.get_file_info(pafs.FileSelector(folder, recursive=True, allow_not_found=True))
    return {i.path for i in infos if i.type == pafs.FileType.File}


def manifest_of(fs, location) -> dict:
    return json.loads(objectstore.read_bytes(fs, location.path(remote_warehouse.MANIFEST)))


# --- locations and credentials ------------------------------------------------------------------------------------

def test_locations_parse_buckets_prefixes_and_folders(tmp_path):
    loc = parse_location("s3://my-bucket/a/b/")
    assert (loc.bucket, loc.prefix, loc.uri) == ("my-bucket", "a/b", "s3://my-bucket/a/b")
    assert loc.path("warehouse", "manifest.json") == "my-bucket/a/b/warehouse/manifest.json"
    assert loc.uri_of("lake", "x") == "s3://my-bucket/a/b/lake/x"
    assert parse_location("s3://my-bucket").uri == "s3://my-bucket"
    assert parse_location("s3://my-bucket").path("m.json") == "my-bucket/m.json"
    local = parse_location(str(tmp_path / "pub"))
    assert not local.is_s3 and local.folder == tmp_path / "pub" and local.path("m.json") == f"{tmp_path}/pub/m.json"
    assert parse_location(f"file://{tmp_path}").folder == tmp_path


@pytest.mark.parametrize(("value", "words"), [
    ("", "empty location"),
    ("gs://bucket/x", "unsupported location scheme 'gs'"),
    ("s3://Bad_Bucket/x", "not a valid bucket name"),
    ("s3://ab/x", "not a valid bucket name"),
    ("s3://bucket/a/../b", "'..' is not a usable key prefix part"),
    ("s3://bucket/a b", "not a usable key prefix part"),
    ("s3://bucket/x?versionId=1", "no query or fragment"),
])
def test_bad_locations_are_named(value, words):
    with pytest.raises(LocationError, match=words.replace("?", r"\?").replace(".", r"\.")):
        parse_location(value)


def test_credentials_in_a_location_or_an_endpoint_are_refused_without_repeating_them(monkeypatch):
    hidden = "k" + uuid.uuid4().hex
    with pytest.raises(LocationError) as caught:
        parse_location(f"s3://AKEXAMPLE:{hidden}@bucket/x")
    assert hidden not in str(caught.value) and "credentials" in str(caught.value)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", hidden)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://user:{hidden}@127.0.0.1:9000")
    with pytest.raises(ObjectStoreError) as caught:
        objectstore.credentials()
    assert hidden not in str(caught.value) and "AWS_ENDPOINT_URL holds credentials" in str(caught.value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    creds = objectstore.credentials()
    assert (creds.endpoint, creds.scheme, creds.region) == ("127.0.0.1:9000", "http", "us-east-1")
    assert hidden not in repr(creds) and hidden not in str(creds) and "AKEXAMPLE" not in repr(creds)


def test_credentials_come_from_the_environment_both_or_none(monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "REGIME_S3_CONN_ID"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ObjectStoreError, match="no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        objectstore.credentials()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKEXAMPLE")
    with pytest.raises(ObjectStoreError, match="give both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        objectstore.credentials()
    monkeypatch.setenv("AWS_ENDPOINT_URL", "ftp://127.0.0.1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s" + uuid.uuid4().hex)
    with pytest.raises(ObjectStoreError, match="AWS_ENDPOINT_URL: expected an http:// or https:// URL"):
        objectstore.credentials()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "https://s3.example.test")  # the S3-specific variable wins
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    creds = objectstore.credentials()
    assert (creds.endpoint, creds.scheme, creds.region) == ("s3.example.test", "https", "eu-west-1")


def test_regime_publish_uri_is_checked_by_the_settings(monkeypatch, regime_env):
    monkeypatch.setenv("REGIME_PUBLISH_URI", "s3://my-bucket/regime/")
    assert get_settings().publish_uri == "s3://my-bucket/regime"
    monkeypatch.setenv("REGIME_PUBLISH_URI", "gs://my-bucket/regime")
    with pytest.raises(ConfigError, match="REGIME_PUBLISH_URI: unsupported location scheme 'gs'"):
        get_settings()
    monkeypatch.delenv("REGIME_PUBLISH_URI")
    assert get_settings().publish_uri is None


# --- atomic writes ------------------------------------------------------------------------------------------------

class Broken(io.RawIOBase):
    """A stream that fails after `after` bytes (a disk or network fault in the middle of an upload)."""

    def __init__(self, data: bytes, after: int):
        self.data, self.after, self.pos = data, after, 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.pos >= self.after:
            raise OSError("the source failed")
        chunk = self.data[self.pos:min(self.pos + n, self.after)]
        self.pos += len(chunk)
        return chunk


def test_an_atomic_write_replaces_the_object_whole_or_not_at_all(s3, monkeypatch):
    fs = objectstore.filesystem(s3)
    final = s3.path("lake", "x", "data.bin")
    assert objectstore.put_atomic(fs, final, b"old") == (hashlib.sha256(b"old").hexdigest(), 3)
    monkeypatch.setattr(objectstore, "CHUNK", 1024)
    data = os.urandom(10_000)
    with pytest.raises(ObjectStoreError, match="cannot write .*/data.bin: the source failed"):
        objectstore.put_atomic(fs, final, Broken(data, after=5000))
    assert objectstore.read_bytes(fs, final) == b"old"
    assert all_files(fs, s3.path("lake")) == {final}  # no temporary key left
    seen = []
    sha, size = objectstore.put_atomic(fs, final, io.BytesIO(data), progress=seen.append)
    assert (size, seen[-1], len(seen)) == (10_000, 10_000, 10)
    assert objectstore.read_bytes(fs, final, limit=20_000) == data


def test_readers_skip_temporary_keys_and_the_sweep_removes_stale_ones(s3):
    fs = objectstore.filesystem(s3)
    final = s3.path("lake", "x", "data.parquet")
    objectstore.put_atomic(fs, final, b"whole")
    now = datetime.now(UTC)
    stale = objectstore.temp_key(final, now - timedelta(hours=2))
    fresh = objectstore.temp_key(final, now)
    for key in (stale, fresh):  # what killed writers (stale) and a writer at work (fresh) leave
        with fs.open_output_stream(key) as out:
            out.write(b"half")
    assert objectstore.is_temp(stale) and objectstore.is_temp(fresh) and not objectstore.is_temp(final)
    assert [i.path for i in objectstore.list_objects(fs, s3.path("lake"))] == [final]
    assert objectstore.sweep_temp(fs, s3.path("lake")) == [stale]
    assert fs.get_file_info(fresh).type.name == "File"
    assert objectstore.sweep_temp(fs, s3.path("lake"), older_than=timedelta(0)) == [fresh]


# --- the published warehouse in a bucket ----------------------------------------------------------------------------

def test_publish_uploads_the_build_then_the_manifest_and_the_reader_caches_it(s3, sample, tmp_path):
    fs = objectstore.filesystem(s3)
    published = sample.warehouse_path
    manifest = remote_warehouse.publish_warehouse(published, s3.uri)
    con = duckdb.connect(str(published), read_only=True)
    as_of, built_at = con.execute("select as_of, built_at from meta.build_info").fetchone()
    con.close()
    sha = objectstore.file_sha256(published)
    assert manifest == manifest_of(fs, s3)
    assert (manifest["as_of"], manifest["built_at"], manifest["sha256"], manifest["size"]) == \
        (as_of.isoformat(), built_at.astimezone(UTC).isoformat(), sha, published.stat().st_size)
    assert manifest["build_id"] == f"{as_of}_{built_at.astimezone(UTC):%Y%m%dT%H%M%SZ}_{sha[:12]}"
    assert sorted(i.path for i in objectstore.list_objects(fs, s3.path())) == \
        [s3.path(manifest["key"]), s3.path("warehouse", "manifest.json")]
    assert manifest["key"] == f"warehouse/{manifest['build_id']}/warehouse.duckdb"

    fetched = remote_warehouse.fetch_latest(s3.uri, tmp_path / "cache")
    assert fetched.path == tmp_path / "cache" / "builds" / f"{sha}.duckdb"
    assert objectstore.file_sha256(fetched.path) == sha
    assert fetched.line == f"reading build {as_of} ({sha[:12]}) from {s3.uri}/{manifest['key']}"
    assert remote_warehouse.publish_warehouse(published, s3.uri) == manifest  # a rerun uploads nothing
    fs.delete_file(s3.path(manifest["key"]))
    assert remote_warehouse.fetch_latest(s3.uri, tmp_path / "cache").path == fetched.path  # cached: no download
    fetched.path.write_bytes(b"not the build")  # a damaged cached copy is downloaded again (here: gone upstream)
    with pytest.raises(ObjectStoreError, match="named by the manifest, does not exist"):
        remote_warehouse.fetch_latest(s3.uri, tmp_path / "cache")


def test_the_bucket_keeps_the_latest_builds_and_a_reader_gets_the_newest(s3, sample, tmp_path):
    fs = objectstore.filesystem(s3)
    builds = [other_build(sample.warehouse_path, tmp_path / f"w{h}.duckdb", h) for h in range(1, 5)]
    ids = [remote_warehouse.publish_warehouse(b, s3, fs, keep=3)["build_id"] for b in builds]
    manifest = manifest_of(fs, s3)
    assert manifest["build_id"] == ids[-1] and manifest["history"] == ids[::-1][:3]
    assert sorted(i.path for i in objectstore.list_objects(fs, s3.path("warehouse"))) == \
        sorted([s3.path(f"warehouse/{b}/warehouse.duckdb") for b in ids[1:]] + [s3.path("warehouse/manifest.json")])
    fetched = remote_warehouse.fetch_latest(s3, tmp_path / "cache", fs)
    assert objectstore.file_sha256(fetched.path) == objectstore.file_sha256(builds[-1]) == manifest["sha256"]


def test_a_download_that_does_not_match_the_manifest_is_refused(s3, sample, tmp_path):
    fs = objectstore.filesystem(s3)
    manifest = remote_warehouse.publish_warehouse(sample.warehouse_path, s3, fs)
    objectstore.put_atomic(fs, s3.path(manifest["key"]), b"tampered")
    with pytest.raises(ObjectStoreError, match="does not match its manifest"):
        remote_warehouse.fetch_latest(s3, tmp_path / "cache", fs)
    assert list((tmp_path / "cache" / "builds").iterdir()) == []  # nothing half-downloaded kept


def test_reading_without_a_published_build_says_why(s3, moto, tmp_path):
    with pytest.raises(ObjectStoreError, match=r"no published build at s3://.*manifest\.json does not exist"):
        remote_warehouse.fetch_latest(s3, tmp_path / "cache")
    with pytest.raises(ObjectStoreError, match="the bucket 'no-such-bucket-here' does not exist"):
        remote_warehouse.fetch_latest("s3://no-such-bucket-here/x", tmp_path / "cache")
    fs = objectstore.filesystem(s3)
    objectstore.put_atomic(fs, s3.path(remote_warehouse.MANIFEST), b'{"format": 1, "build_id": "x"}')
    with pytest.raises(ObjectStoreError, match="missing or invalid build_id, sha256, size, as_of, key"):
        remote_warehouse.fetch_latest(s3, tmp_path / "cache")


KILLED_UPLOAD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from regime import objectstore, remote_warehouse

    objectstore.CHUNK = 64 * 1024  # many chunks: the kill lands between two of them

    def progress(done):
        if done >= 4 * objectstore.CHUNK:
            print("uploading", flush=True)
            time.sleep(600)

    remote_warehouse.publish_warehouse(Path(sys.argv[1]), sys.argv[2], progress=progress)
""")


def test_an_upload_killed_midway_leaves_the_previous_build_readable(s3, sample, tmp_path):
    fs = objectstore.filesystem(s3)
    first = remote_warehouse.publish_warehouse(sample.warehouse_path, s3, fs)
    second = other_build(sample.warehouse_path, tmp_path / "second.duckdb")
    killed_once_it_says("uploading", "-c", KILLED_UPLOAD, str(second), s3.uri)
    assert manifest_of(fs, s3) == first
    fetched = remote_warehouse.fetch_latest(s3, tmp_path / "cache", fs)
    assert objectstore.file_sha256(fetched.path) == first["sha256"]
    assert fetched.line.startswith(f"reading build {first['as_of']} ({first['sha256'][:12]}) from s3://")
    keys = {i.path for i in objectstore.list_objects(fs, s3.path())}
    assert keys == {s3.path(first["key"]), s3.path(remote_warehouse.MANIFEST)}  # no part of the second build visible
    objectstore.sweep_temp(fs, s3.path("warehouse"), older_than=timedelta(0))  # whatever the kill left
    again = remote_warehouse.publish_warehouse(second, s3, fs)  # the rerun publishes it
    assert again["sha256"] == objectstore.file_sha256(second) != first["sha256"]
    assert remote_warehouse.fetch_latest(s3, tmp_path / "cache", fs).manifest == again


def test_a_fault_in_the_upload_stream_publishes_nothing(s3, sample, tmp_path, monkeypatch):
    fs = objectstore.filesystem(s3)
    first = remote_warehouse.publish_warehouse(sample.warehouse_path, s3, fs)
    second = other_build(sample.warehouse_path, tmp_path / "second.duckdb")
    monkeypatch.setattr(objectstore, "CHUNK", 256 * 1024)

    def fail(done):
        if done > objectstore.CHUNK:
            raise OSError("connection reset by peer")

    with pytest.raises(ObjectStoreError, match="cannot write .*/warehouse.duckdb: connection reset by peer"):
        remote_warehouse.publish_warehouse(second, s3, fs, progress=fail)
    assert manifest_of(fs, s3) == first
    assert all_files(fs, s3.path()) == {s3.path(first["key"]), s3.path(remote_warehouse.MANIFEST)}  # no temporary key
    assert objectstore.file_sha256(remote_warehouse.fetch_latest(s3, tmp_path / "c", fs).path) == first["sha256"]


def test_credentials_are_never_logged_nor_in_errors(s3, moto, sample, tmp_path, caplog, capfd, monkeypatch):
    caplog.set_level(logging.DEBUG)
    remote_warehouse.publish_warehouse(sample.warehouse_path, s3)
    remote_warehouse.fetch_latest(s3.uri, tmp_path / "cache")
    errors = []
    for broken in ({"AWS_ENDPOINT_URL": "http://127.0.0.1:1"},  # nothing listens: a connection error
                   {"AWS_SECRET_ACCESS_KEY": None}):
        with monkeypatch.context() as mp:
            for key, value in broken.items():
                mp.setenv(key, value) if value else mp.delenv(key)
            with pytest.raises(ObjectStoreError) as caught:
                remote_warehouse.fetch_latest(s3, tmp_path / "cache")
            errors.append(caught.value)
    assert "cannot read" in str(errors[0]) and "give both" in str(errors[1])
    seen = caplog.text + "".join(capfd.readouterr()) + "".join(f"{e!s} {e!r} {e.__cause__!r}" for e in errors)
    assert "uploaded build" in caplog.text
    for secret in (moto.env["AWS_ACCESS_KEY_ID"], moto.env["AWS_SECRET_ACCESS_KEY"]):
        assert secret not in seen


def test_credentials_from_an_airflow_connection(s3, moto, sample, tmp_path, monkeypatch, capfd):
    conn = {"conn_type": "aws", "login": moto.env["AWS_ACCESS_KEY_ID"], "password": moto.env["AWS_SECRET_ACCESS_KEY"],
            "extra": {"endpoint_url": moto.endpoint, "region_name": "us-east-1"}}
    monkeypatch.setenv("AIRFLOW_CONN_REGIME_S3", json.dumps(conn))
    monkeypatch.setenv("REGIME_S3_CONN_ID", "regime_s3")
    monkeypatch.setattr(logging.root, "handlers", logging.root.handlers[:])  # Airflow's import adds its own
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key)
    manifest = remote_warehouse.publish_warehouse(sample.warehouse_path, s3)
    assert remote_warehouse.fetch_latest(s3, tmp_path / "cache").manifest == manifest
    monkeypatch.setenv("REGIME_S3_CONN_ID", "no_such_connection")
    with pytest.raises(ObjectStoreError, match="cannot read the Airflow connection 'no_such_connection'"):
        objectstore.credentials()
    out = "".join(capfd.readouterr())
    assert moto.env["AWS_SECRET_ACCESS_KEY"] not in out


# --- wiring: the pipeline's publish step and the CLI ----------------------------------------------------------------

def test_the_publish_step_also_uploads_with_regime_publish_uri(s3, published, monkeypatch, tmp_path, capsys):
    staging = published.build_dir / "warehouse-staging.duckdb"
    other_build(published.warehouse_path, staging)
    sha = objectstore.file_sha256(staging)
    monkeypatch.setenv("REGIME_PUBLISH_URI", s3.uri)
    pipeline.publish(str(staging), get_settings())
    manifest = manifest_of(objectstore.filesystem(s3), s3)
    assert manifest["sha256"] == sha == objectstore.file_sha256(published.warehouse_path)

    monkeypatch.setenv("REGIME_CACHE_DIR", str(tmp_path / "cache"))
    assert cli.main(["sql", "select as_of from meta.build_info", "--csv", "--warehouse", s3.uri]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == ["as_of", SAMPLE_LAST.isoformat()]
    assert f"reading build {SAMPLE_LAST} ({sha[:12]}) from {s3.uri}/{manifest['key']}" in err.splitlines()
    assert cli.main(["latest", "--warehouse", "s3://no-such-bucket-here/x"]) != 0
    assert "the bucket 'no-such-bucket-here' does not exist" in capsys.readouterr().err


def test_publishing_to_a_local_folder(sample, tmp_path):
    manifest = remote_warehouse.publish_warehouse(sample.warehouse_path, str(tmp_path / "pub"))
    assert json.loads((tmp_path / "pub" / "warehouse" / "manifest.json").read_text()) == manifest
    fetched = remote_warehouse.fetch_latest(str(tmp_path / "pub"), tmp_path / "cache")
    assert objectstore.file_sha256(fetched.path) == manifest["sha256"]
    assert not list((tmp_path / "pub").rglob("*.tmp"))


def test_a_readers_cache_keeps_the_builds_read_last(sample, tmp_path):
    """Each read of a newer build downloads it; the cache keeps the KEEP_CACHED (3) builds read last, a cached build
    read again counts as read now, a partial download older than an hour goes, anything else in the folder stays."""
    folder, cache = str(tmp_path / "pub"), tmp_path / "cache"
    builds = [other_build(sample.warehouse_path, tmp_path / f"w{h}.duckdb", h) for h in range(1, 6)]
    sha = [objectstore.file_sha256(b) for b in builds]

    def held() -> list[str]:
        return sorted(p.name for p in (cache / "builds").iterdir())

    for build in builds[:4]:
        remote_warehouse.publish_warehouse(build, folder)
        remote_warehouse.fetch_latest(folder, cache)
    assert held() == sorted(f"{s}.duckdb" for s in sha[1:4])  # the first build read is gone
    stale, fresh = cache / "builds" / f".{sha[0]}.duckdb.41.x1.tmp", cache / "builds" / f".{sha[0]}.duckdb.42.x2.tmp"
    other = cache / "builds" / "notes.txt"
    for path in (stale, fresh, other):
        path.write_bytes(b"partial")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    remote_warehouse.publish_warehouse(builds[1], folder)  # an older build published again: read from the cache
    again = remote_warehouse.fetch_latest(folder, cache)
    assert again.path.name == f"{sha[1]}.duckdb" and not stale.exists() and fresh.exists() and other.exists()
    remote_warehouse.publish_warehouse(builds[4], folder)
    remote_warehouse.fetch_latest(folder, cache)
    # read last: builds 5, 2 (again) and 4; build 3, read before build 2 was read again, is gone
    assert held() == sorted([f"{sha[4]}.duckdb", f"{sha[1]}.duckdb", f"{sha[3]}.duckdb", fresh.name, other.name])


def test_a_cache_the_reader_cannot_tidy_is_still_read(sample, tmp_path, monkeypatch, caplog):
    folder, cache = str(tmp_path / "pub"), tmp_path / "cache"
    builds = [other_build(sample.warehouse_path, tmp_path / f"w{h}.duckdb", h) for h in range(1, 5)]
    for build in builds[:3]:
        remote_warehouse.publish_warehouse(build, folder)
        remote_warehouse.fetch_latest(folder, cache)

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    unlink = Path.unlink

    def unlink_but_builds(path, missing_ok=False):  # another user's builds, in a folder it may add to
        if remote_warehouse._CACHED.fullmatch(path.name):
            refused()
        unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(os, "utime", refused)
    monkeypatch.setattr(Path, "unlink", unlink_but_builds)
    with caplog.at_level(logging.WARNING, logger="regime.remote_warehouse"):
        cached = remote_warehouse.fetch_latest(folder, cache)  # the cached copy, which it cannot touch
        remote_warehouse.publish_warehouse(builds[3], folder)
        fetched = remote_warehouse.fetch_latest(folder, cache)  # a download: the oldest build cannot be removed
    monkeypatch.undo()
    assert objectstore.file_sha256(cached.path) == objectstore.file_sha256(builds[2])
    assert objectstore.file_sha256(fetched.path) == objectstore.file_sha256(builds[3])
    assert len(list((cache / "builds").iterdir())) == 4
    assert "cannot remove" in caplog.text and "Permission denied" in caplog.text


# --- DuckDB reading the lake from a bucket -------------------------------------------------------------------------

def upload_folder(fs, folder: Path, location, under: str) -> int:
    files = [p for p in sorted(folder.rglob("*")) if p.is_file() and not objectstore.is_temp(p.name)]
    for path in files:
        with path.open("rb") as source:
            objectstore.put_atomic(fs, location.path(under, path.relative_to(folder).as_posix()), source)
    return len(files)


def test_duckdb_reads_the_lake_from_the_bucket_without_httpfs(s3, sample):
    fs = objectstore.filesystem(s3)
    assert upload_folder(fs, sample.lake_dir, s3, "lake") > 0
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    objectstore.register_filesystem(con, fs)
    assert con.execute("select count(*) from duckdb_extensions() where extension_name = 'httpfs' and loaded"
                       ).fetchone() == (0,)
    compared = 0
    for dataset in datasets.ALL:
        if not dataset.has_data(sample.lake_dir):
            continue
        sql = read_sql(f"staging/{dataset.name}.sql")
        params = {"as_of": SAMPLE_LAST, "history_from": FULL}
        local, remote = (
            sorted(con.execute(sql, bind(sql, {**params, f"{dataset.name}_glob": glob})).fetchall(), key=repr)
            for glob in (dataset.glob(sample.lake_dir), objectstore.lake_glob(s3, dataset.name)))
        assert local and remote == local, dataset.name
        compared += 1
    assert compared >= 4
    con.close()


# --- objects over S3's copy limit (5 GiB; objectstore.COPY_LIMIT, made small here) ------------------------------------

BIG = 12 * 2**20  # over pyarrow's 10 MiB multipart part: a part is in the bucket's upload before the stream ends


def test_pyarrow_completes_a_partial_upload_when_its_stream_closes_on_an_error(s3):
    """Why put_atomic deletes what a failed direct upload left at its key: pyarrow's S3 output stream has no abort, and
    closing it, as `with` does on an exception, completes the multipart upload with what was written so far
    (apache/arrow#40502)."""
    fs = objectstore.filesystem(s3)
    key = s3.path("probe", "partial.bin")
    with pytest.raises(RuntimeError, match="a fault mid-stream"), fs.open_output_stream(key) as out:
        out.write(os.urandom(11 * 2**20))  # one part uploaded, the rest buffered
        raise RuntimeError("a fault mid-stream")
    assert fs.get_file_info(key).size == 11 * 2**20  # a partial object, visible


def _temp_keys(monkeypatch) -> list[str]:
    """The temporary keys put_atomic asks for from now on (none: it wrote straight to the final key)."""
    made = []
    real = objectstore.temp_key

    def spy(final: str, now=None) -> str:
        made.append(real(final, now))
        return made[-1]

    monkeypatch.setattr(objectstore, "temp_key", spy)
    return made


def _over_a_small_limit(s3, monkeypatch) -> tuple:
    """COPY_LIMIT 1 MiB, chunks of 1 MiB, the temporary keys asked for recorded: (the bucket's filesystem, those keys,
    BIG random bytes, a build's key)."""
    monkeypatch.setattr(objectstore, "COPY_LIMIT", 2**20)
    monkeypatch.setattr(objectstore, "CHUNK", 2**20)
    return (objectstore.filesystem(s3), _temp_keys(monkeypatch), os.urandom(BIG),
            s3.path("warehouse", "build-1", "warehouse.duckdb"))


def test_an_object_over_the_copy_limit_goes_straight_to_a_key_no_reader_reaches(s3, monkeypatch, tmp_path):
    fs, made, data, final = _over_a_small_limit(s3, monkeypatch)
    # a key readers may reach: refused before anything is uploaded (S3 would refuse to copy the temporary key)
    with pytest.raises(ObjectStoreError, match=rf"build-1/warehouse.duckdb: {BIG} bytes, over the 1048576 bytes S3"):
        objectstore.put_atomic(fs, final, io.BytesIO(data))
    assert all_files(fs, s3.path()) == set() and made == []
    # a key no reader reaches until it is named: straight there; nothing shows while the parts go up
    seen = []
    sha, size = objectstore.put_atomic(fs, final, io.BytesIO(data), lambda done: seen.append(all_files(fs, s3.path())),
                                       unreachable=True)
    assert (sha, size) == (hashlib.sha256(data).hexdigest(), BIG) and made == []
    assert len(seen) == 12 and all(files == set() for files in seen)
    assert objectstore.read_bytes(fs, final, limit=BIG) == data and all_files(fs, s3.path()) == {final}
    # at or under the limit, and for a local folder (a rename has no limit): through a temporary key, as before
    monkeypatch.setattr(objectstore, "COPY_LIMIT", BIG)
    objectstore.put_atomic(fs, s3.path("warehouse", "build-2", "warehouse.duckdb"), data, unreachable=True)
    assert len(made) == 1 and made[0].startswith(s3.path("warehouse", "build-2", ".warehouse.duckdb."))
    monkeypatch.setattr(objectstore, "COPY_LIMIT", 2**20)
    target = tmp_path / "build-3" / "warehouse.duckdb"
    objectstore.put_atomic(pafs.LocalFileSystem(), str(target), data, unreachable=True)
    assert len(made) == 2 and target.read_bytes() == data and list(target.parent.iterdir()) == [target]


def test_a_fault_mid_stream_leaves_no_object_at_the_key_written_directly(s3, monkeypatch):
    fs, made, data, final = _over_a_small_limit(s3, monkeypatch)

    def fail(done):  # after a 10 MiB part went up
        if done == 11 * 2**20:
            raise OSError("connection reset by peer")

    with pytest.raises(ObjectStoreError, match="build-1/warehouse.duckdb: connection reset by peer"):
        objectstore.put_atomic(fs, final, io.BytesIO(data), fail, unreachable=True)
    assert fs.get_file_info(final).type == pafs.FileType.NotFound and all_files(fs, s3.path()) == set()
    # a source that fails (a disk fault) and cannot tell its size: straight to the key as well, and nothing left
    with pytest.raises(ObjectStoreError, match="build-1/warehouse.duckdb: the source failed"):
        objectstore.put_atomic(fs, final, Broken(data, after=11 * 2**20), unreachable=True)
    assert all_files(fs, s3.path()) == set() and made == []


def test_a_build_over_the_copy_limit_is_published_straight_to_its_key(s3, sample, tmp_path, monkeypatch):
    monkeypatch.setattr(objectstore, "COPY_LIMIT", 1024)  # every build is "over" it; the manifest is not
    made = _temp_keys(monkeypatch)
    # a publish, then a fault mid-upload of the next build: the manifest still names the first build, readers get it
    # and nothing of the second is left (the test above, under the limit) ...
    test_a_fault_in_the_upload_stream_publishes_nothing(s3, sample, tmp_path, monkeypatch)
    # ... and each build went straight to its key: the only temporary key was the manifest's
    assert [Path(k).name.split(".")[1] for k in made] == ["manifest"]
    fs = objectstore.filesystem(s3)
    first = manifest_of(fs, s3)
    again = remote_warehouse.publish_warehouse(tmp_path / "second.duckdb", s3, fs)  # the rerun publishes it
    assert again["history"] == [again["build_id"], first["build_id"]]
    assert [Path(k).name.split(".")[1] for k in made] == ["manifest", "manifest"]
    # the key the manifest names is never written straight over: a damaged published build over the limit is refused
    objectstore.put_atomic(fs, s3.path(again["key"]), b"damaged")
    with pytest.raises(ObjectStoreError, match=r"over the 1024 bytes S3 can copy from a temporary key"):
        remote_warehouse.publish_warehouse(tmp_path / "second.duckdb", s3, fs)
    assert manifest_of(fs, s3) == again
