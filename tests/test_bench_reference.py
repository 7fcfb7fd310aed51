"""The benchmark's pandas reference (benchmarks/reference.py) computes the same panel indicators as the SQL, on a small
panel written with the benchmark's bulk lake writer (benchmarks/synth.py) and built by the real warehouse.build: so
that the benchmark's speed ratio compares like with like. Correctness only; timings are the benchmark's job."""

from __future__ import annotations

import sys

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from conftest import PROJECT
from regime import datasets

sys.path.insert(0, str(PROJECT / "benchmarks"))

import reference  # noqa: E402
import synth  # noqa: E402


@pytest.fixture
def panel(tmp_path, monkeypatch):
    names, funds = synth.panel_names(30, 12)
    monkeypatch.setenv("REGIME_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("REGIME_SOURCE", "mirror")
    monkeypatch.setenv("REGIME_SMALL_CAPS", ",".join(funds[:5]))
    monkeypatch.setenv("REGIME_LARGE_CAPS", ",".join(funds[5:10]))  # two funds on neither side
    from regime.config import get_settings

    settings = get_settings()
    written = synth.panel(settings.lake_dir, 30, 12, 60)
    # no puts at all for a week: the ratio is undefined (NULL / NaN), the sums are not
    path = datasets.OPTIONS_VOLUME.partition_path(settings.lake_dir, names[3])
    table = pq.read_table(path).to_pandas()
    table.loc[20:26, "put_volume"] = 0
    table.to_parquet(path, index=False)
    return settings, written


@pytest.mark.slow
def test_pandas_reference_equals_the_sql(panel):
    from regime import warehouse

    settings, written = panel
    assert written == {"options_volume": 30 * 60, "etf_nav": 12 * 60}
    path = warehouse.build(settings, synth.END)
    con = duckdb.connect(str(path), read_only=True)
    try:
        sql = con.execute("select date, indicator, subject, value from marts.indicators").df()
    finally:
        con.close()
    volume, nav = reference.read_lake(settings.lake_dir)
    got = reference.indicators(volume, nav, settings.small_caps, settings.large_caps)
    assert set(sql["indicator"]) == set(reference.NAMES)  # the lake holds nothing for the other indicators
    merged = sql.assign(date=pd.to_datetime(sql["date"])).merge(
        got.assign(date=pd.to_datetime(got["date"])), on=["date", "indicator", "subject"], how="outer",
        suffixes=("_sql", "_pandas"), indicator=True)
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"].head()
    np.testing.assert_allclose(merged["value_sql"], merged["value_pandas"], rtol=1e-9, atol=1e-12)
    counts = merged.groupby("indicator").size().to_dict()
    assert counts == {"call_volume_5d": 30 * 56, "put_volume_5d": 30 * 56, "call_put_ratio_5d": 30 * 56,
                      "etf_flow_5d_pct": 12 * 55, "etf_flow_5d_pct_spread": 55}
    ratio = merged[merged["indicator"] == "call_put_ratio_5d"]["value_sql"]
    assert ratio.isna().sum() == 3  # the three windows inside the put-less week


def test_the_bulk_writer_leaves_the_lake_layout_of_dataset_write(tmp_path):
    """synth.write_partitions writes what regime.datasets.Dataset.write would: same files, columns, types, rows."""
    days = synth.sessions(8)
    table = synth.options_volume(days, ["AAA", "BBB"], np.random.default_rng(1))
    synth.write_partitions(datasets.OPTIONS_VOLUME, tmp_path / "bulk", table)
    datasets.OPTIONS_VOLUME.write(tmp_path / "canonical", table.to_pandas().assign(
        date=lambda f: pd.to_datetime(f["date"]).dt.date))
    for name in ("AAA", "BBB"):
        bulk = pq.read_table(datasets.OPTIONS_VOLUME.partition_path(tmp_path / "bulk", name))
        canonical = pq.read_table(datasets.OPTIONS_VOLUME.partition_path(tmp_path / "canonical", name))
        assert bulk.schema.remove_metadata() == canonical.schema.remove_metadata()
        assert bulk.to_pylist() == canonical.to_pylist()
