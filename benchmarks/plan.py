"""What `make bench` runs: the data it measures (mirrors, synthetic sizes and dates) and the names of the steps."""

from __future__ import annotations

from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "include" / "sample" / "mirror"
REFERENCE = ROOT.parent / "shared" / "reference-data" / "mirror"
SAMPLE_LAST, SAMPLE_BEFORE = date(2024, 7, 17), date(2024, 7, 16)
REFERENCE_LAST, REFERENCE_BEFORE = date(2025, 12, 31), date(2025, 12, 30)
HISTORY_YEARS = 40  # 1x: the span of the reference mirror
HISTORY_SCALES = (1, 4, 16)
# a full build as of the first day, then one-day updates: the first copies the published file, the others take the
# spare (the file published before: publisher.spare_path, taken by warehouse.update)
HISTORY_DAYS = (date(2025, 12, 24), date(2025, 12, 26), date(2025, 12, 29), date(2025, 12, 30), date(2025, 12, 31))
PANEL = {"underlyings": 4000, "etfs": 500, "days": 2520}
SECTIONS = ("reference", "sample", "history", "panel", "airflow", "bucket")
# the bucket section's daily runs on the sample, in order on the same data dir (and bucket): (run, as-of date)
BUCKET_RUNS = (("first run", SAMPLE_BEFORE), ("rerun, nothing new", SAMPLE_BEFORE), ("next day", SAMPLE_LAST))
DATASETS = ("index_prices", "options_volume", "cftc_tff", "etf_nav")
BUILD_STEPS = ("meta", "staging", "indicators", "extremes", "regime_daily", "headlines", "analogs", "checkpoint")
UPDATE_STEPS = ("check", "copy", "meta", "staging", "indicators", "extremes", "regime_daily", "headlines", "analogs",
                "checkpoint")
STEP_NAMES = {  # what each logged step is, for the table
    "check": "check: previous build's record and fingerprint",
    "copy": "copy the published file (or take the spare)",
    "meta": "meta: state tables copied in",
    "staging": "staging models + marts.prices",
    "indicators": "indicators",
    "extremes": "extremes",
    "regime_daily": "regime_daily",
    "headlines": "headlines",
    "analogs": "analogs: marts.forward_returns, marts.episodes",
    "checkpoint": "meta.build_info + checkpoint",
}
