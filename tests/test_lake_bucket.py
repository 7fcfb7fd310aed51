"""The lake in an S3-compatible bucket (REGIME_LAKE_URI, regime.lake_store; issue #22): a full run with the lake in the
bucket gives the same warehouse as a local run, a rerun writes no object and grows no journal, a partition upload
killed midway leaves the previous object readable and nothing half-written visible (the next ingest sweeps what a
killed writer left), a bad REGIME_LAKE_URI is a clear error, and the credentials never reach a log. Against a real
S3-compatible server on 127.0.0.1 (moto_server, tests/s3.py)."""

from __future__ import annotations

import json
import logging
import shutil
import textwrap
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from datetime import timedelta

import duckdb
import pandas as pd
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from conftest import SAMPLE_LAST, SAMPLE_MIRROR, _sample_settings, killed_once_it_says
from regime import datasets, lake, lake_store, objectstore, pipeline
from regime.config import ConfigError, get_settings
from regime.objectstore import ObjectStoreError, parse_location

ALL = tuple(d.name for d in datasets.ALL)  # the bundled sample has all five (Cboe's put/call archive too)
# Columns whose value is the time of the run that wrote them, not data: compared without them. meta.build_info's
# built_at (when the build ran), and in the state copied into each build: meta.validation_runs' run_at (when the gate
# ran), meta.alerts' created_at (when the build queued the alert), meta.revisions' recorded_at (when an ingest
# recorded a revision). Every other column is compared, the run's own data dir (in meta.validation_runs' docs_url,
# the gate's data docs under REGIME_DATA_DIR) written as <data dir>.
RUN_TIME_COLUMNS = {"meta.build_info": {"built_at"}, "meta.validation_runs": {"run_at"}, "meta.alerts": {"created_at"},
                    "meta.revisions": {"recorded_at"}}


def bucket_env(moto, uri: str) -> dict:
    return {**moto.env, "REGIME_LAKE_URI": uri}


def run(root, env: dict | None = None):
    """Ingest every dataset of the bundled sample as of its last session and build, validate and publish, as the
    DAG tasks do (pipeline.ingest per dataset, then pipeline.build_validate_publish). Returns the settings."""
    with _sample_settings(root) as settings, pytest.MonkeyPatch.context() as mp:
        for key, value in (env or {}).items():
            mp.setenv(key, value)
        settings = get_settings()
        for name in ALL:
            pipeline.ingest(name, SAMPLE_LAST, settings)
        pipeline.build_validate_publish(SAMPLE_LAST, settings)
    return settings


@pytest.fixture(scope="module")
def runs(moto, tmp_path_factory):
    """The same sample run with a local lake and with the lake in a bucket: (local settings, bucket settings, the
    bucket's location)."""
    location = parse_location(f"s3://{moto.make_bucket(f'lake-{uuid.uuid4().hex[:12]}')}/team/regime")
    local = run(tmp_path_factory.mktemp("local-lake"))
    remote = run(tmp_path_factory.mktemp("bucket-lake"), bucket_env(moto, location.uri))
    return local, remote, location


@pytest.fixture
def in_bucket(runs, moto, monkeypatch):
    """The bucket run's environment set (credentials, REGIME_LAKE_URI, its data dir): its settings."""
    local, remote, location = runs
    for key, value in bucket_env(moto, location.uri).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("REGIME_DATA_DIR", str(remote.data_dir))
    monkeypatch.setenv("REGIME_MIRROR_DIR", str(SAMPLE_MIRROR))
    return get_settings()


def tables(con) -> list[str]:
    return [f"{s}.{t}" for s, t in con.execute(
        "select table_schema, table_name from information_schema.tables where table_type = 'BASE TABLE' "
        "order by 1, 2").fetchall()]


def rows(con, table: str, data_dir) -> list[tuple]:
    columns = [c for (c,) in con.execute(
        "select column_name from information_schema.columns where table_schema || '.' || table_name = $t "
        "order by ordinal_position", {"t": table}).fetchall() if c not in RUN_TIME_COLUMNS.get(table, ())]
    quoted = ", ".join(f'"{c}"' for c in columns)
    found = con.execute(f"select {quoted} from {table}").fetchall()
    return sorted((tuple(v.replace(str(data_dir), "<data dir>") if isinstance(v, str) else v for v in row)
                   for row in found), key=repr)


def listing(moto, location) -> dict[str, tuple[str, str, int]]:
    """Every object under the location's prefix, temporary keys included: key -> (ETag, LastModified, size), from
    the server's own ListObjectsV2 answer (moto accepts unsigned requests)."""
    ns = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
    found, token = {}, None
    while True:
        query = {"list-type": "2", "prefix": location.prefix + "/"}
        if token:
            query["continuation-token"] = token
        with urllib.request.urlopen(f"{moto.endpoint}/{location.bucket}?{urllib.parse.urlencode(query)}") as answer:
            tree = ET.fromstring(answer.read())
        for item in tree.findall("s3:Contents", ns):
            found[item.findtext("s3:Key", namespaces=ns)] = (item.findtext("s3:ETag", namespaces=ns),
                                                             item.findtext("s3:LastModified", namespaces=ns),
                                                             int(item.findtext("s3:Size", namespaces=ns)))
        token = tree.findtext("s3:NextContinuationToken", namespaces=ns)
        if not token:
            return found


def journals(settings) -> dict[str, dict[str, int]]:
    return {name: {part: len(journal or []) for part, journal in files.items()}
            for name, files in lake_store.journals(settings, datasets.ALL).items()}


# --- a full run -------------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_full_run_with_the_lake_in_the_bucket_gives_the_same_warehouse(runs, in_bucket, moto):
    local, remote, location = runs
    keys = listing(moto, location)
    for top in ("raw", "lake"):  # the lake lives in the bucket; the bucket run's own folders are only a working copy
        assert any(k.startswith(f"{location.prefix}/{top}/") for k in keys), top
    assert not [k for k in keys if objectstore.is_temp(k)]
    lake_keys = sorted(k.removeprefix(f"{location.prefix}/") for k in keys
                       if k.startswith(f"{location.prefix}/lake/") and k.endswith("/data.parquet"))
    assert lake_keys == sorted(p.relative_to(local.data_dir).as_posix()
                               for p in local.lake_dir.rglob("data.parquet"))
    # the build read the bucket: its meta.lake_writes name the bucket's journals
    with duckdb.connect(str(remote.warehouse_path), read_only=True) as con:
        writes = dict(((d, p), w) for d, p, w in con.execute("select * from meta.lake_writes").fetchall())
    expected = {(d, p): j[-1]["id"] for d, files in lake_store.journals(in_bucket, datasets.ALL).items()
                for p, j in files.items()}
    assert writes == expected and len(writes) >= 20
    with duckdb.connect(str(local.warehouse_path), read_only=True) as a, \
            duckdb.connect(str(remote.warehouse_path), read_only=True) as b:
        names = tables(a)
        assert names == tables(b)
        assert {"staging.index_prices", "marts.indicators", "marts.headlines", "meta.build_info"} <= set(names)
        for table in names:
            assert rows(a, table, local.data_dir) == rows(b, table, remote.data_dir), table
        assert set(RUN_TIME_COLUMNS) <= set(names)  # what is left out exists (else the exception is stale)


# --- idempotent reruns ----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_rerun_of_the_same_date_writes_no_object_and_grows_no_journal(runs, in_bucket, moto):
    local, remote, location = runs
    before, journaled = listing(moto, location), journals(in_bucket)
    for name in ALL:
        pipeline.ingest(name, SAMPLE_LAST, in_bucket)
    assert listing(moto, location) == before  # same keys, ETags, times and sizes: nothing written
    assert journals(in_bucket) == journaled
    # another machine (an empty working copy) pulls, ingests the same bytes and writes nothing either
    shutil.rmtree(remote.data_dir / "lake")
    shutil.rmtree(remote.data_dir / "raw")
    shutil.rmtree(remote.data_dir / lake_store.SYNC_DIR)
    for name in ALL:
        pipeline.ingest(name, SAMPLE_LAST, in_bucket)
    assert listing(moto, location) == before
    assert journals(in_bucket) == journaled


# --- a partition write killed midway ----------------------------------------------------------------------------------

def rut(settings_or_fs, location=None) -> pd.DataFrame:
    if location is None:
        return pd.read_parquet(datasets.INDEX_PRICES.partition_path(settings_or_fs.lake_dir, "RUT"))
    return pq.read_table(location.path("lake/index_prices/symbol=RUT/data.parquet"),
                         filesystem=settings_or_fs).to_pandas()


def revise_rut(mirror) -> None:
    """The mirror's RUT history with its last close revised: the next ingest rewrites the RUT partition."""
    path = mirror / "cboe" / "RUT_History.csv"
    lines = path.read_text().splitlines()
    *head, close = lines[-1].split(",")
    lines[-1] = ",".join([*head, f"{float(close) + 1:.2f}"])
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def small(s3, regime_env, monkeypatch):
    """index_prices ingested into a new bucket as of the sample's last session: (settings, fs, location)."""
    monkeypatch.setenv("REGIME_LAKE_URI", s3.uri)
    settings = get_settings()
    pipeline.ingest("index_prices", SAMPLE_LAST, settings)
    return settings, objectstore.filesystem(s3), s3


def test_a_fault_in_a_partition_upload_leaves_the_previous_object(small, mirror, monkeypatch):
    settings, fs, location = small
    first = rut(fs, location)
    revise_rut(mirror)
    monkeypatch.setattr(objectstore, "CHUNK", 1024)  # many chunks: the fault lands in the middle of the partition
    upload = objectstore.put_atomic

    def faulty(fs_, final, source, progress=None):
        def fail(done):
            if final.endswith("symbol=RUT/data.parquet") and done > objectstore.CHUNK:
                raise OSError("connection reset by peer")
        return upload(fs_, final, source, progress=fail)

    monkeypatch.setattr(objectstore, "put_atomic", faulty)
    with pytest.raises(ObjectStoreError, match=r"cannot write .*symbol=RUT/data\.parquet: connection reset by peer"):
        pipeline.ingest("index_prices", SAMPLE_LAST, settings)
    pd.testing.assert_frame_equal(rut(fs, location), first)  # the previous partition, whole
    assert not [i.path for i in objectstore.list_objects(fs, location.path()) if objectstore.is_temp(i.path)]
    monkeypatch.setattr(objectstore, "put_atomic", upload)
    pipeline.ingest("index_prices", SAMPLE_LAST, settings)  # the rerun pushes the revision
    assert rut(fs, location)["close"].iloc[-1] == pytest.approx(first["close"].iloc[-1] + 1)
    pd.testing.assert_frame_equal(rut(fs, location), rut(settings))


KILLED_PUSH = textwrap.dedent("""
    import time
    from datetime import date
    from regime import objectstore, pipeline

    make = objectstore.filesystem

    class Stalling:
        # the bucket's filesystem, whose copy of the RUT partition's temporary key never comes: killed there
        def __init__(self, fs):
            self.fs = fs

        def __getattr__(self, name):
            return getattr(self.fs, name)

        def move(self, source, target):
            if target.endswith("symbol=RUT/data.parquet"):
                print("uploaded", flush=True)
                time.sleep(600)
            return self.fs.move(source, target)

    objectstore.filesystem = lambda *a, **k: Stalling(make(*a, **k))
    pipeline.ingest("index_prices", date.fromisoformat("{as_of}"))
""")


def test_a_push_killed_midway_leaves_the_previous_object_and_the_next_ingest_sweeps(small, mirror, monkeypatch):
    settings, fs, location = small
    first = rut(fs, location)
    revise_rut(mirror)
    killed_once_it_says("uploaded", "-c", KILLED_PUSH.format(as_of=SAMPLE_LAST))
    folder = location.path("lake/index_prices/symbol=RUT")
    left = [p for p in every_key(fs, folder) if objectstore.is_temp(p)]
    assert len(left) == 1  # the whole new partition under its temporary key, which no reader lists
    assert [i.path for i in objectstore.list_objects(fs, folder)] == [f"{folder}/data.parquet"]
    pd.testing.assert_frame_equal(rut(fs, location), first)
    monkeypatch.setattr(objectstore, "STALE_TEMP", timedelta(0))  # as if an hour had passed
    pipeline.ingest("index_prices", SAMPLE_LAST, settings)
    assert not [p for p in every_key(fs, folder) if objectstore.is_temp(p)]
    assert rut(fs, location)["close"].iloc[-1] == pytest.approx(first["close"].iloc[-1] + 1)


def every_key(fs, folder: str) -> list[str]:
    """Every object under `folder`, temporary keys included."""
    return [i.path for i in fs.get_file_info(pafs.FileSelector(folder, recursive=True, allow_not_found=True))
            if i.type == pafs.FileType.File]


# --- settings and credentials -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "words"), [
    ("http://example.com/lake", "unsupported location scheme 'http'"),
    ("s3://Bad_Bucket/lake", "is not a valid bucket name"),
    ("s3://bucket/../lake", "is not a usable key prefix part"),
    ("/srv/lake", "expected s3://bucket/prefix; a local lake is REGIME_DATA_DIR's"),
])
def test_a_bad_regime_lake_uri_is_a_clear_error(value, words, regime_env, monkeypatch):
    monkeypatch.setenv("REGIME_LAKE_URI", value)
    with pytest.raises(ConfigError, match=f"REGIME_LAKE_URI: .*{words}"):
        get_settings()


def test_a_lake_uri_with_credentials_is_refused_without_repeating_them(regime_env, monkeypatch):
    hidden = "k" + uuid.uuid4().hex
    monkeypatch.setenv("REGIME_LAKE_URI", f"s3://AKEXAMPLE:{hidden}@bucket/lake")
    with pytest.raises(ConfigError, match="holds credentials") as caught:
        get_settings()
    assert hidden not in str(caught.value)


def test_credentials_never_appear_in_logs(small, moto, mirror, caplog, capfd, monkeypatch):
    settings, fs, location = small
    caplog.set_level(logging.DEBUG)
    revise_rut(mirror)
    pipeline.ingest("index_prices", SAMPLE_LAST, settings)  # pulls, pushes the revision
    assert f"index_prices: 3 object(s) written to {location.uri}" in caplog.text  # raw file, its .meta.json, RUT
    errors = []
    for broken in ({"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}, {"AWS_SECRET_ACCESS_KEY": None}):
        with monkeypatch.context() as mp:
            for key, value in broken.items():
                mp.setenv(key, value) if value else mp.delenv(key)
            with pytest.raises(ObjectStoreError) as caught:
                pipeline.ingest("index_prices", SAMPLE_LAST, get_settings())
            errors.append(caught.value)
    assert "cannot list" in str(errors[0]) and "give both" in str(errors[1])
    seen = caplog.text + "".join(capfd.readouterr()) + "".join(f"{e!s} {e!r} {e.__cause__!r}" for e in errors)
    seen += json.dumps(json.loads((settings.data_dir / lake_store.SYNC_DIR / "index_prices.json").read_text()))
    for secret in (moto.env["AWS_ACCESS_KEY_ID"], moto.env["AWS_SECRET_ACCESS_KEY"]):
        assert secret not in seen
    assert lake.read_journal(datasets.INDEX_PRICES.partition_path(settings.lake_dir, "RUT"))


def test_regime_lake_remove_rewrites_the_partition_in_the_bucket(small):
    from regime import repair

    settings, fs, location = small
    journal = lake.read_journal(fs.open_input_file(location.path("lake/index_prices/symbol=RUT/data.parquet")))
    shutil.rmtree(settings.lake_dir)  # another machine: its working copy is pulled first
    removed = repair.remove(settings, "index_prices", "RUT", [SAMPLE_LAST])
    assert list(removed["date"].map(lake.as_date)) == [SAMPLE_LAST]
    in_bucket = rut(fs, location)
    assert SAMPLE_LAST not in set(in_bucket["date"].map(lake.as_date)) and len(in_bucket) > 100
    after = lake.read_journal(fs.open_input_file(location.path("lake/index_prices/symbol=RUT/data.parquet")))
    assert after[:-1] == journal and after[-1]["first_changed"] == SAMPLE_LAST.isoformat()
    shutil.rmtree(settings.lake_dir)
    assert f": {len(in_bucket)} rows, {len(after)} journaled writes" in repair.show(settings, "index_prices", "RUT")
