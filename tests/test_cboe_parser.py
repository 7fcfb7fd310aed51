from datetime import date

import pytest

from conftest import REFERENCE, SAMPLE_MIRROR, requires_reference
from regime.sources import cboe
from regime.sources.errors import SourceError

OHLC = b"DATE,OPEN,HIGH,LOW,CLOSE\n07/15/2024,2.0,3.0,1.0,2.5\n07/16/2024,2.5,3.5,2.0,3.0\n"
SINGLE = b"DATE,DJX\n07/15/2024,401.5\n07/16/2024,406.25\n"


def parse(data: bytes, symbol: str = "RUT"):
    return cboe.parse(data, symbol, f"mirror/cboe/{symbol}_History.csv", today=date(2024, 12, 31))


def test_ohlc_layout():
    frame = parse(OHLC)
    assert list(frame.columns) == ["date", "open", "high", "low", "close"]
    assert frame["date"].tolist() == [date(2024, 7, 15), date(2024, 7, 16)]
    assert frame["close"].tolist() == [2.5, 3.0]
    assert frame["high"].tolist() == [3.0, 3.5]


def test_single_value_layout_has_close_only():
    frame = parse(SINGLE, "DJX")
    assert frame["close"].tolist() == [401.5, 406.25]
    assert frame[["open", "high", "low"]].isna().all().all()


def test_bom_crlf_and_unsorted_rows_are_accepted():
    data = b"\xef\xbb\xbfDATE,OPEN,HIGH,LOW,CLOSE\r\n07/16/2024,2.5,3.5,2.0,3.0\r\n07/15/2024,2.0,3.0,1.0,2.5\r\n"
    assert parse(data)["date"].tolist() == [date(2024, 7, 15), date(2024, 7, 16)]


@pytest.mark.parametrize(("data", "problem"), [
    (b"", "empty file"),
    (b"<!DOCTYPE html><html><body>Access denied</body></html>", "an HTML page, not a CSV file"),
    (b"DATE,OPEN,HIGH,CLOSE\n07/15/2024,2,3,2.5\n", r"missing column\(s\) \['LOW'\]"),
    (b"DATE,OPEN,HIGH,LOW,CLOSE\n07/15/2024,2,3,1,n/a\n", "line 2: CLOSE value 'n/a' is not a finite number"),
    (b"DATE,OPEN,HIGH,LOW,CLOSE\n07/15/2024,2,3,1,2.5\n07/16/2024,2.5,3", "line 3 has 3 fields, expected 5"),
    (b"DATE,OPEN,HIGH,LOW,CLOSE\n2024-07-15,2,3,1,2.5\n", "date '2024-07-15' is not MM/DD/YYYY"),
    (b"DATE,OPEN,HIGH,LOW,CLOSE\n07/15/2024,2,3,1,2.5\n07/15/2024,2,3,1,2.6\n", "duplicated dates"),
    (b"DATE,OPEN,HIGH,LOW,CLOSE\n07/15/2024,2,3,1,0\n", "close 0.0 is not positive"),
    (b"DATE,OPEN,HIGH,LOW,CLOSE\n07/15/2031,2,3,1,2\n", "2031-07-15 is in the future"),
    (b"DATE,OPEN,HIGH,LOW,CLOSE\n", "no data rows"),
    (b"\xff\xfeD\x00A\x00", "not UTF-8 text"),
])
def test_malformed_files_name_the_file_and_the_problem(data, problem):
    with pytest.raises(SourceError, match=problem) as err:
        parse(data)
    assert "cboe: mirror/cboe/RUT_History.csv" in str(err.value)


def test_bundled_sample_parses_in_both_layouts():
    for path in sorted((SAMPLE_MIRROR / "cboe").glob("*_History.csv")):
        frame = cboe.parse(path.read_bytes(), path.name.split("_")[0], str(path))
        assert len(frame) > 1000 and frame["close"].gt(0).all()
    assert (SAMPLE_MIRROR / "cboe" / "DJX_History.csv").read_text().startswith("DATE,DJX\n")


@requires_reference("formats", "cboe-index-history")
def test_real_cboe_downloads_in_both_layouts():
    folder = REFERENCE / "formats" / "cboe-index-history"
    skew = cboe.parse((folder / "ManULoreN14+regimen-tilt-nq" / "SKEW_History.csv").read_bytes(), "SKEW", "SKEW")
    assert skew["open"].isna().all() and len(skew) > 1000
    vix9d = cboe.parse((folder / "ManULoreN14+regimen-tilt-nq" / "VIX9D_History.csv").read_bytes(), "VIX9D", "x")
    assert vix9d["high"].notna().all()
