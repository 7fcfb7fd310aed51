"""regime.words, the one voice of the CLI, the report and the mails: names, units, 'since', percentile, previous
extreme and headlines, checked by hand."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from regime import words
from regime.indicators import REGISTRY


@pytest.mark.parametrize(("indicator", "value", "text"), [
    ("zscore_50d", 4.4173, "+4.42\u03c3"),
    ("zscore_50d", -0.004, "+0.00\u03c3"),
    ("ret_5d", 0.01234, "+1.23%"),
    ("ret_20d", -0.1234, "-12.3%"),
    ("rel_ret_5d", 0.0992, "+9.92 pp"),
    ("rel_ret_5d", 0.1058, "+10.6 pp"),
    ("etf_flow_5d_pct_spread", 0.063, "+6.30 pp"),
    ("etf_flow_5d_pct", 0.0125, "+1.25% of assets"),
    ("net_pct_oi", -0.38, "-38.0% of open interest"),
    ("call_volume_5d", 9917064.0, "9,917,064 contracts"),
    ("call_put_ratio_5d", 2.3149, "2.31"),
    ("price_ratio", 0.39938, "0.3994"),
    ("vol_corr_5d", -0.9332, "-0.93"),
    ("something_new", 1234567.0, "1,234,567"),
    ("zscore_50d", None, "—"),
    ("zscore_50d", float("nan"), "—"),
])
def test_a_value_with_its_unit(indicator, value, text):
    assert words.value_text(indicator, value) == text


def test_every_registered_indicator_has_a_name_and_a_unit():
    for indicator in REGISTRY:
        assert indicator.name in words.INDICATORS, indicator.name
        assert indicator.name not in words.reading_name(indicator.name, "RUT")


@pytest.mark.parametrize(("indicator", "subject", "name"), [
    ("zscore_50d", "RUT", "Russell 2000 z-score vs its 50-day average"),
    ("rel_ret_5d", "RUT/SPX", "Russell 2000 vs S&P 500, 5-day relative return"),
    ("vol_corr_5d", "RUT~RVX", "Russell 2000 vs RVX (Russell 2000 volatility) 5-day vol-spot correlation"),
    ("call_volume_5d", "IWM", "IWM 5-day call volume"),
    ("net_pct_oi", "239742:lev_money", "Russell 2000 E-mini · leveraged funds net position"),
    ("etf_flow_5d_pct_spread", "small-large", "Small-cap minus large-cap ETFs, 5-day flow spread"),
    ("putcall_ratio_10d", "equity", "Cboe equity options 10-day average put/call ratio"),
    ("new_thing_3d", "XYZ", "XYZ new thing 3d"),
])
def test_a_reading_is_named_in_words(indicator, subject, name):
    assert words.reading_name(indicator, subject) == name


def _row(**kw):
    row = {"date": date(2024, 7, 16), "indicator": "zscore_50d", "subject": "RUT", "value": 4.42,
           "history_start": date(1987, 11, 18), "highest_since": None, "lowest_since": date(2024, 7, 15),
           "is_record_high": True, "is_record_low": False, "pct_rank": 1.0}
    return {**row, **kw}


def test_since_picks_the_older_side_and_reads_the_same_from_a_dict_or_a_pandas_row():
    record = _row()
    assert words.since_phrase(record) == "the highest on record (history since 1987-11-18)"
    assert words.since_phrase(pd.Series(record)) == words.since_phrase(record)
    low = _row(value=-1.0, highest_since=date(2024, 7, 12), lowest_since=date(2008, 10, 10), is_record_high=False,
               pct_rank=0.5)
    assert words.since_phrase(low) == "the lowest since 2008-10-10 (15 years)"
    high = _row(value=3.5, highest_since=date(2000, 3, 10), lowest_since=date(2024, 7, 11), is_record_high=False)
    assert words.since_phrase(high) == "the highest since 2000-03-10 (24 years)"
    tie = _row(value=0.1, highest_since=date(2024, 7, 1), lowest_since=date(2024, 7, 1), is_record_high=False,
               pct_rank=0.4)
    assert words.side(tie) == "low" and words.since_phrase(tie) == "the lowest since 2024-07-01 (15 days)"
    first = _row(date=date(1987, 11, 18), highest_since=None, lowest_since=None, is_record_high=False)
    assert words.since_phrase(first) == "the first reading (history starts 1987-11-18)"
    assert words.since_phrase(_row(history_start=pd.NaT)) == "no history to compare with"


def test_previous_extreme_percentile_and_the_whole_sentence():
    record = _row()
    assert words.previous_text("zscore_50d", record, (date(2023, 6, 7), 3.72)) == \
        "previous record +3.72\u03c3 on 2023-06-07"
    plain = _row(value=0.1188, indicator="rel_ret_5d", subject="RUT/NDX", highest_since=date(2001, 4, 3),
                 lowest_since=date(2024, 7, 15), is_record_high=False, pct_rank=0.99946)
    assert words.previous_text("rel_ret_5d", plain, (pd.Timestamp("2001-04-03"), 0.137)) == \
        "last higher +13.7 pp on 2001-04-03"
    assert words.previous_text("zscore_50d", record, None) == "—"
    assert words.describe(plain) == ("Russell 2000 vs Nasdaq-100, 5-day relative return on 2024-07-16: +11.9 pp, "
                                     "the highest since 2001-04-03 (23 years); 99.9th percentile")
    assert [words.percentile(p) for p in (1.0, 0.99946, 0.9983, 0.5, 0.251, 0.003, 1e-9)] == [
        "100th percentile", "99.9th percentile", "99.8th percentile", "50th percentile", "25th percentile",
        "0.3rd percentile", "0.1st percentile"]


def test_headlines_in_the_articles_language():
    assert words.headline("group_record", "high", "zscore_50d", "RUT", 4.4173, date(2024, 7, 16), None,
                          date(1927, 12, 30), "index") == (
        "Russell 2000 closed 4.42\u03c3 above its 50-day average: the most stretched close of any tracked index "
        "since records began in 1927")
    assert words.headline("record", "high", "rel_ret_5d", "RUT/SPX", 0.0992, date(2024, 7, 16), None,
                          date(1987, 9, 17)) == (
        "Russell 2000 vs S&P 500, 5-day relative return at +9.92 pp: the highest on record (history since 1987-09-17)")
    assert words.headline("long_since", "low", "net_pct_oi", "13874A:dealer", -0.38, date(2024, 7, 12),
                          date(2022, 12, 23), date(2010, 1, 5)) == (
        "E-mini S&P 500 · dealers net position at -38.0% of open interest: the lowest since 2022-12-23 (1 year)")
    with pytest.raises(ValueError, match="unknown headline kind"):
        words.headline("rumour", "high", "zscore_50d", "RUT", 1.0, date(2024, 7, 16), None, None)


def test_regime_daily_records_in_words():
    assert words.records_text("rel_ret_5d RUT/SPX high; zscore_50d RUT high") == (
        "Russell 2000 vs S&P 500, 5-day relative return (record high); "
        "Russell 2000 z-score vs its 50-day average (record high)")
