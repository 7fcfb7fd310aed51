"""`regime analogs`, the report's "What happened next" section and the alert mail's summary line, on the bundled
sample built by the real pipeline; the phrasing (regime.words) and the summary statistics by hand."""

from __future__ import annotations

import contextlib
import csv
import io
import re
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import SAMPLE_LAST, published_run
from regime import analogs, cli, words
from regime.alerts import content, mail
from regime.report import render_report
from regime.sql import connect

SAMPLE_3_SIGMA = [date(2019, 12, 11), date(2020, 12, 10), date(2020, 12, 15), date(2020, 12, 17), date(2021, 6, 28),
                  date(2023, 2, 2), date(2023, 2, 6)]  # RUT's episodes at or above 3σ before 2024-07-12


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    """The sample's published warehouse (conftest's published_run, once per session: the gate's analogs suites
    passed): read only."""
    return Path(published_run(tmp_path_factory)[1]["published"])


def regime(warehouse: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["--warehouse", str(warehouse), *args])
    return code, out.getvalue(), err.getvalue()


@pytest.mark.slow
def test_csv_lists_the_earlier_episodes_with_the_tables_values(sample):
    code, out, err = regime(sample, "analogs", "zscore_50d", "RUT", "--threshold", "3", "--csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [date.fromisoformat(r["start_date"]) for r in rows] == SAMPLE_3_SIGMA
    con = connect(sample, read_only=True)
    try:
        rut_20d, pair_60d = con.execute(
            "select r.value, p.value from marts.forward_returns as r join marts.forward_returns as p using (date)"
            " where date = '2021-06-28' and r.subject = 'RUT' and r.horizon = 20 and p.subject = 'RUT/SPX'"
            " and p.horizon = 60").fetchall()[0]
        close = dict(con.execute("select date, close from marts.prices where symbol = 'RUT' and date in"
                                 " ('2021-06-28', '2021-07-27')").fetchall())
    finally:
        con.close()
    june = rows[4]
    assert (june["end_date"], june["sessions"], june["peak_date"]) == ("2021-06-30", "3", "2021-06-29")
    assert float(june["index_fwd_20d"]) == rut_20d
    assert float(june["pair_fwd_60d"]) == pair_60d
    # 20 RUT sessions after 2021-06-28 is 2021-07-27 (sessions of the sample: weekdays but for NYSE holidays)
    assert rut_20d == pytest.approx(close[date(2021, 7, 27)] / close[date(2021, 6, 28)] - 1)


@pytest.mark.slow
def test_the_plain_answer_in_words_and_units(sample):
    code, out, err = regime(sample, "analogs", "zscore_50d", "RUT", "--threshold", "3", "--date", "2024-07-16")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == ("Russell 2000 z-score vs its 50-day average at or above +3.00σ: 7 earlier episodes before the"
                        " one that started on 2024-07-12 (+4.34σ on 2024-07-16, its 3rd session; peak so far +4.50σ on"
                        " 2024-07-12)")
    assert re.search(r"^2021-06-28  2021-06-30         3  \+3\.44σ 2021-06-29 .* [+-]\d+\.\d+ pp$", out, re.M)
    summaries = [line for line in lines if " sessions after the start of 7 earlier episodes: median " in line]
    assert len(summaries) == 6  # index and small minus large, 5 / 20 / 60 sessions
    assert "Caveat" not in out  # seven: enough
    # the strictest threshold by default: 3.5σ, one earlier episode, and the caveat
    code, out, _ = regime(sample, "analogs", "zscore_50d", "RUT")
    assert out.startswith("Russell 2000 z-score vs its 50-day average at or above +3.50σ: 1 earlier episode ")
    assert out.rstrip().endswith("Caveat: only 1 earlier episode (fewer than 5): too few to say what usually follows.")


@pytest.mark.slow
def test_mistakes_exit_2_with_one_line(sample):
    code, out, err = regime(sample, "analogs", "zscore_50d", "RUT", "--date", "2024-07-10")
    assert (code, out) == (2, "")
    assert err == ("regime: Russell 2000 z-score vs its 50-day average on 2024-07-10 is -0.29σ: not beyond any of its"
                   " thresholds, so there is no episode to compare with (its thresholds: 2, 3, 3.5, records)\n")
    code, _, err = regime(sample, "analogs", "zscore_50d", "RUT", "--threshold", "2.5")
    assert code == 2 and err.startswith("regime: no episodes of RUT zscore_50d at threshold 2.5; its thresholds: 2,")
    code, _, err = regime(sample, "analogs", "zscore50", "RUT")
    assert code == 2 and "did you mean 'zscore_50d'?" in err


def test_summary_statistics_by_hand():
    episode = analogs.Episode  # (start, end, sessions, peak date, peak value, index returns, pair returns)
    earlier = [episode(date(2020, 1, d), date(2020, 1, d), 1, date(2020, 1, d), 3.0, {20: r}, {20: None})
               for d, r in ((1, 0.02), (2, -0.05), (3, 0.10), (6, -0.01))]
    earlier.append(episode(date(2020, 1, 7), date(2020, 1, 7), 1, date(2020, 1, 7), 3.0, {}, {}))  # not known yet
    found = analogs.Analogs("zscore_50d", "RUT", "level", 3.0, "high", date(2024, 7, 16), 4.4, earlier[0], earlier)
    s = analogs.summarize(found, "index", 20)
    assert (s.count, s.median, s.negative, s.best, s.worst) == (
        4, pytest.approx(0.005), 2, (date(2020, 1, 3), 0.10), (date(2020, 1, 2), -0.05))
    assert words.analog_summary("RUT", 20, s.count, s.median, s.negative, s.best, s.worst) == (
        "Russell 2000 over the 20 sessions after the start of 4 earlier episodes: median +0.50%, negative 2 times of"
        " 4 (50%), best +10.0% (2020-01-03), worst -5.00% (2020-01-02)")
    assert analogs.summarize(found, "pair", 20).count == 0
    assert words.analog_caveat(4, 5) == "Caveat: only 4 earlier episodes (fewer than 5): too few to say what usually" \
                                        " follows."
    assert words.analog_caveat(5, 5) is None
    assert words.threshold_text("rel_ret_5d", "percentile", 0.99, "high") == \
        "at or above its 99th percentile (in its history to date)"
    assert words.threshold_text("zscore_50d", "level", -3.0, "low") == "at or below -3.00σ"
    assert words.forward_text("RUT/SPX", -0.0123) == "-1.23 pp"


@pytest.mark.slow
def test_the_report_shows_what_happened_next(sample, tmp_path):
    text = render_report(sample, SAMPLE_LAST, tmp_path).read_text(encoding="utf-8")
    section = re.search(r'<section id="whatnext">(.*?)</section>', text, re.S)[1]
    assert '<a href="#whatnext">What happened next</a>' in text
    assert "<svg" in section and "<figcaption>" in section
    assert "Russell 2000 z-score vs its 50-day average at or above +3.50σ</b> since 2024-07-12" in section
    assert "Caveat: only 1 earlier episode" in section
    assert "Could not render" not in text


@pytest.mark.slow
def test_the_mail_adds_one_line_for_its_leading_reading(sample):
    alerts = [{"alert_key": "zscore_threshold:zscore_50d:RUT:2024-07-12", "rule": "zscore_threshold",
               "indicator": "zscore_50d", "subject": "RUT", "reading_date": "2024-07-17"},
              {"alert_key": "record:rel_ret_5d:RUT/SPX:2024-07-17", "rule": "long_since",
               "indicator": "rel_ret_5d", "subject": "RUT/SPX", "reading_date": "2024-07-17"}]
    con = connect(sample, read_only=True)
    try:
        items, failed = content.items(con, alerts, SimpleNamespace(zscore_alert=3.0, since_years=10))
    finally:
        con.close()
    assert failed == {}
    assert items[0].analogs.startswith("What happened next (at or above +3.00σ): Russell 2000 over the 20 sessions "
                                       "after the start of 7 earlier episodes: median ")
    assert items[1].analogs == ""  # only the leading reading
    text = mail.plain_text(items, [], "2024-07-17", None)
    assert text.count("What happened next") == 1
    assert items[0].analogs in mail.html_body(items, [], "2024-07-17", None, None).replace("&#x27;", "'")
