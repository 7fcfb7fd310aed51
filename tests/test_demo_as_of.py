"""The demo's as-of date (`make demo` without REGIME_AS_OF): the last NYSE session on which every headline series of
the mirror has a row; a headline series missing or stale on it is a loud warning (mirror) or stops the demo before
anything is published (live); a malformed file stops it with a message naming the file and line, no traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import date
from urllib.parse import urlsplit

import pytest

from regime import demo
from regime.sources import cboe, cftc, etf, occ

SAMPLE_AS_OF = date(2024, 7, 17)
STALE_RUT = ("index_prices RUT ends 2024-07-10, before 2024-07-12 "
             "(at most 3 sessions behind, REGIME_FRESHNESS_SESSIONS)")


def _drop_last_lines(path, count: int) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-count]))


def _demo(env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    """`make demo`'s command (python -m regime.demo), output and errors in one text."""
    return subprocess.run([sys.executable, "-m", "regime.demo"], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)


@pytest.mark.slow
def test_the_sample_as_of_is_its_last_session(settings, mirror):
    # hand-checked in the files: every Cboe, ETF and OCC series ends on 07/17/2024 (a Wednesday, an NYSE session);
    # the newest CFTC release by then is Friday 2024-07-12 (report of Tuesday 07-09), within 10 days
    assert (mirror / "cboe" / "RUT_History.csv").read_text().splitlines()[-1].startswith("07/17/2024,")
    assert sorted(p.name for p in (mirror / occ.FOLDER).iterdir())[-1] == "2024-07-17"
    choice = demo.choose_as_of(settings)
    assert choice.as_of == SAMPLE_AS_OF
    assert (choice.limited_by, choice.later, choice.missing) == ((), (), ())
    releases = {s.name: max(d for d in s.dates if d <= SAMPLE_AS_OF) for s in choice.series if s.dataset.name ==
                "cftc_tff"}
    assert releases == {"13874A": date(2024, 7, 12), "239742": date(2024, 7, 12), "209742": date(2024, 7, 12)}
    assert demo.mirror_problems(settings, choice, SAMPLE_AS_OF) == []


@pytest.mark.slow
def test_a_row_far_beyond_the_others_does_not_move_the_as_of(settings, mirror, capsys):
    with (mirror / "cboe" / "RUT_History.csv").open("a") as f:
        f.write("01/02/2025,2500.10,2510.20,2490.30,2505.40\n")
    as_of, found = demo.prepare(settings, None)
    assert (as_of, found) == (SAMPLE_AS_OF, [])
    out = capsys.readouterr().out
    assert "as of 2024-07-17: the last NYSE session on which every headline series has a row" in out
    assert "later rows, ignored: index_prices RUT: 1 row after it, up to 2025-01-02" in out
    # 2025-01-02 is the next session some series has: every other series lacks it, and no CFTC release is within
    # 10 days of it
    assert ("limited by: index_prices SPX, NDX, DJX, VIX, RVX; options_volume IWM, SPY, QQQ, NVDA, TSLA, AAPL; "
            "etf_nav IWM, IJR, VTWO, SPY, IVV, QQQ; cftc_tff 13874A, 239742, 209742") in out


@pytest.mark.slow
def test_a_trailing_separator_line_is_read_as_the_ingest_reads_it(settings, mirror):
    # the Cboe parser drops blank and separator-only lines (the ingest accepts the file): the as-of is unchanged
    with (mirror / "cboe" / "RUT_History.csv").open("a") as f:
        f.write(",,,,\n")
    assert demo.choose_as_of(settings).as_of == SAMPLE_AS_OF


@pytest.mark.parametrize(("line", "problem"), [
    ("garbage", "line 1396 has 1 fields, expected 5 (truncated file?): ['garbage']"),
    ("13/45/2024,1,2,3,4", "line 1396: date '13/45/2024' is not MM/DD/YYYY"),
])
@pytest.mark.slow
def test_a_malformed_file_stops_the_demo_naming_file_and_line(regime_env, mirror, line, problem):
    path = mirror / "cboe" / "SPX_History.csv"
    assert len(path.read_text().splitlines()) == 1395  # header and 1394 sessions: the new line is line 1396
    with path.open("a") as f:
        f.write(line + "\n")
    done = _demo({**os.environ, **regime_env}, timeout=120)
    assert done.returncode == 2
    assert f"error: cannot choose the as-of date: {path}: {problem}" in done.stdout
    assert "Traceback" not in done.stdout
    assert "dags test" not in done.stdout  # stopped before Airflow


@pytest.mark.slow
def test_a_short_series_limits_the_as_of(settings, mirror):
    _drop_last_lines(mirror / "cboe" / "RUT_History.csv", 5)  # 07-11, 07-12, 07-15, 07-16 and 07-17
    choice = demo.choose_as_of(settings)
    assert choice.as_of == date(2024, 7, 10)
    assert choice.limited_by == ("index_prices RUT",)
    assert "index_prices SPX: 5 rows after it, up to 2024-07-17" in choice.later
    assert "etf_nav IWM: 5 rows after it, up to 2024-07-17" in choice.later
    assert demo.mirror_problems(settings, choice, choice.as_of) == []
    # on 2024-07-17 (REGIME_AS_OF) RUT is stale: its newest row is 4 sessions behind, the limit 3 (07-12)
    assert demo.mirror_problems(settings, choice, SAMPLE_AS_OF) == [STALE_RUT]


@pytest.mark.slow
def test_a_headline_series_missing_from_the_mirror_is_a_warning(settings, mirror, capsys):
    (mirror / "cboe" / "NDX_History.csv").unlink()
    as_of, found = demo.prepare(settings, None)
    assert as_of == SAMPLE_AS_OF
    assert found == ["index_prices NDX: no data on or before 2024-07-17 in the mirror"]
    assert demo.choose_as_of(settings).missing == ("index_prices NDX",)


@pytest.mark.slow
def test_the_demo_on_a_stale_mirror_prints_the_warning(airflow_home, regime_env, mirror, smtp, tmp_path):
    """The full `make demo` run (through Airflow) with REGIME_AS_OF=2024-07-17 and RUT ending 2024-07-10."""
    _drop_last_lines(mirror / "cboe" / "RUT_History.csv", 5)
    env = {**airflow_home, **regime_env, "AIRFLOW_CONN_SMTP_DEFAULT": smtp.connection_uri_json(),
           "REGIME_AS_OF": "2024-07-17"}
    done = _demo(env)
    out = done.stdout
    assert "Traceback" not in out
    assert "as of 2024-07-17: REGIME_AS_OF (the last session every headline series shares: 2024-07-10)" in out
    warning = "! WARNING: headline series missing or stale on 2024-07-17; its readings are not current"
    assert out.count(warning) == 2  # before the run and again after its summary, the last thing printed
    assert out.count(f"! - {STALE_RUT}") == 2
    assert out.rstrip().splitlines()[-1].startswith("!!!!")
    # the put/call archive's own DAG first (regime_daily ingests the session sources only), then the session's run:
    # the bundled archive's 3 x 192 rows (hand-counted: 192 dated lines per product file, 2019-01-02 .. 2019-10-04)
    # are in the warehouse the demo built
    archive, daily = "$ dags test ingest_options_putcall 2024-07-17", "$ dags test regime_daily 2024-07-17"
    assert archive in out and daily in out and out.index(archive) < out.index(daily)
    assert "airflow dags test ingest_options_putcall finished in" in out
    assert "airflow dags test regime_daily finished in" in out
    assert re.search(r"^  staging\.options_putcall +576 rows$", out, re.M), out
    assert done.returncode == 0


def _serve_mirror(up, mirror) -> None:
    """Every file of `mirror` at the path (and query) of its publisher's URL."""
    def at(url: str, path) -> None:
        parts = urlsplit(url)
        up.route(parts.path + (f"?{parts.query}" if parts.query else ""), body=path.read_bytes())

    for path in (mirror / "cboe").glob("*_History.csv"):
        at(cboe.url(path.name.removesuffix("_History.csv")), path)
    for path in (mirror / "cftc").glob("fut_fin_txt_*.zip"):
        at(cftc.zip_url(int(path.stem[-4:])), path)
    for path in (mirror / "etf" / "ssga").glob("navhist-us-en-*.xlsx"):
        at(etf.url(path.stem.removeprefix("navhist-us-en-")), path)
    for path in (mirror / occ.FOLDER).glob("*/*.csv"):
        at(occ.url(path.stem, date.fromisoformat(path.parent.name)), path)


@pytest.mark.slow
def test_live_a_stale_headline_series_blocks_before_anything_is_published(settings, mirror, monkeypatch, capsys):
    from upstream import Upstream

    _drop_last_lines(mirror / "cboe" / "RUT_History.csv", 5)
    with Upstream() as up:
        _serve_mirror(up, mirror)
        monkeypatch.setenv("REGIME_SOURCE", "live")
        monkeypatch.setenv("REGIME_LIVE_BASE_URL", up.url(""))
        monkeypatch.setenv("REGIME_AS_OF", "2024-07-17")
        code = demo.main()
    captured = capsys.readouterr()
    assert code == 2
    assert "! BLOCKED: headline data for 2024-07-17 is missing or stale; nothing was published" in captured.out
    assert f"! - {STALE_RUT}" in captured.out
    assert "error: stale or missing headline data for 2024-07-17 (above); nothing was published" in captured.err
    assert (settings.lake_dir / "index_prices").is_dir()  # fetched and ingested ...
    assert not settings.warehouse_path.exists()  # ... but not built nor published: Airflow never ran
    assert "dags test" not in captured.out


@pytest.mark.slow
def test_live_fresh_data_passes_the_check(settings, mirror, monkeypatch):
    from upstream import Upstream

    with Upstream() as up:
        _serve_mirror(up, mirror)
        monkeypatch.setenv("REGIME_SOURCE", "live")
        monkeypatch.setenv("REGIME_LIVE_BASE_URL", up.url(""))
        from regime.config import get_settings

        assert demo.live_problems(get_settings(), SAMPLE_AS_OF) == []


def test_live_default_as_of_is_the_session_before_today():
    assert demo.live_as_of(date(2024, 7, 18)) == date(2024, 7, 17)  # a Thursday: Wednesday's session
    assert demo.live_as_of(date(2024, 7, 15)) == date(2024, 7, 12)  # a Monday: Friday's
    assert demo.live_as_of(date(2024, 7, 5)) == date(2024, 7, 3)  # the day after July 4th: July 3rd

