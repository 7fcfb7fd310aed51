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


# ------------------------------------------------------------------------ parsers on genuine upstream formats

FORMATS = REFERENCE_MIRROR.parent / "formats"


@pytest.mark.parametrize(("folder", "name", "first", "rows_at_least"), [
    ("ManULoreN14+regimen-tilt-nq", "VIX9D_History.csv", date(2011, 1, 4), 3800),  # OHLC: RVX's layout
    ("cgowda337+Stock-Market-Data", "VXAPL_History.csv", date(2011, 1, 7), 2900),
    ("cgowda337+Stock-Market-Data", "VXAZN_History.csv", date(2011, 1, 7), 2900),
    ("ManULoreN14+regimen-tilt-nq", "SKEW_History.csv", date(1990, 1, 2), 9000),  # single value: DATE,SKEW
    ("ManULoreN14+regimen-tilt-nq", "VVIX_History.csv", date(2006, 3, 6), 5000),  # with Cboe's own bad 2006 row
])
def test_genuine_cboe_files_parse(folder, name, first, rows_at_least):
    """No real RVX_History.csv was found; these genuine Cboe downloads have its layouts (docs/sources.md)."""
    from regime.sources import cboe

    path = FORMATS / "cboe-index-history" / folder / name
    if not path.exists():
        pytest.skip(f"{path} is absent")
    symbol = name.removesuffix("_History.csv")
    frame = cboe.parse(path.read_bytes(), symbol, str(path))
    assert frame["date"].iloc[0] == first and len(frame) >= rows_at_least
    assert frame["date"].is_monotonic_increasing and frame["close"].gt(0).all()
    if symbol in ("SKEW", "VVIX"):
        assert frame["open"].isna().all()  # the single-value layout has no open/high/low


def test_a_genuine_socrata_answer_of_another_cftc_dataset_is_refused_naming_the_fields():
    """The real public reporting API answer kept in the reference formats is of the legacy combined dataset
    (jun7-fc8e), not TFF gpe5-46if (no real TFF answer was found): the API parser names what it lacks."""
    from regime.sources import cftc
    from regime.sources.errors import SourceError

    path = FORMATS / "cftc-socrata" / "OpenBB-finance+OpenBB" / "jun7-fc8e.json"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    with pytest.raises(SourceError, match=r"header drift: field\(s\) .*asset_mgr_positions_long.* missing"):
        cftc.parse_api(path.read_bytes(), str(path), markets=["239747"])
