"""Cboe's put/call volume history (regime.sources.cboe_putcall) on genuine Cboe files, and on broken variants of them.

REAL fixtures (provenance in data/PROVENANCE.md): `data/cboe-totalpc.csv` (Cboe's totalpc.csv, 11/1/2006 to
09/17/2019, CRLF, byte for byte from trh0ly/Derivate), `data/cboe-equitypc.csv` and `data/cboe-indexpc.csv` (to
10/04/2019, the day the files stopped; LF as committed to pranuprakash/algorithmic_trading-algo). Every broken variant
below is one of the genuine files with one change, and each error names the file and the line.
"""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import pytest

from regime.sources import cboe_putcall
from regime.sources.errors import SourceError

DATA = Path(__file__).parent / "data"
GENUINE = {  # product -> (file, sha256, rows, first date, last date)
    "total": ("cboe-totalpc.csv", "2510e78fd3d2246b6974e6dadac1c63b52b00f1568c6b976166cad59754985ca", 3240,
              date(2006, 11, 1), date(2019, 9, 17)),
    "equity": ("cboe-equitypc.csv", "7cdee6d3ace52bd2bf434597cd951f658859e8cf9fede3cedda717f1b59404ef", 3253,
               date(2006, 11, 1), date(2019, 10, 4)),
    "index": ("cboe-indexpc.csv", "b54a28134961a4df76e87dc875de83d0bb3f6cf4160c434312213bec8107698a", 3253,
              date(2006, 11, 1), date(2019, 10, 4)),
}


def genuine(product: str) -> bytes:
    name, digest, *_ = GENUINE[product]
    data = (DATA / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == digest, f"{name} is not the recorded genuine file"
    return data


def row(frame, day: date) -> tuple:
    [found] = frame[frame["date"] == day].itertuples(index=False)
    return tuple(found)


@pytest.mark.parametrize("product", list(GENUINE))
def test_a_genuine_file_parses_whole(product):
    _, _, rows, first, last = GENUINE[product]
    frame = cboe_putcall.parse(genuine(product), product, GENUINE[product][0])
    assert list(frame.columns) == ["date", "call_volume", "put_volume", "total_volume", "pc_ratio"]
    assert len(frame) == rows
    assert (frame["date"].iloc[0], frame["date"].iloc[-1]) == (first, last)
    assert frame["date"].is_monotonic_increasing and frame["date"].is_unique
    assert (frame["total_volume"] == frame["call_volume"] + frame["put_volume"]).all()


def test_totalpc_first_last_and_the_rows_either_side_of_the_padding_switch():
    frame = cboe_putcall.parse(genuine("total"), "total", "totalpc.csv")
    # hand-read from the file: line 4 `11/1/2006,1401036,1271445,2672481,0.91`, line 1414 `6/8/2012,1881807,...`,
    # line 1415 `06/11/2012, 1946611, 1835532, 3782143, 0.94` (zero-padded, a space before each value), last line
    # `09/17/2019, 2437446, 2027344, 4464790, 0.83`
    assert row(frame, date(2006, 11, 1)) == (date(2006, 11, 1), 1401036, 1271445, 2672481, 0.91)
    assert row(frame, date(2012, 6, 8)) == (date(2012, 6, 8), 1881807, 1808642, 3690449, 0.96)
    assert row(frame, date(2012, 6, 11)) == (date(2012, 6, 11), 1946611, 1835532, 3782143, 0.94)
    assert row(frame, date(2019, 9, 17)) == (date(2019, 9, 17), 2437446, 2027344, 4464790, 0.83)


def test_the_equity_and_index_files_with_call_put_headers_and_the_unspaced_product_row():
    equity = cboe_putcall.parse(genuine("equity"), "equity", "equitypc.csv")
    index = cboe_putcall.parse(genuine("index"), "index", "indexpc.csv")
    assert genuine("index").splitlines()[1] == b", PRODUCT:INDEX,,EXCHANGE: Cboe,"
    assert row(equity, date(2019, 10, 4)) == (date(2019, 10, 4), 916877, 598296, 1515173, 0.65)
    assert row(index, date(2006, 11, 1)) == (date(2006, 11, 1), 297253, 370373, 667626, 1.25)


def _broken(product: str, old: bytes, new: bytes, count: int = 1) -> bytes:
    data = genuine(product)
    assert data.count(old) >= 1, old
    return data.replace(old, new, count)


BROKEN = [  # (product, old bytes, new bytes, the error's words)
    ("total", b"DATE,CALLS,PUTS,TOTAL,P/C Ratio", b"DATE,CALLS,PUTS,P/C Ratio,TOTAL",
     "line 3: header 'DATE,CALLS,PUTS,P/C Ratio,TOTAL', expected DATE,CALLS,PUTS,TOTAL,P/C Ratio"),
    ("total", b"DATE,CALLS,PUTS,TOTAL,P/C Ratio", b"Date;Calls;Puts;Total;Ratio",
     "no header line DATE,CALLS,PUTS,TOTAL,P/C Ratio"),
    ("total", b"06/11/2012, 1946611,", b"06/11/2012, 1,946,611,", "line 1415 has 7 fields, expected 5"),
    ("total", b"06/11/2012, 1946611,", b"06/11/2012, n/a,", "line 1415: calls 'n/a' is not a whole number"),
    ("total", b"11/2/2006,1348240,1218592,2566832,0.9", b"11/2/2006,1348240,1218592,2566832,1.9",
     "line 5 (2006-11-02): P/C ratio 1.9 disagrees with puts / calls = 1,218,592 / 1,348,240 = 0.9038"),
    ("total", b"11/2/2006,1348240,1218592,2566832", b"11/2/2006,1348240,1218592,2566833",
     "line 5 (2006-11-02): total 2,566,833 is not calls 1,348,240 + puts 1,218,592 (= 2,566,832)"),
    ("total", b"11/3/2006,", b"11/2/2006,", "line 6: date 2006-11-02 repeated (first on line 5)"),
    ("total", b"11/3/2006,", b"2006-11-03,", "line 6: date '2006-11-03' is not M/D/YYYY"),
    ("total", b"11/2/2006,1348240,1218592,2566832,0.9", b"11/2/2006,1348240,1218592,2566832,-0.9",
     "line 5: P/C ratio '-0.9' is not a finite number >= 0"),
    ("equity", b"PRODUCT: EQUITY", b"PRODUCT: INDEX",
     "line 2: the file is Cboe's INDEX put/call volume, not EQUITY (indexpc.csv, not equitypc.csv)"),
]


@pytest.mark.parametrize(("product", "old", "new", "words"), BROKEN)
def test_a_broken_variant_of_a_genuine_file_is_refused_naming_file_and_line(product, old, new, words):
    with pytest.raises(SourceError) as err:
        cboe_putcall.parse(_broken(product, old, new), product, f"/mirror/cboe/putcall/{product}pc.csv")
    assert str(err.value).startswith(f"cboe_putcall: /mirror/cboe/putcall/{product}pc.csv: ")
    assert words in err.value.problem


def test_a_file_cut_inside_its_last_line_is_refused():
    data = genuine("total")
    with pytest.raises(SourceError, match=r"truncated: .*last line \(line 3243\).*'09/17/2019,2437446,202'"):
        cboe_putcall.parse(data[:data.rindex(b"7344, 4464790")], "total", "totalpc.csv")


@pytest.mark.parametrize(("data", "words"), [
    (b"", "empty file"),
    (b"<!DOCTYPE html><html><body>Access Denied</body></html>", "an HTML page, not a CSV file"),
    (b"\xff\xfeD\x00A\x00", "not UTF-8 text"),
])
def test_what_is_no_put_call_file_at_all(data, words):
    with pytest.raises(SourceError, match=words):
        cboe_putcall.parse(data, "total", "totalpc.csv")


def test_a_date_after_today_is_refused():
    with pytest.raises(SourceError, match=r"date 2019-09-17 is in the future \(today is 2019-09-16\)"):
        cboe_putcall.parse(genuine("total"), "total", "totalpc.csv", today=date(2019, 9, 16))


def test_the_urls_and_mirror_names():
    assert cboe_putcall.url("equity") == \
        "https://cdn.cboe.com/resources/options/volume_and_call_put_ratios/equitypc.csv"
    assert [cboe_putcall.file_name(p) for p in cboe_putcall.PRODUCTS] == ["totalpc.csv", "equitypc.csv",
                                                                          "indexpc.csv"]
