from pathlib import Path

import pytest

from regime.config import ConfigError, get_settings


def test_defaults_point_inside_the_project(monkeypatch):
    for key in ("REGIME_DATA_DIR", "REGIME_SOURCE", "REGIME_MIRROR_DIR", "REGIME_ALERT_TO", "REGIME_INDEXES"):
        monkeypatch.delenv(key, raising=False)
    s = get_settings()
    project = Path(__file__).resolve().parents[1]
    assert s.data_dir == project / "data"
    assert s.mirror_dir == project / "include" / "sample" / "mirror"
    assert s.source == "mirror"
    assert s.indexes == ("RUT", "SPX", "NDX", "DJX", "VIX", "RVX")
    assert s.warehouse_path == project / "data" / "warehouse.duckdb"


def test_settings_are_read_when_called(monkeypatch, tmp_path):
    monkeypatch.setenv("REGIME_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("REGIME_ALERT_TO", "a@x.test, b@x.test")
    monkeypatch.setenv("REGIME_INDEXES", "rut,spx")
    s = get_settings()
    assert s.data_dir == tmp_path
    assert s.alert_to == ("a@x.test", "b@x.test")
    assert s.indexes == ("RUT", "SPX")


@pytest.mark.parametrize(("key", "value", "words"), [
    ("REGIME_SOURCE", "ftp", "expected 'mirror' or 'live'"),
    ("REGIME_ZSCORE_ALERT", "three", "REGIME_ZSCORE_ALERT='three' is not a valid float"),
])
def test_bad_settings_say_what_is_wrong(monkeypatch, key, value, words):
    monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=words):
        get_settings()


def test_a_memory_limit_that_is_not_an_amount_is_refused(monkeypatch):
    monkeypatch.setenv("REGIME_DUCKDB_MEMORY_LIMIT", "lots")
    with pytest.raises(ConfigError, match="REGIME_DUCKDB_MEMORY_LIMIT='lots': expected an amount of memory"):
        get_settings()
    monkeypatch.setenv("REGIME_DUCKDB_MEMORY_LIMIT", "2GiB")
    assert get_settings().duckdb_memory_limit == "2GiB"
