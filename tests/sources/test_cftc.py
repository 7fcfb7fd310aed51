"""CFTC Traders in Financial Futures: yearly zip and Socrata API parsers, release dates, sample data."""

from __future__ import annotations

import csv
import io
import json
import logging
import random
import re
import zipfile
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sample_scripts
from regime.sources import cftc
from regime.sources.errors import SourceError
from regime.sources.fetch import fetch_http
from upstream import Upstream

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT.parent / "shared" / "reference-data"
REAL_ZIPS = REFERENCE / "mirror" / "cftc"
LEGACY_JSON = REFERENCE / "formats" / "cftc-socrata" / "OpenBB-finance+OpenBB" / "jun7-fc8e.json"
LOC = "https://www.cftc.gov/files/dea/history/fut_fin_txt_2024.zip"
TODAY = date(2024, 7, 19)


sample = sample_scripts.load("cftc_sample")


def real_zip(year: int) -> bytes:
    path = REAL_ZIPS / f"fut_fin_txt_{year}.zip"
    if not path.is_file():
        pytest.skip(f"reference data absent: {path} (../shared/reference-data is not mounted here)")
    return path.read_bytes()


def make_zip(members: dict[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def member_text(data: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.read(archive.namelist()[0]).decode("ascii")


def edit(text: str, code: str, day: str, column: str, value: str) -> str:
    """Set `column` of the row of market `code` on `day` (re-written with csv's minimal quoting)."""
    rows = list(csv.reader(io.StringIO(text, newline="")))
    i = rows[0].index(column)
    hits = [r for r in rows[1:] if r[3] == code and r[2] == day]
    assert len(hits) == 1
    hits[0][i] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()


def api_name(column: str) -> str:
    """The Socrata field name of a FinFutYY.txt column (written independently of the module's table)."""
    name = column.lower().replace("-", "_")
    if re.match(r"(asset_mgr|lev_money|other_rept)_positions_", name):
        name = name.removesuffix("_all")
    return name


def to_api_json(text: str, shuffle: int | None = 7) -> bytes:
    """Socrata-shaped records built from FinFutYY.txt rows: string values, ISO timestamps, API names."""
    records = []
    for row in csv.DictReader(io.StringIO(text, newline="")):
        record = {"id": row["As_of_Date_In_Form_YYMMDD"] + row["CFTC_Contract_Market_Code"] + "F"}
        for column, value in row.items():
            value = value if column == "CFTC_Market_Code" else value.strip()  # Socrata keeps "CME " padded
            if column == "Report_Date_as_YYYY-MM-DD":
                value += "T00:00:00.000"
            if value != ".":  # Socrata leaves out null values
                record[api_name(column)] = value
        records.append(record)
    if shuffle is not None:
        random.Random(shuffle).shuffle(records)
    return json.dumps(records).encode()


def fails(fn, *args, match: str, **kwargs) -> SourceError:
    with pytest.raises(SourceError) as info:
        fn(*args, **kwargs)
    error = info.value
    assert error.source == "cftc"
    assert error.location == args[1]
    assert re.search(match, error.problem), error.problem
    assert str(error).startswith(f"cftc: {args[1]}: ")
    return error


@pytest.fixture(scope="module")
def sample_zips(tmp_path_factory) -> dict[int, bytes]:
    paths = sample.generate(tmp_path_factory.mktemp("sample"), np.random.default_rng(sample.SEED))
    return {int(p.stem[-4:]): p.read_bytes() for p in paths}


@pytest.fixture(scope="module")
def sample_text(sample_zips) -> str:
    return member_text(sample_zips[2024])


@pytest.fixture(scope="module")
def sample_frame(sample_zips) -> pd.DataFrame:
    return cftc.parse_zip(sample_zips[2024], LOC, today=TODAY)


def lev_net(frame: pd.DataFrame, code: str) -> pd.Series:
    rows = frame[frame["market_code"] == code].set_index("report_date")
    return rows["lev_money_positions_long"] - rows["lev_money_positions_short"]


# --- the real reference files -----------------------------------------------------------------------------


@pytest.mark.reference
def test_real_2024_russell_leveraged_funds_net():
    frame = cftc.parse_zip(real_zip(2024), LOC)
    net = lev_net(frame, "239742")
    assert net[date(2024, 7, 9)] == -69_861
    assert net[date(2024, 7, 16)] == -36_043
    assert list(frame.columns) == cftc.COLUMNS == [
        "report_date", "release_date", "market_code", "market_name", "open_interest",
        "dealer_positions_long_all", "dealer_positions_short_all", "dealer_positions_spread_all",
        "asset_mgr_positions_long", "asset_mgr_positions_short", "asset_mgr_positions_spread",
        "lev_money_positions_long", "lev_money_positions_short", "lev_money_positions_spread",
        "other_rept_positions_long", "other_rept_positions_short", "other_rept_positions_spread",
        "nonrept_positions_long_all", "nonrept_positions_short_all"]
    assert all(frame[c].dtype == "int64" for c in cftc.COLUMNS[4:])
    row = frame[(frame["market_code"] == "239742") & (frame["report_date"] == date(2024, 7, 2))].iloc[0]
    assert row["release_date"] == date(2024, 7, 8)  # July 4th week
    assert row["market_name"] == "RUSSELL E-MINI - CHICAGO MERCANTILE EXCHANGE"


@pytest.mark.reference
def test_real_2022_has_52_reports_and_string_codes():
    frame = cftc.parse_zip(real_zip(2022), "fut_fin_txt_2022.zip")
    spx = frame[frame["market_code"] == "13874A"]
    assert len(spx) == 52 and spx["report_date"].nunique() == 52
    assert {d.weekday() for d in spx["report_date"]} == {1}  # Tuesdays
    assert set(frame["market_code"]) == {"13874A", "239742", "209742"}
    assert pd.api.types.is_string_dtype(frame["market_code"])
    assert all(type(code) is str for code in frame["market_code"])
    # the CFTC renamed the markets in February 2022; the contract code did not change
    assert set(spx["market_name"]) == {"E-MINI S&P 500 STOCK INDEX - CHICAGO MERCANTILE EXCHANGE",
                                       "E-MINI S&P 500 - CHICAGO MERCANTILE EXCHANGE"}
    assert isinstance(frame["report_date"].iloc[0], date) and isinstance(frame["release_date"].iloc[0], date)


@pytest.mark.reference
def test_real_leading_zero_code_survives():
    frame = cftc.parse_zip(real_zip(2024), LOC, markets=["090741", "043602"])
    assert set(frame["market_code"]) == {"090741", "043602"}


@pytest.mark.reference
def test_real_zip_and_api_round_trip():
    data = real_zip(2024)
    from_api = cftc.parse_api(to_api_json(member_text(data)), "api")
    pd.testing.assert_frame_equal(from_api, cftc.parse_zip(data, LOC))


@pytest.mark.reference
def test_real_legacy_combined_json_is_rejected():
    if not LEGACY_JSON.is_file():
        pytest.skip(f"reference data absent: {LEGACY_JSON}")
    error = fails(cftc.parse_api, LEGACY_JSON.read_bytes(), "jun7-fc8e.json", match="header drift")
    assert "lev_money_positions_long" in error.problem


@pytest.mark.reference
def test_sample_layout_matches_real_2024(sample_zips):
    real, synthetic = member_text(real_zip(2024)), member_text(sample_zips[2024])
    real_rows = list(csv.reader(io.StringIO(real, newline="")))
    synthetic_rows = list(csv.reader(io.StringIO(synthetic, newline="")))
    assert synthetic_rows[0] == real_rows[0] == sample.HEADER

    def quoted(line: str) -> list[bool]:
        return [field.startswith('"') for field in re.findall(r'"[^"]*"|[^,]*', line)[::2]]

    def widths(line: str) -> list[int]:
        return [len(field) for field in re.findall(r'"[^"]*"|[^,]*', line)[::2]][7:58]

    real_line = next(line for line in real.split("\r\n") if ",239742," in line)
    synthetic_line = next(line for line in synthetic.split("\r\n") if ",239742," in line)
    assert quoted(synthetic_line) == quoted(real_line)
    assert widths(synthetic_line) == widths(real_line)
    assert real.endswith("\r\n") and synthetic.endswith("\r\n")


# --- the sample data --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sample_is_deterministic_and_parses(tmp_path, sample_zips):
    paths = sample.generate(tmp_path, np.random.default_rng(sample.SEED))
    assert [p.name for p in paths] == [f"fut_fin_txt_{y}.zip" for y in range(2019, 2025)]
    assert all(p.parent == tmp_path / "cftc" for p in paths)
    assert {int(p.stem[-4:]): p.read_bytes() for p in paths} == sample_zips
    sample.check(paths)
    for path in paths:
        frame = cftc.parse_zip(path.read_bytes(), str(path), today=TODAY)
        assert set(frame["market_code"]) == set(cftc.MARKETS)
        assert frame.groupby("market_code").size().nunique() == 1
    with zipfile.ZipFile(paths[-1]) as archive:
        assert archive.namelist() == ["FinFutYY.txt"]
        text = archive.read("FinFutYY.txt").decode("ascii")
    assert {row[3] for row in csv.reader(io.StringIO(text, newline=""))} >= {"090741", "043602", "13874A"}
    assert frame["report_date"].max() == date(2024, 7, 16)


def test_sample_scripts_the_small_cap_squeeze(sample_frame):
    russell = lev_net(sample_frame, "239742")
    june = russell[[d for d in russell.index if d.month == 6]].mean()
    assert june < -90_000  # heavily net short
    assert russell.iloc[-3] < russell.iloc[-2] < russell.iloc[-1] < 0  # covering in the last two reports
    assert 0.35 < russell.iloc[-1] / june < 0.65  # net short about halved
    spx = sample_frame[sample_frame["market_code"] == "13874A"].set_index("report_date")
    recent = spx[spx.index >= date(2024, 5, 1)]
    assert (recent["lev_money_positions_long"] < recent["lev_money_positions_short"]).all()
    am_net = recent["asset_mgr_positions_long"] - recent["asset_mgr_positions_short"]
    assert (am_net / recent["open_interest"] > 0.35).all()


def test_sample_other_years_use_old_names_before_the_2022_rename(sample_zips):
    frame = cftc.parse_zip(sample_zips[2022], "fut_fin_txt_2022.zip", markets=["13874A"], today=TODAY)
    before = frame[frame["report_date"] < date(2022, 2, 8)]["market_name"]
    after = frame[frame["report_date"] >= date(2022, 2, 8)]["market_name"]
    assert set(before) == {"E-MINI S&P 500 STOCK INDEX - CHICAGO MERCANTILE EXCHANGE"}
    assert set(after) == {"E-MINI S&P 500 - CHICAGO MERCANTILE EXCHANGE"}


# --- the API parser ---------------------------------------------------------------------------------------


def test_api_round_trip_gives_the_zip_frame(sample_zips, sample_frame):
    data = to_api_json(member_text(sample_zips[2024]))
    pd.testing.assert_frame_equal(cftc.parse_api(data, "api", today=TODAY), sample_frame)


def test_api_field_names_drop_all_only_for_three_groups():
    assert "lev_money_positions_long" in cftc.API_FIELDS.values()
    assert "lev_money_positions_long_all" not in cftc.API_FIELDS.values()
    assert "dealer_positions_long_all" in cftc.API_FIELDS.values()
    assert "nonrept_positions_short_all" in cftc.API_FIELDS.values()
    assert api_name("Other_Rept_Positions_Spread_All") == "other_rept_positions_spread"


def test_api_empty_list_is_an_empty_frame():
    frame = cftc.parse_api(b"[]", "api")
    assert frame.empty and list(frame.columns) == cftc.COLUMNS
    assert all(frame[c].dtype == "int64" for c in cftc.COLUMNS[4:])


def test_api_space_padded_code_is_stripped_not_mangled(sample_text):
    records = json.loads(to_api_json(sample_text))
    for record in records:
        record["cftc_contract_market_code"] = " " + record["cftc_contract_market_code"] + " "
    frame = cftc.parse_api(json.dumps(records).encode(), "api", today=TODAY)
    assert set(frame["market_code"]) == {"13874A", "239742", "209742"}


def _records(sample_text: str) -> list[dict]:
    return [r for r in json.loads(to_api_json(sample_text, shuffle=None)) if r["cftc_contract_market_code"] == "239742"]


@pytest.mark.parametrize("mutate, match", [
    (lambda rs: [{k.replace("lev_money_positions_long", "lev_money_positions_long_all"): v for k, v in r.items()}
                 for r in rs], r"header drift.*'lev_money_positions_long' \(closest present"),
    (lambda rs: [{k: v for k, v in r.items() if k != "open_interest_all"} for r in rs], "header drift"),
    (lambda rs: [{k: v for k, v in r.items() if k != "asset_mgr_positions_short" or i} for i, r in enumerate(rs)],
     r"record 0: no value for asset_mgr_positions_short"),
    (lambda rs: [{**r, "lev_money_positions_short": "12a"} for r in rs], r"lev_money_positions_short .*'12a'"),
    (lambda rs: [{**r, "lev_money_positions_short": 1.5} for r in rs], r"expected a string|not a whole number"),
    (lambda rs: [{**r, "lev_money_positions_short": "-5"} for r in rs], "negative"),
    (lambda rs: [{**r, "open_interest_all": "9" * 30} for r in rs], "not a whole number"),
    (lambda rs: [{**r, "lev_money_positions_short": True} for r in rs], "expected a string"),
    (lambda rs: [{**r, "cftc_contract_market_code": 239742} for r in rs], "expected a string"),
    (lambda rs: [{**r, "report_date_as_yyyy_mm_dd": "20240716"} for r in rs], "not YYYY-MM-DD"),
    (lambda rs: [{**r, "futonly_or_combined": "Combined"} for r in rs], "combined"),
    (lambda rs: [*rs, {**rs[0], "lev_money_positions_long": "1"}], "conflicting duplicated"),
    (lambda rs: [*rs, "oops"], "is a JSON str, not an object"),
    (lambda rs: {"error": True, "message": "Unrecognized arguments [$wher]"}, "API error response.*wher"),
    (lambda rs: {"data": rs}, "expected a list of records"),
    (lambda rs: 42, "expected a list of records"),
])
def test_api_failures(sample_text, mutate, match):
    data = json.dumps(mutate(_records(sample_text))).encode()
    fails(cftc.parse_api, data, "https://publicreporting.cftc.gov/resource/gpe5-46if.json", match=match,
          today=TODAY)


@pytest.mark.parametrize("data, match", [
    (b"", "empty response"),
    (b"  \n", "empty response"),
    (b"<!DOCTYPE html><html><body>Service unavailable</body></html>", "HTML page"),
    (b'[{"a": 1}', "not JSON"),
    (b"\xff\xfe\x00garbage", "not JSON"),
    (b"[" * 100_000, "not JSON"),
])
def test_api_not_json(data, match):
    fails(cftc.parse_api, data, "api", match=match)


def test_api_future_report_date(sample_text):
    fails(cftc.parse_api, to_api_json(sample_text), "api", match="2024-07-16 is in the future",
          today=date(2024, 7, 15))


def test_api_url_encodes_the_query():
    url = cftc.api_url(start=date(2024, 1, 1), end=date(2024, 7, 31))
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://publicreporting.cftc.gov/resource/gpe5-46if.json"
    assert " " not in url and "'" not in url
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query == {
        "$where": "cftc_contract_market_code in('13874A','239742','209742') "
                  "AND report_date_as_yyyy_mm_dd >= '2024-01-01T00:00:00.000' "
                  "AND report_date_as_yyyy_mm_dd <= '2024-07-31T00:00:00.000'",
        "$order": "report_date_as_yyyy_mm_dd,cftc_contract_market_code",
        "$limit": "50000",
    }
    assert "in('090741')" in parse_qs(urlsplit(cftc.api_url(["090741"])).query)["$where"][0]
    with pytest.raises(ValueError):
        cftc.api_url(["13874A') OR ('1'='1"])


def test_zip_url():
    assert cftc.zip_url(2024) == "https://www.cftc.gov/files/dea/history/fut_fin_txt_2024.zip"
    assert cftc.file_name(2019) == "fut_fin_txt_2019.zip"


# --- the zip parser: failure modes ------------------------------------------------------------------------


@pytest.mark.parametrize("data, match", [
    (b"", "empty file"),
    (b"<!DOCTYPE html>\n<html><head><title>CFTC</title></head><body>Page not found</body></html>",
     "HTML page"),
    (b'"Market_and_Exchange_Names","As_of_Date_In_Form_YYMMDD"\r\n', "not a zip archive"),
    (b"PK\x03\x04 this is not really a zip", "truncated or corrupt zip"),
])
def test_zip_not_a_zip(data, match):
    fails(cftc.parse_zip, data, LOC, match=match)


def test_zip_truncated(sample_zips):
    data = sample_zips[2024]
    for cut in (len(data) // 2, len(data) - 10, 30):
        fails(cftc.parse_zip, data[:cut], LOC, match="truncated or corrupt zip")


def test_zip_corrupt_member_data(sample_zips):
    data = bytearray(sample_zips[2024])
    data[200:260] = bytes(60)  # inside the deflated member
    fails(cftc.parse_zip, bytes(data), LOC, match="cannot be read|truncated or corrupt")


@pytest.mark.parametrize("members, match", [
    ({}, "no member"),
    ({"FinFutYY.txt": "a", "README.txt": "b"}, r"2 members \['FinFutYY.txt', 'README.txt'\]"),
    ({"../FinFutYY.txt": "a"}, r"unsafe zip member name '../FinFutYY.txt'"),
    ({"dea/FinFutYY.txt": "a"}, "unsafe zip member name"),
    ({"..\\FinFutYY.txt": "a"}, "unsafe zip member name"),
    ({"FinFutYY.xls": "a"}, "unexpected zip member 'FinFutYY.xls'"),
    ({"FinFutYY.txt": ""}, "FinFutYY.txt is empty"),
])
def test_zip_bad_members(members, match):
    fails(cftc.parse_zip, make_zip(members), LOC, match=match)


def test_zip_other_txt_name_is_accepted(sample_text):
    frame = cftc.parse_zip(make_zip({"FinFut24.txt": sample_text}), LOC, today=TODAY)
    assert len(frame) == 3 * 29


@pytest.fixture(scope="module")
def zip_bomb() -> bytes:
    """201 MiB of zeros deflated to a few hundred kB, written in chunks."""
    buffer = io.BytesIO()
    info = zipfile.ZipInfo("FinFutYY.txt")
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buffer, "w") as archive, archive.open(info, "w") as member:
        chunk = b"\0" * (1 << 20)
        for _ in range(201):
            member.write(chunk)
    return buffer.getvalue()


@pytest.mark.slow
def test_zip_bomb_is_refused_before_reading(zip_bomb, monkeypatch):
    assert len(zip_bomb) < 1_000_000

    def no_read(*args, **kwargs):
        raise AssertionError("the member was opened")

    monkeypatch.setattr(zipfile.ZipFile, "open", no_read)
    fails(cftc.parse_zip, zip_bomb, LOC, match=r"declares 210,763,776 bytes uncompressed, over the 209,715,200")


def test_zip_member_size_limit_is_a_setting(sample_zips, monkeypatch):
    monkeypatch.setattr(cftc, "MAX_MEMBER_BYTES", 1000)
    fails(cftc.parse_zip, sample_zips[2024], LOC, match="zip bomb")


@pytest.mark.parametrize("old, new, match", [
    ('"Lev_Money_Positions_Long_All"', '"Lev_Money_Positions_Long"',
     r"header drift: missing column\(s\) 'Lev_Money_Positions_Long_All' \(closest present: 'Lev_Money_Positions_Long'"),
    ('"Report_Date_as_YYYY-MM-DD",', "", r"missing column\(s\) 'Report_Date_as_YYYY-MM-DD'"),
    ('"CFTC_Contract_Market_Code",', '"Contract_Code",', r"'CFTC_Contract_Market_Code'"),
    ('"Open_Interest_All"', '"Dealer_Positions_Long_All"', r"'Open_Interest_All'|2 times"),
])
def test_zip_header_drift(sample_text, old, new, match):
    fails(cftc.parse_zip, make_zip({"FinFutYY.txt": sample_text.replace(old, new, 1)}), LOC, match=match,
          today=TODAY)


def test_zip_older_report_date_header_is_accepted(sample_text, sample_frame):
    text = sample_text.replace('"Report_Date_as_YYYY-MM-DD"', '"Report_Date_as_MM_DD_YYYY"', 1)
    pd.testing.assert_frame_equal(cftc.parse_zip(make_zip({"FinFutYY.txt": text}), LOC, today=TODAY), sample_frame)


@pytest.mark.parametrize("column, value, match", [
    ("Lev_Money_Positions_Short_All", "   12a45", r"line \d+: lev_money_positions_short value '   12a45'"),
    ("Open_Interest_All", "", "open_interest value ''"),
    ("Asset_Mgr_Positions_Long_All", ".", "asset_mgr_positions_long value '.' is not a whole number"),
    ("Dealer_Positions_Spread_All", "1.5", "not a whole number"),
    ("NonRept_Positions_Long_All", "  -12", "negative"),
    ("Report_Date_as_YYYY-MM-DD", "2024-02-30", "report date '2024-02-30' is not YYYY-MM-DD"),
    ("As_of_Date_In_Form_YYMMDD", "240709", "disagrees with report date 2024-07-16"),
    ("As_of_Date_In_Form_YYMMDD", "24-07-16", "is not YYMMDD"),
    ("FutOnly_or_Combined", "Combined", "combined report"),
    ("Market_and_Exchange_Names", "  ", "empty market name"),
])
def test_zip_bad_values(sample_text, column, value, match):
    text = edit(sample_text, "239742", "2024-07-16", column, value)
    fails(cftc.parse_zip, make_zip({"FinFutYY.txt": text}), LOC, match=match, today=TODAY)


def test_zip_bad_value_in_a_market_we_do_not_use_is_ignored(sample_text, sample_frame):
    text = edit(sample_text, "090741", "2024-07-16", "Lev_Money_Positions_Short_All", "n/a")
    pd.testing.assert_frame_equal(cftc.parse_zip(make_zip({"FinFutYY.txt": text}), LOC, today=TODAY), sample_frame)


def test_zip_row_of_wrong_width(sample_text):
    cut = sample_text[: len(sample_text) // 2]
    cut = cut[: cut.rfind("\r\n") + 40]  # the last row ends early
    fails(cftc.parse_zip, make_zip({"FinFutYY.txt": cut}), LOC, match=r"FinFutYY.txt line \d+ has \d+ fields, "
          r"expected 87 \(truncated", today=TODAY)


def test_zip_header_only_and_no_wanted_market(sample_text):
    header = sample_text.split("\r\n", 1)[0] + "\r\n"
    fails(cftc.parse_zip, make_zip({"FinFutYY.txt": header}), LOC, match="header but no data rows")
    fails(cftc.parse_zip, make_zip({"FinFutYY.txt": sample_text}), LOC, markets=["999999"], today=TODAY,
          match=r"none of the markets \['999999'\]")


def test_zip_identical_duplicates_are_dropped_with_a_warning(sample_text, sample_frame, caplog):
    line = next(x for x in sample_text.split("\r\n") if ",239742," in x)
    text = sample_text + line + "\r\n"
    with caplog.at_level(logging.WARNING, logger="regime.sources.cftc"):
        frame = cftc.parse_zip(make_zip({"FinFutYY.txt": text}), LOC, today=TODAY)
    pd.testing.assert_frame_equal(frame, sample_frame)
    assert "dropped 1 identical duplicated row" in caplog.text


def test_zip_conflicting_duplicates_fail(sample_text):
    line = next(x for x in sample_text.split("\r\n") if ",239742," in x)
    fields = line.split(",")
    fields[14] = "       1"  # Lev_Money_Positions_Long_All
    text = sample_text + ",".join(fields) + "\r\n"
    fails(cftc.parse_zip, make_zip({"FinFutYY.txt": text}), LOC, today=TODAY,
          match=r"conflicting duplicated rows .* 2024-07-16 239742 at FinFutYY.txt line \d+, FinFutYY.txt line \d+")


def test_zip_future_report_date(sample_zips):
    fails(cftc.parse_zip, sample_zips[2024], LOC, today=date(2024, 7, 15),
          match=r"report date 2024-07-16 is in the future \(today is 2024-07-15\)")


def test_zip_markets_as_a_single_string(sample_zips):
    frame = cftc.parse_zip(sample_zips[2024], LOC, markets="239742", today=TODAY)
    assert set(frame["market_code"]) == {"239742"}


def test_zip_missing_requested_market_is_logged(sample_zips, caplog):
    with caplog.at_level(logging.WARNING, logger="regime.sources.cftc"):
        frame = cftc.parse_zip(sample_zips[2024], LOC, markets=["239742", "12345Z"], today=TODAY)
    assert set(frame["market_code"]) == {"239742"}
    assert "12345Z" in caplog.text


def test_zip_sorted_by_date_then_code(sample_frame):
    keys = list(zip(sample_frame["report_date"], sample_frame["market_code"], strict=True))
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


# --- release dates ----------------------------------------------------------------------------------------

# cftc.gov "Commitments of Traders release schedule" for 2024 (* = delayed by a federal holiday).
SCHEDULE_2024 = """
January 05 12 19 26 | February 02 09 16 23 | March 01 08 15 22 29 | April 05 12 19 26 | May 03 10 17 24 31 |
June 07 14 24* 28 | July 08* 12 19 26 | August 02 09 16 23 30 | September 06 13 20 27 | October 04 11 18 25 |
November 01 08 15 22 | December 02* 06 13 20 30*
"""


def _schedule_2024() -> list[tuple[date, date]]:
    months = {m: i for i, m in enumerate(["January", "February", "March", "April", "May", "June", "July",
                                           "August", "September", "October", "November", "December"], 1)}
    releases = []
    for part in SCHEDULE_2024.replace("\n", " ").split("|"):
        month, *days = part.split()
        releases += [date(2024, months[month], int(d.rstrip("*"))) for d in days]
    tuesdays = [date(2024, 1, 2) + timedelta(weeks=i) for i in range(52)]
    return list(zip(tuesdays, releases, strict=True))


@pytest.mark.parametrize("report, release", _schedule_2024(), ids=str)
def test_release_date_matches_the_2024_cftc_schedule(report, release):
    assert cftc.release_date(report) == release


@pytest.mark.parametrize("report, release", [
    (date(2024, 7, 2), date(2024, 7, 8)),  # Independence Day, Thursday
    (date(2024, 11, 26), date(2024, 12, 2)),  # Thanksgiving
    (date(2024, 7, 9), date(2024, 7, 12)),  # an ordinary week
    (date(2024, 6, 18), date(2024, 6, 24)),  # Juneteenth, Wednesday
    (date(2024, 12, 24), date(2024, 12, 30)),  # Christmas, Wednesday
    (date(2024, 12, 31), date(2025, 1, 6)),  # New Year's Day, Wednesday
    (date(2024, 1, 16), date(2024, 1, 19)),  # MLK Day is the Monday BEFORE the as-of date: no delay
    (date(2024, 9, 3), date(2024, 9, 6)),  # Labor Day, likewise
    # original dates of the CFTC's November 2025 post-shutdown schedule
    (date(2025, 10, 14), date(2025, 10, 17)),
    (date(2025, 11, 10), date(2025, 11, 14)),  # Veterans Day Tuesday: Monday data, Friday release
    (date(2025, 11, 25), date(2025, 12, 1)),
    (date(2025, 12, 23), date(2025, 12, 29)),
    (date(2025, 12, 30), date(2026, 1, 5)),
    (date(2026, 1, 20), date(2026, 1, 23)),
    (date(2021, 6, 15), date(2021, 6, 21)),  # first Juneteenth (observed Friday 2021-06-18)
])
def test_release_date_cases(report, release):
    assert cftc.release_date(report) == release


def test_release_timestamp_is_half_past_three_new_york():
    stamp = cftc.release_timestamp(date(2024, 7, 2))
    assert stamp == pd.Timestamp("2024-07-08 15:30", tz="America/New_York")
    assert stamp.tz_convert("UTC") == pd.Timestamp("2024-07-08 19:30", tz="UTC")


# --- properties: nothing but SourceError escapes ----------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                          HealthCheck.function_scoped_fixture])


def _only_source_error(parse, data: bytes) -> None:
    try:
        frame = parse(data, "fuzz", today=TODAY)
    except SourceError as error:
        assert error.source == "cftc" and error.location == "fuzz" and error.problem
    else:
        assert list(frame.columns) == cftc.COLUMNS


@FUZZ
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_raise_only_source_error(data):
    _only_source_error(cftc.parse_zip, data)
    _only_source_error(cftc.parse_api, data)


@FUZZ
@given(st.one_of(st.binary(max_size=2048), st.text(max_size=2048).map(str.encode)))
@pytest.mark.slow
def test_arbitrary_member_raises_only_source_error(content):
    _only_source_error(cftc.parse_zip, make_zip({"FinFutYY.txt": content}))


@FUZZ
@given(st.data())
@pytest.mark.slow
def test_damaged_real_layout_zip_raises_only_source_error(sample_zips, data):
    raw = bytearray(sample_zips[2024])
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at: at + data.draw(st.integers(1, 8))] = data.draw(st.binary(min_size=0, max_size=8))
    _only_source_error(cftc.parse_zip, bytes(raw[: data.draw(st.integers(0, len(raw)))]))


@FUZZ
@given(st.data())
@pytest.mark.slow
def test_damaged_member_text_raises_only_source_error(sample_text, data):
    text = sample_text[: 6000]
    at = data.draw(st.integers(0, len(text)))
    text = text[:at] + data.draw(st.text(max_size=20)) + text[at + data.draw(st.integers(0, 20)):]
    _only_source_error(cftc.parse_zip, make_zip({"FinFutYY.txt": text.encode("utf-8", "surrogatepass")}))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
field_values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
                         st.sampled_from(["239742", "13874A", "2024-07-16T00:00:00.000", "2024-07-16", "12",
                                          " 0 ", "FutOnly", "Combined", "-3", "1e3"]))


@FUZZ
@given(json_values)
@pytest.mark.slow
def test_arbitrary_json_raises_only_source_error(value):
    _only_source_error(cftc.parse_api, json.dumps(value).encode())


@FUZZ
@given(st.lists(st.fixed_dictionaries({f: field_values for f in [*cftc.API_FIELDS.values(), "futonly_or_combined"]}),
                max_size=4))
@pytest.mark.slow
def test_api_shaped_records_raise_only_source_error(records):
    records = [{k: v for k, v in r.items() if v is not None} for r in records]
    _only_source_error(cftc.parse_api, json.dumps(records).encode())


# --- live mode: over HTTP from a local upstream -----------------------------------------------------------


def test_live_fetch_then_parse(sample_zips, sample_frame):
    with Upstream() as up:
        url = up.route("/files/dea/history/fut_fin_txt_2024.zip", body=sample_zips[2024],
                       headers={"Content-Type": "application/zip"})
        fetched = fetch_http(url, cftc.file_name(2024), cftc.SOURCE, timeout=5)
    assert fetched.name == "fut_fin_txt_2024.zip" and fetched.location == url
    pd.testing.assert_frame_equal(cftc.parse_zip(fetched.data, fetched.location, today=TODAY), sample_frame)


def test_live_retry_503_then_200(sample_zips, sample_frame):
    with Upstream() as up:
        url = up.route("/files/dea/history/fut_fin_txt_2024.zip", responses=[(503, b""), (200, sample_zips[2024])],
                       headers={"Retry-After": "0"})
        fetched = fetch_http(url, cftc.file_name(2024), cftc.SOURCE, timeout=5)
        assert len(up.requests) == 2
    pd.testing.assert_frame_equal(cftc.parse_zip(fetched.data, fetched.location, today=TODAY), sample_frame)


def test_live_html_page_with_200_names_the_url():
    with Upstream() as up:
        url = up.route("/files/dea/history/fut_fin_txt_2024.zip",
                       body=b"<!DOCTYPE html><html><body>We're sorry, this page is unavailable</body></html>",
                       headers={"Content-Type": "text/html"})
        fetched = fetch_http(url, cftc.file_name(2024), cftc.SOURCE, timeout=5)
    error = fails(cftc.parse_zip, fetched.data, fetched.location, match="HTML page")
    assert str(error).startswith(f"cftc: {url}: ")


def test_live_api_query(sample_text, sample_frame):
    with Upstream() as up:
        base = up.route("/resource/gpe5-46if.json", body=to_api_json(sample_text),
                        headers={"Content-Type": "application/json"})
        url = base + "?" + urlsplit(cftc.api_url(start=date(2024, 1, 1), end=TODAY)).query
        fetched = fetch_http(url, "gpe5-46if.json", cftc.SOURCE, timeout=5)
        path = up.requests[0][0]
    assert parse_qs(urlsplit(path).query)["$where"][0].startswith("cftc_contract_market_code in('13874A',")
    pd.testing.assert_frame_equal(cftc.parse_api(fetched.data, fetched.location, today=TODAY), sample_frame)


def test_api_full_page_is_not_taken_for_the_whole_answer(sample_text):
    data = to_api_json(sample_text)
    count = len(json.loads(data))
    assert len(cftc.parse_api(data, "api", today=TODAY, limit=count + 1)) == 3 * 29
    fails(cftc.parse_api, data, "api", today=TODAY, limit=count, match=rf"{count} records, the query's \$limit")
