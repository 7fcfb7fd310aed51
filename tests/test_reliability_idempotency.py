"""Idempotency: running the same logical date twice (the four ingests and build-validate-publish), or a backfill
over a range twice, leaves the lake and the warehouse identical.

"Identical" is checked as: the sha256 of every lake Parquet partition and of every raw landed file and its
.meta.json (a rerun that receives the same bytes keeps the first fetch's metadata, fetch time included); and a
content hash of every warehouse table (DuckDB files differ byte-wise between two writes of the same data), except
what records when and how a file was built, excluded on purpose and asserted apart: meta.build_info.built_at (the
build time), meta.validation_runs.run_at (each build appends its run to this log: compared as the set of distinct
rows without run_at: a rerun repeats every check with the same outcome and adds the "rows never fewer" checks,
which need a published build) and meta.build_method (a rerun may update the published file incrementally instead of
rebuilding it: same content, another method)."""

from __future__ import annotations

import json
import shutil
from datetime import date

import duckdb
import pytest
from test_reliability_support import (
    DATASETS,
    build_info,
    lake_digest,
    published_sample,
    raw_digest,
    same_checks,
    warehouse_digest,
)

from conftest import SAMPLE_DATASETS, SAMPLE_LAST, SAMPLE_MIRROR
from regime import backfill, pipeline
from regime.config import get_settings


@pytest.fixture
def sample_env(tmp_path, monkeypatch):
    for key, value in {"REGIME_DATA_DIR": str(tmp_path / "data"), "REGIME_MIRROR_DIR": str(SAMPLE_MIRROR),
                       "REGIME_SOURCE": "mirror"}.items():
        monkeypatch.setenv(key, value)
    return tmp_path / "data"


def snapshot(data_dir) -> dict:
    return {"lake": lake_digest(data_dir), "raw": raw_digest(data_dir),
            "warehouse": warehouse_digest(data_dir / "warehouse.duckdb")}


def validation_rows(path) -> int:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("select count(*) from meta.validation_runs").fetchall()[0][0]
    finally:
        con.close()


def assert_same(before: dict, after: dict) -> None:
    assert after["lake"] == before["lake"]
    assert after["raw"] == before["raw"]
    assert after["warehouse"].keys() == before["warehouse"].keys()
    for table, digest in before["warehouse"].items():
        if table == "meta.validation_runs":
            same_checks(digest, after["warehouse"][table])
        else:
            assert after["warehouse"][table] == digest, table


@pytest.mark.slow
def test_the_same_date_twice_gives_the_same_lake_and_warehouse(tmp_path_factory, sample_env):
    shutil.copytree(published_sample(tmp_path_factory), sample_env)  # the first run
    settings = get_settings()
    before = snapshot(sample_env)
    first = build_info(settings.warehouse_path)
    meta = {p: json.loads(p.read_text()) for p in settings.raw_dir.rglob("*.meta.json")}
    runs_before = validation_rows(settings.warehouse_path)

    for name in DATASETS:  # the second run
        pipeline.ingest(name, SAMPLE_LAST, settings)
    pipeline.build_validate_publish(SAMPLE_LAST, settings)

    after = snapshot(sample_env)
    assert_same(before, after)
    assert len(before["lake"]) == 21 and len(before["raw"]) == 2 * (6 + 6 * 120 + 6 + 6)
    assert {p: json.loads(p.read_text()) for p in meta} == meta  # the first fetch's metadata is kept
    second = build_info(settings.warehouse_path)
    assert second["built_at"] > first["built_at"]  # the excluded column does change
    # one more run in the log: the first run's checks again, and the "rows never fewer" ones it could not make yet
    assert validation_rows(settings.warehouse_path) == runs_before + len(after["warehouse"]["meta.validation_runs"])
    assert not list(settings.build_dir.glob("warehouse-*"))


@pytest.mark.slow
def test_a_backfill_twice_gives_the_same_lake_and_warehouse(tmp_path_factory, sample_env):
    settings = get_settings()
    start, end = date(2024, 7, 1), SAMPLE_LAST
    first = backfill.run(start, end, settings, progress=False)
    assert first["skipped"] == 0 and first["occ_files"] == 6 * 12
    before = snapshot(sample_env)

    again = backfill.run(start, end, settings, restart=True, progress=False)  # every step done again
    assert again["skipped"] == 0
    assert_same(before, snapshot(sample_env))

    resumed = backfill.run(start, end, settings, progress=False)  # the checkpoint says it is all done
    assert resumed["skipped"] == resumed["steps"]
    assert_same(before, snapshot(sample_env))

    # and the full-history datasets are byte for byte those of the daily run as of the same date (the daily run
    # ingests SAMPLE_DATASETS; the put/call archive, which the backfill fetches too, has a weekly DAG of its own)
    daily = lake_digest(published_sample(tmp_path_factory))
    compared = [name for name in before["lake"] if name.split("/")[0] in set(SAMPLE_DATASETS) - {"options_volume"}]
    assert compared and any(name.startswith("options_putcall/") for name in before["lake"])
    for name in compared:
        assert daily[name] == before["lake"][name], name
