"""The bad-input corpus (tests/corpus/, index cases.csv): every malformed upstream file, through its real parser
and through the ingest in mirror mode, ends in a clear SourceError / IngestError naming source, file and problem
(bytes quarantined, nothing in the lake), or in a documented repair with only valid rows in the lake."""

from __future__ import annotations

import csv
import importlib.util
import math
import re
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from regime import datasets, pipeline
from regime.config import get_settings
from regime.ingest import IngestError
from regime.sources import cboe, cftc, etf, occ
from regime.sources.errors import SourceError

CORPUS = Path(__file__).resolve().parent / "corpus"
CASES = list(csv.DictReader((CORPUS / "cases.csv").open(newline="")))
AS_OF = date(2024, 7, 17)
DATASET = {"cboe": datasets.INDEX_PRICES, "occ": datasets.OPTIONS_VOLUME, "cftc": datasets.CFTC_TFF,
           "etf": datasets.ETF_NAV}
FOLDER = {"cboe": "cboe", "occ": occ.FOLDER, "cftc": "cftc", "etf": "etf/ssga"}  # mirror folder of each source
SUBJECT_ENV = {"cboe": "REGIME_INDEXES", "occ": "REGIME_WATCHLIST", "cftc": "REGIME_CFTC_MARKETS",
               "etf": "REGIME_ETF_TICKERS"}


def parse(case: dict, data: bytes) -> pd.DataFrame:
    """The real parser of the case's source, called as the ingest calls it."""
    where, subject = case["mirror_path"] or case["file"], case["subject"]
    if case["source"] == "cboe":
        return cboe.parse(data, subject, where)
    if case["source"] == "occ":
        return occ.parse(data, where, subject, date.fromisoformat(case["day"]))
    if case["source"] == "cftc":
        if case["file"].endswith(".json"):
            return cftc.parse_api(data, where, markets=subject.split(","))
        return cftc.parse_zip(data, where, markets=subject.split(","))
    return etf.parse(data, where, subject)


def check_frame(source: str, frame: pd.DataFrame) -> None:
    """What every accepted file must give: typed, unique keys, sorted, finite and positive where it matters."""
    assert len(frame) > 0
    if source == "cboe":
        assert list(frame.columns) == cboe.COLUMNS
        assert frame["date"].is_unique and frame["date"].is_monotonic_increasing
        assert all(isinstance(d, date) for d in frame["date"])
        assert frame["close"].map(math.isfinite).all() and (frame["close"] > 0).all()
        for column in ("open", "high", "low"):
            assert frame[column].isna().all() or frame[column].map(math.isfinite).all()
    elif source == "occ":
        assert list(frame.columns) == occ.COLUMNS and len(frame) == 1
        assert (frame[["call_volume", "put_volume"]] >= 0).all().all()
    elif source == "cftc":
        assert list(frame.columns) == cftc.COLUMNS
        assert not frame.duplicated(["report_date", "market_code"]).any()
        assert frame[["report_date", "market_code"]].equals(
            frame[["report_date", "market_code"]].sort_values(["report_date", "market_code"]))
        assert (frame[cftc.INTEGERS] >= 0).all().all()
        assert (frame["release_date"] > frame["report_date"]).all()
    else:
        assert list(frame.columns) == etf.COLUMNS
        assert frame["date"].is_unique and frame["date"].is_monotonic_increasing
        assert frame["nav"].map(math.isfinite).all() and (frame["nav"] > 0).all()
        shares = frame["shares_outstanding"].dropna()
        assert shares.map(math.isfinite).all() and (shares >= 0).all()


def _param(case: dict):
    marks = ()
    if case["outcome"] == "gap":
        marks = pytest.mark.xfail(strict=True, reason=f"known gap (docs/reliability.md): {case['description']}")
    return pytest.param(case, id=case["file"], marks=marks)


def test_the_corpus_is_big_enough_and_small():
    malformed = [c for c in CASES if c["outcome"] != "valid"]
    assert len(malformed) >= 40
    assert {c["source"] for c in malformed} == {"cboe", "occ", "cftc", "etf"}
    assert sum((CORPUS / c["file"]).stat().st_size for c in CASES) < 2 * 2**20
    outcomes = {c["outcome"] for c in CASES}  # "gap": a known gap (strict xfail); none left since issue #9
    assert {"valid", "error", "repaired"} <= outcomes <= {"valid", "error", "repaired", "gap"}
    on_disk = {str(p.relative_to(CORPUS)) for p in CORPUS.glob("*/*") if p.is_file()}
    assert on_disk == {c["file"] for c in CASES}  # no stray file, none missing


def test_every_case_is_documented():
    documented = (CORPUS.parents[1] / "docs" / "reliability.md").read_text()
    assert [c["file"] for c in CASES if f"| `{c['file']}` | " not in documented] == []


def test_every_wrong_number_case_names_a_test_that_exists():
    """docs/reliability.md's table of the observed wrong-number cases names the tests that prove each outcome."""
    documented = (CORPUS.parents[1] / "docs" / "reliability.md").read_text()
    table = documented.split("## Wrong numbers: the observed cases", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"`((?:e2e/)?test_\w+\.py)::(test_\w+)`", table)
    assert len({case for case in table.splitlines() if case.startswith("| ") and "::" in case}) >= 12
    missing = [f"{file}::{name}" for file, name in named
               if f"def {name}(" not in (CORPUS.parent / file).read_text()]
    assert named and missing == []


@pytest.mark.slow
def test_the_generator_is_deterministic(tmp_path):
    spec = importlib.util.spec_from_file_location("make_corpus", CORPUS / "make_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp_path)
    assert (tmp_path / "cases.csv").read_bytes() == (CORPUS / "cases.csv").read_bytes()
    for case in CASES:
        assert (tmp_path / case["file"]).read_bytes() == (CORPUS / case["file"]).read_bytes(), case["file"]


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_parser(case):
    data = (CORPUS / case["file"]).read_bytes()
    if case["outcome"] in ("error", "gap"):
        with pytest.raises(SourceError) as err:
            parse(case, data)
        assert type(err.value).__module__.startswith("regime.sources")
        assert err.value.source == case["source"]
        assert str(err.value).startswith(f"{case['source']}: {case['mirror_path']}: ")
        assert case["expect"] in err.value.problem
        return
    frame = parse(case, data)
    check_frame(case["source"], frame)
    if case["same_as"]:
        base = next(c for c in CASES if c["file"] == case["same_as"])
        pd.testing.assert_frame_equal(frame, parse(base, (CORPUS / base["file"]).read_bytes()))


@pytest.mark.parametrize("case", [_param(c) for c in CASES if c["mirror_path"]])
def test_ingest_in_mirror_mode(case, tmp_path, monkeypatch):
    source, data = case["source"], (CORPUS / case["file"]).read_bytes()
    mirror, data_dir = tmp_path / "mirror", tmp_path / "data"
    placed = mirror / case["mirror_path"]
    placed.parent.mkdir(parents=True)
    placed.write_bytes(data)
    for key, value in {"REGIME_DATA_DIR": str(data_dir), "REGIME_MIRROR_DIR": str(mirror), "REGIME_SOURCE": "mirror",
                       SUBJECT_ENV[source]: case["subject"]}.items():
        monkeypatch.setenv(key, value)
    settings = get_settings()
    dataset = DATASET[source]

    if case["outcome"] in ("error", "gap"):
        with pytest.raises(IngestError) as err:
            pipeline.ingest(dataset.name, AS_OF, settings)
        message = str(err.value)
        assert message.split()[0].rstrip(":") == source  # "cboe ingest failed; ..." or "occ: no volume ..."
        assert case["ingest_expect"] or f"{source}: {placed}: " in message
        assert (case["ingest_expect"] or case["expect"]) in message
        assert not (settings.lake_dir / dataset.name).exists()  # never silent bad data in the lake
        if not case["ingest_expect"]:  # bytes that failed to parse are kept, with the reason
            kept = settings.quarantine_dir / source / f"as_of={AS_OF}" / case["mirror_path"].removeprefix(
                FOLDER[source] + "/")
            assert kept.read_bytes() == data
            assert case["expect"] in kept.with_name(kept.name + ".error.txt").read_text()
        return

    result = pipeline.ingest(dataset.name, AS_OF, settings)
    assert result["files"] == 1 and result["rows"]
    parsed = parse(case, data)
    if source == "cboe":
        parsed = parsed.assign(symbol=case["subject"])
    assert sorted(result["rows"]) == sorted(parsed[dataset.partition].astype(str).unique())
    for value in result["rows"]:  # exactly the parsed rows, nothing else
        stored = pd.read_parquet(dataset.partition_path(settings.lake_dir, value))
        assert not stored.duplicated(list(dataset.key)).any()
        expected = parsed[parsed[dataset.partition].astype(str) == value].reset_index(drop=True)
        for column in stored.columns:
            assert stored[column].tolist() == expected[column].tolist(), column
    raw = settings.raw_dir / source / f"as_of={AS_OF}"
    assert [p.read_bytes() for p in raw.rglob("*") if p.is_file() and not p.name.endswith(".meta.json")] == [data]
