from datetime import date
from pathlib import Path

import duckdb
import pytest

from conftest import SAMPLE_LAST, file_digest
from regime import pipeline, state
from regime.ingest import ingest_cboe
from regime.validation.gate import ValidationFailed


@pytest.fixture
def staging(settings) -> Path:
    ingest_cboe(settings, SAMPLE_LAST)
    return Path(pipeline.build(SAMPLE_LAST, settings))


def _tamper(path: Path, sql: str) -> None:
    con = duckdb.connect(str(path))
    con.execute(sql)
    con.close()


def test_the_sample_passes_and_publishes(settings, staging):
    summary = pipeline.validate(str(staging), SAMPLE_LAST, settings)
    assert summary["checks"] > 20
    assert Path(summary["docs_url"].removeprefix("file://")).exists()  # GX Data Docs were written
    pipeline.publish(str(staging), settings)
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        # the published file carries this run's validation records
        assert con.execute("select count(*) from meta.validation_runs where as_of = '2024-07-17'").fetchone()[0] \
            == summary["checks"]
    finally:
        con.close()


@pytest.mark.parametrize(("sql", "words"), [
    ("update marts.prices set close = -1 where symbol = 'RUT' and date = '2024-07-01'",
     "prices: expect_column_values_to_be_between"),
    ("update marts.prices set high = close * 0.9 where symbol = 'SPX' and date = '2024-07-01'",
     "OHLC must be consistent for price indexes"),
    ("insert into marts.prices values ('2024-07-04', 'RUT', 1, 1, 1, 1)", "dates must be NYSE sessions"),
    ("insert into marts.prices select * from marts.prices where date = '2024-07-01' and symbol = 'RUT'",
     "expect_compound_columns_to_be_unique"),
    ("update marts.indicators set value = 9.5 where subject = 'RUT' and date = '2024-07-17'",
     "zscore_50d is bounded to"),
    ("alter table marts.prices drop column low", 'the dataset can be read with its expected columns.*"low" not found'),
])
def test_bad_data_blocks_publishing_and_is_recorded(settings, staging, sql, words):
    good = Path(pipeline.build(SAMPLE_LAST, settings))  # a previous good warehouse analysts are using
    pipeline.validate(str(good), SAMPLE_LAST, settings)
    pipeline.publish(str(good), settings)
    before = file_digest(settings.warehouse_path)

    _tamper(staging, sql)
    with pytest.raises(ValidationFailed, match=words) as err:
        pipeline.validate(str(staging), SAMPLE_LAST, settings)
    assert "BLOCKING" in str(err.value) and "Data Docs: file://" in str(err.value)
    assert not staging.exists()  # the failed build is discarded
    assert file_digest(settings.warehouse_path) == before  # analysts keep the last good warehouse
    runs = state.frames(settings.state_dir)["validation_runs"]
    failed = runs[(runs["success"] == 0) & (runs["severity"] == "critical")]
    assert len(failed) >= 1 and failed["unexpected_count"].fillna(1).ge(1).all()


def test_known_vix_defects_warn_without_blocking(settings, staging):
    _tamper(staging, "update marts.prices set high = close - 1 where symbol = 'VIX' and date = '2024-07-01'")
    summary = pipeline.validate(str(staging), SAMPLE_LAST, settings)
    assert any("documented exception" in w for w in summary["warnings"])


def test_stale_data_is_a_warning(settings):
    ingest_cboe(settings, date(2024, 7, 10))
    staging = pipeline.build(date(2024, 7, 17), settings)
    summary = pipeline.validate(staging, date(2024, 7, 17), settings)
    assert any("freshness" in w for w in summary["warnings"])
