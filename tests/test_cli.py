"""The `regime` command on a hand-made fixture warehouse: exact phrasings, exit codes, read-only SQL.

The sentences are regime/words.py's (shared with the report and the alert mails): names and units instead of codes
and raw floats. The fixture's `spread_5d` of `RUT-SPX` is not in the indicator registry: it shows what an unknown
indicator looks like (its code in words, its value as a plain number)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest

from regime import answers, output, readonly, words
from regime.answers import Reading
from regime.cli import main

REGIME = Path(sys.executable).with_name("regime")
D = date.fromisoformat

# Hand-made readings: (date, indicator, subject, value). RUT's first row is NULL (not yet defined).
READINGS = [
    ("1987-10-23", "zscore_50d", "RUT", None),
    ("1987-10-27", "zscore_50d", "RUT", 1.0),
    ("2000-03-10", "zscore_50d", "RUT", 4.0),
    ("2008-10-10", "zscore_50d", "RUT", -3.0),
    ("2020-03-16", "zscore_50d", "RUT", -4.0),
    ("2024-07-12", "zscore_50d", "RUT", 3.5),
    ("2024-07-15", "zscore_50d", "RUT", 2.0),
    ("2024-07-16", "zscore_50d", "RUT", 4.42),
    ("1987-10-27", "zscore_50d", "SPX", 0.5),
    ("2008-10-10", "zscore_50d", "SPX", -5.0),
    ("2024-07-12", "zscore_50d", "SPX", 2.5),
    ("2024-07-15", "zscore_50d", "SPX", -1.0),
    ("2024-07-16", "zscore_50d", "SPX", -6.0),
    ("2024-07-10", "spread_5d", "RUT-SPX", 1.0),
    ("2024-07-11", "spread_5d", "RUT-SPX", 1.0),
    ("2024-07-12", "spread_5d", "RUT-SPX", 3.0),
    ("2024-07-15", "spread_5d", "RUT-SPX", -1.0),
    ("2024-07-16", "spread_5d", "RUT-SPX", 9.7),
]
# Their extremes, worked out by hand: (date, indicator, subject, history_start, highest_since, lowest_since,
# is_record_high, is_record_low, pct_rank).
EXTREMES = [
    ("1987-10-27", "zscore_50d", "RUT", "1987-10-27", None, None, False, False, 1.0),
    ("2000-03-10", "zscore_50d", "RUT", "1987-10-27", None, "1987-10-27", True, False, 1.0),
    ("2008-10-10", "zscore_50d", "RUT", "1987-10-27", "2000-03-10", None, False, True, 1 / 3),
    ("2020-03-16", "zscore_50d", "RUT", "1987-10-27", "2008-10-10", None, False, True, 1 / 4),
    ("2024-07-12", "zscore_50d", "RUT", "1987-10-27", "2000-03-10", "2020-03-16", False, False, 4 / 5),
    ("2024-07-15", "zscore_50d", "RUT", "1987-10-27", "2024-07-12", "2020-03-16", False, False, 4 / 6),
    ("2024-07-16", "zscore_50d", "RUT", "1987-10-27", None, "2024-07-15", True, False, 1.0),
    ("1987-10-27", "zscore_50d", "SPX", "1987-10-27", None, None, False, False, 1.0),
    ("2008-10-10", "zscore_50d", "SPX", "1987-10-27", "1987-10-27", None, False, True, 1 / 2),
    ("2024-07-12", "zscore_50d", "SPX", "1987-10-27", None, "2008-10-10", True, False, 1.0),
    ("2024-07-15", "zscore_50d", "SPX", "1987-10-27", "2024-07-12", "2008-10-10", False, False, 2 / 4),
    ("2024-07-16", "zscore_50d", "SPX", "1987-10-27", "2024-07-15", None, False, True, 1 / 5),
    ("2024-07-10", "spread_5d", "RUT-SPX", "2024-07-10", None, None, False, False, 1.0),
    ("2024-07-11", "spread_5d", "RUT-SPX", "2024-07-10", "2024-07-10", "2024-07-10", False, False, 1.0),
    ("2024-07-12", "spread_5d", "RUT-SPX", "2024-07-10", None, "2024-07-11", True, False, 1.0),
    ("2024-07-15", "spread_5d", "RUT-SPX", "2024-07-10", "2024-07-12", None, False, True, 1 / 4),
    ("2024-07-16", "spread_5d", "RUT-SPX", "2024-07-10", None, "2024-07-15", True, False, 1.0),
]
# As the pipeline's marts.regime_daily: headline columns, the headline records ('; '-separated) and the label.
REGIME_DAILY = [
    ("2024-07-12", 3.5, 3.0, "zscore_50d SPX high", "normal"),
    ("2024-07-15", 2.0, -1.0, None, "normal"),
    ("2024-07-16", 4.42, 9.7, "zscore_50d RUT high; zscore_50d SPX low", "small-cap squeeze"),
]
HOSTILE = "x'; DROP TABLE marts.indicators; --"


def build_fixture(path: Path, *, extremes: bool = True, regime_daily: bool = True) -> Path:
    con = duckdb.connect(str(path))
    try:
        for schema in ("marts", "meta"):
            con.execute(f"create schema {schema}")
        con.execute("create table marts.indicators (date date not null, indicator varchar not null,"
                    " subject varchar not null, value double, primary key (date, indicator, subject))")
        con.executemany("insert into marts.indicators values (?, ?, ?, ?)", READINGS)
        if extremes:
            con.execute("create table marts.extremes (date date, indicator varchar, subject varchar, value double,"
                        " history_start date, highest_since date, lowest_since date, is_record_high boolean,"
                        " is_record_low boolean, pct_rank double)")
            values = {(d, i, s): v for d, i, s, v in READINGS}
            con.executemany("insert into marts.extremes values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [(d, i, s, values[d, i, s], *rest) for d, i, s, *rest in EXTREMES])
        if regime_daily:
            con.execute("create table marts.regime_daily (date date, rut_zscore_50d double, spread_5d double,"
                        " records varchar, label varchar)")
            con.executemany("insert into marts.regime_daily values (?, ?, ?, ?, ?)", REGIME_DAILY)
        con.execute("create table meta.build_info as select $as_of::date as as_of, $built_at::timestamptz as built_at,"
                    " 'mirror' as source, 'fixture' as origin",
                    {"as_of": D("2024-07-16"), "built_at": datetime(2024, 7, 17, 6, 30, tzinfo=UTC)})
    finally:
        con.close()
    return path


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> dict[str, Path]:
    """The fixture warehouses, built once: 'full', and 'old' (no marts.extremes, no marts.regime_daily)."""
    folder = tmp_path_factory.mktemp("templates")
    return {"full": build_fixture(folder / "full.duckdb"),
            "old": build_fixture(folder / "old.duckdb", extremes=False, regime_daily=False)}


@pytest.fixture
def warehouse(templates, tmp_path, monkeypatch) -> Path:
    """A private copy of the fixture warehouse as $REGIME_DATA_DIR/warehouse.duckdb."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    monkeypatch.setenv("REGIME_DATA_DIR", str(data_dir))
    target = data_dir / "warehouse.duckdb"
    shutil.copyfile(templates["full"], target)
    return target


@pytest.fixture
def old_warehouse(templates, tmp_path) -> Path:
    target = tmp_path / "old.duckdb"
    shutil.copyfile(templates["old"], target)
    return target


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- phrasing (answers.py)


def test_fixture_extremes_agree_with_the_definition(templates):
    """The hand-worked extremes equal those computed from marts.indicators (the fallback for older warehouses)."""
    con = duckdb.connect(str(templates["full"]), read_only=True)
    try:
        for day in sorted({d for d, *_ in READINGS}):
            stored = answers.readings_on(con, D(day), use_extremes=True)
            computed = answers.readings_on(con, D(day), use_extremes=False)
            assert [r.__dict__ | {"pct_rank": pytest.approx(r.pct_rank)} for r in computed] == \
                [r.__dict__ for r in stored], day
    finally:
        con.close()


def test_describe_accepts_a_mapping_and_a_reading():
    row = {"date": D("2024-07-16"), "indicator": "zscore_50d", "subject": "RUT", "value": 4.4213,
           "history_start": D("1987-10-27"), "highest_since": None, "lowest_since": D("2024-07-15"),
           "is_record_high": True, "is_record_low": False, "pct_rank": 1.0}
    assert words.describe(row) == (
        "Russell 2000 z-score vs its 50-day average on 2024-07-16: +4.42σ, the highest on record"
        " (history since 1987-10-27); 100th percentile")
    assert words.describe(Reading(**row)) == words.describe(row)


@pytest.mark.parametrize(("start", "end", "text"), [
    ("2000-03-10", "2024-07-16", "24 years"),
    ("2024-03-16", "2025-03-16", "1 year"),
    ("2024-03-16", "2025-03-15", "11 months"),
    ("2024-06-13", "2024-07-17", "1 month"),
    ("2024-07-15", "2024-07-16", "1 day"),
    ("2024-07-03", "2024-07-17", "14 days"),
])
def test_span(start, end, text):
    assert words.span(D(start), D(end)) == text


@pytest.mark.parametrize(("pct_rank", "text"), [
    (1.0, "100th percentile"), (0.99999, "99.9th percentile"), (0.9983, "99.8th percentile"),
    (2 / 3, "67th percentile"), (0.5, "50th percentile"), (1e-6, "0.1st percentile"), (0.003, "0.3rd percentile"),
    (0.21, "21st percentile"), (0.02, "2nd percentile"), (0.93, "93rd percentile"), (0.11, "11th percentile"),
    (0.12, "12th percentile"), (0.13, "13th percentile"), (None, "—")])
def test_percentile(pct_rank, text):
    """Only a reading at the top is the 100th, none is the 0th; ordinal suffixes as in English."""
    assert words.percentile(pct_rank) == text


# ---------------------------------------------------------------- regime since


RUT_Z = "Russell 2000 z-score vs its 50-day average"
SPX_Z = "S&P 500 z-score vs its 50-day average"
RUT_RECORD = (f"{RUT_Z} on 2024-07-16: +4.42σ, the highest on record (history since 1987-10-27); 100th percentile;"
              " previous record +4.00σ on 2000-03-10")


@pytest.mark.parametrize(("argv", "sentence"), [
    (["zscore_50d", "RUT"], RUT_RECORD),
    (["zscore_50d", "RUT", "--date", "2024-07-12"],
     f"{RUT_Z} on 2024-07-12: +3.50σ, the highest since 2000-03-10 (24 years); 80th percentile;"
     " last higher +4.00σ on 2000-03-10"),
    (["zscore_50d", "RUT", "--date", "2024-07-15"],
     f"{RUT_Z} on 2024-07-15: +2.00σ, the lowest since 2020-03-16 (4 years); 67th percentile;"
     " last lower -4.00σ on 2020-03-16"),
    (["zscore_50d", "SPX", "--date", "2024-07-15"],
     f"{SPX_Z} on 2024-07-15: -1.00σ, the lowest since 2008-10-10 (15 years); 50th percentile;"
     " last lower -5.00σ on 2008-10-10"),
    (["zscore_50d", "SPX", "--date", "2024-07-16"],
     f"{SPX_Z} on 2024-07-16: -6.00σ, the lowest on record (history since 1987-10-27); 20th percentile;"
     " previous record -5.00σ on 2008-10-10"),
    (["zscore_50d", "RUT", "--date", "1987-10-27"],  # a first reading: no percentile, nothing to compare with
     f"{RUT_Z} on 1987-10-27: +1.00σ, the first reading (history starts 1987-10-27)"),
    (["spread_5d", "RUT-SPX", "--date", "2024-07-11"],  # equal to the only earlier value; not a registry indicator
     "RUT-SPX spread 5d on 2024-07-11: 1, the highest since 2024-07-10 (1 day); 100th percentile;"
     " last higher 1 on 2024-07-10"),
    (["zscore_50d", "rut", "--date", "2020-03-16"],  # an unambiguous case-insensitive subject is accepted
     f"{RUT_Z} on 2020-03-16: -4.00σ, the lowest on record (history since 1987-10-27); 25th percentile;"
     " previous record -3.00σ on 2008-10-10"),
])
def test_since(warehouse, capsys, argv, sentence):
    assert run(capsys, "since", *argv) == (0, sentence + "\n", "")


def test_since_without_marts_extremes_computes_the_same(old_warehouse, capsys):
    assert run(capsys, "--warehouse", str(old_warehouse), "since", "zscore_50d", "RUT", "--date", "2024-07-12") == (
        0, f"{RUT_Z} on 2024-07-12: +3.50σ, the highest since 2000-03-10 (24 years); 80th percentile;"
           " last higher +4.00σ on 2000-03-10\n", "")


@pytest.mark.parametrize("which", ["full", "old"])
@pytest.mark.parametrize(("day", "indicator", "subject", "previous"), [
    ("2024-07-16", "zscore_50d", "RUT", ("2000-03-10", 4.0)),  # record high: the highest earlier reading
    ("2024-07-16", "zscore_50d", "SPX", ("2008-10-10", -5.0)),  # record low: the lowest earlier reading
    ("2020-03-16", "zscore_50d", "RUT", ("2008-10-10", -3.0)),  # record low, the low before it
    ("2024-07-12", "spread_5d", "RUT-SPX", ("2024-07-11", 1.0)),  # record high over a tie (07-10, 07-11): latest
    ("2024-07-15", "spread_5d", "RUT-SPX", ("2024-07-11", 1.0)),  # record low over the same tie: latest
    ("2024-07-12", "zscore_50d", "RUT", ("2000-03-10", 4.0)),  # not a record: its highest_since reading
    ("2024-07-15", "zscore_50d", "RUT", ("2020-03-16", -4.0)),  # not a record: its lowest_since reading
    ("2024-07-15", "zscore_50d", "SPX", ("2008-10-10", -5.0)),  # lowest_since (2008) older than highest_since
    ("2024-07-11", "spread_5d", "RUT-SPX", ("2024-07-10", 1.0)),  # since-dates tied, pct_rank 1 -> high side
    ("1987-10-27", "zscore_50d", "RUT", None),  # a first reading: nothing before it
    ("2024-07-10", "spread_5d", "RUT-SPX", None),
])
def test_previous_extreme(templates, which, day, indicator, subject, previous):
    """The reading a reading is measured against, from marts.extremes or computed (an older warehouse)."""
    con = duckdb.connect(str(templates[which]), read_only=True)
    try:
        (reading,) = answers.readings_on(con, D(day), indicator, subject)
        found = answers.previous_extreme(con, reading)
    finally:
        con.close()
    assert found == (None if previous is None else (D(previous[0]), previous[1]))


@pytest.mark.parametrize(("argv", "message"), [
    (["since", "zscore50", "RUT"], "unknown indicator 'zscore50'; did you mean 'zscore_50d'?"),
    (["since", "zscore_50d", "RTU"], "unknown subject 'RTU' for zscore_50d; did you mean 'RUT'?"),
    (["since", "zscore_50d", "NDX"], "unknown subject 'NDX' for zscore_50d; known subjects of zscore_50d: RUT, SPX"),
    (["since", "RUT", "zscore_50d"],
     "unknown indicator 'RUT': that is a subject; give the indicator first, e.g. zscore_50d RUT"),
    (["since", "zscore_50d", "RUT", "--date", "2024-07-13"],
     "no RUT zscore_50d reading on 2024-07-13; nearest dates with data: 2024-07-12 and 2024-07-15"),
    (["since", "zscore_50d", "RUT", "--date", "2030-01-01"],
     "no RUT zscore_50d reading on 2030-01-01; nearest date with data: 2024-07-16"),
    (["since", "zscore_50d", "RUT", "--date", "1987-10-23"],
     "RUT zscore_50d on 1987-10-23 has no value (not defined on that date); nearest date with data: 1987-10-27"),
    (["since", "zscore_50d", "RUT", "--date", "2024-7-16"],
     "argument --date: invalid date '2024-7-16': expected YYYY-MM-DD, e.g. 2024-07-16 (see 'regime since --help')"),
    (["since", "zscore_50d", "RUT", "--date", "2024-02-30"],
     "argument --date: invalid date '2024-02-30': expected YYYY-MM-DD, e.g. 2024-07-16 (see 'regime since --help')"),
    (["latest", "--date", "2024-07-13"],
     "no readings on 2024-07-13; nearest dates with data: 2024-07-12 and 2024-07-15"),
    (["history", "zscore_50d", "RUT", "--start", "2024-07-13", "--end", "2024-07-14"],
     "no RUT zscore_50d readings between 2024-07-13 and 2024-07-14;"
     " nearest dates with data: 2024-07-12 and 2024-07-15"),
    (["history", "zscore_50d", "RUT", "--end", "1987-01-01"],
     "no RUT zscore_50d readings up to 1987-01-01; nearest date with data: 1987-10-27"),
    (["history", "zscore_50d", "RUT", "--start", "2024-07-16", "--end", "2024-07-12"],
     "the start 2024-07-16 is after the end 2024-07-12"),
])
def test_helpful_errors(warehouse, capsys, argv, message):
    """Exit code 2 and exactly one line on stderr, nothing on stdout."""
    assert run(capsys, *argv) == (2, "", f"regime: {message}\n")


def test_missing_or_empty_warehouse(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("REGIME_DATA_DIR", str(tmp_path / "nowhere"))
    missing = tmp_path / "nowhere" / "warehouse.duckdb"
    assert run(capsys, "latest") == (2, "", f"regime: no warehouse at {missing}: run the pipeline first (make demo)\n")

    empty = tmp_path / "empty.duckdb"
    empty.touch()
    assert run(capsys, "--warehouse", str(empty), "latest") == (
        2, "", f"regime: no warehouse at {empty}: run the pipeline first (make demo)\n")

    bare = tmp_path / "bare.duckdb"
    duckdb.connect(str(bare)).close()  # a valid DuckDB file without marts.indicators
    assert run(capsys, "since", "zscore_50d", "RUT", "--warehouse", str(bare)) == (
        2, "", f"regime: no warehouse at {bare}: run the pipeline first (make demo)\n")

    junk = tmp_path / "junk.duckdb"
    junk.write_text("not a database")
    code, out, err = run(capsys, "--warehouse", str(junk), "latest")
    assert (code, out) == (2, "")
    assert err.startswith(f"regime: cannot open the warehouse at {junk}: ") and err.count("\n") == 1


def test_hostile_subject_is_a_value(warehouse, capsys):
    before = digest(warehouse)
    for argv in (["since", "zscore_50d", HOSTILE], ["history", "zscore_50d", HOSTILE, "--csv"]):
        code, out, err = run(capsys, *argv)
        assert (code, out) == (2, "")
        assert err.startswith(f"regime: unknown subject {HOSTILE!r} for zscore_50d;")
    code, out, _ = run(capsys, "since", HOSTILE, "RUT")
    assert code == 2
    assert digest(warehouse) == before
    assert run(capsys, "sql", "select count(*) as n from marts.indicators", "--csv") == (0, "n\n18\n", "")


# ---------------------------------------------------------------- regime latest


SPX_RECORD = (f"{SPX_Z} on 2024-07-16: -6.00σ, the lowest on record (history since 1987-10-27); 20th percentile;"
              " previous record -5.00σ on 2008-10-10")
LATEST = "\n".join([
    "Warehouse as of 2024-07-16 (built 2024-07-17 06:30 UTC, from mirror)",
    "Regime on 2024-07-16: small-cap squeeze",
    "  RUT z-score  +4.42σ",  # a known marts.regime_daily column: its short name, the value in its unit
    "  spread_5d    9.7",  # an unknown one: its name and the value as it is
    f"  records      {RUT_Z} (record high); {SPX_Z} (record low)",
    "",
    "Headline readings on 2024-07-16",
    "reading                                      value  since                                             percentile",
    "  ".join("-" * width for width in (42, 6, 48, 16)),
    f"{RUT_Z}  +4.42σ  the highest on record (history since 1987-10-27)  100th percentile",
    f"{SPX_Z}       -6.00σ  the lowest on record (history since 1987-10-27)   20th percentile",
    "",
    "Records set on 2024-07-16",
    f"  {RUT_RECORD}",
    f"  {SPX_RECORD}",
    "",
])


def test_latest(warehouse, capsys):
    assert run(capsys, "latest") == (0, LATEST, "")


def test_latest_on_a_date(warehouse, capsys):
    code, out, err = run(capsys, "latest", "--date", "2024-07-15")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[1:6] == ["Regime on 2024-07-15: normal", "  RUT z-score  +2.00σ", "  spread_5d    -1",
                          "  records      NULL", ""]
    assert lines[5:12] == [
        "",
        "Headline readings on 2024-07-15",
        "reading                                      value  since                                   percentile",
        "  ".join("-" * width for width in (42, 6, 38, 15)),
        f"{RUT_Z}  +2.00σ  the lowest since 2020-03-16 (4 years)   67th percentile",
        f"{SPX_Z}       -1.00σ  the lowest since 2008-10-10 (15 years)  50th percentile",
        "",
    ]
    assert lines[-1] == "No records set on 2024-07-15."  # RUT-SPX spread_5d set one, but it is not a headline


HEADLINES = [  # as marts.headlines would hold them: (date, rank, headline, indicator, subject, value)
    ("2024-07-16", 2, f"{SPX_Z} at -6.00σ: the lowest on record (history since 1987-10-27)", "zscore_50d", "SPX",
     -6.0),
    ("2024-07-16", 1, "Russell 2000 closed 4.42σ above its 50-day average: the most stretched close of any tracked"
                      " index since records began in 1987", "zscore_50d", "RUT", 4.42),
    ("2024-07-12", 1, f"{SPX_Z} at +2.50σ: the highest on record (history since 1987-10-27)", "zscore_50d", "SPX",
     2.5),
]


@pytest.mark.slow
def test_latest_prints_the_days_headlines_first(warehouse, old_warehouse, capsys):
    """With marts.headlines, the day's headlines come first, in rank order; a warehouse without the table (built
    before it existed) and a day without a row have none."""
    assert run(capsys, "latest") == (0, LATEST, "")
    code, out, _ = run(capsys, "--warehouse", str(old_warehouse), "latest")
    assert code == 0 and out.startswith("Warehouse as of 2024-07-16 ")

    con = duckdb.connect(str(warehouse))
    try:
        con.execute("create table marts.headlines (date date, rank integer, headline varchar, indicator varchar,"
                    " subject varchar, value double)")
        con.executemany("insert into marts.headlines values (?, ?, ?, ?, ?, ?)", HEADLINES)
    finally:
        con.close()
    assert run(capsys, "latest") == (0, f"{HEADLINES[1][2]}\n{HEADLINES[0][2]}\n{LATEST}", "")
    code, out, _ = run(capsys, "latest", "--date", "2024-07-12")
    assert code == 0 and out.splitlines()[:2] == [HEADLINES[2][2], "Warehouse as of 2024-07-16 (built 2024-07-17"
                                                                   " 06:30 UTC, from mirror)"]
    code, out, _ = run(capsys, "latest", "--date", "2024-07-15")
    assert code == 0 and out.startswith("Warehouse as of 2024-07-16 ")


def test_records_on(templates):
    """By default as marts.regime_daily counts them: headline indicators, series at least RECORD_MIN_DAYS old."""
    con = duckdb.connect(str(templates["full"]), read_only=True)
    try:
        def records(day: str, **kwargs) -> list[str]:
            return [f"{r.subject} {r.indicator} {'high' if r.is_record_high else 'low'}"
                    for r in answers.records_on(con, D(day), **kwargs)]

        assert records("2024-07-16") == ["RUT zscore_50d high", "SPX zscore_50d low"]
        assert records("2024-07-16", headline_only=False, min_days=0) == [
            "RUT-SPX spread_5d high", "RUT zscore_50d high", "SPX zscore_50d low"]
        assert records("2024-07-12", headline_only=False, min_days=3) == ["SPX zscore_50d high"]
        assert records("2024-07-15") == []
    finally:
        con.close()


def test_latest_without_regime_daily_or_records(old_warehouse, capsys):
    path = old_warehouse
    code, out, err = run(capsys, "--warehouse", str(path), "latest", "--date", "2000-03-10")
    assert (code, err) == (0, "")
    assert "Regime on 2000-03-10: unknown (this warehouse has no marts.regime_daily)" in out.splitlines()
    assert out.endswith("Records set on 2000-03-10\n"
                        f"  {RUT_Z} on 2000-03-10: +4.00σ, the highest on record (history since 1987-10-27);"
                        " 100th percentile; previous record +1.00σ on 1987-10-27\n")
    code, out, _ = run(capsys, "--warehouse", str(path), "latest", "--date", "2024-07-11")
    assert code == 0 and out.endswith("No records set on 2024-07-11.\n")


def test_latest_in_colour_on_a_terminal(warehouse, capsys, monkeypatch):
    """On a terminal the same content is drawn by rich, with colour."""
    monkeypatch.setattr(output, "_isatty", lambda stream: True)
    monkeypatch.setenv("COLUMNS", "160")
    monkeypatch.delenv("NO_COLOR", raising=False)
    code, out, err = run(capsys, "latest")
    assert (code, err) == (0, "")
    assert "\x1b[" in out  # ANSI styles
    assert "small-cap squeeze" in out and "the lowest on record (history since 1987-10-27)" in out
    assert "+4.42σ" in out and "previous record -5.00σ on 2008-10-10" in out


# ---------------------------------------------------------------- regime history


def test_history_table_and_csv(warehouse, capsys):
    assert run(capsys, "history", "zscore_50d", "RUT", "--start", "2024-07-12", "--end", "2024-07-16") == (0, f"""\
{RUT_Z} (zscore_50d RUT), 2024-07-12 to 2024-07-16 (3 readings)
date         value
----------  ------
2024-07-12  +3.50σ
2024-07-15  +2.00σ
2024-07-16  +4.42σ
""", "")
    assert run(capsys, "history", "zscore_50d", "RUT", "--end", "2000-03-10", "--csv") == (0, """\
date,indicator,subject,value
1987-10-23,zscore_50d,RUT,
1987-10-27,zscore_50d,RUT,1.0
2000-03-10,zscore_50d,RUT,4.0
""", "")


# ---------------------------------------------------------------- regime sql


@pytest.mark.slow
def test_sql_reads(warehouse, capsys):
    query = "select subject, count(*) as n, max(value) as top from marts.indicators group by 1 order by 1"
    assert run(capsys, "sql", query) == (0, """\
subject  n   top
-------  -  ----
RUT      8  4.42
RUT-SPX  5   9.7
SPX      5   2.5
(3 rows)
""", "")
    assert run(capsys, "sql", query, "--csv") == (0, "subject,n,top\nRUT,8,4.42\nRUT-SPX,5,9.7\nSPX,5,2.5\n", "")
    for read in ("describe marts.extremes", "show tables", "with t as (select 1 as a) select * from t",
                 "pragma table_info('marts.indicators')", "summarize marts.indicators", "explain select 1"):
        code, out, err = run(capsys, "sql", read)
        assert (code, err) == (0, ""), read


@pytest.mark.parametrize(("query", "what"), [
    ("drop table marts.indicators", "DROP"),
    ("create table x as select 1", "CREATE"),
    ("DELETE FROM marts.indicators", "DELETE"),
    ("insert into marts.indicators values (date '2024-07-17', 'zscore_50d', 'RUT', 1)", "INSERT"),
    ("update marts.indicators set value = 0", "UPDATE"),
    ("attach '{dir}/other.duckdb' as other", "ATTACH"),
    ("copy marts.indicators to '{dir}/out.csv'", "COPY"),
    ("export database '{dir}/export'", "EXPORT"),
    ("import database '{dir}/export'", "IMPORT"),
    ("install httpfs", "INSTALL"),
    ("load httpfs", "LOAD"),
    ("set enable_external_access = true", "SET"),
    ("pragma memory_limit = '1GB'", "PRAGMA memory_limit"),
    ("checkpoint", "CHECKPOINT"),
    ("explain analyze drop table marts.indicators", "DROP"),
    ("select 1; drop table marts.indicators", "DROP"),
    ("-- a comment\n/* another */ drop table marts.indicators", "DROP"),
])
def test_sql_refuses_writes(warehouse, capsys, query, what):
    before = digest(warehouse)
    query = query.format(dir=warehouse.parent)
    assert run(capsys, "sql", query) == (2, "", (
        f"regime: {what} is refused: regime sql only reads the warehouse"
        " (SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN, read-only PRAGMAs)\n"))
    assert digest(warehouse) == before  # unchanged, byte for byte
    assert sorted(p.name for p in warehouse.parent.iterdir()) == ["warehouse.duckdb"]  # and nothing written beside it


@pytest.mark.parametrize(("query", "error"), [
    ("drop table marts.indicators", "Invalid Input Error: Cannot execute statement of type \"DROP\""),
    ("create table x as select 1", "Invalid Input Error: Cannot execute statement of type \"CREATE\""),
    ("attach '{dir}/other.duckdb' as other", "Permission Error: "),
    ("copy marts.indicators to '{dir}/out.csv'", "Permission Error: "),
    ("install httpfs", "Permission Error: "),
    ("load httpfs", "Permission Error: "),
    ("set enable_external_access = true", "Invalid Input Error: Cannot change configuration option"),
])
def test_duckdb_refuses_writes_even_past_the_statement_check(warehouse, capsys, monkeypatch, query, error):
    """The second and third layers: the connection is read-only and has no file, network or extension access."""
    monkeypatch.setattr(readonly, "check_read_only", lambda con, sql: None)
    before = digest(warehouse)
    code, out, err = run(capsys, "sql", query.format(dir=warehouse.parent))
    assert (code, out) == (2, "")
    assert err.startswith(f"regime: query failed: {error}") and err.count("\n") == 1
    assert digest(warehouse) == before
    assert sorted(p.name for p in warehouse.parent.iterdir()) == ["warehouse.duckdb"]


def test_sql_cannot_touch_files_even_in_a_select(warehouse, capsys, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    code, out, err = run(capsys, "sql", f"select * from read_csv('{secret}')")
    assert (code, out) == (2, "")
    assert err.startswith("regime: query failed: Permission Error: ") and err.count("\n") == 1


@pytest.mark.parametrize(("query", "message"), [
    ("selec 1", 'cannot parse the query: Parser Error: syntax error at or near "selec"'),
    ("select 1; select 2", "one statement at a time, please (got 2)"),
    ("   ", "no SQL statement given"),
    ("select nope from marts.indicators", "query failed: Binder Error: Referenced column \"nope\" not found in FROM"
                                          " clause!"),
])
def test_sql_mistakes(warehouse, capsys, query, message):
    assert run(capsys, "sql", query) == (2, "", f"regime: {message}\n")


# ---------------------------------------------------------------- the console script


@pytest.mark.slow
def test_console_script(warehouse):
    env = {**os.environ, "REGIME_DATA_DIR": str(warehouse.parent)}
    done = subprocess.run([str(REGIME), "since", "zscore_50d", "RUT"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, RUT_RECORD + "\n", "")
    done = subprocess.run([str(REGIME), "sql", "drop table marts.indicators"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("regime: DROP is refused") and "Traceback" not in done.stderr


def test_answer_error_is_a_value_error():
    assert issubclass(readonly.AnswerError, ValueError)


def test_latest_says_why_when_readings_lag_the_build_or_the_regime_is_unknown(warehouse, capsys):
    """A build whose readings end before its as-of date (a stale source) says so; a day without a regime row says
    why the regime is unknown and when it is known."""
    con = duckdb.connect(str(warehouse))
    try:
        con.execute("update meta.build_info set as_of = date '2024-07-22'")
        con.execute("delete from marts.regime_daily where date = date '2024-07-16'")
        first = con.execute("select min(date) from marts.regime_daily").fetchone()[0]
    finally:
        con.close()
    code, out, err = run(capsys, "latest")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    # 2024-07-17, 18, 19 and 22 are the weekdays after the last reading up to the as-of date
    assert lines[1] == ("Its readings end 2024-07-16, 4 weekdays before its as-of date: a source is behind (the "
                        "build's freshness warnings are in meta.validation_runs)")
    assert lines[2] == (f"Regime on 2024-07-16: unknown (no Russell 2000 close on 2024-07-16: the regime is known "
                        f"from {first} to 2024-07-15)")
    code, out, _ = run(capsys, "latest", "--date", "2024-07-15")  # a date asked for: no lag line
    assert code == 0 and "a source is behind" not in out

    # the build's own freshness warnings (as the gate records them in meta.validation_runs) name the stale series
    con = duckdb.connect(str(warehouse))
    try:
        con.execute("create or replace table meta.validation_runs (run_at varchar, as_of varchar, dataset varchar,"
                    " expectation varchar, severity varchar, success bigint, unexpected_count double,"
                    " sample_values varchar, docs_url varchar)")
        con.executemany("insert into meta.validation_runs values (?, '2024-07-22', ?, ?, 'warning', ?, 0, ?, '')", [
            ("2024-07-22T21:00", "prices", "expect_column_values_to_be_null(column=stale)", 0,
             '["RUT last 2024-07-16", "RUT last 2024-07-16", "SPX last 2024-07-16"]'),
            ("2024-07-22T21:00", "cftc_tff", "expect_column_values_to_be_null(column=stale)", 0,
             '["239742 last released 2024-07-05"]'),
            ("2024-07-22T21:00", "etf_nav", "expect_column_values_to_be_null(column=stale)", 1, "[]"),
            ("2024-07-22T20:00", "etf_nav", "expect_column_values_to_be_null(column=stale)", 0,  # an earlier run
             '["IWM last 2024-07-01"]')])
    finally:
        con.close()
    code, out, _ = run(capsys, "latest")
    assert code == 0 and out.splitlines()[2] == ("Stale in this build (a warning: it was run for a date it was "
                                                 "given): 239742 last released 2024-07-05; RUT last 2024-07-16; "
                                                 "SPX last 2024-07-16")
