"""How current the lake is (regime.freshness), and which runs refuse stale data (regime.runtime.means_latest)."""

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest

from conftest import SAMPLE_LAST
from regime import freshness
from regime.datasets import CFTC_TFF, INDEX_PRICES
from regime.runtime import as_of_date, means_latest

INDEXES = "DJX, NDX, RUT, RVX, SPX, VIX"


@pytest.mark.slow
def test_the_sample_is_fresh_on_its_last_session_and_three_sessions_later(published):
    assert freshness.problems(published, SAMPLE_LAST) == []
    # 2024-07-22 (Monday): 07-18, 07-19 and 07-22 missing is three sessions behind, the limit
    assert freshness.problems(published, date(2024, 7, 22)) == []
    assert [(s.name, s.last) for s in freshness.latest(published, CFTC_TFF, SAMPLE_LAST)] == [
        ("13874A", date(2024, 7, 12)), ("209742", date(2024, 7, 12)), ("239742", date(2024, 7, 12))]


@pytest.mark.slow
def test_four_sessions_behind_is_stale_and_named_per_dataset(published):
    # 2024-07-23: 07-18, 07-19, 07-22, 07-23 missing; the CFTC release of Friday 07-12 is 11 days old
    assert freshness.problems(published, date(2024, 7, 23), (INDEX_PRICES, CFTC_TFF)) == [
        f"index_prices {INDEXES} end 2024-07-17, before 2024-07-18 (at most 3 sessions behind, "
        "REGIME_FRESHNESS_SESSIONS)",
        "cftc_tff 13874A, 209742, 239742 end 2024-07-12, before 2024-07-13 (a release within 10 days)"]
    with pytest.raises(freshness.StaleData, match=r"data for 2024-07-23 is stale, nothing was published: "
                       r"index_prices DJX.*explicit as_of"):
        freshness.require_fresh(published, date(2024, 7, 23))


def test_a_dataset_missing_from_the_lake_is_named(settings):
    assert freshness.problems(settings, SAMPLE_LAST, (INDEX_PRICES,)) == [
        "index_prices: no data on or before 2024-07-17 in the lake"]


@pytest.mark.slow
def test_a_session_is_covered_only_when_the_lake_holds_it(published):
    assert freshness.covers(published, INDEX_PRICES, SAMPLE_LAST)
    assert not freshness.covers(published, INDEX_PRICES, date(2024, 7, 18))


def _context(run_type: str, logical_date=None, conf=None, partition_key=None) -> dict:
    run = SimpleNamespace(run_type=run_type, conf=conf or {}, partition_key=partition_key, run_after=None)
    return {"dag_run": run, "logical_date": logical_date}


SESSION = datetime(2024, 7, 16, tzinfo=UTC)
NOW = datetime.now(UTC)


@pytest.mark.parametrize(("context", "latest"), [
    (_context("scheduled", logical_date=NOW - timedelta(days=2)), True),
    (_context("asset_triggered", partition_key="2024-07-16"), True),
    (_context("manual"), True),                                       # triggered without a date: today
    (_context("manual", logical_date=NOW), True),                     # the UI's trigger form: logical date "now"
    (_context("manual", conf={"as_of": "2024-07-16"}), False),        # a date someone chose
    (_context("manual", logical_date=SESSION), False),                # `airflow dags test DAG 2024-07-16`
    (_context("backfill", logical_date=SESSION), False),
    (_context("backfill", logical_date=NOW), False),
])
def test_which_runs_refuse_stale_data(context, latest):
    assert means_latest(context) is latest


def test_a_partitioned_run_is_as_of_its_partition_key_unless_the_conf_says_otherwise():
    assert as_of_date(_context("asset_triggered", partition_key="2024-07-16")) == date(2024, 7, 16)
    assert as_of_date(_context("manual", conf={"as_of": "2024-07-15"}, partition_key="2024-07-16")) == \
        date(2024, 7, 15)
