"""`regime analogs` on the real reference mirror as of the article's day: every earlier RUT episode above 3σ, with its
forward returns, checked against an independent pandas computation from the raw Cboe files."""

from __future__ import annotations

import contextlib
import csv
import io
from datetime import date

import pandas as pd
import pytest

from conftest import REFERENCE_MIRROR, requires_reference
from regime import cli, pipeline, publisher, warehouse
from regime.config import get_settings

pytestmark = [pytest.mark.reference, requires_reference("mirror", "cboe", "RUT_History.csv")]
AS_OF = date(2024, 7, 16)
HORIZONS = (5, 20, 60)


@pytest.fixture(scope="module")
def reference_warehouse(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REGIME_DATA_DIR", str(tmp_path_factory.mktemp("analogs-reference")))
        mp.setenv("REGIME_MIRROR_DIR", str(REFERENCE_MIRROR))
        mp.setenv("REGIME_SOURCE", "mirror")
        settings = get_settings()
        pipeline.ingest("index_prices", AS_OF, settings)
        publisher.publish(settings, warehouse.build(settings, AS_OF))
        return settings.warehouse_path


def _closes(symbol: str) -> pd.Series:
    raw = pd.read_csv(REFERENCE_MIRROR / "cboe" / f"{symbol}_History.csv")
    raw.columns = [c.strip().upper() for c in raw.columns]
    closes = pd.Series(pd.to_numeric(raw["CLOSE"], errors="coerce").to_numpy(),
                       index=pd.to_datetime(raw["DATE"], format="%m/%d/%Y"))
    closes = closes[~closes.index.duplicated(keep="last")].dropna().sort_index()
    return closes[closes.index <= pd.Timestamp(AS_OF)]


def expected_episodes() -> list[dict]:
    """Independently: RUT's z-score vs its 50 closes (sample std), runs of closes at or above 3σ started before the
    run that contains AS_OF, forward returns over RUT's own and SPX's own later closes up to AS_OF."""
    rut, spx = _closes("RUT"), _closes("SPX")
    window = rut.rolling(50)
    z = (rut - window.mean()) / window.std(ddof=1)
    beyond = (z >= 3).fillna(False)
    starts = beyond & ~beyond.shift(1, fill_value=False)
    run = (~beyond).cumsum()
    episodes = []
    for start in z.index[starts]:
        days = z.index[beyond & (run == run[start])]
        peak = z[days].idxmax()
        row = {"start_date": start.date(), "end_date": days[-1].date(), "sessions": len(days),
               "peak_date": peak.date(), "peak_value": z[peak]}
        for h in HORIZONS:
            rut_fwd = rut.shift(-h)[start] / rut[start] - 1
            spx_fwd = spx.shift(-h)[start] / spx[start] - 1 if start in spx.index else float("nan")
            row[f"index_fwd_{h}d"] = None if pd.isna(rut_fwd) else rut_fwd
            row[f"pair_fwd_{h}d"] = None if pd.isna(rut_fwd) or pd.isna(spx_fwd) else rut_fwd - spx_fwd
        episodes.append(row)
    assert episodes[-1]["start_date"] <= AS_OF <= episodes[-1]["end_date"]  # the article's own episode
    return episodes[:-1]


def _run(warehouse_path, *args) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["--warehouse", str(warehouse_path), "analogs", "zscore_50d", "RUT", "--threshold", "3",
                         "--date", AS_OF.isoformat(), *args])
    assert code == 0, err.getvalue()
    return out.getvalue()


def test_every_earlier_rut_episode_above_3_sigma_with_its_forward_returns(reference_warehouse):
    expected = expected_episodes()
    assert [e["start_date"] for e in expected] == [date(1991, 1, 30), date(2021, 11, 3), date(2021, 11, 5),
                                                   date(2023, 6, 6)]
    rows = list(csv.DictReader(io.StringIO(_run(reference_warehouse, "--csv"))))
    assert len(rows) == len(expected)
    for got, want in zip(rows, expected, strict=True):
        assert (got["indicator"], got["subject"], got["kind"], float(got["threshold"]), got["side"]) == (
            "zscore_50d", "RUT", "level", 3.0, "high")
        assert (got["index"], got["pair"]) == ("RUT", "RUT/SPX")
        for key in ("start_date", "end_date", "peak_date"):
            assert date.fromisoformat(got[key]) == want[key], key
        assert int(got["sessions"]) == want["sessions"]
        assert float(got["peak_value"]) == pytest.approx(want["peak_value"], abs=1e-9)
        for h in HORIZONS:
            for which in ("index", "pair"):
                key = f"{which}_fwd_{h}d"
                if want[key] is None:
                    assert got[key] == "", key
                else:
                    assert float(got[key]) == pytest.approx(want[key], abs=1e-9), (got["start_date"], key)
    # the doc's figure (docs/analysts.md, question 4): 20 sessions after 2021-11-05 RUT was 9.59 % lower
    assert float(rows[2]["index_fwd_20d"]) == pytest.approx(-0.0959, abs=1e-4)


def test_the_plain_answer_has_the_summary_and_the_caveat(reference_warehouse):
    text = _run(reference_warehouse)
    first = text.splitlines()[0]
    assert first.startswith("Russell 2000 z-score vs its 50-day average at or above +3.00σ: 4 earlier episodes "
                            "before the one that started on 2024-07-12 (+4.42σ on 2024-07-16")
    assert "Russell 2000 over the 20 sessions after the start of 4 earlier episodes: median " in text
    assert "negative 3 times of 4 (75%)" in text  # 1991 up; 2021-11-03, 2021-11-05, 2023-06-06 down
    assert "Caveat: only 4 earlier episodes (fewer than 5)" in text
