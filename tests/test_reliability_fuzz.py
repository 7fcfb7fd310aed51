"""Structured fuzzing of every parser: hypothesis mutates the VALID files of the corpus (tests/corpus/*/valid*) with
byte flips, hostile tokens, truncation and line (or workbook row, or JSON record) duplication, deletion, swapping
and shuffling. Each parser must answer a valid typed frame that keeps its promises (unique sorted dates, finite
positive closes and NAVs, non-negative volumes and positions) or raise SourceError; never another exception.

The arbitrary-bytes fuzzers of tests/sources/ (test_cftc.py, test_etf.py) complement these."""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regime.sources import cboe, cftc, etf, occ
from regime.sources.errors import SourceError

CORPUS = Path(__file__).resolve().parent / "corpus"
TODAY = date(2026, 1, 1)  # after every valid date of the seeds; a mutated year beyond it is "in the future"
FUZZ = settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.data_too_large,
                                                                        HealthCheck.filter_too_much])

SEED = {name: (CORPUS / name).read_bytes() for name in (
    "cboe/valid.csv", "occ/valid.csv", "cftc/valid.zip", "cftc/valid_api.json", "etf/valid.xlsx",
    "etf/valid_fund_details.json")}
TOKENS = [b"NaN", b"nan", b"inf", b"-Infinity", b"-1", b"0", b"-0.0", b"1e308", b"1e-320", b"99999999999999999999",
          b"1,234", b'"', b",", b",,", b"\r", b"\n", b"\x00", b"\xff\xfe", b"\xef\xbb\xbf", b"\xe9", b"<html>",
          b"02/30/2024", b"13/01/2024", b"07/17/2099", b"2099-07-17", b"17-Jul-2099", b"31-Feb-2024", b"", b" ",
          b"null", b"true", b"[]", b"{}", b"C", b"P", b"X", b"IWM", b"SPY", b"Combined", b"../", b"=cmd|' /C calc'!A0"]

# One edit of a byte string: (kind, position seed, argument). Positions are taken modulo the current length.
EDIT = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 2**20), st.integers(1, 255)),
    st.tuples(st.just("token"), st.integers(0, 2**20), st.sampled_from(TOKENS)),
    st.tuples(st.just("replace"), st.integers(0, 2**20), st.sampled_from(TOKENS)),
    st.tuples(st.just("truncate"), st.integers(0, 2**20), st.none()),
    st.tuples(st.just("dup_line"), st.integers(0, 2**20), st.none()),
    st.tuples(st.just("drop_line"), st.integers(0, 2**20), st.none()),
    st.tuples(st.just("swap_lines"), st.integers(0, 2**20), st.integers(0, 2**20)),
    st.tuples(st.just("shuffle_lines"), st.integers(0, 2**20), st.randoms(use_true_random=False)),
)
EDITS = st.lists(EDIT, min_size=1, max_size=4)


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def mutate(data: bytes, edits) -> bytes:
    """Apply the edits in turn; line edits keep the header line (line 0) out of moves but may duplicate it."""
    for kind, at, arg in edits:
        if not data:
            return data
        i = at % len(data)
        if kind == "flip":
            data = data[:i] + bytes([data[i] ^ arg]) + data[i + 1:]
        elif kind == "token":
            data = data[:i] + arg + data[i:]
        elif kind == "replace":  # the token in place of the field (or number) around i
            start = max(data.rfind(b",", 0, i), data.rfind(b"\n", 0, i)) + 1
            ends = [p for p in (data.find(b",", i), data.find(b"\n", i), data.find(b"\r", i)) if p >= 0]
            data = data[:start] + arg + data[min(ends) if ends else len(data):]
        elif kind == "truncate":
            data = data[:i]
        else:
            lines = _lines(data)
            j = at % len(lines)
            if kind == "dup_line":
                lines.insert(j, lines[j])
            elif kind == "drop_line":
                del lines[j]
            elif kind == "swap_lines":
                k = arg % len(lines)
                lines[j], lines[k] = lines[k], lines[j]
            else:
                body = lines[1:]
                arg.shuffle(body)
                lines = lines[:1] + body
            data = b"".join(lines)
    return data


def expect_frame_or_source_error(parse, data: bytes, check, source: str) -> None:
    try:
        frame = parse(data)
    except SourceError as error:
        assert error.source == source and error.location == "fuzz" and error.problem
        return
    check(frame)


def _dates_ok(frame: pd.DataFrame, column: str = "date") -> None:
    assert all(isinstance(d, date) for d in frame[column])
    assert frame[column].is_unique and frame[column].is_monotonic_increasing
    assert frame[column].max() <= TODAY


def check_cboe(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == cboe.COLUMNS and len(frame) > 0
    _dates_ok(frame)
    assert frame["close"].map(math.isfinite).all() and (frame["close"] > 0).all()
    for column in ("open", "high", "low"):  # finite and positive, or all NULL (the single-value layout)
        assert frame[column].isna().all() or (frame[column].map(math.isfinite).all() and (frame[column] > 0).all())


def check_occ(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == occ.COLUMNS and len(frame) == 1
    assert frame["date"].tolist() == [date(2024, 7, 16)] and frame["underlying"].tolist() == ["IWM"]
    assert str(frame["call_volume"].dtype) == "int64" and (frame[["call_volume", "put_volume"]] >= 0).all().all()


def check_cftc(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == cftc.COLUMNS
    assert not frame.duplicated(["report_date", "market_code"]).any()
    assert set(frame["market_code"]) <= set(cftc.MARKETS)
    if len(frame):
        assert frame["report_date"].max() <= TODAY
        assert (frame["release_date"] > frame["report_date"]).all()
        keys = list(zip(frame["report_date"], frame["market_code"], strict=True))
        assert keys == sorted(keys)
    for column in cftc.INTEGERS:
        assert str(frame[column].dtype) == "int64" and (frame[column] >= 0).all()
    assert (frame["market_name"].str.strip() != "").all()


def check_etf(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == etf.COLUMNS and len(frame) > 0
    _dates_ok(frame)
    assert (frame["ticker"] == "IWM").all()
    assert frame["nav"].map(math.isfinite).all() and (frame["nav"] > 0).all()
    shares = frame["shares_outstanding"].dropna()
    assert shares.map(math.isfinite).all() and (shares >= 0).all()


# --------------------------------------------------------------------------------------------- CSV parsers


@FUZZ
@given(EDITS)
@pytest.mark.slow
def test_cboe_parse(edits):
    data = mutate(SEED["cboe/valid.csv"], edits)
    expect_frame_or_source_error(lambda d: cboe.parse(d, "RUT", "fuzz", today=TODAY), data, check_cboe, "cboe")


def _cboe(data: bytes) -> pd.DataFrame:
    return cboe.parse(data, "RUT", "fuzz", today=TODAY)


def test_cboe_every_cut_of_a_file_is_refused_unless_it_falls_at_a_line_end():
    """Exhaustive truncation: a prefix ending at a line end is a shorter valid file; any other is refused (a cut
    inside the last number keeps every field, only shorter: the missing final newline is what shows it)."""
    data = b"".join(_lines(SEED["cboe/valid.csv"])[:6])  # the header and 5 sessions
    whole = _cboe(data)
    for end in range(data.index(b"\n") + 2, len(data)):
        cut = data[:end]
        if cut.endswith(b"\n"):
            pd.testing.assert_frame_equal(_cboe(cut), whole.head(cut.count(b"\n") - 1))
            continue
        with pytest.raises(SourceError, match="truncated"):
            _cboe(cut)


def test_cboe_line_ends_blank_files_and_unreadable_csv_end_in_a_source_error():
    good = SEED["cboe/valid.csv"]
    pd.testing.assert_frame_equal(_cboe(good.replace(b"\n", b"\r")), _cboe(good))  # CR only: read like LF
    pd.testing.assert_frame_equal(_cboe(good + b" ,, \n,,,,"), _cboe(good))  # blank trailing lines are no cut
    single = b"DATE,RUT\n07/15/2024,2010.5\n07/16/2024,2037.3"
    cases = {
        b",,,,\n,,,,\n": "no header and no data: only blank lines or separators",
        b" , \r\n\r\n,\r": "no header and no data: only blank lines or separators",
        single: "truncated: the file does not end with a line end, so its last line may be cut short: "
                "'07/16/2024,2037.3'",
        good + b'07/18/2024,"' + b"2" * 140_000: "not a readable CSV file (field larger than field limit (131072))",
        good.replace(b",1999.939941,2007.729980,", b",1999.939941,-2007.729980,"): "high -2007.72998 is not positive",
        good.replace(b",1983.880005,", b",0,"): "low 0.0 is not positive",
    }
    assert _cboe(single + b"\n")["close"].tolist() == [2010.5, 2037.3]
    for data, problem in cases.items():
        with pytest.raises(SourceError) as error:
            _cboe(data)
        assert error.value.source == "cboe" and error.value.location == "fuzz", error.value
        assert problem in error.value.problem


def test_occ_a_row_repeated_with_or_without_its_trailing_comma_is_refused():
    lines = _lines(SEED["occ/valid.csv"])
    for repeat in (lines[3], lines[3].replace(b",\r\n", b"\r\n")):
        data = b"".join([*lines[:4], repeat, *lines[4:]])
        with pytest.raises(SourceError) as error:
            occ.parse(data, "fuzz", "IWM", date(2024, 7, 16))
        assert error.value.problem.startswith("line 5: duplicated row (the same as line 4: "), error.value.problem


@FUZZ
@given(EDITS)
def test_occ_parse(edits):
    data = mutate(SEED["occ/valid.csv"], edits)
    expect_frame_or_source_error(lambda d: occ.parse(d, "fuzz", "IWM", date(2024, 7, 16)), data, check_occ, "occ")


# --------------------------------------------------------------------------------------------- CFTC yearly zip


def _member(data: bytes) -> tuple[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.infolist()[0]
        return info.filename, archive.read(info)


def _rezip(name: str, content: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo(name, date_time=(2024, 7, 19, 15, 30, 0)), content)
    return out.getvalue()


def _parse_zip(data: bytes) -> pd.DataFrame:
    return cftc.parse_zip(data, "fuzz", today=TODAY)


@FUZZ
@given(EDITS)
def test_cftc_parse_zip_with_a_mutated_member(edits):
    name, content = _member(SEED["cftc/valid.zip"])
    expect_frame_or_source_error(_parse_zip, _rezip(name, mutate(content, edits)), check_cftc, "cftc")


@FUZZ
@given(st.lists(st.one_of(EDIT.filter(lambda e: e[0] in ("flip", "token", "truncate"))), min_size=1, max_size=3))
@pytest.mark.slow
def test_cftc_parse_zip_with_a_damaged_container(edits):
    expect_frame_or_source_error(_parse_zip, mutate(SEED["cftc/valid.zip"], edits), check_cftc, "cftc")


# --------------------------------------------------------------------------------------------- JSON parsers

JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70), st.floats(),
                        st.text(max_size=12), st.sampled_from(["2024-07-16", "2024-07-16T00:00:00.000", "2099-01-01",
                                                               "-5", "1,234", "NaN", "FutOnly", "Combined", "239742",
                                                               " 13874A ", ""]))
RECORD_EDIT = st.one_of(
    st.tuples(st.just("dup"), st.integers(0, 2**20), st.none(), st.none()),
    st.tuples(st.just("drop"), st.integers(0, 2**20), st.none(), st.none()),
    st.tuples(st.just("shuffle"), st.integers(0, 2**20), st.randoms(use_true_random=False), st.none()),
    st.tuples(st.just("del_key"), st.integers(0, 2**20), st.integers(0, 2**20), st.none()),
    st.tuples(st.just("set"), st.integers(0, 2**20), st.integers(0, 2**20), JSON_VALUES),
)


def edit_records(records: list, edits) -> list:
    records = [dict(r) for r in records]
    for kind, at, arg, value in edits:
        if not records:
            break
        i = at % len(records)
        if kind == "dup":
            records.insert(i, dict(records[i]))
        elif kind == "drop":
            del records[i]
        elif kind == "shuffle":
            arg.shuffle(records)
        else:
            keys = sorted(records[i])
            if not keys:
                continue
            key = keys[arg % len(keys)]
            if kind == "del_key":
                del records[i][key]
            else:
                records[i][key] = value
    return records


def _dumps(value) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


@FUZZ
@given(st.lists(RECORD_EDIT, min_size=1, max_size=4), st.lists(EDIT, max_size=2))
@pytest.mark.slow
def test_cftc_parse_api(record_edits, byte_edits):
    records = edit_records(json.loads(SEED["cftc/valid_api.json"]), record_edits)
    data = mutate(_dumps(records), byte_edits)
    expect_frame_or_source_error(lambda d: cftc.parse_api(d, "fuzz", today=TODAY), data, check_cftc, "cftc")


@FUZZ
@given(st.lists(RECORD_EDIT, min_size=1, max_size=4), st.lists(EDIT, max_size=2))
def test_etf_parse_invesco_json(record_edits, byte_edits):
    doc = json.loads(SEED["etf/valid_fund_details.json"])
    doc["data"]["fundFlowsData"]["data"] = edit_records(doc["data"]["fundFlowsData"]["data"], record_edits)
    data = mutate(_dumps(doc), byte_edits)
    expect_frame_or_source_error(lambda d: etf.parse_invesco_json(d, "fuzz", "IWM", today=TODAY), data, check_etf,
                                 "etf")


# --------------------------------------------------------------------------------------------- SSGA workbook

_ROW = re.compile(rb"<row [^>]*>.*?</row>", re.DOTALL)


def mutate_sheet(xml: bytes, row_edits, byte_edits) -> bytes:
    """Row edits on <row> elements (one per line for `mutate`), then byte edits inside the rows."""
    start, end = xml.index(b"<sheetData>") + len(b"<sheetData>"), xml.index(b"</sheetData>")
    rows = b"\n".join(_ROW.findall(xml[start:end])) + b"\n"
    rows = mutate(rows, row_edits) if row_edits else rows
    rows = mutate(rows, byte_edits) if byte_edits else rows
    return xml[:start] + rows.replace(b"\n", b"") + xml[end:]


def _rebook(data: bytes, sheet: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info, sheet if info.filename == "xl/worksheets/sheet1.xml" else source.read(info))
    return out.getvalue()


def _parse_xlsx(data: bytes) -> pd.DataFrame:
    return etf.parse_navhist_xlsx(data, "fuzz", "IWM", today=TODAY)


ROW_EDIT = EDIT.filter(lambda e: e[0] in ("dup_line", "drop_line", "swap_lines", "shuffle_lines"))
CELL_EDIT = EDIT.filter(lambda e: e[0] in ("flip", "token", "truncate"))


@settings(FUZZ, max_examples=60)
@given(st.lists(ROW_EDIT, max_size=3), st.lists(CELL_EDIT, max_size=2))
@pytest.mark.slow
def test_etf_parse_navhist_xlsx_with_mutated_rows(row_edits, byte_edits):
    with zipfile.ZipFile(io.BytesIO(SEED["etf/valid.xlsx"])) as archive:
        xml = archive.read("xl/worksheets/sheet1.xml")
    data = _rebook(SEED["etf/valid.xlsx"], mutate_sheet(xml, row_edits, byte_edits))
    expect_frame_or_source_error(_parse_xlsx, data, check_etf, "etf")


@settings(FUZZ, max_examples=60)
@given(st.lists(CELL_EDIT, min_size=1, max_size=3))
def test_etf_parse_navhist_xlsx_with_a_damaged_container(edits):
    expect_frame_or_source_error(_parse_xlsx, mutate(SEED["etf/valid.xlsx"], edits), check_etf, "etf")


def test_the_seeds_parse():
    """The fuzzers start from valid files (so a mutation, not the seed, is what fails)."""
    check_cboe(cboe.parse(SEED["cboe/valid.csv"], "RUT", "seed", today=TODAY))
    check_occ(occ.parse(SEED["occ/valid.csv"], "seed", "IWM", date(2024, 7, 16)))
    check_cftc(cftc.parse_zip(SEED["cftc/valid.zip"], "seed", today=TODAY))
    check_cftc(cftc.parse_api(SEED["cftc/valid_api.json"], "seed", today=TODAY))
    check_etf(etf.parse_navhist_xlsx(SEED["etf/valid.xlsx"], "seed", "IWM", today=TODAY))
    check_etf(etf.parse_invesco_json(SEED["etf/valid_fund_details.json"], "seed", "IWM", today=TODAY))
