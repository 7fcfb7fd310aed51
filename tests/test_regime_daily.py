"""marts.regime_daily: one row per RUT session with the headline readings, the records of the day and the regime
label, on a hand-made fixture (every rule, boundaries, CFTC carried forward, a record on a holiday) and on the
bundled sample through the real build."""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd
import pytest

from regime import warehouse
from regime.extremes.build import build as build_extremes
from regime.indicators import REGIME_RULES
from regime.sql import FULL, run_model

COLUMNS = ["date", "rut_zscore_50d", "spx_zscore_50d", "rut_spx_rel_ret_5d", "rut_spx_price_ratio",
           "rut_rvx_vol_corr_5d", "iwm_call_volume_5d", "lev_money_net_pct_oi_russell", "etf_flow_5d_pct_spread",
           "records", "label"]
# sessions: 4 July 2024 is an exchange holiday
S = [date(2024, 7, 3), date(2024, 7, 5), date(2024, 7, 8), date(2024, 7, 9), date(2024, 7, 10), date(2024, 7, 11),
     date(2024, 7, 12)]
HOLIDAY = date(2024, 7, 4)
#                 S0    S1    S2    S3    S4     S5    S6
RUT_Z = [None, 1.0, 3.2, 3.2, -3.5, 0.5, 3.0]
SPX_Z = [None, 0.5, 0.4, 0.6, 0.6, -2.1, 0.0]
REL_5D = [None, None, 0.06, 0.01, -0.07, -0.01, 0.05]


def _regime(params: dict | None = None, extra: list | None = None) -> pd.DataFrame:
    con = duckdb.connect()
    for schema in warehouse.SCHEMAS:
        con.execute(f"create schema {schema}")
    con.execute("create table marts.prices (date date, symbol varchar, open double, high double, low double,"
                " close double)")
    con.executemany("insert into marts.prices values ($1, 'RUT', 1, 1, 1, 1)", [(s,) for s in S])
    con.execute("insert into marts.prices values ($1, 'VIX', 1, 1, 1, 1)", [HOLIDAY])  # a VIX-only day
    rows = []
    for day, rut, spx, rel in zip(S, RUT_Z, SPX_Z, REL_5D, strict=True):
        rows += [(day, "zscore_50d", "RUT", rut), (day, "zscore_50d", "SPX", spx)]
        if rel is not None:
            rows.append((day, "rel_ret_5d", "RUT/SPX", rel))
        rows.append((day, "ret_1d", "RUT", float(day.day)))  # rising: records, but not a headline indicator
    rows += [(S[2], "price_ratio", "RUT/SPX", 0.4), (S[2], "vol_corr_5d", "RUT~RVX", -0.9),
             (S[2], "call_volume_5d", "IWM", 1e6), (S[2], "etf_flow_5d_pct_spread", "small-large", 0.01),
             (S[2], "call_volume_5d", "SPY", 5e6)]
    # CFTC readings dated by release: S0, then a release on the holiday
    rows += [(S[0], "net_pct_oi", "239742:lev_money", -0.10), (HOLIDAY, "net_pct_oi", "239742:lev_money", -0.20),
             (S[3], "net_pct_oi", "13874A:lev_money", 0.3)]
    rows += extra or []
    con.execute("create table marts.indicators (date date, indicator varchar, subject varchar, value double)")
    con.executemany("insert into marts.indicators values ($1, $2, $3, $4)", rows)
    build_extremes(con, {})
    bound = {**REGIME_RULES, "as_of": S[-1], "record_min_days": 0, "since": FULL, **(params or {})}
    run_model(con, "marts.regime_daily", "marts/regime_daily.sql", bound)
    frame = con.execute("select * from marts.regime_daily order by date").df()
    return frame.assign(date=frame["date"].dt.date).set_index("date", drop=False)


def test_labels_follow_the_rules_in_priority_order():
    got = _regime()
    assert list(got.columns) == COLUMNS
    assert list(got.date) == S  # RUT sessions only: not the VIX-only holiday
    assert list(got.label) == [
        "insufficient history",  # S0: no z-score yet
        "normal",  # S1
        "small-cap squeeze",  # S2: z 3.2 >= 3 and rel 0.06 >= 0.05
        "stretched",  # S3: z 3.2 but rel 0.01
        "small-cap capitulation",  # S4: z -3.5 <= -3 and rel -0.07 <= -0.05
        "stretched",  # S5: SPX z -2.1
        "small-cap squeeze",  # S6: on both thresholds exactly
    ]


def test_thresholds_are_parameters():
    got = _regime({"squeeze_z": 3.5, "stretched_z": 3.3, "capitulation_rel": -0.1})
    assert list(got.label) == ["insufficient history", "normal", "normal", "normal", "stretched", "normal",
                               "normal"]


def test_headline_columns_and_the_cftc_reading_carried_forward():
    got = _regime()
    s2 = got.loc[S[2]]
    assert (s2.rut_zscore_50d, s2.spx_zscore_50d, s2.rut_spx_rel_ret_5d) == (3.2, 0.4, 0.06)
    assert (s2.rut_spx_price_ratio, s2.rut_rvx_vol_corr_5d, s2.iwm_call_volume_5d, s2.etf_flow_5d_pct_spread) == (
        0.4, -0.9, 1e6, 0.01)
    assert got.loc[S[3]].isna()[["rut_spx_price_ratio", "iwm_call_volume_5d"]].all()  # not carried forward
    lev = got.lev_money_net_pct_oi_russell
    assert lev[S[0]] == -0.10  # released that day
    assert list(lev[S[1]:]) == [-0.20] * 6  # the holiday release, from the next session on


def test_records_of_headline_indicators():
    got = _regime()
    records = {day: (None if pd.isna(r) else r) for day, r in got.records.items()}
    assert records == {
        S[0]: None,  # first readings are not records
        S[1]: "net_pct_oi 239742:lev_money low",  # the holiday's record counts on the next session
        S[2]: "zscore_50d RUT high; zscore_50d SPX low",
        S[3]: "rel_ret_5d RUT/SPX low; zscore_50d SPX high",  # RUT's 3.2 only ties its record
        S[4]: "rel_ret_5d RUT/SPX low; zscore_50d RUT low",
        S[5]: "zscore_50d SPX low",
        S[6]: None,
    }


def test_records_need_a_year_of_history_by_default():
    assert _regime({"record_min_days": REGIME_RULES["record_min_days"]}).records.isna().all()


@pytest.mark.parametrize("as_of", [date(2024, 7, 17)])
def test_regime_daily_on_the_bundled_sample(settings, as_of):
    from regime.ingest import ingest_cboe

    ingest_cboe(settings, as_of)
    staging = warehouse.build(settings, as_of)
    con = duckdb.connect(str(staging), read_only=True)
    try:
        sessions = con.execute("select count(*) from marts.prices where symbol = 'RUT'").fetchone()[0]
        daily = con.execute("select * from marts.regime_daily order by date").df()
        readings = con.execute("select count(*) from marts.indicators where isfinite(value)").fetchone()[0]
        in_extremes = con.execute("select count(*) from marts.extremes").fetchone()[0]
    finally:
        con.close()
    assert len(daily) == sessions and list(daily.columns) == COLUMNS
    assert daily.label.iloc[-1] == "small-cap squeeze"  # the sample's scripted squeeze
    assert in_extremes == readings


def test_a_record_is_listed_once_per_session():
    # a record low released on the holiday and another on the next session: one entry on that session
    got = _regime(extra=[(S[1], "net_pct_oi", "239742:lev_money", -0.30)])
    assert got.records[S[1]] == "net_pct_oi 239742:lev_money low"
    assert got.lev_money_net_pct_oi_russell[S[1]] == -0.30


@pytest.mark.parametrize("since", [S[0], S[1], HOLIDAY, S[3], S[5]])
def test_rows_after_since_alone_equal_the_full_table(since):
    """An incremental build computes only the sessions after $since: the same rows as the full table's, CFTC
    reading carried forward from before $since and the holiday's records on the next session included."""
    full = _regime()
    part = _regime({"since": since})
    assert len(part) == (full["date"] > since).sum() > 0
    expected = full[full["date"] > since]
    assert part.astype(object).where(part.notna(), None).to_dict("records") == \
        expected.astype(object).where(expected.notna(), None).to_dict("records")
