"""Acceptance of the source ingest on the real reference mirror (skips where ../shared is absent)."""

from datetime import date

import pandas as pd
import pytest

from conftest import REFERENCE_MIRROR, requires_reference
from regime import pipeline
from regime.config import get_settings

pytestmark = [pytest.mark.reference, requires_reference("mirror", "cftc", "fut_fin_txt_2024.zip")]
AS_OF = date(2025, 12, 31)  # the last session in the reference mirror


@pytest.fixture(scope="module")
def reference_lake(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("REGIME_DATA_DIR", str(tmp_path_factory.mktemp("reference-lake")))
    mp.setenv("REGIME_MIRROR_DIR", str(REFERENCE_MIRROR))
    mp.setenv("REGIME_SOURCE", "mirror")
    settings = get_settings()
    results = {name: pipeline.ingest(name, AS_OF, settings)
               for name in ("index_prices", "options_volume", "cftc_tff", "etf_nav")}
    yield settings, results
    mp.undo()


def test_the_lake_holds_the_real_index_history(reference_lake):
    settings, results = reference_lake
    assert sorted(results["index_prices"]["rows"]) == ["DJX", "NDX", "RUT", "SPX", "VIX"]
    assert results["index_prices"]["missing"] == ["RVX"]
    rut = pd.read_parquet(settings.lake_dir / "index_prices" / "symbol=RUT" / "data.parquet")
    assert rut["date"].min() == date(1987, 9, 10) and rut["date"].max() == date(2025, 12, 31)


def test_families_absent_from_the_mirror_are_skipped_not_failed(reference_lake):
    _, results = reference_lake
    assert results["options_volume"]["rows"] == {} and results["options_volume"]["files"] == 0
    assert results["etf_nav"]["rows"] == {} and len(results["etf_nav"]["missing"]) == 6


def test_russell_leveraged_funds_net_position(reference_lake):
    settings, results = reference_lake
    tff = pd.read_parquet(settings.lake_dir / "cftc_tff" / "market_code=239742" / "data.parquet")
    years = {d.year for d in tff["report_date"]}
    assert {2022, 2024} <= years
    net = (tff["lev_money_positions_long"] - tff["lev_money_positions_short"]).set_axis(tff["report_date"])
    assert net[date(2024, 7, 9)] == -69_861
    assert net[date(2024, 7, 16)] == -36_043
    released = tff.set_index("report_date")["release_date"]
    assert released[date(2024, 7, 16)] == date(2024, 7, 19)
    assert released[date(2024, 7, 2)] == date(2024, 7, 8)  # the July 4th week shifts the release to Monday
